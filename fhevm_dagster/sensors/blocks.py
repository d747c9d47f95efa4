"""One block-range sensor per chain, from one factory over `pipeline.tick.plan_tick`.

Each tick reads the chain with the sensor's RPC settings (they fail fast inside Dagster's sensor
deadline) and the store, decides (`pipeline.tick`: ranges to run, ranges proven empty, re-drives of
open ranges, bookkeeping writes, the next cursor), applies the writes
(`pipeline.range_book.apply_writes`) and hands the runs to Dagster. Run keys are
`<partition>@<genesis prefix>`, `…:reorg-<n>` for a range whose last-block hash changed,
`…:redrive-<n>` for a re-drive: Dagster skips a run key it has seen, so asking again is a no-op.
An RPC failure is a skip reason with the cursor left alone, never a crash. A node whose genesis
is not the store's is a reset chain, adopted when the chain's rules accept resets (the tick says
so), else a failed tick (`pipeline.identity`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dagster import (
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ..chain.client import ChainReader, redact
from ..chain.config import ChainKind, RangeRules, SensorRpc
from ..objects import ObjectStoreError, forget_handles
from ..pipeline.identity import ChainIdentityError, Identity, check_identity
from ..pipeline.range_book import apply_writes
from ..pipeline.redrive import RedrivePolicy
from ..pipeline.tick import Tick, TickRules, TickView, plan_tick
from ..store import Store
from .run_history import run_history

#: Seconds between two ticks of a block sensor (Dagster's minimum interval): about the
#: longest a complete range waits to be requested.
SENSOR_INTERVAL_S = 10
#: Seconds of a tick spent proving ranges empty at most; the rest of the tick's 60-s deadline is
#: for the store and the re-drive. Ranges not probed in time run.
PROBE_BUDGET_S = 30


@dataclass(frozen=True, slots=True)
class SensorConfig:
    """A block sensor's plain configuration, fixed when the definitions are built: how its chain
    is cut into ranges, how failed ranges are re-driven, how its ticks talk to the node."""

    ranges: RangeRules = field(default_factory=RangeRules)
    redrive: RedrivePolicy = field(default_factory=RedrivePolicy)
    rpc: SensorRpc = field(default_factory=SensorRpc)


#: The plain configs' defaults (tests, benchmarks); `definitions.defs` builds one per chain.
DEFAULT_SENSOR = SensorConfig()


def evaluate_blocks(
    context: SensorEvaluationContext,
    *,
    name: str,
    job_name: str,
    chain_resource: str,
    config: SensorConfig,
    partitions: DynamicPartitionsDefinition,
    kind: ChainKind,
) -> SensorResult:
    """One tick: read the chain and the store, decide, record, request runs."""
    chain = getattr(context.resources, chain_resource).config()
    # The chain's resource key is its name in runs, tags and notes (`host_<id>`, `gateway`).
    rules = TickRules(chain_resource, kind, config.ranges, config.redrive, chain.log_addresses)
    store: Store = context.resources.store.get()
    reader = ChainReader.for_sensor(chain, config.rpc)  # fails fast: 60-s tick deadline
    started = time.monotonic()
    try:
        identity = _identity(context, reader, store, rules)
        runs = run_history(context.instance, job_name, name, identity.genesis)
        view = TickView(reader, identity, runs, time.time(), started + PROBE_BUDGET_S)
        tick = plan_tick(view, store, rules, context.cursor)
    except ChainIdentityError:
        raise  # another network behind the URL: the tick fails until an operator acts
    except ObjectStoreError as exc:  # the reset waits: the next tick finds the same handles
        reason = f"{rules.name} chain reset: the old chain's objects stay: {exc}"
        return SensorResult(skip_reason=SkipReason(reason))
    except Exception as exc:  # RPC down, timeouts, a reorg racing the tick: try again next tick
        url = chain.rpc_url
        reason = redact(f"{rules.name} RPC {url} failed: {type(exc).__name__}: {exc}", url)
        return SensorResult(skip_reason=SkipReason(reason))
    apply_writes(store, tick.chain_id, tick.writes)
    return _sensor_result(context, partitions, tick)


def _identity(
    context: SensorEvaluationContext, reader: ChainReader, store: Store, rules: TickRules
) -> Identity:
    """The chain's identity, recorded; a host chain's reset removes the old chain's objects."""
    host = rules.kind is ChainKind.HOST
    return check_identity(
        reader,
        store,
        rules.name,
        accept_reset=rules.ranges.accept_reset,
        gateway=not host,
        forget_objects=(
            (lambda handles: forget_handles(context.resources.objects.backend(), handles))
            if host
            else None
        ),
    )


def _sensor_result(
    context: SensorEvaluationContext, partitions: DynamicPartitionsDefinition, tick: Tick
) -> SensorResult:
    """The tick as Dagster takes it: its log, runs, new partitions and cursor, or a skip."""
    for line in tick.log:
        context.log.warning(line)
    if tick.skip_reason is not None:
        return SensorResult(skip_reason=SkipReason(tick.skip_reason), cursor=tick.cursor)
    assert partitions.name is not None
    keys = dict.fromkeys(a.partition for a in tick.runs)
    new = [k for k in keys if not context.instance.has_dynamic_partition(partitions.name, k)]
    return SensorResult(
        run_requests=[
            RunRequest(run_key=a.run_key, partition_key=a.partition, tags=dict(a.tags))
            for a in tick.runs
        ],
        dynamic_partitions_requests=[partitions.build_add_request(new)] if new else [],
        cursor=tick.cursor,
    )


def block_range_sensor(
    name: str,
    *,
    job_name: str,
    partitions: DynamicPartitionsDefinition,
    chain_resource: str,
    kind: ChainKind,
    config: SensorConfig,
) -> SensorDefinition:
    """The sensor requesting `job_name` once per confirmed range of the chain `chain_resource`,
    cut and re-driven as `config` says."""
    r, d = config.ranges, config.redrive

    @sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        # A host chain's reset also removes the old chain's objects (`pipeline.identity`).
        required_resource_keys={chain_resource, "store"}
        | ({"objects"} if kind is ChainKind.HOST else set()),
        description=f"Requests one {job_name} run per confirmed {chain_resource} block range "
        f"({_sizes(r)}, {r.confirmations} confirmations, from block {r.start_block}); "
        "re-requests a range on reorg; re-drives a range whose run failed until it succeeds "
        f"(first after {d.backoff_s:g} s, doubling up to {d.backoff_max_s:g} s; alerting after "
        f"{d.alert_after} failed runs in a row).",
    )
    def _blocks(context: SensorEvaluationContext, **_resources: object) -> SensorResult:
        # Dagster passes the required resources as keywords on direct invocation; the tick reads
        # them from the context either way.
        return evaluate_blocks(
            context,
            name=name,
            job_name=job_name,
            chain_resource=chain_resource,
            config=config,
            partitions=partitions,
            kind=kind,
        )

    return _blocks


def _sizes(r: RangeRules) -> str:
    """The range sizes as the sensor's description states them."""
    if r.head_size == r.range_size:
        return f"{r.range_size} blocks"
    return f"{r.range_size} blocks while catching up, {r.head_size} at the chain's head"
