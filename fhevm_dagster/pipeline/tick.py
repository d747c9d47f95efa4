"""One block-sensor tick as a pure decision: what it read in, what it asks for and writes out.

`plan_tick` plans the chain's new and changed ranges (`pipeline.planner`), records the ones
proven empty instead of running them (unless the rules say `run_empty`; a probe that fails or runs
past the tick's budget proves nothing: the range runs), and watches the open ranges
(`pipeline.redrive`): a range whose latest run succeeded is completed, a failed one is re-driven
when due, one without any run is requested again. It writes nothing and knows neither Dagster nor
web3: the sensor reads the view, applies `Tick.writes` (`pipeline.range_book.apply_writes`) and
turns the rest into Dagster's requests.

The open ranges are watched as the book will hold them once the tick's writes are applied: a
range this tick requests is open under its new blocks, one it proves empty is closed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from ..chain.config import ChainKind, RangeRules
from ..store import HostRange
from .block_ranges import BlockRange
from .identity import Identity
from .planner import (
    ChainView,
    EmptinessProbe,
    RangeBook,
    RangeDecision,
    RangePlan,
    plan_ranges,
    read_cursor,
    without_empty,
    write_cursor,
)
from .range_book import BookWrite, ProvenEmpty, PruneEmpty, Requested, RunCompleted, RunsFailed
from .redrive import Backoff, Completed, NeverRan, PastRun, Redrive, RedrivePolicy, decide_redrive
from .run_keys import GATEWAY_PRIORITY, REDRIVE_TAG, run_key, run_tags

#: Open ranges looked at per tick, oldest first: in steady state the ranges in flight and the
#: failing ones; a backlog larger than this is worked through over the next ticks.
OPEN_SCANNED = 200


class TickChain(ChainView, EmptinessProbe, Protocol):
    """The chain as a tick reads it: head, block hashes, logs and blooms (each read may raise)."""


class TickBook(RangeBook, Protocol):
    """The store's range bookkeeping, as a tick reads it."""

    def open_ranges(self, chain_id: int, limit: int) -> list[HostRange]: ...
    def range_waits(self, chain_id: int) -> dict[str, dict[bytes, bool]]: ...
    def holds_gateway_sends(self, first: int, last: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class TickView:
    """What the sensor reads for a tick: the chain (on demand), its identity (checked and
    recorded before the tick), a range's runs of this chain (newest first), the wall clock, and
    the `time.monotonic()` moment after which no range is probed for emptiness (it runs)."""

    chain: TickChain
    identity: Identity
    runs: Callable[[str], Sequence[PastRun]]
    now: float
    probe_deadline: float | None = None


@dataclass(frozen=True, slots=True)
class TickRules:
    """One chain's plain configuration for its sensor. `name`: how runs, tags and notes name it
    (`host_<chain id>`, `gateway`)."""

    name: str
    kind: ChainKind
    ranges: RangeRules
    redrive: RedrivePolicy
    log_addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunAsk:
    """One run to request: the range's partition, its run key (Dagster skips a key it has seen)
    and tags."""

    partition: str
    run_key: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Tick:
    """A tick's decision. `notes`: the skip reason's parts, for a tick without runs; `log`: the
    warnings an operator reads in the sensor's log (a reset, a reorg, a re-drive, an alert)."""

    chain_id: int
    runs: tuple[RunAsk, ...]
    empty: tuple[BlockRange, ...]
    notes: tuple[str, ...]
    log: tuple[str, ...]
    cursor: str
    writes: tuple[BookWrite, ...]

    @property
    def skip_reason(self) -> str | None:
        return None if self.runs else "; ".join(self.notes)


@dataclass
class _Watch:
    """The open ranges' share of a tick."""

    runs: list[RunAsk] = field(default_factory=list)
    writes: list[BookWrite] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # re-drives in backoff
    alerting: list[str] = field(default_factory=list)  # failing `alert_after` times in a row


def plan_tick(view: TickView, book: TickBook, rules: TickRules, cursor: str | None) -> Tick:
    """The tick of one chain from the sensor's `cursor`; may raise what the chain's reads raise."""
    identity, name = view.identity, rules.name
    start = None if identity.reset else read_cursor(cursor, identity.genesis)
    plan = plan_ranges(start, view.chain, book, rules.ranges)
    run, empty = _without_empty(plan, view, book, rules)
    waiting = plan.waiting_reason(rules.ranges.range_size, rules.ranges.head_size)
    notes = [f"no complete {name} range: {waiting}, {rules.ranges.confirmations} confirmations"]
    log: list[str] = []
    if identity.reset:
        notes.append(identity.reset_message(name, rules.ranges.start_block))
        log.append(notes[-1])
    writes: list[BookWrite] = [ProvenEmpty(d.rng, d.last_hash) for d in empty]
    asks: list[RunAsk] = []
    for d in run:
        writes.append(Requested(d.rng, d.last_hash, d.reorg))
        if d.reorg:
            log.append(f"reorg: {name} range {d.rng.key} changed, requesting it again")
        asks.append(
            _ask(rules, plan.chain_id, identity.genesis, d.rng.key, d.last_hash, d.reorg_count)
        )
    if empty:  # after the requests: a reorged empty range is no longer empty when pruned
        notes.append(f"{len(empty)} {name} range(s) without logs recorded without a run")
        recent = book.recent_ranges(plan.chain_id, rules.ranges.reorg_check_ranges)
        writes.append(PruneEmpty(_window_start(recent, empty, rules.ranges.reorg_check_ranges)))
    watch = _watch(view, book, rules, plan.chain_id, run, empty)
    seen = {a.run_key for a in asks}
    for a in watch.runs:
        if a.run_key in seen:  # planned by this tick already
            continue
        what = "re-drive" if REDRIVE_TAG in a.tags else "no run yet"
        log.append(f"{what}: {name} range {a.partition}, requesting {a.run_key}")
        asks.append(a)
    log += [f"ALERT {name} range {n}" for n in watch.alerting]
    notes += [*watch.waiting, *(f"ALERT {n}" for n in watch.alerting)]
    return Tick(
        plan.chain_id,
        tuple(asks),
        tuple(d.rng for d in empty),
        tuple(notes),
        tuple(log),
        write_cursor(identity.genesis, plan.next_block),
        (*writes, *watch.writes),
    )


def _without_empty(
    plan: RangePlan, view: TickView, book: TickBook, rules: TickRules
) -> tuple[list[RangeDecision], list[RangeDecision]]:
    """The planned ranges that run, and those proven empty. A gateway range holding sends of
    ours always runs: a reorg may have dropped them."""
    if rules.ranges.run_empty:
        return list(plan.decisions), []
    gateway = rules.kind is ChainKind.GATEWAY
    return without_empty(
        plan.decisions,
        view.chain,
        rules.log_addresses,
        must_run=(lambda rng: book.holds_gateway_sends(rng.first, rng.last)) if gateway else None,
        deadline=view.probe_deadline,
    )


def _window_start(recent: Sequence[HostRange], empty: Sequence[RangeDecision], size: int) -> int:
    """The first block of the book's newest `size` ranges once `empty` is recorded."""
    blocks = {r.partition_key: (r.last_block, r.first_block) for r in recent}
    blocks |= {d.rng.key: (d.rng.last, d.rng.first) for d in empty}
    return min(first for _, first in sorted(blocks.values(), reverse=True)[:size])


def _ask(
    rules: TickRules,
    chain_id: int,
    genesis: bytes,
    partition: str,
    last_hash: bytes,
    reorg_count: int,
    redrive: int | None = None,
) -> RunAsk:
    return RunAsk(
        partition,
        run_key(partition, genesis, reorg_count, redrive),
        run_tags(
            rules.name,
            chain_id,
            partition,
            genesis,
            last_hash,
            reorg_count,
            redrive,
            GATEWAY_PRIORITY if rules.kind is ChainKind.GATEWAY else 0,
        ),
    )


def _generation(rng: HostRange) -> tuple[str, bytes, int]:
    """The range, its blocks and its reorg generation: what its runs are named for."""
    return rng.partition_key, rng.known_hash, rng.reorg_count


def _open_after(
    book: TickBook,
    chain_id: int,
    requested: Sequence[RangeDecision],
    empty: Sequence[RangeDecision],
) -> list[HostRange]:
    """The open ranges, oldest first, as the book holds them once the tick's writes are applied:
    a requested range is open under its new blocks (not ingested), an empty one is closed."""
    planned = {d.rng.key for d in (*requested, *empty)}
    found = book.open_ranges(chain_id, OPEN_SCANNED + len(planned))
    ranges = [r for r in found if r.partition_key not in planned]
    ranges += [
        HostRange(chain_id, d.rng.key, d.rng.first, d.rng.last, d.last_hash, None, d.reorg_count)
        for d in requested
    ]
    return sorted(ranges, key=lambda r: r.last_block)[:OPEN_SCANNED]


def _watch(
    view: TickView,
    book: TickBook,
    rules: TickRules,
    chain_id: int,
    requested: Sequence[RangeDecision],
    empty: Sequence[RangeDecision],
) -> _Watch:
    """Completes the open ranges that a run completed; requests the failed ones that are due (at
    most `max_ranges_per_tick`) and those without any run."""
    waits = book.range_waits(chain_id)
    genesis, cap, now = view.identity.genesis, rules.ranges.max_ranges_per_tick, view.now
    out = _Watch()
    for rng in _open_after(book, chain_id, requested, empty):
        partition = rng.partition_key
        history = view.runs(partition)
        waited = waits.get(partition, {})
        ready = bool(waited) and all(waited.values())
        d = decide_redrive(history, rng.known_hash, now, rules.redrive, inputs_ready=ready)
        if isinstance(d, Completed):
            out.writes.append(RunCompleted(partition, rng.known_hash))
            continue
        if isinstance(d, NeverRan):
            if len(out.runs) < cap:
                out.runs.append(_ask(rules, chain_id, genesis, *_generation(rng)))
            continue
        if d is None:
            continue
        last_end = history[0].end_time
        out.writes.append(RunsFailed(partition, d.failed_runs, last_end))
        if d.alerting:
            out.alerting.append(_alert(partition, d.failed_runs, last_end))
        if isinstance(d, Redrive) and len(out.runs) < cap:
            out.runs.append(_ask(rules, chain_id, genesis, *_generation(rng), d.number))
        elif isinstance(d, Backoff):
            why = " (its inputs are stored)" if ready else ""
            out.waiting.append(f"re-drive {d.number} of {partition} in {d.due - now:.0f} s{why}")
    return out


def _alert(partition: str, failed_runs: int, last_end: float | None) -> str:
    when = "" if last_end is None else f", the last ended {_iso(last_end)}"
    return (
        f"{partition}: {failed_runs} failed runs in a row{when}; re-driven until it "
        "succeeds (look at its last run's error)"
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
