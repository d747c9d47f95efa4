"""One block-range sensor per chain, from one factory over `pipeline.planner.plan_ranges`.

Each tick plans complete ranges under the chain's safe head and requests one run per range (run
key `<partition>@<genesis prefix>`, `…:reorg-<n>` for a range whose last-block hash changed); a
new range proven without a log of the chain's contracts is recorded as empty and complete instead
(unless the chain's rules say `run_empty`; `pipeline.planner.without_empty`: a probe that fails or
cannot prove emptiness runs the range). Ranges requested but not ingested yet are requested again
under the same run key, which Dagster skips when it has a run for it. An RPC failure is a skip
reason with the cursor left alone, never a crash; the tick reads the chain with the sensor's RPC
settings, which fail fast inside Dagster's sensor deadline. Open ranges (no run completed their
blocks) are watched through the store (`sensors.redrive`): a failed one is re-driven as
`<run key>:redrive-<n>`, backed off, without a give-up, and named as alerting after
`alert_after` failed runs in a row. A node whose genesis is not the store's is a reset chain,
adopted when the chain's rules accept resets (the tick says so), else a failed tick
(`pipeline.identity`).
"""

from __future__ import annotations

import time

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
from ..objects import ObjectStoreError, forget_handles
from ..pipeline.identity import ChainIdentityError, check_identity
from ..pipeline.planner import plan_ranges, read_cursor, without_empty, write_cursor
from ..store import Store
from .redrive import REDRIVE_TAG, redrive_tick, run_key, run_tags

#: Seconds between two ticks of a block sensor (Dagster's minimum interval): about the
#: longest a complete range waits to be requested.
SENSOR_INTERVAL_S = 10
#: Seconds of a tick spent proving ranges empty at most; the rest of the tick's 60-s deadline is
#: for the store and the re-drive. Ranges not probed in time run.
PROBE_BUDGET_S = 30


