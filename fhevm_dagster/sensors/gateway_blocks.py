"""`gateway_blocks_sensor`: cut confirmed gateway blocks into ranges, one run per range.

Same behaviour as `host_blocks_sensor`: the cursor is the next block to cover; only complete
ranges under the safe head (head - confirmations) are requested, at most `max_ranges_per_tick`
per tick; a recent range whose last-block hash changed (a reorg) is requested again under the run
key `<partition>:reorg-<n>`; an RPC failure is a skip reason with the cursor left alone.

Range bookkeeping shares the store's ranges table with the host, keyed by the gateway's chain id.
Replaying a range is safe: answers already given are found in the store and on chain and are not
sent again.
"""

from dataclasses import dataclass

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ..jobs import gateway_range_job
from ..partitions import GATEWAY_RANGES, BlockRange, gateway_ranges, next_ranges
from ..resources.chain import GatewayChainResource, GatewayIngestSettings
from ..resources.store import StoreResource
from ..store import Store


@dataclass(frozen=True, slots=True)
class _Decision:
    rng: BlockRange
    last_hash: bytes
    reorg: bool


class _ChainShrankError(Exception):
    pass


def _plan(
    cursor: int, chain: GatewayChainResource, store: Store, settings: GatewayIngestSettings
) -> tuple[int, int, int, list[_Decision]]:
    """Read the chain (may raise), decide what to request; writes nothing."""
    chain_id = chain.chain_id()
    head = chain.head()
    safe = head - settings.confirmations
    cap = settings.max_ranges_per_tick
    decisions: dict[str, _Decision] = {}
    known_hash: dict[str, bytes] = {}
    for r in store.recent_ranges(chain_id, settings.reorg_check_ranges):
        if r.last_block > safe:  # the chain got shorter than this range: cover it again later
            cursor = min(cursor, r.first_block)
            continue
        current = chain.block_hash(r.last_block)
        if current is None:
            raise _ChainShrankError(f"block {r.last_block} vanished")
        known_hash[r.partition_key] = current
        if current != r.known_hash and len(decisions) < cap:
            rng = BlockRange(r.first_block, r.last_block)
            decisions[rng.key] = _Decision(rng, current, reorg=True)
    next_block = cursor
    for rng in next_ranges(cursor, safe, settings.range_size, cap - len(decisions)):
        next_block = rng.last + 1
        if rng.key in decisions:
            continue
        last_hash = known_hash.get(rng.key) or chain.block_hash(rng.last)
        if last_hash is None:
            raise _ChainShrankError(f"block {rng.last} vanished")
        seen = store.get_range(chain_id, rng.key)
        if seen is None:
            decisions[rng.key] = _Decision(rng, last_hash, reorg=False)
        elif seen.known_hash != last_hash:
            decisions[rng.key] = _Decision(rng, last_hash, reorg=True)
    return chain_id, head, next_block, sorted(decisions.values(), key=lambda d: d.rng.first)


def evaluate_gateway_blocks(
    context: SensorEvaluationContext,
    chain: GatewayChainResource,
    store: Store,
    settings: GatewayIngestSettings,
) -> SensorResult:
    """The sensor's body, separated so that tests and tools can call it with plain objects."""
    cursor = int(context.cursor) if context.cursor else settings.start_block
    try:
        chain_id, head, next_block, decisions = _plan(cursor, chain, store, settings)
    except Exception as exc:  # RPC down, timeouts, a reorg racing the tick: try again next tick
        reason = f"gateway RPC {chain.rpc_url} failed: {type(exc).__name__}: {exc}"
        return SensorResult(skip_reason=SkipReason(reason))
    requests: list[RunRequest] = []
    new_keys: list[str] = []
    for d in decisions:
        rec = store.record_range_request(
            chain_id, d.rng.key, d.rng.first, d.rng.last, d.last_hash, reorg=d.reorg
        )
        run_key = f"{d.rng.key}:reorg-{rec.reorg_count}" if d.reorg else d.rng.key
        tags = {
            "fhevm/gateway_chain_id": str(chain_id),
            "fhevm/last_block_hash": d.last_hash.hex(),
        }
        if d.reorg:
            tags["fhevm/reorg"] = str(rec.reorg_count)
            context.log.warning(f"reorg: gateway range {d.rng.key} changed, requesting it again")
        if not context.instance.has_dynamic_partition(GATEWAY_RANGES, d.rng.key):
            new_keys.append(d.rng.key)
        requests.append(RunRequest(run_key=run_key, partition_key=d.rng.key, tags=tags))
    partition_requests = [gateway_ranges.build_add_request(new_keys)] if new_keys else []
    if requests:
        return SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=partition_requests,
            cursor=str(next_block),
        )
    safe = head - settings.confirmations
    end = (next_block // settings.range_size + 1) * settings.range_size - 1
    reason = (
        f"no complete gateway range: next range {next_block}..{end} needs safe head >= {end}, "
        f"safe head is {safe} (head {head}, {settings.confirmations} confirmations)"
    )
    return SensorResult(skip_reason=SkipReason(reason), cursor=str(next_block))


@sensor(
    job=gateway_range_job,
    minimum_interval_seconds=10,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests one gateway_range_job run per confirmed gateway block range.",
)
def gateway_blocks_sensor(
    context: SensorEvaluationContext,
    gateway: GatewayChainResource,
    store: StoreResource,
    gateway_settings: GatewayIngestSettings,
) -> SensorResult:
    return evaluate_gateway_blocks(context, gateway, store.get(), gateway_settings)
