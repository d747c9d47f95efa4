"""Decompressed operands, kept while a reader in this process still needs them (issue #29).

The reference decompresses every compressed operand for every operation that reads it, and its
sns-worker decompresses a ct64 once more to squash it. Decompression is a deterministic bootstrap
(SPEC §7: the same ct64 bytes give the same ciphertext, in any thread or process), so one
decompression can serve every reader of the same bytes, and no byte that coprocessors must agree
on changes. In a transfer the balance and the amount are each read twice or more, and every new
balance is read again by its squash and by the next transfer.

Entries are keyed by the SHA-256 of the ct64 bytes, not by handle: a hit is by construction the
decompression of the very bytes its reader holds, whether they come from the operation that just
ran or from the store (a recomputed result that drifted from its stored bytes has another key).
Whoever knows the readers announces them (`expect`: the scheduler, from the DAG); each `read`
takes one, and the value is let go at the last one (or when the rest are given up, `forgo`). At
most `capacity` values are held, the least recently used going first (its count stays: a later
reader decompresses it again). A read nobody announced decompresses and keeps nothing. Counts
decide what is held and reused, never which bytes a reader gets.

A value is shared, not copied: a `tfhe_py.Ciphertext` is immutable, and `Engine.execute`
re-randomizes a copy of each operand, per operation, as the reference does (tfhe-py/src/engine.rs,
`Engine::evaluate`); `Engine.squash` only reads its operand.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


def ct64_key(data: bytes) -> bytes:
    """The cache key of stored bytes: their SHA-256."""
    return hashlib.sha256(data).digest()


@dataclass
class CacheStats:
    """Decompressions done, reads served without one, values evicted by the bound, the most
    values held at once, and entries with announced reads still pending (0 after a full range)."""

    decompressions: int = 0
    reused: int = 0
    evicted: int = 0
    peak_held: int = 0
    left: int = 0


@dataclass(slots=True)
class _Entry(Generic[T]):
    reads: int = 0
    value: T | None = None
    # One decompression per entry at a time: a second reader waits for the first one's value.
    busy: threading.Lock = field(default_factory=threading.Lock)


class OperandCache(Generic[T]):
    """Values of `decompress(ct64)`, each held until its announced reads are done; thread-safe.

    `capacity` bounds how many values are held at once (0: only the counts bound them)."""

    def __init__(self, decompress: Callable[[bytes], T], capacity: int = 0) -> None:
        self._decompress = decompress
        self.capacity = capacity
        self.stats = CacheStats()
        self._entries: dict[bytes, _Entry[T]] = {}
        self._held: OrderedDict[bytes, None] = OrderedDict()  # keys with a value, oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Values held now."""
        return len(self._held)

    @property
    def pending(self) -> int:
        """Keys with announced reads still to come."""
        return len(self._entries)

    def expect(self, key: bytes, reads: int) -> None:
        """`reads` more reads of the bytes with this key will come."""
        if reads <= 0:
            return
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
            entry.reads += reads

    def forgo(self, key: bytes, reads: int) -> None:
        """`reads` announced reads will not come (their reader failed or waits)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._take(key, entry, reads)

    def read(self, data: bytes) -> T:
        """`decompress(data)`, done once for all the announced reads of these bytes."""
        key = ct64_key(data)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return self._fresh(data)
        try:
            with entry.busy:
                value = entry.value
                if value is None:
                    value = self._fresh(data)
                    with self._lock:
                        if entry.reads > 1 and self._entries.get(key) is entry:
                            self._hold(key, entry, value)
                else:
                    with self._lock:
                        self.stats.reused += 1
                        if key in self._held:
                            self._held.move_to_end(key)
        finally:
            with self._lock:
                self._take(key, entry, 1)
        return value

    def clear(self) -> None:
        """Let everything go (the end of a range); `stats.left` says what was still announced."""
        with self._lock:
            self.stats.left = len(self._entries)
            for entry in self._entries.values():
                entry.value = None
            self._entries.clear()
            self._held.clear()

    def _fresh(self, data: bytes) -> T:
        value = self._decompress(data)
        with self._lock:
            self.stats.decompressions += 1
        return value

    def _hold(self, key: bytes, entry: _Entry[T], value: T) -> None:
        entry.value = value
        self._held[key] = None
        while self.capacity and len(self._held) > self.capacity:
            old, _ = self._held.popitem(last=False)
            self._entries[old].value = None
            self.stats.evicted += 1
        self.stats.peak_held = max(self.stats.peak_held, len(self._held))

    def _take(self, key: bytes, entry: _Entry[T], reads: int) -> None:
        entry.reads -= reads
        if entry.reads <= 0 and self._entries.get(key) is entry:
            del self._entries[key]
            self._held.pop(key, None)
            entry.value = None
