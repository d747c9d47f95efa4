"""Switch-and-squash (SPEC §7): stored ct64s to their ct128 decryption format, on a thread pool.

`tfhe_py` releases the GIL, so a pool of threads squashes several handles at once on one shared
engine. Squashing is deterministic: the same ct64 and keys give the same ct128 bytes, which is what
makes `snsCiphertextDigest` agree between coprocessors.

A `SquashPipe` takes handles as they become final and squashes them while the caller goes on (the
range's evaluation hands over each allowed result as it is stored, on the evaluation's own thread
pool), so squashing overlaps evaluation instead of waiting for the whole range, and fills the
pool's threads when the DAG is too narrow to. There, a ct64 that an operation of the range has
already decompressed is not decompressed again (`OperandCache`): the squash reads the same value,
`decompress(ct64)`, exactly what the reference's sns-worker squashes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from types import TracebackType

import tfhe_py

from fhevm_dagster.compute.operand_cache import OperandCache


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


#: Receives squashed (handle, ct128) pairs a batch at a time, on the thread that feeds the pipe.
Ct128Sink = Callable[[list[tuple[bytes, bytes]]], None]

_Outcome = tuple[bytes, bytes | None, str | None, float]


class SquashPipe:
    """Squashes (handle, ct64) pairs on `pool` while the caller goes on.

    At most `limit` squashes are pending: `submit` waits for some to finish when the pipe is
    full, which bounds memory (a ct128 is ~50 x its ct64). Finished ct128s reach `sink` on the
    caller's thread (from `submit` and `close`), never on a worker, so the sink may use a store
    connection that is not thread-safe. A bad ciphertext is reported by handle, not raised.
    With `cache`, ct64s are decompressed through it (one read each).
    """

    def __init__(
        self,
        engine: tfhe_py.Engine,
        pool: Executor,
        sink: Ct128Sink,
        limit: int = 0,
        cache: OperandCache[tfhe_py.Ciphertext] | None = None,
    ) -> None:
        self.engine = engine
        self._decompress = cache.read if cache is not None else engine.decompress
        self.sink = sink
        self.limit = limit if limit > 0 else 1 << 30
        self.report = SquashReport()
        self._pool = pool
        self._pending: set[Future[_Outcome]] = set()
        self._started = time.perf_counter()

    def _run(self, handle: bytes, ct64: bytes) -> _Outcome:
        t0 = time.perf_counter()
        try:
            ct128 = self.engine.squash(self._decompress(ct64))
            return handle, ct128, None, time.perf_counter() - t0
        except (tfhe_py.TfheError, ValueError, RuntimeError) as exc:
            return handle, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - t0

    def _collect(self, done: set[Future[_Outcome]]) -> None:
        squashed: list[tuple[bytes, bytes]] = []
        for future in done:
            handle, ct128, error, seconds = future.result()
            self.report.seconds[handle] = seconds
            if ct128 is not None:
                squashed.append((handle, ct128))
            else:
                self.report.errors[handle] = error or "unknown error"
        self._pending -= done
        if squashed:
            self.sink(squashed)

    def submit(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Queue pairs for squashing; hand finished ones to the sink; wait while full."""
        for handle, ct64 in items:
            while len(self._pending) >= self.limit:
                done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
                self._collect(done)
            self._pending.add(self._pool.submit(self._run, handle, ct64))
        self._collect({f for f in self._pending if f.done()})

    def close(self) -> SquashReport:
        """Wait for every pending squash, hand the rest to the sink; the totals."""
        self._collect(set(wait(self._pending).done))
        self.report.wall_seconds = time.perf_counter() - self._started
        return self.report

    def __enter__(self) -> SquashPipe:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:  # an error elsewhere: drop what has not started
            for future in self._pending:
                future.cancel()
