"""A block-sensor tick as a pure decision, over an in-memory chain, range book and run history:
no anvil, no store, no Dagster."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

import pytest

from fhevm_dagster.chain.config import ChainKind, RangeRules
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.pipeline.identity import Identity
from fhevm_dagster.pipeline.range_book import (
    ProvenEmpty,
    PruneEmpty,
    Requested,
    RunCompleted,
    RunsFailed,
    apply_writes,
)
from fhevm_dagster.pipeline.redrive import Outcome, PastRun, RedrivePolicy
from fhevm_dagster.pipeline.tick import Tick, TickRules, TickView, plan_tick
from fhevm_dagster.protocol.events import RawLog
from fhevm_dagster.store import ChainReset, HostRange

pytestmark = pytest.mark.fast

CHAIN_ID = 31337
GENESIS = b"\xab" * 32
G8 = GENESIS.hex()[:8]
ADDRESSES = ("0xexec", "0xacl")
IDENTITY = Identity(CHAIN_ID, GENESIS)


def k(first: int, last: int) -> str:
    return BlockRange(first, last).key


@dataclass
class Chain:
    """Blocks 0..head (hashes a fork changes), logs per block and the blooms that hold them;
    `down`: every read fails, `probe_down`: only the emptiness probe's reads fail."""

    head_block: int
    logs: dict[int, int] = field(default_factory=dict)
    fork: dict[int, bytes] = field(default_factory=dict)
    down: bool = False
    probe_down: bool = False

    def chain_id(self) -> int:
        return CHAIN_ID

    def head(self) -> int:
        if self.down:
            raise ConnectionError("eth_blockNumber: connection refused")
        return self.head_block

    def block_hash(self, number: int) -> bytes | None:
        if number > self.head_block:
            return None
        return self.fork.get(number, number.to_bytes(32, "big"))

    def get_logs(self, first: int, last: int, addresses: Sequence[str]) -> list[RawLog]:
        if self.probe_down:
            raise ConnectionError("eth_getLogs: connection refused")
        return [
            RawLog(addresses[0], (), b"", n, b"", b"\x01" * 32, 0, i)
            for n in range(first, last + 1)
            for i in range(self.logs.get(n, 0))
        ]

    def may_have_logs(self, first: int, last: int, addresses: Sequence[str]) -> bool:
        if self.probe_down:
            raise ConnectionError("eth_getBlockByNumber: connection refused")
        return any(first <= n <= last for n in self.logs)


@dataclass
class Book:
    """The range book as the store keeps it (reads and the tick's writes)."""

    ranges: dict[str, HostRange] = field(default_factory=dict)
    waits: dict[str, dict[bytes, bool]] = field(default_factory=dict)
    sends: set[int] = field(default_factory=set)  # gateway blocks holding a send of ours

    def recent_ranges(self, chain_id: int, limit: int) -> list[HostRange]:
        return sorted(self.ranges.values(), key=lambda r: -r.last_block)[:limit]

    def ranges_from(self, chain_id: int, block: int, limit: int) -> list[HostRange]:
        found = [r for r in self.ranges.values() if r.last_block >= block]
        return sorted(found, key=lambda r: r.last_block)[:limit]

    def open_ranges(self, chain_id: int, limit: int) -> list[HostRange]:
        found = [r for r in self.ranges.values() if r.is_open]
        return sorted(found, key=lambda r: r.last_block)[:limit]

    def range_waits(self, chain_id: int) -> dict[str, dict[bytes, bool]]:
        return self.waits

    def holds_gateway_sends(self, first: int, last: int) -> bool:
        return any(first <= b <= last for b in self.sends)

    def record_range_request(
        self,
        chain_id: int,
        partition_key: str,
        first_block: int,
        last_block: int,
        last_hash: bytes,
        *,
        reorg: bool = False,
    ) -> HostRange:
        r = self.ranges.get(partition_key)
        if r is None:
            r = HostRange(chain_id, partition_key, first_block, last_block, last_hash, None, 0)
        elif reorg:
            r = replace(
                r,
                requested_hash=last_hash,
                processed_hash=None,
                reorg_count=r.reorg_count + 1,
                is_empty=False,
                failed_runs=0,
            )
        else:
            r = replace(r, requested_hash=last_hash)
        self.ranges[partition_key] = r
        return r

    def record_empty_range(
        self, chain_id: int, partition_key: str, first_block: int, last_block: int, last_hash: bytes
    ) -> None:
        self.ranges[partition_key] = HostRange(
            chain_id, partition_key, first_block, last_block, last_hash, last_hash, 0, True,
            last_hash,
        )  # fmt: skip

    def prune_empty_ranges(self, chain_id: int, below_block: int) -> int:
        gone = [p for p, r in self.ranges.items() if r.is_empty and r.last_block < below_block]
        for p in gone:
            del self.ranges[p]
        return len(gone)

    def mark_range_completed(self, chain_id: int, partition_key: str, last_hash: bytes) -> None:
        r = self.ranges[partition_key]
        if r.known_hash == last_hash:
            self.ranges[partition_key] = replace(r, completed_hash=last_hash, failed_runs=0)

    def record_range_failures(
        self, chain_id: int, partition_key: str, failed_runs: int, last_failure_at: float | None
    ) -> None:
        self.ranges[partition_key] = replace(self.ranges[partition_key], failed_runs=failed_runs)

    def ingest(self, partition: str) -> None:
        """A run ingested the range (`Store.mark_range_processed`)."""
        r = self.ranges[partition]
        self.ranges[partition] = replace(r, processed_hash=r.requested_hash)


