"""One block-range sensor per chain, from one factory over `pipeline.planner.plan_ranges`.

Each tick plans complete ranges under the chain's safe head and requests one run per range (run
key `<partition>@<genesis prefix>`, `…:reorg-<n>` for a range whose last-block hash changed). Ranges
requested but not ingested yet are requested again under the same run key, which Dagster skips when
it has a run for it: Dagster's run keys, not the store, are the record of what was requested. An RPC
failure is a skip reason with the cursor left alone, never a crash. A node whose genesis is not the
store's is a reset chain, adopted when the chain's rules accept resets (the tick says so), else a
failed tick (`pipeline.identity`).
"""

from __future__ import annotations

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
from ..pipeline.identity import ChainIdentityError, check_identity
from ..pipeline.planner import plan_ranges, read_cursor, write_cursor
from ..store import Store


def evaluate_blocks(
    context: SensorEvaluationContext,
    chain_resource: str,
    settings_resource: str,
    partitions: DynamicPartitionsDefinition,
    tag: str,
) -> SensorResult:
    """One tick: plan from the chain and the store, record requests, request runs."""
    chain = getattr(context.resources, chain_resource).config()
    rules = getattr(context.resources, settings_resource).rules()
    store: Store = context.resources.store.get()
    reader = ChainReader.of(chain)
    try:
        identity = check_identity(
            reader, store, tag, accept_reset=rules.accept_reset, gateway=tag == "gateway"
        )
        cursor = None if identity.reset else read_cursor(context.cursor, identity.genesis)
        plan = plan_ranges(cursor, reader, store, rules)
    except ChainIdentityError:
        raise  # another network behind the URL: the tick fails until an operator acts
    except Exception as exc:  # RPC down, timeouts, a reorg racing the tick: try again next tick
        url = chain.rpc_url
        reason = redact(f"{tag} RPC {url} failed: {type(exc).__name__}: {exc}", url)
        return SensorResult(skip_reason=SkipReason(reason))
    notes: list[str] = []
    if identity.reset:
        notes.append(identity.reset_message(tag, rules.start_block))
        context.log.warning(notes[-1])
    next_cursor = write_cursor(identity.genesis, plan.next_block)
    generation = identity.genesis.hex()[:8]
    requests: list[RunRequest] = []
    new_keys: list[str] = []
    assert partitions.name is not None
    for d in plan.decisions:
        rec = store.record_range_request(
            plan.chain_id, d.rng.key, d.rng.first, d.rng.last, d.last_hash, reorg=d.reorg
        )
        # The run key names the range, the chain (its genesis: a reset devnet's ranges are new
        # runs) and the reorg generation: requesting it again (a lost tick, a run still queued) is
        # a no-op for Dagster, a reorg or a reset is a new run.
        run_key = f"{d.rng.key}@{generation}"
        if rec.reorg_count:
            run_key += f":reorg-{rec.reorg_count}"
        tags = {
            f"fhevm/{tag}_chain_id": str(plan.chain_id),
            "fhevm/genesis_hash": identity.genesis.hex(),
            "fhevm/last_block_hash": d.last_hash.hex(),
        }
        if rec.reorg_count:
            tags["fhevm/reorg"] = str(rec.reorg_count)
        if d.reorg:
            context.log.warning(f"reorg: {tag} range {d.rng.key} changed, requesting it again")
        if not context.instance.has_dynamic_partition(partitions.name, d.rng.key):
            new_keys.append(d.rng.key)
        requests.append(RunRequest(run_key=run_key, partition_key=d.rng.key, tags=tags))
    if not requests:
        waiting = plan.waiting_reason(rules.range_size)
        reason = f"no complete {tag} range: {waiting}, {rules.confirmations} confirmations"
        return SensorResult(skip_reason=SkipReason("; ".join([*notes, reason])), cursor=next_cursor)
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
        minimum_interval_seconds=10,
        default_status=DefaultSensorStatus.RUNNING,
        required_resource_keys={chain_resource, settings_resource, "store"},
        description=f"Requests one {job_name} run per confirmed {tag} block range; "
        "re-requests a range on reorg.",
    )
    def _blocks(context: SensorEvaluationContext, **_resources: object) -> SensorResult:
        # Dagster passes the required resources as keywords on direct invocation; the tick reads
        # them from the context either way.
        return evaluate_blocks(context, chain_resource, settings_resource, partitions, tag)

    return _blocks
