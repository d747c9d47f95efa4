"""host_blocks_sensor against a real anvil: ranges, confirmations, cap, RPC outage, reorg, and
the re-drive of a range whose run failed."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SensorResult,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.utils import make_new_run_id
from host_defs import DEFS, HOST, HOST_RANGES
from postgres_fixtures import postgres_database, postgres_url, store_url  # noqa: F401

from fhevm_dagster.chain.client import ChainReader
from fhevm_dagster.chain.config import HostChainConfig
from fhevm_dagster.devnet.anvil import AnvilNode, free_port, rpc_call, start_anvil, stop_anvil
from fhevm_dagster.objects import FileBackend, ct64_key, ct128_key
from fhevm_dagster.pipeline.block_ranges import BlockRange, parse_range_key
from fhevm_dagster.pipeline.errors import StepError
from fhevm_dagster.pipeline.host import ingest_range
from fhevm_dagster.protocol.addresses import EXECUTOR_ADDRESS
from fhevm_dagster.protocol.computations import AllowedHandle, ComputationRow
from fhevm_dagster.resources.chain import HostChainResource, RangeSettings
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Ciphertext, CommitState, CommitStatus, Store


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    state = tmp_path_factory.mktemp("anvil")
    node = start_anvil(state, "sensor-host", port=free_port(), chain_id=31337)
    try:
        yield node
    finally:
        stop_anvil(state, "sensor-host")


@pytest.fixture()
def fresh_chain(anvil: AnvilNode) -> Iterator[AnvilNode]:
    """Each test starts from the same chain state (block 0)."""
    snap = rpc_call(anvil.rpc_url, "evm_snapshot")
    yield anvil
    rpc_call(anvil.rpc_url, "evm_revert", [snap])


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


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

    def __init__(self, instance: DagsterInstance, resources: dict[str, Any]) -> None:
        self.instance, self.resources, self.cursor = instance, resources, None
        self.run_keys: set[str] = set()
        self.launched: list[tuple[str | None, str | None]] = []
        self.logs: list[str] = []  # what the last tick logged

    def tick(self, *, lost: bool = False, runs: bool = True, **overrides: Any) -> SensorResult:
        """`lost`: the daemon died before storing the tick (nothing of it survives)."""
        resources = {**self.resources, **overrides}
        ctx = build_sensor_context(instance=self.instance, cursor=self.cursor, resources=resources)
        self.logs = []
        ctx.log.addHandler(_Collect(self.logs))
        result = DEFS.sensor(ctx)
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
    **settings: float | bool,
) -> Ticker:
    # A run for every range: these tests are about planning on a chain of empty blocks.
    defaults = {
        "range_size": 10, "confirmations": 0, "max_ranges_per_tick": 10, "start_block": 0,
        "run_empty": True,
    }  # fmt: skip
    return Ticker(
        instance,
        {
            HOST: HostChainResource(rpc_url=node.rpc_url),
            "store": StoreResource(database_url=url),
            "objects": ObjectStoreResource(url=f"file://{objects or mkdtemp(prefix='objects-')}"),
            DEFS.settings_resource: RangeSettings(**{**defaults, **settings}),
        },
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


def test_confirmations_and_partitions(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    mine_to(fresh_chain, 25)
    t = make_ticker(instance, fresh_chain, store_url, confirmations=3, start_block=5)
    r = t.tick()
    assert keys(r) == [
        ("000000000005-000000000009", "000000000005-000000000009"),
        ("000000000010-000000000019", "000000000010-000000000019"),
    ]
    assert cursor_block(t) == "20"
    assert instance.get_dynamic_partitions(HOST_RANGES) == [k for k, _ in keys(r)]
    r = t.tick()
    assert not r.run_requests and "needs safe head >= 29" in skip_text(r)
    mine_to(fresh_chain, 31)
    assert keys(t.tick()) == []  # safe head 28 < 29
    mine_to(fresh_chain, 32)
    assert [k for k, _ in keys(t.tick())] == ["000000000020-000000000029"]


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


def test_ranges_without_logs_get_no_run(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    """By default a range without an executor or ACL log is recorded as processed without a run;
    one the executor logged in is requested; an empty range a reorg fills is requested again."""
    url = fresh_chain.rpc_url
    mine_to(fresh_chain, 14)
    assert emit_executor_log(fresh_chain) == 15
    fork_point = rpc_call(url, "evm_snapshot")
    mine_to(fresh_chain, 29)
    t = make_ticker(instance, fresh_chain, store_url, run_empty=False)
    r = t.tick()
    assert [k for k, _ in keys(r)] == ["000000000010-000000000019"]
    assert cursor_block(t) == "30"
    assert instance.get_dynamic_partitions(HOST_RANGES) == ["000000000010-000000000019"]
    store = StoreResource(database_url=store_url).get()
    for key in ("000000000000-000000000009", "000000000020-000000000029"):
        seen = store.get_range(31337, key)
        assert seen is not None and seen.processed_hash == seen.known_hash is not None
    r = t.tick()
    assert not r.run_requests and "needs safe head >= 39" in skip_text(r)

    rpc_call(url, "evm_revert", [fork_point])  # block 15 stays; 16-29 are mined again
    rpc_call(url, "evm_increaseTime", [1000])
    mine_to(fresh_chain, 24)
    assert emit_executor_log(fresh_chain) == 25
    mine_to(fresh_chain, 31)
    assert keys(t.tick()) == [
        ("000000000010-000000000019", "000000000010-000000000019:reorg-1"),
        ("000000000020-000000000029", "000000000020-000000000029:reorg-1"),
    ]


def test_cap_per_tick(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    mine_to(fresh_chain, 55)
    t = make_ticker(instance, fresh_chain, store_url, max_ranges_per_tick=2)
    assert len(keys(t.tick())) == 2 and cursor_block(t) == "20"
    assert len(keys(t.tick())) == 2 and cursor_block(t) == "40"
    assert [k for k, _ in keys(t.tick())] == ["000000000040-000000000049"]


def test_rpc_outage_is_a_skip_then_recovers(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    mine_to(fresh_chain, 12)
    t = make_ticker(instance, fresh_chain, store_url)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = t.tick(**{HOST: HostChainResource(rpc_url=dead, request_timeout_s=1)})
    assert not down.run_requests and f"{HOST} RPC {dead} failed" in skip_text(down)
    assert t.cursor is None
    assert [k for k, _ in keys(t.tick())] == ["000000000000-000000000009"]


def test_reorg_requests_range_again(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    url = fresh_chain.rpc_url
    mine_to(fresh_chain, 15)
    fork_point = rpc_call(url, "evm_snapshot")
    mine_to(fresh_chain, 29)
    t = make_ticker(instance, fresh_chain, store_url)
    assert len(keys(t.tick())) == 3  # 0-9, 10-19, 20-29
    rpc_call(url, "evm_revert", [fork_point])  # head 15: ranges 20-29 and 10-19 are gone
    shrunk = t.tick()
    assert not shrunk.run_requests and cursor_block(t) == "10"
    rpc_call(url, "evm_increaseTime", [1000])  # new timestamps: new block hashes
    mine_to(fresh_chain, 31)
    again = keys(t.tick())
    assert again == [
        ("000000000010-000000000019", "000000000010-000000000019:reorg-1"),
        ("000000000020-000000000029", "000000000020-000000000029:reorg-1"),
    ]
    assert cursor_block(t) == "30"
    assert keys(t.tick()) == []  # nothing changed since


def test_a_lost_tick_loses_no_range(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    """The daemon dies after a tick was evaluated and before Dagster stored it: the next tick
    requests the same ranges under the same run keys (#11: before, the store said 'requested' and
    the next tick moved the cursor past them for good)."""
    mine_to(fresh_chain, 25)
    t = make_ticker(instance, fresh_chain, store_url)
    first = keys(t.tick(lost=True))
    assert first == [(k, k) for k in ("000000000000-000000000009", "000000000010-000000000019")]
    assert t.cursor is None
    again = t.tick(runs=False)  # launched, still queued: not ingested
    assert keys(again) == first and t.launched == first and cursor_block(t) == "20"
    # The first run ingests its range; the second is still queued: asked again, and Dagster
    # skips its run key, so no second run.
    store = StoreResource(database_url=store_url).get()
    tags = again.run_requests[0].tags
    store.mark_range_processed(
        31337, first[0][0], 0, 9, bytes.fromhex(tags["fhevm/last_block_hash"])
    )
    r = t.tick(runs=False)
    assert keys(r) == first[1:] and t.launched == []


@pytest.mark.parametrize("lost", [False, True], ids=["tick", "lost-tick"])
def test_reorg_below_head_detected_by_hash(
    lost: bool,
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    """Same length, other blocks: the last-block hash says reorg. When the tick that saw it is lost
    with the daemon, the next one still requests the new generation (#11)."""
    url = fresh_chain.rpc_url
    mine_to(fresh_chain, 5)
    fork_point = rpc_call(url, "evm_snapshot")
    mine_to(fresh_chain, 12)
    t = make_ticker(instance, fresh_chain, store_url)
    assert [k for k, _ in keys(t.tick())] == ["000000000000-000000000009"]
    rpc_call(url, "evm_revert", [fork_point])
    rpc_call(url, "evm_increaseTime", [1000])
    mine_to(fresh_chain, 12)  # as long as before, different blocks 6..12
    reorg = [("000000000000-000000000009", "000000000000-000000000009:reorg-1")]
    if lost:
        assert keys(t.tick(lost=True)) == reorg
    assert keys(t.tick()) == reorg and t.launched == reorg


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


def test_failed_range_is_redriven_with_backoff_until_it_succeeds(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    """A range whose run failed is requested again under `<key>:redrive-<n>` after a backoff that
    doubles up to a ceiling, for as long as it fails: after `redrive_alert_after` failed runs in
    a row the tick says ALERT and the store counts them, and re-drives go on (before: after
    `redrive_attempts` re-drives the sensor gave up and left the range to an operator). A
    successful run completes the range in the store: it is not looked at again."""
    mine_to(fresh_chain, 12)
    t = make_ticker(
        instance,
        fresh_chain,
        store_url,
        redrive_alert_after=2,
        redrive_backoff_s=2.0,
        redrive_backoff_max_s=3.0,
    )
    key = "000000000000-000000000009"
    (first,) = launched(t, t.tick(runs=False))
    run = fail_run(instance, first)
    # The run had ingested the range before it failed (in squash, commit, upload: most failures
    # are there): the range is still re-driven.
    store = StoreResource(database_url=store_url).get()
    last_hash = bytes.fromhex(first.tags["fhevm/last_block_hash"])
    store.mark_range_processed(31337, key, 0, 9, last_hash)
    t.tick(runs=False)
    assert t.launched == []  # 2 s backoff from the failure
    for n, delay in ((1, 2.0), (2, 3.0), (3, 3.0), (4, 3.0)):  # 4 s, 8 s, … capped at 3 s
        # A second early (a tick under load takes a fraction of one): not yet.
        sleep_until(end_time(instance, run) + delay - 1.0)
        t.tick(runs=False)
        assert t.launched == []
        sleep_until(end_time(instance, run) + delay)
        (again,) = launched(t, t.tick(runs=False))
        assert (again.partition_key, plain_key(again)) == (key, f"{key}:redrive-{n}")
        assert again.tags["fhevm/redrive"] == str(n)
        assert again.tags["fhevm/last_block_hash"] == first.tags["fhevm/last_block_hash"]
        alert = [m for m in t.logs if m.startswith(f"ALERT {HOST} range {key}")]
        assert bool(alert) == (n >= 2), t.logs  # 2 failed runs in a row: alerting
        t.tick(runs=False)
        assert t.launched == []  # requested: not twice
        run = fail_run(instance, again)
    recorded = store.get_range(31337, key)
    assert recorded is not None and recorded.failed_runs == 4 and recorded.is_open
    sleep_until(end_time(instance, run) + 3.0)
    (again,) = launched(t, t.tick(runs=False))
    assert plain_key(again) == f"{key}:redrive-5"
    assert "5 failed runs in a row" in next(m for m in t.logs if m.startswith("ALERT"))
    # That one succeeds: the range is complete, nothing more, however long.
    finish_run(instance, again, DagsterRunStatus.SUCCESS)
    t.tick(runs=False)
    done = store.get_range(31337, key)
    assert done is not None and not done.is_open and done.failed_runs == 0
    time.sleep(4.0)  # past any backoff
    assert launched(t, t.tick(runs=False)) == []
    assert store.open_ranges(31337, 10) == []


def test_a_range_without_any_run_is_requested_from_the_store(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    """A range the store holds as open whose run was lost (deleted with a dead daemon, or older
    than the planner's window) is requested again under its own run key, found through the
    store, however old. (Before: only the newest 100 failed runs and the planner's recent window
    were looked at.)"""
    mine_to(fresh_chain, 95)
    t = make_ticker(instance, fresh_chain, store_url, reorg_check_ranges=2)
    t.tick(runs=False)
    assert len(t.launched) == 9
    t.tick(runs=False)
    assert t.launched == []  # each has its run
    old = "000000000000-000000000009"
    for run in instance.get_runs():
        if run.tags.get("dagster/partition") == old:
            instance.delete_run(run.run_id)  # Dagster forgets it: its run key is free again
    t.run_keys = {k for k in t.run_keys if not k.startswith(old)}
    t.tick(runs=False)
    assert t.launched == [(old, old)]


# --- a chain restarted under the same chain id (a devnet reset) --------------------------------


def handle(i: int, chain_id: int) -> bytes:
    return i.to_bytes(21, "big") + b"\xff" + chain_id.to_bytes(8, "big") + bytes([2, 0])


def old_chain_rows(store: Store) -> None:
    """What ingesting and evaluating the old chain left: computations, allowed handles, ct64s,
    digests and commits of chain 31337 (and a ciphertext of another chain, which stays)."""
    row = ComputationRow(
        handle(3, 31337), b"\x01" * 32, 4, b"\x02" * 32, 0, 0, 0, (handle(1, 31337),), False,
        True, 2, "0x" + "11" * 20,
    )  # fmt: skip
    allowed = AllowedHandle(
        handle(3, 31337), "", "decryption", "0x" + "11" * 20, b"\x01" * 32, 4, 1
    )
    store.write_range(31337, "000000000000-000000000009", [row], [allowed])
    store.put_ciphertexts(
        [Ciphertext(handle(i, c), b"ct", 2, 0, "computed") for i, c in ((3, 31337), (3, 1))]
    )
    store.set_commit_status(CommitStatus(handle(3, 31337), CommitState.CONFIRMED, None, None))


class RestartableAnvil:
    """One anvil on a fixed port and chain id that can be restarted as a new chain."""

    def __init__(self, state: Path) -> None:
        self.state, self.port, self.starts = state, free_port(), 0

    def start(self) -> AnvilNode:
        self.starts += 1  # another genesis timestamp: another genesis hash
        timestamp = str(1_700_000_000 + 1000 * self.starts)
        return start_anvil(
            self.state, "reset-host", port=self.port, chain_id=31337,
            extra_args=["--timestamp", timestamp],
        )  # fmt: skip

    def restart(self) -> AnvilNode:
        stop_anvil(self.state, "reset-host")
        return self.start()

    def stop(self) -> None:
        stop_anvil(self.state, "reset-host")


@pytest.fixture()
def restartable(tmp_path: Path) -> Iterator[RestartableAnvil]:
    node = RestartableAnvil(tmp_path / "anvil")
    try:
        yield node
    finally:
        node.stop()


def test_reset_chain_is_read_again_from_its_start(
    restartable: RestartableAnvil,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Before: after 9 ranges of the old chain, the new chain's ranges were never requested (the
    sensor waited for the new chain to reach the old cursor), and the old chain's computations
    and commits stayed in the store as if they were the new chain's; its objects stayed under
    the handles the new chain reuses, where other bytes (another server key) failed every range
    that reused one."""
    node = restartable.start()
    old_genesis = ChainReader(node.rpc_url).block_hash(0)
    mine_to(node, 95)
    objects = tmp_path / "objects"
    t = make_ticker(instance, node, store_url, objects, reorg_check_ranges=2, accept_reset=True)
    assert len(keys(t.tick())) == 9 and cursor_block(t) == "90"
    store = StoreResource(database_url=store_url).get()
    old_chain_rows(store)
    backend = FileBackend(objects)
    for h in (handle(3, 31337), handle(3, 1)):
        for key in (ct64_key(h), ct128_key(h)):
            backend.put(key, b"old chain's bytes", {})

    node = restartable.restart()
    mine_to(node, 12)
    # Objects that cannot be removed hold the reset back, whole: the next tick tries again.
    not_a_directory = tmp_path / "not-a-directory"
    not_a_directory.write_text("")
    r = t.tick(objects=ObjectStoreResource(url=f"file://{not_a_directory}"))
    assert "host_31337 chain reset: the old chain's objects stay: cannot delete" in skip_text(r)
    assert store.genesis_of(31337) == old_genesis and cursor_block(t) == "90"
    capfd.readouterr()
    r = t.tick()
    logged = capfd.readouterr().err  # the tick's log: Dagster's console handler
    assert keys(r) == [("000000000000-000000000009", "000000000000-000000000009")]
    new_genesis = store.genesis_of(31337)
    assert new_genesis is not None and new_genesis != old_genesis
    assert r.run_requests[0].tags["fhevm/genesis_hash"] == new_genesis.hex()
    assert t.launched == keys(r) and t.cursor == f"{new_genesis.hex()}:10"  # a new run key
    assert f"host_31337 chain 31337 was reset: genesis 0x{old_genesis.hex()[:12]}" in logged
    assert "starting again from block 0" in logged and "1 object handles" in logged
    old_handle = handle(3, 31337)
    assert backend.get(ct64_key(old_handle)) is None and backend.get(ct128_key(old_handle)) is None
    other_chain = backend.get(ct64_key(handle(3, 1)))
    assert other_chain is not None and other_chain.body == b"old chain's bytes"
    assert store.computations_of_range("000000000000-000000000009", chain_id=31337) == []
    assert store.allowed_handles_of_range("000000000000-000000000009", chain_id=31337) == []
    assert list(store.get_ciphertexts([handle(3, 31337), handle(3, 1)])) == [handle(3, 1)]
    assert store.get_commit_statuses([handle(3, 31337)]) == {}
    assert [x.partition_key for x in store.recent_ranges(31337, 20)] == [
        "000000000000-000000000009"
    ]
    mine_to(node, 20)
    assert [k for k, _ in keys(t.tick())] == ["000000000010-000000000019"]


def test_changed_genesis_off_the_devnet_stops_with_an_error(
    restartable: RestartableAnvil,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    """Not the devnet (resets not accepted): a new genesis under the same chain id is another
    network behind the URL. Before: the tick planned from the other chain's blocks."""
    node = restartable.start()
    mine_to(node, 25)
    t = make_ticker(instance, node, store_url)
    assert len(keys(t.tick())) == 2
    store = StoreResource(database_url=store_url).get()
    old_chain_rows(store)
    before, cursor = store.snapshot(), t.cursor
    node = restartable.restart()
    mine_to(node, 25)
    with pytest.raises(Exception, match="the RPC URL serves another chain with the same id"):
        t.tick()
    assert t.cursor == cursor and store.snapshot() == before  # nothing read, nothing removed
    rng = BlockRange(0, 9)
    chain = HostChainConfig(31337, node.rpc_url, "0x" + "aa" * 20, "0x" + "bb" * 20, 0)
    with pytest.raises(StepError, match="this range is not read") as err:
        ingest_range(ChainReader.of(chain), chain, store, rng)
    assert not err.value.retryable and store.snapshot() == before


def test_plain_cursor_of_before_is_read_as_this_chains(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,  # noqa: F811
) -> None:
    mine_to(fresh_chain, 25)
    t = make_ticker(instance, fresh_chain, store_url)
    t.cursor = "10"  # a cursor written before genesis hashes were kept
    assert [k for k, _ in keys(t.tick())] == ["000000000010-000000000019"]
    assert t.cursor is not None and t.cursor.endswith(":20")