def rules(kind: ChainKind = ChainKind.HOST, **ranges: Any) -> TickRules:
    name = "gateway" if kind is ChainKind.GATEWAY else f"host_{CHAIN_ID}"
    policy = RedrivePolicy(backoff_s=60, backoff_max_s=600, alert_after=2)
    chain_rules = replace(RangeRules(range_size=10, run_empty=True), **ranges)
    return TickRules(name, kind, chain_rules, policy, ADDRESSES)


def tick(
    chain: Chain,
    book: Book,
    tick_rules: TickRules,
    cursor: str | None = None,
    *,
    runs: dict[str, list[PastRun]] | None = None,
    now: float = 10_000.0,
    deadline: float | None = None,
    identity: Identity = IDENTITY,
) -> Tick:
    history = runs or {}
    view = TickView(chain, identity, lambda p: history.get(p, []), now, deadline)
    return plan_tick(view, book, tick_rules, cursor)


def asked(t: Tick) -> list[tuple[str, str]]:
    return [(a.partition, a.run_key) for a in t.runs]


def test_a_new_range_is_requested_and_the_cursor_advances() -> None:
    chain, book, r = Chain(25), Book(), rules()
    t = tick(chain, book, r)
    assert asked(t) == [(k(0, 9), f"{k(0, 9)}@{G8}"), (k(10, 19), f"{k(10, 19)}@{G8}")]
    assert t.cursor == f"{GENESIS.hex()}:20" and t.skip_reason is None and t.empty == ()
    assert t.runs[0].tags == {
        "fhevm/host_31337_chain_id": "31337",
        "fhevm/range": f"host_31337/{k(0, 9)}",
        "fhevm/genesis_hash": GENESIS.hex(),
        "fhevm/last_block_hash": (9).to_bytes(32, "big").hex(),
    }
    assert t.writes == (
        Requested(BlockRange(0, 9), (9).to_bytes(32, "big"), False),
        Requested(BlockRange(10, 19), (19).to_bytes(32, "big"), False),
    )
    assert t.chain_id == CHAIN_ID and t.log == ()
    apply_writes(book, t.chain_id, t.writes)
    for p in (k(0, 9), k(10, 19)):
        book.ingest(p)
    done = {
        p: [PastRun(Outcome.SUCCEEDED, 1.0, last_hash=book.ranges[p].known_hash)]
        for p in book.ranges
    }
    waiting = tick(chain, book, r, t.cursor, runs=done)
    assert waiting.runs == () and waiting.cursor == t.cursor
    assert waiting.skip_reason == (
        "no complete host_31337 range: next range 20..29 needs safe head >= 29, "
        "safe head is 25 (head 25), 0 confirmations"
    )
    assert waiting.writes == (
        RunCompleted(k(0, 9), (9).to_bytes(32, "big")),
        RunCompleted(k(10, 19), (19).to_bytes(32, "big")),
    )
    chain.head_block = 31
    assert asked(tick(chain, book, r, t.cursor, runs=done)) == [(k(20, 29), f"{k(20, 29)}@{G8}")]


