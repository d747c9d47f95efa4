"""The block sensor evaluated as the daemon does (`Ticker`), and what its tests read of a tick:
run keys, cursor, skip reason, the runs Dagster would launch."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorResult,
    build_sensor_context,
)
from dagster._core.utils import make_new_run_id
from host_defs import DEFS, HOST, HOST_RANGES

from fhevm_dagster.chain.config import ChainKind, RangeRules
from fhevm_dagster.devnet.anvil import AnvilNode, rpc_call
from fhevm_dagster.pipeline.block_ranges import parse_range_key
from fhevm_dagster.pipeline.redrive import RedrivePolicy
from fhevm_dagster.protocol.addresses import EXECUTOR_ADDRESS
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.sensors.blocks import DEFAULT_SENSOR, SensorConfig, block_range_sensor


def mine_to(node: AnvilNode, block: int) -> None:
    head = int(str(rpc_call(node.rpc_url, "eth_blockNumber")), 16)
    if block > head:
        rpc_call(node.rpc_url, "anvil_mine", [hex(block - head)])


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


class Ticker:
    """Evaluates the sensor like the daemon does: carries the cursor, applies partition requests,
    and (unless told otherwise) lets each requested run ingest its range and succeed, as the
    range job would (else the run stays queued). Run keys the daemon has seen are skipped, as
    Dagster does; each launched request becomes a run of the instance."""

    def __init__(
        self, instance: DagsterInstance, resources: dict[str, Any], sensor: SensorDefinition
    ) -> None:
        self.instance, self.resources, self.sensor, self.cursor = instance, resources, sensor, None
        self.run_keys: set[str] = set()
        self.launched: list[tuple[str | None, str | None]] = []
        self.logs: list[str] = []  # what the last tick logged

    def tick(self, *, lost: bool = False, runs: bool = True, **overrides: Any) -> SensorResult:
        """`lost`: the daemon died before storing the tick (nothing of it survives)."""
        resources = {**self.resources, **overrides}
        ctx = build_sensor_context(instance=self.instance, cursor=self.cursor, resources=resources)
        self.logs = []
        ctx.log.addHandler(_Collect(self.logs))
        result = self.sensor(ctx)
        assert isinstance(result, SensorResult)
        if lost:
            return result
        for req in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(HOST_RANGES, list(req.partition_keys or []))
        if result.cursor is not None:
            self.cursor = result.cursor
        launched = [r for r in result.run_requests or [] if r.run_key not in self.run_keys]
        self.run_keys.update(str(r.run_key) for r in launched)
        store = self.resources["store"].get()
        for r in launched:
            if runs:
                rng = parse_range_key(str(r.partition_key))
                last_hash = bytes.fromhex(r.tags["fhevm/last_block_hash"])
                store.mark_range_processed(31337, rng.key, rng.first, rng.last, last_hash)
            finish_run(
                self.instance, r, DagsterRunStatus.SUCCESS if runs else DagsterRunStatus.NOT_STARTED
            )
        self.launched = [(r.partition_key, plain_key(r)) for r in launched]
        return result


def make_ticker(
    instance: DagsterInstance,
    node: AnvilNode,
    url: str,
    objects: Path | None = None,
    redrive: RedrivePolicy = DEFAULT_SENSOR.redrive,
    **rules: Any,
) -> Ticker:
    """A ticker of the host sensor with the range rules `rules` (a run for every range by default:
    these tests are about planning on a chain of empty blocks)."""
    ranges = RangeRules(**{"range_size": 10, "run_empty": True, **rules})
    sensor = block_range_sensor(
        str(DEFS.sensor.name),
        job_name=DEFS.job.name,
        partitions=DEFS.partitions,
        chain_resource=HOST,
        kind=ChainKind.HOST,
        config=SensorConfig(ranges, redrive),
    )
    return Ticker(
        instance,
        {
            HOST: HostChainResource(rpc_url=node.rpc_url),
            "store": StoreResource(database_url=url),
            "objects": ObjectStoreResource(url=f"file://{objects or mkdtemp(prefix='objects-')}"),
        },
        sensor,
    )


def plain_key(r: RunRequest) -> str:
    """The run key without its chain generation (`@<genesis prefix>`, checked)."""
    generation = "@" + r.tags["fhevm/genesis_hash"][:8]
    assert generation in str(r.run_key), r.run_key
    return str(r.run_key).replace(generation, "")


def keys(result: SensorResult) -> list[tuple[str | None, str | None]]:
    """(partition key, run key without its chain generation)."""
    return [(r.partition_key, plain_key(r)) for r in result.run_requests or []]


def cursor_block(t: Ticker) -> str | None:
    """The next block of the ticker's cursor (`<genesis hex>:<block>`)."""
    return None if t.cursor is None else t.cursor.rpartition(":")[2]


def skip_text(result: SensorResult) -> str:
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


def emit_executor_log(node: AnvilNode) -> int:
    """A transaction whose log comes from the executor's address (code: LOG0, STOP); its block."""
    executor = EXECUTOR_ADDRESS
    rpc_call(node.rpc_url, "anvil_setCode", [executor, "0x60006000a000"])
    sender = str(rpc_call(node.rpc_url, "eth_accounts")[0])  # type: ignore[index]
    tx = rpc_call(node.rpc_url, "eth_sendTransaction", [{"from": sender, "to": executor}])
    receipt: Any = None
    for _ in range(50):  # automine: mined at once, its receipt readable a moment later
        receipt = rpc_call(node.rpc_url, "eth_getTransactionReceipt", [tx])
        if receipt:
            break
        time.sleep(0.1)
    assert receipt and receipt["logs"], receipt
    return int(receipt["blockNumber"], 16)


def fail_run(instance: DagsterInstance, launch: RunRequest | DagsterRun) -> DagsterRun:
    """A run of the range job, failed: the RPC was down for longer than web3's retries, the worker
    was OOM-killed, or it ran past `dagster/max_runtime`. For a request: the run the daemon
    launches; for a run: an operator's re-execution of it (tags copied, as the UI does)."""
    return finish_run(instance, launch, DagsterRunStatus.FAILURE)


def finish_run(
    instance: DagsterInstance, launch: RunRequest | DagsterRun, status: DagsterRunStatus
) -> DagsterRun:
    """A run of the range job that ended with `status` (see `fail_run`); for a request, the run
    the daemon queued for it, ended."""
    if isinstance(launch, DagsterRun):
        tags = {**launch.tags, "dagster/parent_run_id": launch.run_id}
    else:
        for queued in instance.get_runs(RunsFilter(tags={"dagster/run_key": str(launch.run_key)})):
            instance.delete_run(queued.run_id)
        tags = {
            **launch.tags,
            "dagster/partition": str(launch.partition_key),
            "dagster/run_key": str(launch.run_key),
            "dagster/sensor_name": DEFS.sensor.name,
        }
    failed = status is DagsterRunStatus.FAILURE
    # A failure is reported (its end time is the event's); a success is stored as ended.
    started = DagsterRunStatus.STARTED if failed else status
    run = DagsterRun(job_name=DEFS.job.name, run_id=make_new_run_id(), tags=tags, status=started)
    instance.add_run(run)
    if failed:
        instance.report_run_failed(run)
    return run


def launched(t: Ticker, result: SensorResult) -> list[RunRequest]:
    """The requests of the tick that Dagster would launch (a run key it has not seen)."""
    new = {k for _, k in t.launched}
    return [r for r in result.run_requests or [] if plain_key(r) in new]


def end_time(instance: DagsterInstance, run: DagsterRun) -> float:
    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.end_time is not None
    return record.end_time


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))
