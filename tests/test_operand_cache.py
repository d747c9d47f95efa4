"""One decompression per ct64 for all its readers in a range (issue #29), freed after the last.

The reference decompresses an operand for every operation that reads it and once more to squash
it; decompression is deterministic, so sharing one is byte-safe (the golden vectors and the
determinism and range-cut tests hold the bytes). Here a counting fake engine shows the count drop
on a transfer-shaped range, and that nothing stays held; the cache's own rules are checked on a
counting decompress.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import test_range_memory
import tfhe_py
from range_jobs import evaluate
from test_range_memory import CHAIN, POOL, RANGE, Counted, CountingStore, OracleEngine, transfers

from fhevm_dagster.compute.evaluate import Ct64, FheBackend
from fhevm_dagster.compute.operand_cache import OperandCache, ct64_key
from fhevm_dagster.compute.oracle import Plain
from fhevm_dagster.compute.sns import squash_one
from fhevm_dagster.pipeline.evaluate import MissingInputsError
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.store import schema as s

TRANSFERS = 24
#: Per transfer (Ge, Sub, IfThenElse, Add, IfThenElse): 12 operand reads and 2 squashes.
READS_PER_TRANSFER = 14
#: Per transfer, distinct ct64s read: its amount, Ge, Sub, Add and the two new balances; plus
#: once each of the 8 accounts' opening balances.
DISTINCT_PER_TRANSFER, OPENING_BALANCES = 6, 8


@pytest.fixture(autouse=True)
def own_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ciphertext the fake makes has bytes of its own (a serial after the value), as a real
    encryption's have: equal plaintexts would otherwise share a decompression."""
    encode, serials = test_range_memory._encode, itertools.count()
    monkeypatch.setattr(
        test_range_memory, "_encode", lambda p: Counted(encode(p) + next(serials).to_bytes(8))
    )


class CountingEngine(OracleEngine):
    """The oracle engine, counting decompressions."""

    def __init__(self) -> None:
        self.decompressions = 0
        self._lock = threading.Lock()

    def decompress(self, data: bytes) -> Plain:
        with self._lock:
            self.decompressions += 1
        return Plain(int.from_bytes(data[1:33], "big"), FheType(data[0]))


def _range(tmp_path: Path, name: str, n: int = TRANSFERS) -> CountingStore:
    store = CountingStore.open(f"sqlite:///{tmp_path / f'{name}.sqlite'}")
    transfers(store, n)
    return store


@pytest.mark.parametrize("batch", [0, 8])
def test_a_transfer_range_decompresses_each_ct64_once(tmp_path: Path, batch: int) -> None:
    """24 transfers evaluated and squashed: 14 decompressions per transfer without reuse (the
    reference's count), 6 per transfer with it (plus the 8 opening balances) when nothing is
    evicted; nothing held after the range, never more than `batch` values held."""
    engine: Any = CountingEngine()
    report = evaluate(
        _range(tmp_path, "on"), lambda: engine, RANGE, 0, POOL, CHAIN, batch=batch, squash=True
    )
    reused = engine.decompressions
    assert report.evaluated == 5 * TRANSFERS and report.squash_stored == 2 * TRANSFERS
    floor = DISTINCT_PER_TRANSFER * TRANSFERS + OPENING_BALANCES
    if batch == 0:
        assert reused == floor
    else:
        assert floor <= reused <= 8 * TRANSFERS  # evictions, as the threads' timing goes
        assert 0 < report.operands.peak_held <= batch
    assert report.operands.decompressions == reused
    assert report.operands.left == 0, "announced reads never taken"

    engine = CountingEngine()
    off = evaluate(
        _range(tmp_path, "off"), lambda: engine, RANGE, 0, POOL, CHAIN, batch=batch, squash=True,
        reuse_operands=False,
    )  # fmt: skip
    assert engine.decompressions == READS_PER_TRANSFER * TRANSFERS
    assert off.operands.reused == off.operands.peak_held == 0


