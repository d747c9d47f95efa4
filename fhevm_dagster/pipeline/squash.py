"""Squash a host range (SPEC §7): every allowed ct64 to its ct128, stored; and the digests of both.

The steps take the range's handles as `range_handles` classifies them (stored, errored, missing).
Ciphertexts are read, squashed and hashed `batch` handles at a time, so a range's size does not
bound its memory (0: the whole range at once).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pandas as pd

from ..compute.evaluate import EngineFactory
from ..compute.sns import SquashPipe, SquashReport
from ..protocol.digests import Material, material
from .errors import StepError
from .ports import (
    BytesReader,
    Ct64Reader,
    Ct128Absence,
    Ct128Writer,
    DigestReader,
    PurgedCt128,
)
from .range_handles import HandleBook, RangeHandles, range_handles
from .range_job import RangeJob
from .step_report import CheckResult, StepReport
from .tables import hex_str, type_name

SQUASHED_CHECK = "every_allowed_handle_squashed"
DIGESTS_CHECK = "digests_match_bytes"

T = TypeVar("T")


class SquashIO(Ct64Reader, Ct128Writer, Protocol):
    """What squashing reads and writes: ct64s in, ct128s out."""


class SquashBook(HandleBook, SquashIO, Ct128Absence, Protocol):
    """What `squash_range` needs of the store."""


class DigestSource(BytesReader, Ct128Absence, PurgedCt128, Protocol):
    """What the digests of a range's handles are computed from: the bytes the store holds."""