def evaluate_blocks(
    context: SensorEvaluationContext,
    *,
    name: str,
    job_name: str,
    chain_resource: str,
    settings_resource: str,
    partitions: DynamicPartitionsDefinition,
    tag: str,
) -> SensorResult:
    """One tick: plan from the chain and the store, record requests, request runs, re-drive."""
    chain = getattr(context.resources, chain_resource).config()
    range_settings = getattr(context.resources, settings_resource)
    rules = range_settings.rules()
    store: Store = context.resources.store.get()
    reader = ChainReader.for_sensor(chain)  # fails fast: a tick has Dagster's 60-s deadline
    started = time.monotonic()
    try:
        gateway = tag == "gateway"
        identity = check_identity(
            reader,
            store,
            tag,
            accept_reset=rules.accept_reset,
            gateway=gateway,
            forget_objects=None
            if gateway
            else lambda handles: forget_handles(context.resources.objects.backend(), handles),
        )
        cursor = None if identity.reset else read_cursor(context.cursor, identity.genesis)
        plan = plan_ranges(cursor, reader, store, rules)
        decisions, empty = (
            (plan.decisions, [])
            if rules.run_empty
            else without_empty(
                plan.decisions,
                reader,
                chain.log_addresses,
                must_run=(lambda rng: store.holds_gateway_sends(rng.first, rng.last))
                if gateway
                else None,
                deadline=started + PROBE_BUDGET_S,
            )
        )
    except ChainIdentityError:
        raise  # another network behind the URL: the tick fails until an operator acts
    except ObjectStoreError as exc:  # the reset waits: the next tick finds the same handles
        return SensorResult(
            skip_reason=SkipReason(f"{tag} chain reset: the old chain's objects stay: {exc}")
        )
    except Exception as exc:  # RPC down, timeouts, a reorg racing the tick: try again next tick
        url = chain.rpc_url
        reason = redact(f"{tag} RPC {url} failed: {type(exc).__name__}: {exc}", url)
        return SensorResult(skip_reason=SkipReason(reason))
    notes: list[str] = []
    if identity.reset:
        notes.append(identity.reset_message(tag, rules.start_block))
        context.log.warning(notes[-1])
    next_cursor = write_cursor(identity.genesis, plan.next_block)
    requests: list[RunRequest] = []
    new_keys: list[str] = []
    assert partitions.name is not None
    for d in empty:
        store.record_empty_range(plan.chain_id, d.rng.key, d.rng.first, d.rng.last, d.last_hash)
    if empty:
        notes.append(f"{len(empty)} {tag} range(s) without logs recorded without a run")
        window = store.recent_ranges(plan.chain_id, rules.reorg_check_ranges)
        store.prune_empty_ranges(plan.chain_id, min(r.first_block for r in window))
    for d in decisions:
        rec = store.record_range_request(
            plan.chain_id, d.rng.key, d.rng.first, d.rng.last, d.last_hash, reorg=d.reorg
        )
        if d.reorg:
            context.log.warning(f"reorg: {tag} range {d.rng.key} changed, requesting it again")
        requests.append(
            RunRequest(
                run_key=run_key(d.rng.key, identity.genesis, rec.reorg_count),
                partition_key=d.rng.key,
                tags=run_tags(
                    tag, plan.chain_id, d.rng.key, identity.genesis, d.last_hash, rec.reorg_count
                ),
            )
        )
    redrive = redrive_tick(
        context,
        job_name=job_name,
        sensor_name=name,
        tag=tag,
        chain_id=plan.chain_id,
        genesis=identity.genesis,
        store=store,
        policy=range_settings.redrive(),
        cap=rules.max_ranges_per_tick,
    )
    seen = {r.run_key for r in requests}
    for r in redrive.requests:
        if r.run_key in seen:  # planned by this tick already
            continue
        what = "re-drive" if REDRIVE_TAG in r.tags else "no run yet"
        context.log.warning(f"{what}: {tag} range {r.partition_key}, requesting {r.run_key}")
        requests.append(r)
    for note in redrive.alerting:
        context.log.warning(f"ALERT {tag} range {note}")
    for key in dict.fromkeys(str(r.partition_key) for r in requests):
        if not context.instance.has_dynamic_partition(partitions.name, key):
            new_keys.append(key)
    if not requests:
        waiting = plan.waiting_reason(rules.range_size)
        reason = f"no complete {tag} range: {waiting}, {rules.confirmations} confirmations"
        notes += [*redrive.waiting, *(f"ALERT {n}" for n in redrive.alerting)]
        reason = "; ".join([reason, *notes])
        return SensorResult(skip_reason=SkipReason(reason), cursor=next_cursor)
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=next_cursor,
    )


def block_range_sensor(
    name: str,
    *,
    job_name: str,
    partitions: DynamicPartitionsDefinition,
    chain_resource: str,
    settings_resource: str,
    tag: str,
) -> SensorDefinition:
    """The sensor requesting `job_name` once per confirmed range of the chain `chain_resource`."""

    @sensor(
        name=name,
        job_name=job_name,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        # A host chain's reset also removes the old chain's objects (`pipeline.identity`).
        required_resource_keys={chain_resource, settings_resource, "store"}
        | (set() if tag == "gateway" else {"objects"}),
        description=f"Requests one {job_name} run per confirmed {tag} block range; "
        "re-requests a range on reorg; re-drives a range whose run failed (backed off, until it "
        "succeeds; alerting after repeated failures).",
    )
    def _blocks(context: SensorEvaluationContext, **_resources: object) -> SensorResult:
        # Dagster passes the required resources as keywords on direct invocation; the tick reads
        # them from the context either way.
        return evaluate_blocks(
            context,
            name=name,
            job_name=job_name,
            chain_resource=chain_resource,
            settings_resource=settings_resource,
            partitions=partitions,
            tag=tag,
        )

    return _blocks
