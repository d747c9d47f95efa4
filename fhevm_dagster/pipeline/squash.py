"""Squash a host range (SPEC §7): every allowed ct64 to its ct128, stored; and the digests of both.

A handle is in one of three states: its ct64 is stored (squash, digest, commit it), its computation
failed (reported, nothing to commit), or neither yet (retryable: its producer has not run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..compute.evaluate import EngineFactory
from ..compute.sns import squash_batch
from ..protocol.digests import ciphertext_digest, sns_ciphertext_digest
from ..store import Ciphertext, ComputationStatus, Digest, Store
from .errors import StepError
from .tables import hex_str, type_name


@dataclass(frozen=True)
class RangeHandles:
    """A range's allowed handles by what the store holds for them."""

    stored: dict[bytes, Ciphertext]  # ct64 present: squash, digest, commit
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
    """Classifies the allowed handles of a range (in allow order) by their ct64."""
    handles = store.allowed_handles_of_range(range_key, chain_id=chain_id)
    stored = store.get_ciphertexts(handles)
    absent = [h for h in handles if h not in stored]
    errors: dict[bytes, str] = {}
    for comp in store.computations_by_output(absent):
        if comp.status is ComputationStatus.ERROR:
            errors[comp.output_handle] = comp.error_message or "computation failed"
    return RangeHandles(
        {h: stored[h] for h in handles if h in stored},
        errors,
        [h for h in absent if h not in errors],
    )


def squash_range(
    store: Store,
    engine_of: EngineFactory,
    chain_id: int,
    range_key: str,
    pool_size: int,
) -> dict[str, Any]:
    """Squash and store what is not stored yet; the figures of what was done.

    `engine_of` is called only when there is work: an empty range does not pay the key load.
    """
    handles = range_handles(store, chain_id, range_key)
    handles.require_ct64(range_key)
    todo = set(store.missing_ciphertexts128(list(handles.stored)))
    items = [(h, ct.ciphertext) for h, ct in handles.stored.items() if h in todo]
    report = squash_batch(engine_of() if items else None, items, pool_size)
    stored = store.put_ciphertexts128(list(report.ct128.items()))
    seconds = sum(report.seconds.values())
    figures = {
        "allowed": len(handles.stored) + len(handles.errored),
        "squashed": len(report.ct128),
        "already_stored": len(handles.stored) - len(items),
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
    digest: Digest
    fhe_type: int
    ct64_bytes: int
    ct128_bytes: int


def range_digests(store: Store, handles: RangeHandles) -> list[RangeDigest]:
    """The digests of every stored handle, computed from the stored bytes."""
    ct128 = store.get_ciphertexts128(list(handles.stored))
    missing = [h for h in handles.stored if h not in ct128]
    if missing:
        raise StepError(
            f"{len(missing)} handle(s) have no ct128 (run `sns_ciphertexts` first): "
            + ", ".join(hex_str(h) for h in missing[:20]),
            retryable=True,
        )
    return [
        RangeDigest(
            Digest(h, ct.key_id, ciphertext_digest(ct.ciphertext), sns_ciphertext_digest(ct128[h])),
            ct.fhe_type,
            len(ct.ciphertext),
            len(ct128[h]),
        )
        for h, ct in handles.stored.items()
    ]


DIGEST_COLUMNS = [
    "handle", "fhe_type", "key_id", "ciphertext_digest", "sns_ciphertext_digest",
    "ct64_bytes", "ct128_bytes",
]  # fmt: skip


def digest_range(
    store: Store, chain_id: int, range_key: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Store the digests of the range's ct64 and ct128 bytes; a table of them and figures.

    A digest already stored with other bytes means the ciphertexts changed under a committed
    digest (non-determinism or corruption): the step fails loudly instead of hiding it.
    """
    handles = range_handles(store, chain_id, range_key)
    handles.require_ct64(range_key)
    rows = range_digests(store, handles)
    before = store.get_digests([r.digest.handle for r in rows])
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
                "ciphertext_digest": hex_str(r.digest.ct64_digest),
                "sns_ciphertext_digest": hex_str(r.digest.ct128_digest),
                "ct64_bytes": r.ct64_bytes,
                "ct128_bytes": r.ct128_bytes,
            }
            for r in rows
        ],
        columns=DIGEST_COLUMNS,
    )
    return df, {"digests": len(df), "inserted": inserted, **handles.figures()}
