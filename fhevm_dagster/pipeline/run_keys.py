"""Run keys and tags of a range's runs: one place, so a re-drive names the same range,
generation and hash as the first request."""

from __future__ import annotations

HASH_TAG = "fhevm/last_block_hash"
GENESIS_TAG = "fhevm/genesis_hash"
REDRIVE_TAG = "fhevm/redrive"
#: One run per range at a time: the instance's `tag_concurrency_limits` apply the limit per value
#: (a reorg's run or a re-drive waits for a run of the same range still going).
RANGE_TAG = "fhevm/range"
#: Dagster's run-queue priority (higher first; the QueuedRunCoordinator sorts queued runs by it).
PRIORITY_TAG = "dagster/priority"
#: Gateway ranges answer users' inputs (a dApp user waits for the answer) and commit what host
#: ranges computed: they go before host catch-up in the run queue.
GATEWAY_PRIORITY = 10


def run_key(partition: str, genesis: bytes, reorg_count: int, redrive: int | None = None) -> str:
    """The range, its chain (genesis prefix: a reset devnet's ranges are new runs), its reorg
    generation and its re-drive: Dagster skips a run key it has seen, so asking again is a no-op
    and a reset, a reorg or a re-drive is a new run."""
    key = f"{partition}@{genesis.hex()[:8]}"
    key = f"{key}:reorg-{reorg_count}" if reorg_count else key
    return f"{key}:redrive-{redrive}" if redrive else key


def run_tags(
    tag: str,
    chain_id: int,
    partition: str,
    genesis: bytes,
    last_hash: bytes,
    reorg_count: int,
    redrive: int | None = None,
    priority: int = 0,
) -> dict[str, str]:
    tags = {
        f"fhevm/{tag}_chain_id": str(chain_id),
        RANGE_TAG: f"{tag}/{partition}",
        GENESIS_TAG: genesis.hex(),
        HASH_TAG: last_hash.hex(),
    }
    if reorg_count:
        tags["fhevm/reorg"] = str(reorg_count)
    if redrive:
        tags[REDRIVE_TAG] = str(redrive)
    if priority:
        tags[PRIORITY_TAG] = str(priority)
    return tags
