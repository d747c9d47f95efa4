"""Squash a host range (SPEC §7): every allowed ct64 to its ct128, stored; and the digests of both.

A handle is in one of three states: its ct64 is stored (squash, digest, commit it), its computation
failed (reported, nothing to commit), or neither yet (retryable: its producer has not run).
Ciphertexts are read, squashed and hashed `batch` handles at a time, so a range's size does not
bound its memory (0: the whole range at once).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from ..compute.evaluate import EngineFactory
from ..compute.sns import SquashPipe, SquashReport
from ..protocol.digests import Material, material
from ..store import ComputationStatus, Store
from .errors import StepError
from .tables import hex_str, type_name

T = TypeVar("T")


@dataclass(frozen=True)
class RangeHandles:
    """A range's allowed handles by what the store holds for them."""

    stored: list[bytes]  # ct64 present (allow order): squash, digest, commit
    errored: dict[bytes, str]  # their computation failed: nothing to commit, reported
    missing: list[bytes]  # no ct64 and no error: not produced yet, a retryable failure

    def figures(self) -> dict[str, Any]:
        return {
            "errored": len(self.errored),
            "errored_handles": {hex_str(h): m for h, m in self.errored.items()},
        }

    def require_ct64(self, range_key: str) -> None:
        if self.missing:
            shown = ", ".join(hex_str(h) for h in self.missing[:20])
            raise StepError(
                f"range {range_key}: {len(self.missing)} allowed handle(s) have no ct64 in the "
                f"store yet (run `ciphertexts` first): {shown}",
                retryable=True,
                figures={"missing": [hex_str(h) for h in self.missing]},
            )


def range_handles(store: Store, chain_id: int, range_key: str) -> RangeHandles:
    """Classifies the allowed handles of a range (in allow order) by their ct64, unread."""
    handles = store.allowed_handles_of_range(range_key, chain_id=chain_id)
    absent = store.missing_ciphertexts(handles)
    missing = set(absent)
    errors: dict[bytes, str] = {}
    for comp in store.computations_by_output(absent):
        if comp.status is ComputationStatus.ERROR:
            errors[comp.output_handle] = comp.error_message or "computation failed"
    return RangeHandles(
        [h for h in handles if h not in missing],
        errors,
        [h for h in absent if h not in errors],
    )


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in slices of `size` (0: one slice)."""
    step = size if size > 0 else max(1, len(items))
    for i in range(0, len(items), step):
        yield items[i : i + step]


def squash_range(
    store: Store,
    engine_of: EngineFactory,
    chain_id: int,
    range_key: str,
    pool_size: int,
    batch: int = 0,
) -> dict[str, Any]:
    """Squash and store what is not stored yet, `batch` handles at a time; the figures.

    `engine_of` is called only when there is work: an empty range does not pay the key load.
    """
    handles = range_handles(store, chain_id, range_key)
    handles.require_ct64(range_key)
    todo = store.missing_ciphertexts128(handles.stored)
    stored = 0

    def sink(items: list[tuple[bytes, bytes]]) -> None:
        nonlocal stored
        stored += store.put_ciphertexts128(items)

    if todo:
        with (
            ThreadPoolExecutor(max(1, pool_size), thread_name_prefix="sns") as pool,
            SquashPipe(engine_of(), pool, sink, limit=batch) as pipe,
        ):
            for chunk in batches(todo, batch):
                ct64 = store.get_ciphertexts(chunk)
                pipe.submit([(h, ct64[h].ciphertext) for h in chunk])
                del ct64
            report = pipe.close()
    else:
        report = SquashReport()
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
    return figures


@dataclass(frozen=True)
class RangeDigest:
    digest: Material
    fhe_type: int
    ct64_bytes: int
    ct128_bytes: int


def range_digests(store: Store, handles: RangeHandles, batch: int = 0) -> list[RangeDigest]:
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


def _digests_of(store: Store, handles: Sequence[bytes]) -> list[RangeDigest]:
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


def digest_range(
    store: Store, chain_id: int, range_key: str, batch: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Store the digests of the range's ct64 and ct128 bytes; a table of them and figures.

    A digest already stored with other bytes means the ciphertexts changed under a committed
    digest (non-determinism or corruption): the step fails loudly instead of hiding it.
    """
    handles = range_handles(store, chain_id, range_key)
    handles.require_ct64(range_key)
    rows = range_digests(store, handles, batch)
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
    df = pd.DataFrame(
        [
            {
                "handle": hex_str(r.digest.handle),
                "fhe_type": type_name(r.fhe_type),
                "key_id": str(r.digest.key_id),
                "ciphertext_digest": hex_str(r.digest.ciphertext_digest),
                "sns_ciphertext_digest": hex_str(r.digest.sns_ciphertext_digest),
                "ct64_bytes": r.ct64_bytes,
                "ct128_bytes": r.ct128_bytes,
            }
            for r in rows
        ],
        columns=DIGEST_COLUMNS,
    )
    figures = {"digests": len(df), "inserted": inserted, "ct128_purged": len(purged)}
    return df, {**figures, **handles.figures()}