class DigestBook(HandleBook, DigestSource, DigestReader, Protocol):
    """What `digest_range` needs of the store: the bytes, and the stored digests to compare with
    and to write."""

    def put_digests(self, digests: Sequence[Material]) -> int: ...


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in slices of `size` (0: one slice)."""
    step = size if size > 0 else max(1, len(items))
    for i in range(0, len(items), step):
        yield items[i : i + step]


def _squash(
    store: SquashIO, engine_of: EngineFactory, todo: Sequence[bytes], pool_size: int, batch: int
) -> tuple[SquashReport, int]:
    """Squash and store the ct128 of `todo`, `batch` handles at a time; the report and how many
    were stored. `engine_of` is called only when there is work."""
    stored = 0

    def sink(items: list[tuple[bytes, bytes]]) -> None:
        nonlocal stored
        stored += store.put_ciphertexts128(items)

    if not todo:
        return SquashReport(), 0
    with (
        ThreadPoolExecutor(max(1, pool_size), thread_name_prefix="sns") as pool,
        SquashPipe(engine_of(), pool, sink, limit=batch) as pipe,
    ):
        for chunk in batches(todo, batch):
            ct64 = store.get_ciphertexts(chunk)
            pipe.submit([(h, ct64[h].ciphertext) for h in chunk])
            del ct64
        report = pipe.close()
    return report, stored


def squash_range(job: RangeJob[SquashBook]) -> StepReport[None]:
    """Squash and store what is not stored yet, `batch` handles at a time; the figures, and the
    check that every allowed handle has its ct64 and ct128 (or a recorded computation error).
    """
    store = job.store
    handles = range_handles(store, job.host_chain.chain_id, job.rng)
    handles.require_ct64()
    todo = store.missing_ciphertexts128(handles.stored)
    report, stored = _squash(store, job.engine, todo, job.threads, job.batch)
    seconds = sum(report.seconds.values())
    figures = {
        "allowed": len(handles.stored) + len(handles.errored),
        "squashed": len(report.seconds) - len(report.errors),
        "already_stored": len(handles.stored) - len(todo),
        "stored": stored,
        "wall_seconds": round(report.wall_seconds, 3),
        "squash_seconds_per_handle": round(seconds / len(report.seconds), 3)
        if report.seconds
        else 0.0,
        **handles.figures(),
    }
    if report.errors:
        shown = "; ".join(f"{hex_str(h)}: {e}" for h, e in list(report.errors.items())[:10])
        raise StepError(
            f"squashing failed for {len(report.errors)} handle(s): {shown}",
            retryable=False,
            figures=figures,
        )
    no128 = store.missing_ciphertexts128(list(handles.stored))
    check = {
        "with_ct64": len(handles.stored),
        "without_ct64": [hex_str(h) for h in handles.missing],
        "without_ct128": [hex_str(h) for h in no128],
        **handles.figures(),
    }
    squashed = CheckResult(SQUASHED_CHECK, not handles.missing and not no128, check)
    return StepReport({**figures, "fhe_device": job.device}, checks=[squashed])


@dataclass(frozen=True)
class RangeDigest:
    digest: Material
    fhe_type: int
    ct64_bytes: int
    ct128_bytes: int


def range_digests(store: DigestSource, handles: RangeHandles, batch: int = 0) -> list[RangeDigest]:
    """The digests of every stored handle whose ct128 bytes the store still holds, computed from
    the stored bytes `batch` at a time (a purged ct128 was committed and stored as an object: its
    digests are the stored ones)."""
    purged = store.purged_ciphertexts128(handles.stored)
    live = [h for h in handles.stored if h not in purged]
    missing = store.missing_ciphertexts128(live)
    if missing:
        raise StepError(
            f"{len(missing)} handle(s) have no ct128 (run `sns_ciphertexts` first): "
            + ", ".join(hex_str(h) for h in missing[:20]),
            retryable=True,
        )
    return [d for chunk in batches(live, batch) for d in _digests_of(store, chunk)]


def _digests_of(store: BytesReader, handles: Sequence[bytes]) -> list[RangeDigest]:
    ct64, ct128 = store.get_ciphertexts(handles), store.get_ciphertexts128(handles)
    return [
        RangeDigest(
            material(h, ct.key_id, ct.ciphertext, ct128[h]),
            ct.fhe_type,
            len(ct.ciphertext),
            len(ct128[h]),
        )
        for h, ct in ((h, ct64[h]) for h in handles)
    ]


DIGEST_COLUMNS = [
    "handle", "fhe_type", "key_id", "ciphertext_digest", "sns_ciphertext_digest",
    "ct64_bytes", "ct128_bytes",
]  # fmt: skip


def digest_range(job: RangeJob[DigestBook]) -> StepReport[None]:
    """Store the digests of the range's ct64 and ct128 bytes; a table of them, figures, and the
    check that the stored digests are those of the stored bytes.

    A digest already stored with other bytes means the ciphertexts changed under a committed
    digest (non-determinism or corruption): the step fails loudly instead of hiding it.
    """
    store = job.store
    handles = range_handles(store, job.host_chain.chain_id, job.rng)
    handles.require_ct64()
    rows = range_digests(store, handles, job.batch)
    recomputed = {r.digest.handle for r in rows}
    purged = [h for h in handles.stored if h not in recomputed]
    before = store.get_digests([r.digest.handle for r in rows] + purged)
    rows += [RangeDigest(before[h], h[30], 0, 0) for h in purged if h in before]
    changed = [r.digest.handle for r in rows if before.get(r.digest.handle, r.digest) != r.digest]
    if changed:
        raise StepError(
            f"{len(changed)} stored digest(s) no longer match the stored bytes: "
            + ", ".join(hex_str(h) for h in changed[:20]),
            retryable=False,
        )
    inserted = store.put_digests([r.digest for r in rows])
    df = pd.DataFrame([_digest_row(r) for r in rows], columns=DIGEST_COLUMNS)
    figures = {"digests": len(df), "inserted": inserted, "ct128_purged": len(purged)}
    check = _digests_check(
        store, handles, [r.digest for r in rows if r.digest.handle in recomputed]
    )
    return StepReport({**figures, **handles.figures()}, df, checks=[check])


def _digest_row(r: RangeDigest) -> dict[str, Any]:
    return {
        "handle": hex_str(r.digest.handle),
        "fhe_type": type_name(r.fhe_type),
        "key_id": str(r.digest.key_id),
        "ciphertext_digest": hex_str(r.digest.ciphertext_digest),
        "sns_ciphertext_digest": hex_str(r.digest.sns_ciphertext_digest),
        "ct64_bytes": r.ct64_bytes,
        "ct128_bytes": r.ct128_bytes,
    }


def _digests_check(
    store: DigestReader, handles: RangeHandles, expected: Sequence[Material]
) -> CheckResult:
    """The stored digests equal keccak256 of the stored ct64 and ct128 bytes (`expected`: those
    of the handles whose ct128 the store still holds, hashed by this step)."""
    stored = store.get_digests([m.handle for m in expected])
    wrong = [hex_str(m.handle) for m in expected if stored.get(m.handle) != m]
    metadata = {
        "checked": len(expected),
        # Committed and in the object store: `ciphertext get --source objects` checks them.
        "not_checked_ct128_purged": len(handles.stored) - len(expected),
        "mismatched_or_absent": wrong,
    }
    return CheckResult(DIGESTS_CHECK, not wrong and not handles.missing, metadata)