def test_a_range_proven_empty_by_its_blooms_gets_no_run() -> None:
    chain, book = Chain(29, logs={15: 1}), Book()
    t = tick(chain, book, rules(run_empty=False, reorg_check_ranges=2))
    assert [p for p, _ in asked(t)] == [k(10, 19)]
    assert t.empty == (BlockRange(0, 9), BlockRange(20, 29))
    h = [n.to_bytes(32, "big") for n in (9, 19, 29)]
    assert t.writes == (
        ProvenEmpty(BlockRange(0, 9), h[0]),
        ProvenEmpty(BlockRange(20, 29), h[2]),
        Requested(BlockRange(10, 19), h[1], False),
        PruneEmpty(0),  # the two newest ranges once recorded: 0-9 and 20-29
    )
    apply_writes(book, t.chain_id, t.writes)
    assert not book.ranges[k(0, 9)].is_open and book.ranges[k(10, 19)].is_open
    chain.head_block = 49
    quiet = tick(chain, book, rules(run_empty=False, reorg_check_ranges=2), t.cursor)
    # 10-19 has its run (queued): asked again under the same run key, which Dagster skips.
    assert asked(quiet) == [(k(10, 19), f"{k(10, 19)}@{G8}")]
    assert quiet.empty == (BlockRange(30, 39), BlockRange(40, 49))
    assert PruneEmpty(30) in quiet.writes  # 0-9 and 20-29 leave the book


def test_a_reorged_empty_range_keeps_its_generation_when_the_window_moves_on() -> None:
    """The reorg's request is written before the prune: the range is no longer empty then, so
    its record (and generation) stays, as its run key says."""
    chain, book, r = Chain(9), Book(), rules(run_empty=False, reorg_check_ranges=1)
    first = tick(chain, book, r)
    apply_writes(book, first.chain_id, first.writes)
    assert book.ranges[k(0, 9)].is_empty
    chain.head_block, chain.fork[9] = 29, b"\x01" * 32
    t = tick(chain, book, r, first.cursor)
    assert asked(t) == [(k(0, 9), f"{k(0, 9)}@{G8}:reorg-1")]
    assert t.empty == (BlockRange(10, 19), BlockRange(20, 29)) and t.writes[-1] == PruneEmpty(20)
    apply_writes(book, t.chain_id, t.writes)
    assert book.ranges[k(0, 9)].reorg_count == 1 and k(10, 19) not in book.ranges


def test_a_tick_of_empty_ranges_says_so() -> None:
    t = tick(Chain(19), Book(), rules(run_empty=False))
    assert t.runs == () and t.cursor.endswith(":20")
    assert t.skip_reason is not None
    assert "2 host_31337 range(s) without logs recorded without a run" in t.skip_reason


def test_the_probe_fails_open() -> None:
    """A failing probe, or one past the tick's budget, proves nothing: every range runs."""
    down = tick(Chain(19, probe_down=True), Book(), rules(run_empty=False))
    assert [p for p, _ in asked(down)] == [k(0, 9), k(10, 19)] and down.empty == ()
    late = tick(Chain(19), Book(), rules(run_empty=False), deadline=time.monotonic() - 1)
    assert [p for p, _ in asked(late)] == [k(0, 9), k(10, 19)] and late.empty == ()


def test_an_rpc_failure_raises_and_decides_nothing() -> None:
    """The sensor turns it into a skip reason and keeps its cursor."""
    with pytest.raises(ConnectionError):
        tick(Chain(25, down=True), Book(), rules())


