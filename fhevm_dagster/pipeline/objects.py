"""Upload a host range's ct64 and ct128 objects, attested, where the KMS reads them (SPEC §7).

Uploads follow the stored (committed) digests, so the bytes a KMS fetches are the bytes the gateway
holds a digest of; an object under our key with other bytes is an alarm for a person, not retried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
from eth_account.signers.local import LocalAccount

from ..objects import HandleObjects, ObjectBackend, ObjectConflict, ObjectStoreError, upload_handles
from ..store import Store
from .errors import StepError
from .squash import batches, range_handles
from .tables import hex_str

OBJECT_COLUMNS = ["handle", "ct64", "ct128", "ct128_by_digest"]  # upload, skip, reattest, conflict


def upload_range(
    store: Store,
    backend: ObjectBackend,
    signer: LocalAccount,
    chain_id: int,
    range_key: str,
    batch: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Upload what is not there yet, reading `batch` handles' bytes at a time (0: all at once);
    a table of what each object got, and figures."""
    started = time.perf_counter()
    handles = range_handles(store, chain_id, range_key)
    digests = store.get_digests(handles.stored)
    missing = [h for h in handles.stored if h not in digests]
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
            HandleObjects(
                h,
                digests[h].key_id,
                ct64[h].ciphertext,
                ct128[h],
                digests[h].ct64_digest,
                digests[h].ct128_digest,
                txs.get(h, b""),
            )
            for h in chunk
        ]

    items = (item for chunk in batches(handles.stored, batch) for item in objects_of(chunk))
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
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    return table, figures
