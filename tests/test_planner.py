"""The range planner over an in-memory chain and range book: no anvil, no store."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest

from fhevm_dagster import settings
from fhevm_dagster.chain.config import RangeRules, accept_chain_reset
from fhevm_dagster.pipeline.block_ranges import BlockRange, cut_ranges, parse_range_key
from fhevm_dagster.pipeline.planner import (
    ChainShrankError,
    RangeDecision,
    plan_ranges,
    read_cursor,
    without_empty,
    write_cursor,
)
from fhevm_dagster.protocol.events import RawLog
from fhevm_dagster.settings import load_settings
from fhevm_dagster.store import HostRange


@dataclass
class Chain:
    """Blocks 0..head with hashes that a reorg can change from a block on."""

    head_block: int
    fork: dict[int, bytes] = field(default_factory=dict)

    def chain_id(self) -> int:
        return 31337

    def head(self) -> int:
        return self.head_block

    def block_hash(self, number: int) -> bytes | None:
        if number > self.head_block:
            return None
        return self.fork.get(number, number.to_bytes(32, "big"))


@dataclass
class Book:
    ranges: dict[str, HostRange] = field(default_factory=dict)

    def record(self, rng: BlockRange, known: bytes, *, ingested: bool = True) -> None:
        processed = known if ingested else None
        self.ranges[rng.key] = HostRange(31337, rng.key, rng.first, rng.last, known, processed, 0)

    def recent_ranges(self, chain_id: int, limit: int) -> list[HostRange]:
        return sorted(self.ranges.values(), key=lambda r: -r.first_block)[:limit]

    def ranges_from(self, chain_id: int, block: int, limit: int) -> list[HostRange]:
        found = [r for r in self.ranges.values() if r.last_block >= block]
        return sorted(found, key=lambda r: r.last_block)[:limit]


def keys(plan_decisions: object) -> list[tuple[str, bool]]:
    return [(d.rng.key, d.reorg) for d in plan_decisions]  # type: ignore[attr-defined]


def test_complete_aligned_ranges_under_the_safe_head() -> None:
    rules = RangeRules(range_size=10, confirmations=2, max_ranges_per_tick=10, start_block=5)
    plan = plan_ranges(None, Chain(31), Book(), rules)
    assert keys(plan.decisions) == [
        ("000000000005-000000000009", False),  # aligned: the first range is shorter
        ("000000000010-000000000019", False),
        ("000000000020-000000000029", False),  # head 31 - 2 confirmations = 29: complete
    ]
    plan = plan_ranges(None, Chain(30), Book(), rules)
    assert plan.next_block == 20 and plan.safe_head == 28
    assert "needs safe head >= 29" in plan.waiting_reason(10, 10)


def test_cap_and_cursor() -> None:
    rules = RangeRules(range_size=10, max_ranges_per_tick=2)
    plan = plan_ranges(None, Chain(100), Book(), rules)
    assert [d.rng for d in plan.decisions] == [BlockRange(0, 9), BlockRange(10, 19)]
    assert plan.next_block == 20
    plan = plan_ranges(plan.next_block, Chain(100), Book(), rules)
    assert plan.decisions[0].rng == BlockRange(20, 29)


def test_a_changed_last_block_hash_is_a_reorg() -> None:
    book, chain = Book(), Chain(40)
    rules = RangeRules(range_size=10)
    first = plan_ranges(None, chain, book, rules)
    for d in first.decisions:
        book.record(d.rng, d.last_hash)
    assert plan_ranges(first.next_block, chain, book, rules).decisions == []
    chain.fork[19] = b"\x01" * 32
    plan = plan_ranges(first.next_block, chain, book, rules)
    assert keys(plan.decisions) == [("000000000010-000000000019", True)]
    assert plan.decisions[0].last_hash == b"\x01" * 32
    assert plan.decisions[0].reorg_count == 1  # the book's generation, one more


def test_requested_ranges_not_ingested_are_planned_again() -> None:
    """A lost tick or a queued run: planned again (same run key); Dagster skips keys it has."""
    book, chain = Book(), Chain(40)
    rules = RangeRules(range_size=10)
    first = plan_ranges(None, chain, book, rules)
    for d in first.decisions:
        book.record(d.rng, d.last_hash, ingested=d.rng.first >= 20)  # 0-9, 10-19 not ingested
    plan = plan_ranges(first.next_block, chain, book, rules)
    assert keys(plan.decisions) == [
        ("000000000000-000000000009", False),
        ("000000000010-000000000019", False),
    ]
    plan = plan_ranges(None, chain, book, rules)  # the cursor of a lost tick
    assert [k for k, _ in keys(plan.decisions)] == [
        "000000000000-000000000009",
        "000000000010-000000000019",
    ]
    assert plan.next_block == 40


def test_a_shorter_chain_moves_the_cursor_back() -> None:
    book = Book()
    book.record(BlockRange(30, 39), (39).to_bytes(32, "big"))
    plan = plan_ranges(40, Chain(35), book, RangeRules(range_size=10))
    assert plan.decisions == [] and plan.next_block == 30


def test_a_block_vanishing_mid_plan_is_an_error() -> None:
    class Racing(Chain):
        def block_hash(self, number: int) -> bytes | None:
            return None

    with pytest.raises(ChainShrankError):
        plan_ranges(None, Racing(20), Book(), RangeRules(range_size=10))


def spans(plan_decisions: object) -> list[tuple[int, int]]:
    return [(d.rng.first, d.rng.last) for d in plan_decisions]  # type: ignore[attr-defined]


def test_head_ranges_when_caught_up_range_size_ones_behind() -> None:
    """A range-size range once the safe head reaches its end; head-size ranges for the rest
    (aligned to the head size: never across a range-size boundary), the part waits."""
    rules = RangeRules(range_size=10, head_range_size=2)
    plan = plan_ranges(None, Chain(26), Book(), rules)
    assert spans(plan.decisions) == [(0, 9), (10, 19), (20, 21), (22, 23), (24, 25)]
    assert plan.next_block == 26
    assert plan.waiting_reason(10, 2) == (
        "next range 26..27 (2-block ranges at the head) needs safe head >= 27, "
        "safe head is 26 (head 26)"
    )
    later = plan_ranges(26, Chain(33), Book(), rules)
    assert spans(later.decisions) == [(26, 29), (30, 31), (32, 33)]  # the rest of 20-29 at once
    assert spans(plan_ranges(26, Chain(28), Book(), rules).decisions) == [(26, 27)]
    same = RangeRules(range_size=10)  # head size unset: the range size, as before
    assert spans(plan_ranges(None, Chain(26), Book(), same).decisions) == [(0, 9), (10, 19)]


def test_a_lost_ticks_head_ranges_are_kept_when_a_backlog_follows() -> None:
    """A tick requested head ranges and its cursor was lost; the next tick, from the old cursor
    with the head far ahead, requests those ranges again under their keys, then cuts on: no
    larger range over them. Empty ones pruned since are cut again at the head size, as before."""
    book, rules = Book(), RangeRules(range_size=10, head_range_size=2, max_ranges_per_tick=10)
    lost = plan_ranges(20, Chain(25), book, rules)
    assert spans(lost.decisions) == [(20, 21), (22, 23), (24, 25)]
    for d in lost.decisions:
        book.record(d.rng, d.last_hash, ingested=d.rng.first == 22)
    again = plan_ranges(20, Chain(95), book, rules)
    assert spans(again.decisions) == [(20, 21), (24, 25), (26, 29)] + [
        (f, f + 9) for f in range(30, 70, 10)
    ]  # 22-23 is ingested: nothing to request, and it counts in the tick's 10 ranges
    assert again.next_block == 70
    assert plan_ranges(20, Chain(95), book, rules) == again  # re-planning gives the same
    del book.ranges[BlockRange(20, 21).key], book.ranges[BlockRange(22, 23).key]  # pruned
    assert spans(plan_ranges(20, Chain(95), book, rules).decisions)[:4] == [
        (20, 21), (22, 23), (24, 25), (26, 29)
    ]  # fmt: skip


def test_head_ranges_past_a_shrunk_head_keep_their_keys() -> None:
    """A reorg shortens the chain under requested head ranges: the cursor goes back, and once
    the chain is long again those ranges are planned again as the book holds them (reorg)."""
    book, chain = Book(), Chain(25)
    rules = RangeRules(range_size=10, head_range_size=2)
    first = plan_ranges(20, chain, book, rules)
    for d in first.decisions:
        book.record(d.rng, d.last_hash)
    chain.head_block = 21
    short = plan_ranges(first.next_block, chain, book, rules)
    assert short.decisions == [] and short.next_block == 22
    chain.head_block, chain.fork[23] = 60, b"\x01" * 32
    plan = plan_ranges(short.next_block, chain, book, rules)
    assert keys(plan.decisions)[:3] == [
        (BlockRange(22, 23).key, True), (BlockRange(26, 29).key, False),
        (BlockRange(30, 39).key, False),
    ]  # fmt: skip
    assert all(d.rng.first != 24 for d in plan.decisions)  # 24-25: same blocks, ingested


def test_ranges_cut_under_other_sizes_are_kept() -> None:
    """The sizes changed between two runs of the sensor: the book's ranges stay as they are, new
    ones are cut between them, a gap no size fits is one range."""
    kept = [BlockRange(10, 14), BlockRange(19, 29)]
    assert cut_ranges(8, 45, 10, 2, kept, 10) == [
        BlockRange(8, 9), BlockRange(10, 14), BlockRange(15, 15), BlockRange(16, 17),
        BlockRange(18, 18), BlockRange(19, 29), BlockRange(30, 39), BlockRange(40, 41),
        BlockRange(42, 43), BlockRange(44, 45),
    ]  # fmt: skip
    assert cut_ranges(8, 12, 10, 2, kept, 10) == [BlockRange(8, 9)]  # 10-14 not complete yet
    assert cut_ranges(12, 30, 10, 2, kept, 2) == [BlockRange(10, 14), BlockRange(15, 15)]
    with pytest.raises(ValueError, match="head range size 3 must divide range size 10"):
        cut_ranges(0, 10, 10, 3, [], 1)
    with pytest.raises(ValueError, match="head_range_size=4 must divide range_size=10"):
        RangeRules(range_size=10, head_range_size=4)


def _disjoint(ranges: Sequence[BlockRange]) -> bool:
    ordered = sorted(ranges, key=lambda r: r.first)
    return all(a.last < b.first for a, b in pairwise(ordered))


def test_ranges_never_overlap_nor_leave_gaps() -> None:
    """Random cursors, heads, sizes, reorgs shortening the chain, lost ticks (with or without
    their book writes), pruned empty ranges: the book's ranges never overlap, every block below
    the cursor is in a range the book holds or held, re-planning gives the same plan, and each
    new range ends at a head-size boundary inside one range-size range."""
    rnd = random.Random(29)
    for _ in range(300):
        size = rnd.choice([1, 2, 4, 6, 10, 12, 100])
        head = rnd.choice([d for d in range(1, size + 1) if size % d == 0])
        rules = RangeRules(
            range_size=size,
            head_range_size=head,
            confirmations=rnd.randint(0, 3),
            max_ranges_per_tick=rnd.randint(1, 8),
            start_block=rnd.randint(0, 2 * size),
            reorg_check_ranges=rnd.randint(1, 8),
        )
        chain, book, held = Chain(rules.start_block + rnd.randint(0, 3 * size)), Book(), []
        cursor: int | None = None
        for step in range(40):
            chain.head_block = max(0, chain.head_block + rnd.randint(-2 * head, 3 * size))
            if rnd.random() < 0.15:
                forked = range(max(0, chain.head_block - 3 * head), chain.head_block + 1)
                chain.fork.update({b: bytes([step + 1]) * 32 for b in forked})
            plan = plan_ranges(cursor, chain, book, rules)
            assert plan_ranges(cursor, chain, book, rules) == plan
            new = [d.rng for d in plan.decisions if d.rng.key not in book.ranges]
            for rng in new:
                assert (rng.last + 1) % head == 0 and rng.first // size == rng.last // size
                assert rng.last <= plan.safe_head
            lost = rnd.random() < 0.25
            if not lost or rnd.random() < 0.5:  # a tick lost after its writes, or kept
                for d in plan.decisions:
                    book.record(d.rng, d.last_hash, ingested=rnd.random() < 0.6)
                    held.append(d.rng)
            if not lost:
                cursor = plan.next_block
            for key in [k for k in book.ranges if rnd.random() < 0.1]:  # pruned empty
                del book.ranges[key]
            ranges = [BlockRange(r.first_block, r.last_block) for r in book.ranges.values()]
            assert _disjoint(ranges), sorted(ranges, key=lambda r: r.first)
            covered = {b for r in held for b in range(r.first, r.last + 1)}
            assert set(range(rules.start_block, cursor or rules.start_block)) <= covered


def test_range_keys() -> None:
    assert BlockRange(1000, 1099).key == "000000001000-000000001099"
    assert parse_range_key("000000001000-000000001099") == BlockRange(1000, 1099)
    with pytest.raises(ValueError, match="not a host range key"):
        parse_range_key("1000-1099")
    with pytest.raises(ValueError, match="invalid block range"):
        parse_range_key("000000000009-000000000001")
    assert cut_ranges(5, 25, 10, 10, [], 10) == [BlockRange(5, 9), BlockRange(10, 19)]
    assert cut_ranges(0, 8, 10, 10, [], 10) == [] and len(cut_ranges(0, 10**6, 10, 10, [], 3)) == 3


def test_cursor_names_its_chain() -> None:
    genesis = bytes.fromhex("ab" * 32)
    assert read_cursor(write_cursor(genesis, 120), genesis) == 120
    assert read_cursor(write_cursor(bytes(32), 120), genesis) is None  # another chain: start again
    assert read_cursor("120", genesis) == 120  # the plain format of before
    assert read_cursor(None, genesis) is None


def test_resets_are_accepted_on_the_devnet_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    devnet = {
        "host_chains": [{"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"}],
        "gateway_chain_id": 10901,
        "gateway_rpc_url": "http://127.0.0.1:8546",
    }
    (tmp_path / "devnet.json").write_text(json.dumps(devnet))
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(tmp_path / "devnet.json"))
    monkeypatch.delenv("FHEVM_DAGSTER_ACCEPT_CHAIN_RESET", raising=False)
    assert accept_chain_reset(load_settings(), 31337, "http://127.0.0.1:8545")
    assert accept_chain_reset(load_settings(), 10901, "http://127.0.0.1:8546")
    assert not accept_chain_reset(
        load_settings(), 31337, "https://rpc.example/key"
    )  # same id, not the devnet
    assert not accept_chain_reset(load_settings(), 1, "http://127.0.0.1:8545")
    monkeypatch.setenv("FHEVM_DAGSTER_ACCEPT_CHAIN_RESET", "0")
    assert not accept_chain_reset(load_settings(), 31337, "http://127.0.0.1:8545")
    monkeypatch.setenv("FHEVM_DAGSTER_ACCEPT_CHAIN_RESET", "1")
    assert accept_chain_reset(load_settings(), 1, "https://rpc.example/key")
    monkeypatch.setenv("FHEVM_DAGSTER_ACCEPT_CHAIN_RESET", "yes")
    with pytest.raises(ValueError, match="expected 1, 0 or unset"):
        accept_chain_reset(load_settings(), 1, "https://rpc.example/key")


@dataclass
class Probe:
    """A chain's logs as a provider answers them: `logs` per block, a replica that may hide the
    newest blocks' logs from eth_getLogs (`lag`), blocks' blooms as they are (`bloom`: the blocks
    whose bloom may hold a log of ours), and an outage (`down`)."""

    logs: dict[int, int] = field(default_factory=dict)
    bloom: set[int] = field(default_factory=set)
    lag: int = 0
    head_block: int = 99
    down: bool = False

    def chain_id(self) -> int:
        return 31337

    def block_hash(self, number: int) -> bytes | None:
        return number.to_bytes(32, "big")

    def get_logs(self, first: int, last: int, addresses: Sequence[str]) -> list[RawLog]:
        if self.down:
            raise ConnectionError("eth_getLogs: connection refused")
        seen = self.head_block - self.lag
        return [
            RawLog(addresses[0], (), b"", n, self.block_hash(n) or b"", b"\x01" * 32, 0, i)
            for n in range(first, min(last, seen) + 1)
            for i in range(self.logs.get(n, 0))
        ]

    def may_have_logs(self, first: int, last: int, addresses: Sequence[str]) -> bool:
        if self.down:
            raise ConnectionError("eth_getBlockByNumber: connection refused")
        return any(first <= n <= last for n in self.bloom | set(self.logs))


def _decisions(*ranges: tuple[int, int]) -> list[RangeDecision]:
    return [RangeDecision(BlockRange(a, b), b.to_bytes(32, "big"), False, 0) for a, b in ranges]


def test_a_range_is_empty_only_when_proven() -> None:
    """An empty eth_getLogs answer proves nothing: a range runs unless every block's bloom
    excludes the chain's contracts too; an outage runs every range (fails open); a range the
    caller must run runs. (Before: a lagging replica's empty answer recorded a range with logs
    as processed without a run, and one failing probe made the whole tick a skip.)"""
    a, b, c = _decisions((0, 9), (10, 19), (20, 29))
    chain = Probe(logs={15: 1}, head_block=29)
    run, empty = without_empty([a, b, c], chain, ["0xexec"])
    assert (run, empty) == ([b], [a, c])
    chain.lag = 5  # the replica answering eth_getLogs has not seen blocks 25-29
    chain.logs[27] = 2
    run, empty = without_empty([a, b, c], chain, ["0xexec"])
    assert (run, empty) == ([b, c], [a]), "the bloom of block 27 holds it"
    chain.bloom.add(3)  # a false positive: the range runs, for nothing
    assert without_empty([a], chain, ["0xexec"]) == ([a], [])
    chain.down = True
    assert without_empty([a, b, c], chain, ["0xexec"]) == ([a, b, c], [])
    chain.down, chain.bloom = False, set()
    forced = without_empty([a, c], chain, ["0xexec"], must_run=lambda r: r.first == 0)
    assert forced == ([a, c], [])  # 20-29 has logs (block 27) now that the replica caught up
    assert without_empty([a], chain, ["0xexec"], must_run=lambda r: True) == ([a], [])