def test_a_gateway_range_holding_our_sends_always_runs() -> None:
    book = Book(sends={12})
    t = tick(Chain(29), book, rules(ChainKind.GATEWAY, run_empty=False))
    assert [p for p, _ in asked(t)] == [k(10, 19)]
    assert t.empty == (BlockRange(0, 9), BlockRange(20, 29))
    assert t.runs[0].tags["fhevm/gateway_chain_id"] == "31337"
    host = tick(Chain(29), book, rules(run_empty=False))  # a host chain knows no sends
    assert host.runs == () and len(host.empty) == 3


def test_gateway_runs_go_first_in_the_run_queue() -> None:
    """Users wait for the gateway's answers: its runs carry Dagster's `dagster/priority`, which
    the QueuedRunCoordinator sorts queued runs by (higher first); host runs keep the default."""
    gateway = tick(Chain(25), Book(), rules(ChainKind.GATEWAY))
    host = tick(Chain(25), Book(), rules())
    assert {a.tags.get("dagster/priority") for a in gateway.runs} == {"10"}
    assert {a.tags.get("dagster/priority") for a in host.runs} == {None}


def test_a_reorged_range_is_requested_as_a_new_generation() -> None:
    chain, book, r = Chain(19), Book(), rules(run_empty=False)
    chain.logs[5] = 1
    first = tick(chain, book, r)
    apply_writes(book, first.chain_id, first.writes)
    book.ingest(k(0, 9))
    chain.fork[19] = b"\x01" * 32  # 10-19 was empty: other blocks now
    t = tick(chain, book, r, first.cursor, runs={k(0, 9): [PastRun(Outcome.ACTIVE, None)]})
    assert asked(t) == [(k(10, 19), f"{k(10, 19)}@{G8}:reorg-1")]
    assert t.runs[0].tags["fhevm/reorg"] == "1"
    assert t.log == (f"reorg: host_31337 range {k(10, 19)} changed, requesting it again",)
    assert t.writes == (Requested(BlockRange(10, 19), b"\x01" * 32, True),)
    apply_writes(book, t.chain_id, t.writes)
    assert book.ranges[k(10, 19)].reorg_count == 1 and book.ranges[k(10, 19)].is_open


def failed(end: float, last_hash: bytes, redrive: int | None = None) -> PastRun:
    return PastRun(Outcome.FAILED, end, redrive, last_hash=last_hash)


def test_a_failed_range_is_redriven_when_due() -> None:
    chain, book, r = Chain(15), Book(), rules()
    first = tick(chain, book, r)
    apply_writes(book, first.chain_id, first.writes)
    book.ingest(k(0, 9))
    h = (9).to_bytes(32, "big")
    runs = {k(0, 9): [failed(1000.0, h)]}
    early = tick(chain, book, r, first.cursor, runs=runs, now=1030.0)
    assert early.runs == () and early.writes == (RunsFailed(k(0, 9), 1, 1000.0),)
    assert early.skip_reason is not None and f"re-drive 1 of {k(0, 9)} in 30 s" in early.skip_reason
    due = tick(chain, book, r, first.cursor, runs=runs, now=1060.0)
    assert asked(due) == [(k(0, 9), f"{k(0, 9)}@{G8}:redrive-1")]
    assert due.runs[0].tags["fhevm/redrive"] == "1"
    assert due.log == (f"re-drive: host_31337 range {k(0, 9)}, requesting {due.runs[0].run_key}",)
    book.waits = {k(0, 9): {b"\x02" * 32: True}}  # its inputs are stored: no backoff
    assert [a.run_key for a in tick(chain, book, r, first.cursor, runs=runs, now=1001.0).runs] == [
        f"{k(0, 9)}@{G8}:redrive-1"
    ]
    book.waits = {}
    runs[k(0, 9)].insert(0, failed(2000.0, h, 1))  # two in a row: alerting
    alert = tick(chain, book, r, first.cursor, runs=runs, now=2010.0)
    assert alert.runs == () and alert.skip_reason is not None
    assert f"ALERT {k(0, 9)}: 2 failed runs in a row" in alert.skip_reason
    assert alert.log[-1].startswith(f"ALERT host_31337 range {k(0, 9)}: 2 failed runs")


