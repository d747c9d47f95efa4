"""Switch-and-squash (SPEC §7): stored ct64s to their ct128 decryption format, on a thread pool.

`tfhe_py` releases the GIL, so a pool of threads squashes several handles at once on one shared
engine. Squashing is deterministic: the same ct64 and keys give the same ct128 bytes, which is what
makes `snsCiphertextDigest` agree between coprocessors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import tfhe_py


@dataclass
class SquashReport:
    """Squashed ct128 bytes by handle, failures by handle, and where the time went."""

    ct128: dict[bytes, bytes] = field(default_factory=dict)
    errors: dict[bytes, str] = field(default_factory=dict)
    seconds: dict[bytes, float] = field(default_factory=dict)
    wall_seconds: float = 0.0


def squash_one(engine: tfhe_py.Engine, ct64: bytes) -> bytes:
    """The ct128 of one stored ct64: decompress, squash noise, compress into a squashed list."""
    return engine.squash(engine.decompress(ct64))


def squash_batch(
    engine: tfhe_py.Engine | None, items: Sequence[tuple[bytes, bytes]], pool_size: int
) -> SquashReport:
    """Squashes (handle, ct64) pairs; a bad ciphertext is reported by handle, not raised.

    `engine` may be None only when there is nothing to squash.
    """
    report = SquashReport()
    if engine is None:
        if items:
            raise ValueError("squashing needs an engine")
        return report
    started = time.perf_counter()

    def run(item: tuple[bytes, bytes]) -> tuple[bytes, bytes | None, str | None, float]:
        handle, ct64 = item
        t0 = time.perf_counter()
        try:
            return handle, squash_one(engine, ct64), None, time.perf_counter() - t0
        except (tfhe_py.TfheError, ValueError, RuntimeError) as exc:
            return handle, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=max(1, min(pool_size, len(items) or 1))) as pool:
        for handle, ct128, error, seconds in pool.map(run, items):
            report.seconds[handle] = seconds
            if ct128 is not None:
                report.ct128[handle] = ct128
            else:
                report.errors[handle] = error or "unknown error"
    report.wall_seconds = time.perf_counter() - started
    return report
