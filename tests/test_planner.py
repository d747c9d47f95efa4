"""The range planner over an in-memory chain and range book: no anvil, no store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fhevm_dagster import settings
from fhevm_dagster.chain.config import RangeRules, accept_chain_reset
from fhevm_dagster.pipeline.block_ranges import BlockRange, next_ranges, parse_range_key
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

    def get_range(self, chain_id: int, partition_key: str) -> HostRange | None:
        return self.ranges.get(partition_key)


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
    assert "needs safe head >= 29" in plan.waiting_reason(10)


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


def test_range_keys() -> None:
    assert BlockRange(1000, 1099).key == "000000001000-000000001099"
    assert parse_range_key("000000001000-000000001099") == BlockRange(1000, 1099)
    with pytest.raises(ValueError, match="not a host range key"):
        parse_range_key("1000-1099")
    with pytest.raises(ValueError, match="invalid block range"):
        parse_range_key("000000000009-000000000001")
    assert next_ranges(5, 25, 10, 10) == [BlockRange(5, 9), BlockRange(10, 19)]
    assert next_ranges(0, 8, 10, 10) == [] and len(next_ranges(0, 10**6, 10, 3)) == 3


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