def test_an_open_range_without_a_run_is_requested_from_the_book() -> None:
    """A lost run (a dead daemon, a deleted run) of a range older than the planner's window."""
    chain, book, r = Chain(45), Book(), rules(reorg_check_ranges=1)
    first = tick(chain, book, r)
    apply_writes(book, first.chain_id, first.writes)
    for p in list(book.ranges):
        book.ingest(p)
    active = {p: [PastRun(Outcome.ACTIVE, None)] for p in book.ranges if p != k(0, 9)}
    t = tick(chain, book, r, first.cursor, runs=active)
    assert asked(t) == [(k(0, 9), f"{k(0, 9)}@{G8}")]
    assert t.log == (f"no run yet: host_31337 range {k(0, 9)}, requesting {k(0, 9)}@{G8}",)
    assert t.writes == ()


def test_a_range_requested_this_tick_is_not_asked_twice() -> None:
    """The watch sees the book as the tick leaves it: the ranges it requests have no run yet."""
    t = tick(Chain(25), Book(), rules())
    assert len(t.runs) == len({a.run_key for a in t.runs}) == 2 and t.log == ()


def test_a_reset_chain_starts_again_from_its_start_block() -> None:
    reset = ChainReset(CHAIN_ID, b"\x01" * 32, GENESIS, {"computations": 3})
    identity = Identity(CHAIN_ID, GENESIS, reset)
    t = tick(Chain(15), Book(), rules(), f"{GENESIS.hex()}:90", identity=identity)
    assert [p for p, _ in asked(t)] == [k(0, 9)]
    assert t.log[0].startswith("host_31337 chain 31337 was reset: genesis 0x010101010101")
    assert "starting again from block 0 (rows of the old chain removed: 3 computations)" in t.log[0]
    other = tick(Chain(15), Book(), rules(), f"{'cd' * 32}:90")  # another chain's cursor
    assert other.cursor == f"{GENESIS.hex()}:10"


def test_a_lost_tick_of_head_ranges_then_a_backlog() -> None:
    """A tick cut head ranges, wrote them (an empty one pruned at once: older than the reorg
    window) and lost its cursor with the daemon; the next one, with the head far ahead, asks for
    the requested range under its run key, cuts the pruned one again as before and the backlog
    in range-size ranges: no range over the book's."""
    chain, book = Chain(27, logs={21: 1}), Book()
    r = rules(run_empty=False, head_range_size=2, reorg_check_ranges=2)
    cursor = f"{GENESIS.hex()}:20"
    lost = tick(chain, book, r, cursor)
    assert asked(lost) == [(k(20, 21), f"{k(20, 21)}@{G8}")]
    assert lost.empty == (BlockRange(22, 23), BlockRange(24, 25), BlockRange(26, 27))
    assert lost.writes[-1] == PruneEmpty(24) and lost.cursor.endswith(":28")
    apply_writes(book, lost.chain_id, lost.writes)
    assert sorted(book.ranges) == [k(20, 21), k(24, 25), k(26, 27)]
    chain.head_block = 60
    t = tick(chain, book, r, cursor)
    assert asked(t) == [(k(20, 21), f"{k(20, 21)}@{G8}")]
    assert t.empty == (
        BlockRange(22, 23), BlockRange(28, 29), BlockRange(30, 39), BlockRange(40, 49),
        BlockRange(50, 59),
    )  # fmt: skip
    assert t.cursor.endswith(":60")
    apply_writes(book, t.chain_id, t.writes)
    held = sorted((r.first_block, r.last_block) for r in book.ranges.values())
    assert all(a[1] < b[0] for a, b in pairwise(held)), held
    assert t.skip_reason is None
    waiting = tick(chain, Book(), rules(head_range_size=5), f"{GENESIS.hex()}:61")
    assert waiting.skip_reason == (
        "no complete host_31337 range: next range 61..64 (5-block ranges at the head) needs "
        "safe head >= 64, safe head is 60 (head 60), 0 confirmations"
    )
