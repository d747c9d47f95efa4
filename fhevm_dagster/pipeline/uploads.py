"""Upload a host range's ct64 and ct128 objects, attested, where the KMS reads them (SPEC §7).

Uploads follow the stored (committed) digests, so the bytes a KMS fetches are the bytes the gateway
holds a digest of; an object under our key with other bytes is an alarm for a person, not retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import pandas as pd

from ..objects import (
    HandleObjects,
    ObjectBackend,
    ObjectConflict,
    ObjectStoreError,
    ct128_key,
    upload_handles,
)
from ..store import CommitState
from .errors import StepError
from .ports import BytesReader, CommitStatusReader, DigestReader, PurgedCt128
from .range_handles import HandleBook, range_handles
from .range_job import RangeJob
from .squash import batches
from .step_report import StepReport
from .tables import hex_str

OBJECT_COLUMNS = ["handle", "ct64", "ct128", "ct128_by_digest"]  # upload, skip, reattest, conflict


class UploadBook(HandleBook, BytesReader, PurgedCt128, DigestReader, Protocol):
    """What `upload_range` needs of the store: the range's handles, their bytes, digests and
    transactions (the attestation's), and which ct128s left the store (uploaded before)."""


class PurgeBook(CommitStatusReader, PurgedCt128, Protocol):
    """What purging committed ct128 bytes needs of the store."""

    def purge_ciphertexts128(self, handles: Sequence[bytes]) -> int: ...


def upload_range(job: RangeJob[UploadBook]) -> StepReport[None]:
    """Upload what is not there yet, reading `batch` handles' bytes at a time (0: all at once);
    a table of what each object got, and figures."""
    started = time.perf_counter()
    store, backend, signer = job.store, job.object_store(), job.signer_account()()
    handles = range_handles(store, job.host_chain.chain_id, job.rng)
    purged = store.purged_ciphertexts128(handles.stored)  # uploaded before they were purged
    live = [h for h in handles.stored if h not in purged]
    digests = store.get_digests(live)
    missing = [h for h in live if h not in digests]
    if missing:
        raise StepError(
            f"{len(missing)} handle(s) have no digest (run `ciphertext_digests` first): "
            + ", ".join(hex_str(h) for h in missing[:20]),
            retryable=True,
        )

    def objects_of(chunk: Sequence[bytes]) -> list[HandleObjects]:
        ct64, ct128 = store.get_ciphertexts(chunk), store.get_ciphertexts128(chunk)
        txs = {c.output_handle: c.tx_hash for c in store.computations_by_output(chunk)}
        return [
            HandleObjects(digests[h], ct64[h].ciphertext, ct128[h], txs.get(h, b"")) for h in chunk
        ]

    items = (item for chunk in batches(live, job.batch) for item in objects_of(chunk))
    try:
        report = upload_handles(backend, items, signer)
    except ObjectConflict as exc:
        conflicts = [{"handle": hex_str(h), "key": k, "why": w} for h, k, w in exc.conflicts]
        raise StepError(str(exc), retryable=False, figures={"conflicts": conflicts}) from None
    except ObjectStoreError as exc:  # an S3 outage passes: retried
        raise StepError(str(exc), retryable=True) from None

    def action(acts: dict[str, str], match: str) -> str:
        return next((a for k, a in acts.items() if k.startswith(match)), "")

    table = pd.DataFrame(
        [
            {
                "handle": h,
                "ct64": action(acts, "ct64/"),
                "ct128": action(acts, "ct128/"),
                "ct128_by_digest": next((a for k, a in acts.items() if "/" not in k), ""),
            }
            for h, acts in report.actions.items()
        ],
        columns=OBJECT_COLUMNS,
    )
    figures = {
        "object_store": backend.url,
        "signer": signer.address,
        "uploaded": report.uploaded,
        "reattested": report.reattested,
        "skipped": report.skipped,
        "bytes_uploaded": report.bytes_uploaded,
        "errored": len(handles.errored),
        "ct128_purged": len(purged),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    return StepReport(figures, table)


def purge_committed_ct128(
    store: PurgeBook, backend: ObjectBackend, handles: Sequence[bytes]
) -> dict[str, Any]:
    """Drop from the store the ct128 bytes of `handles` whose commit is confirmed and whose ct128
    object the KMS reads is in the object store, as the reference's transaction sender deletes
    its ct128 rows once committed: the store then holds ct64s (operands of later ranges) and
    digests, not the 1 MB-class ct128s. Figures: how many were purged, how many kept for want
    of their object, and why none was when the object store cannot say (a later run purges)."""
    statuses = store.get_commit_statuses(handles)
    done = [h for h in handles if (st := statuses.get(h)) and st.status is CommitState.CONFIRMED]
    todo = [h for h in done if h not in store.purged_ciphertexts128(done)]
    try:
        kept = [h for h in todo if not backend.exists(ct128_key(h))]
    except ObjectStoreError as exc:
        return {"ct128_purged": 0, "ct128_not_purged": f"the object store cannot say: {exc}"}
    purged = store.purge_ciphertexts128([h for h in todo if h not in kept])
    return {"ct128_purged": purged, "ct128_kept_no_object": len(kept)}
