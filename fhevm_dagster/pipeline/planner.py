"""Which block ranges a sensor tick requests: pure, over a chain view and the store's range book.

The cursor is the next block to cover, of one chain: `<genesis hex>:<next block>` (a plain number,
the format before genesis hashes were kept, is read as this chain's). Only complete ranges under
the safe head (head minus confirmations) are planned, at most `max_ranges_per_tick`, cut as
`block_ranges.cut_ranges` says from the backlog: ranges of the range size while the safe head
reaches the end of the aligned range-size range holding the next block (catching up: fewer,
larger runs), head-size ranges at the chain's head (caught up: a range waits for fewer blocks). The
book's ranges from the cursor on (those of a tick whose cursor was lost, those past a shrunk
chain's head) are kept as they are and new ones are cut between them, so a range's key never
changes once requested: re-planning the same cursor, head and book gives the same keys, and no
two ranges overlap. A recent range whose last-block hash changed (a reorg) is planned
again, flagged `reorg`. A range requested but not ingested yet is planned again too, under the
same run key: what Dagster did with a tick (a run exists for that key, or the tick was lost with
the daemon) is Dagster's record, and Dagster skips a run key it has seen, so a lost tick costs one
tick, never a range.

A new range without a log of the chain's contracts has nothing to ingest, evaluate or answer: it
is recorded as processed without a run (`without_empty`) unless the rules ask for a run per range.
With 2-second blocks and small ranges, runs of empty ranges would otherwise fill the run queue
and delay the ranges that hold transactions. Emptiness must be proven, never assumed: an empty
`eth_getLogs` answer may come from a lagging load-balanced replica, so a range is empty only when
every block's `logsBloom` excludes the contracts too; a probe that fails, or a bloom that may hold
one of them, runs the range (at worst a run with nothing to do).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..chain.config import RangeRules
from ..store import HostRange
from .block_ranges import BlockRange, cut_ranges
from .host import LogSource


class ChainView(Protocol):
    def chain_id(self) -> int: ...
    def head(self) -> int: ...
    def block_hash(self, number: int) -> bytes | None: ...


class RangeBook(Protocol):
    def recent_ranges(self, chain_id: int, limit: int) -> list[HostRange]: ...
    def ranges_from(self, chain_id: int, block: int, limit: int) -> list[HostRange]: ...


@dataclass(frozen=True, slots=True)
class RangeDecision:
    """Request `rng` for its blocks `last_hash`; `reorg_count`: its reorg generation once
    requested (the book's, one more when `reorg`), which names its runs."""

    rng: BlockRange
    last_hash: bytes
    reorg: bool
    reorg_count: int


@dataclass(frozen=True, slots=True)
class RangePlan:
    chain_id: int
    head: int
    safe_head: int
    next_block: int
    decisions: Sequence[RangeDecision]

    def waiting_reason(self, range_size: int, head_size: int) -> str:
        """Why nothing was planned: the next range's end is past the safe head. The next range is
        a head-size one (the range-size one ends at or after it)."""
        end = (self.next_block // head_size + 1) * head_size - 1
        sizes = "" if head_size == range_size else f" ({head_size}-block ranges at the head)"
        return (
            f"next range {self.next_block}..{end}{sizes} needs safe head >= {end}, "
            f"safe head is {self.safe_head} (head {self.head})"
        )


class ChainShrankError(Exception):
    """A block the plan relies on vanished while planning (a reorg racing the tick)."""


def _hash(chain: ChainView, number: int) -> bytes:
    found = chain.block_hash(number)
    if found is None:
        raise ChainShrankError(f"block {number} vanished")
    return found


def read_cursor(cursor: str | None, genesis: bytes) -> int | None:
    """The next block of the chain `genesis`; None (start again) for another chain's cursor."""
    if not cursor:
        return None
    chain, sep, block = cursor.rpartition(":")
    if sep and chain != genesis.hex():
        return None
    return int(block)


def write_cursor(genesis: bytes, next_block: int) -> str:
    return f"{genesis.hex()}:{next_block}"


def plan_ranges(
    cursor: int | None, chain: ChainView, book: RangeBook, rules: RangeRules
) -> RangePlan:
    """Read the chain (may raise), decide what to request; writes nothing."""
    next_block = rules.start_block if cursor is None else cursor
    chain_id = chain.chain_id()
    head = chain.head()
    safe = head - rules.confirmations
    cap = rules.max_ranges_per_tick
    decisions: dict[str, RangeDecision] = {}
    known_hash: dict[str, bytes] = {}
    for r in book.recent_ranges(chain_id, rules.reorg_check_ranges):
        if r.last_block > safe:  # the chain got shorter than this range: cover it again later
            next_block = min(next_block, r.first_block)
            continue
        current = _hash(chain, r.last_block)
        known_hash[r.partition_key] = current
        if len(decisions) >= cap:
            continue
        rng = BlockRange(r.first_block, r.last_block)
        if current != r.known_hash:
            decisions[rng.key] = RangeDecision(rng, current, True, r.reorg_count + 1)
        elif r.processed_hash is None:  # requested, not ingested: request it again
            decisions[rng.key] = RangeDecision(rng, current, False, r.reorg_count)
    ahead = book.ranges_from(chain_id, next_block, cap)
    kept = {r.partition_key: r for r in ahead}
    taken = [BlockRange(r.first_block, r.last_block) for r in ahead]
    sizes = rules.range_size, rules.head_size
    for rng in cut_ranges(next_block, safe, *sizes, taken, cap - len(decisions)):
        next_block = rng.last + 1
        if rng.key in decisions:
            continue
        last_hash = known_hash.get(rng.key) or _hash(chain, rng.last)
        seen = kept.get(rng.key)
        if seen is None:
            decisions[rng.key] = RangeDecision(rng, last_hash, False, 0)
        elif seen.processed_hash is None and seen.known_hash == last_hash:
            decisions[rng.key] = RangeDecision(rng, last_hash, False, seen.reorg_count)
        elif seen.known_hash != last_hash:
            decisions[rng.key] = RangeDecision(rng, last_hash, True, seen.reorg_count + 1)
    ordered = sorted(decisions.values(), key=lambda d: d.rng.first)
    return RangePlan(chain_id, head, safe, next_block, ordered)


class EmptinessProbe(LogSource, Protocol):
    def may_have_logs(self, first: int, last: int, addresses: Sequence[str]) -> bool: ...


def _proven_empty(chain: EmptinessProbe, rng: BlockRange, addresses: Sequence[str]) -> bool:
    """No log of `addresses` in `rng`: eth_getLogs finds none and no block's bloom may hold one.
    Any failure proves nothing."""
    try:
        return not chain.get_logs(rng.first, rng.last, addresses) and not chain.may_have_logs(
            rng.first, rng.last, addresses
        )
    except Exception:  # an RPC error, a provider's cap: the range runs, its run reads again
        return False


def without_empty(
    decisions: Sequence[RangeDecision],
    chain: EmptinessProbe,
    addresses: Sequence[str],
    must_run: Callable[[BlockRange], bool] | None = None,
    deadline: float | None = None,
) -> tuple[list[RangeDecision], list[RangeDecision]]:
    """The decisions that need a run, and the empty ones: ranges proven without a log of
    `addresses`. A reorged range always runs: the store may hold rows of its old blocks; so does
    one `must_run` names (a gateway range holding commits of ours that a reorg may have dropped).
    An empty range that a reorg fills later is planned again (its hash changed). Unconfigured
    (empty) addresses are left out; with none left, every range runs. Past `deadline` (a
    `time.monotonic()` value: a slow node must not make the tick miss Dagster's deadline) the
    rest are not probed: they run."""
    addresses = [a for a in addresses if a]
    if not addresses:
        return list(decisions), []
    run: list[RangeDecision] = []
    empty: list[RangeDecision] = []
    for d in decisions:
        late = deadline is not None and time.monotonic() > deadline
        forced = late or d.reorg or (must_run is not None and must_run(d.rng))
        (run if forced or not _proven_empty(chain, d.rng, addresses) else empty).append(d)
    return run, empty