def test_waiting_and_failed_readers_give_their_reads_back(tmp_path: Path) -> None:
    """An amount not stored yet: its readers wait, and the reads they announced for the values
    they share (the balances) are given up, so nothing stays held."""
    store = _range(tmp_path, "gap", 12)
    rows = store.computations_of_range(RANGE, chain_id=CHAIN)
    lost = rows[len(rows) // 2].dependencies[1]
    with store.engine.begin() as conn:
        conn.execute(s.ciphertexts.delete().where(s.ciphertexts.c.handle == lost))
    with pytest.raises(MissingInputsError) as missing:
        evaluate(store, CountingEngine, RANGE, 0, POOL, CHAIN, batch=4, squash=True)
    report = missing.value.report
    assert report.waiting and report.operands.reused > 0
    assert report.operands.left == 0


class Decompress:
    """A slow counting decompress: the value is the bytes' length."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls = 0
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self, data: bytes) -> int:
        with self.lock:
            self.calls += 1
        time.sleep(self.seconds)
        return len(data)


def test_announced_reads_share_one_decompression_then_let_go() -> None:
    d = Decompress()
    cache: OperandCache[int] = OperandCache(d, capacity=4)
    cache.expect(ct64_key(b"abc"), 3)
    assert [cache.read(b"abc") for _ in range(2)] == [3, 3] and len(cache) == 1
    assert cache.read(b"abc") == 3 and len(cache) == cache.pending == 0
    assert d.calls == 1
    cache.read(b"abc")  # not announced: decompressed, not kept
    assert d.calls == 2 and len(cache) == 0
    cache.expect(ct64_key(b"xy"), 2)
    cache.read(b"xy")
    cache.forgo(ct64_key(b"xy"), 1)  # its other reader failed
    assert len(cache) == cache.pending == 0


def test_concurrent_readers_wait_for_one_decompression() -> None:
    d = Decompress(seconds=0.05)
    cache: OperandCache[int] = OperandCache(d)
    cache.expect(ct64_key(b"v"), 4)
    threads = [threading.Thread(target=cache.read, args=(b"v",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d.calls == 1 and cache.stats.reused == 3 and cache.pending == 0


def test_at_most_capacity_values_are_held() -> None:
    d = Decompress()
    cache: OperandCache[int] = OperandCache(d, capacity=2)
    data = [bytes([i]) * (i + 1) for i in range(5)]
    for x in data:
        cache.expect(ct64_key(x), 2)
        cache.read(x)
        assert len(cache) <= 2
    assert cache.stats.evicted == 3 and cache.stats.peak_held == 2
    assert [cache.read(x) for x in data] == [1, 2, 3, 4, 5]  # evicted ones decompressed again
    assert d.calls == 5 + 3 and len(cache) == cache.pending == 0


def test_a_shared_decompression_gives_the_bytes_of_fresh_ones(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey
) -> None:
    """On the real engine: two operations and a squash reading one shared decompression give the
    bytes of a decompression each (the reference's way), and leave the shared value as it was
    (execute re-randomizes a copy)."""
    a = Ct64(engine.compress(client_key.encrypt(1_000, FheType.Uint64)))
    b = Ct64(engine.compress(client_key.encrypt(234, FheType.Uint64)))
    cache: OperandCache[tfhe_py.Ciphertext] = OperandCache(engine.decompress)
    shared, fresh = FheBackend(engine, cache), FheBackend(engine)
    cache.expect(ct64_key(a.data), 3)
    value = cache.read(a.data)
    before = value.to_bytes()
    assert engine.decompress(a.data).to_bytes() == before
    for op in (Operator.Add, Operator.Sub):
        assert shared.execute(op, [a, b], FheType.Uint64) == fresh.execute(
            op, [a, b], FheType.Uint64
        )
    assert cache.stats.reused == 2 and cache.pending == 0
    assert value.to_bytes() == before
    assert engine.squash(value) == squash_one(engine, a.data)
    assert value.to_bytes() == before
