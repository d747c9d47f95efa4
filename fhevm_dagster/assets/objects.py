"""`ciphertext_objects`: every allowed handle's ct64 and ct128 in the object store the KMS reads.

Thin: keys, attestation and the idempotency decision are `fhevm_dagster.objects`. Uploads follow
the committed digests (the store's), so the bytes a KMS fetches are the bytes the gateway holds a
digest of; an object under our key with other bytes fails the step naming the handle.
"""

import time
from typing import Any

from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)

from ..compute.sns import range_handles
from ..jobs import HOST_RANGE_GROUP
from ..objects import HandleObjects, ObjectConflict, ObjectStoreError, upload_handles
from ..partitions import host_ranges
from ..resources.objects import ObjectStoreResource
from ..resources.signer import SignerResource
from ..resources.store import StoreResource
from .commits import MISSING_RETRY, ciphertext_digests
from .metadata import PREVIEW_ROWS, hex_str

OBJECT_SCHEMA = TableSchema(
    columns=[
        TableColumn("handle", "string"),
        TableColumn("ct64", "string", description="upload, skip, reattest or conflict"),
        TableColumn("ct128", "string"),
        TableColumn("ct128_by_digest", "string"),
    ]
)


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    deps=[ciphertext_digests],
    retry_policy=MISSING_RETRY,
    kinds={"python", "s3"},
)
def ciphertext_objects(
    context: AssetExecutionContext,
    store: StoreResource,
    signer: SignerResource,
    objects: ObjectStoreResource,
) -> MaterializeResult:  # type: ignore[type-arg]
    """ct64 and ct128 of every digested handle of the range, attested, under the reference's keys.

    Re-running uploads nothing already there with the same bytes and a valid attestation.
    """
    started = time.perf_counter()
    st = store.get()
    handles = range_handles(st, context.partition_key)
    digests = st.get_digests(list(handles.stored))
    missing = [h for h in handles.stored if h not in digests]
    if missing:
        raise Failure(
            description=f"{len(missing)} handle(s) have no digest (run `ciphertext_digests` "
            "first): " + ", ".join(hex_str(h) for h in missing[:20])
        )
    ct128 = st.get_ciphertexts128(list(handles.stored))
    txs = {c.output_handle: c.tx_hash for c in st.computations_by_output(list(handles.stored))}
    items = [
        HandleObjects(
            h,
            digests[h].key_id,
            ct.ciphertext,
            ct128[h],
            digests[h].ct64_digest,
            digests[h].ct128_digest,
            txs.get(h, b""),
        )
        for h, ct in handles.stored.items()
    ]
    backend = objects.backend()
    try:
        report = upload_handles(backend, items, signer.signer_account())
    except ObjectConflict as exc:
        raise Failure(
            description=str(exc),
            allow_retries=False,  # an alarm for a person, not an outage: retrying cannot fix it
            metadata={
                "conflicts": MetadataValue.json(
                    [{"handle": hex_str(h), "key": k, "why": w} for h, k, w in exc.conflicts]
                )
            },
        ) from None
    except ObjectStoreError as exc:
        raise Failure(description=str(exc)) from None  # retried by the policy: S3 outages pass
    rows = [
        TableRecord(
            {
                "handle": h,
                "ct64": next((a for k, a in acts.items() if k.startswith("ct64/")), ""),
                "ct128": next((a for k, a in acts.items() if k.startswith("ct128/")), ""),
                "ct128_by_digest": next((a for k, a in acts.items() if "/" not in k), ""),
            }
        )
        for h, acts in report.actions.items()
    ]
    meta: dict[str, Any] = {
        "object_store": backend.url,
        "signer": signer.signer_account().address,
        "dagster/row_count": len(rows),
        "uploaded": report.uploaded,
        "reattested": report.reattested,
        "skipped": report.skipped,
        "bytes_uploaded": report.bytes_uploaded,
        "errored": len(handles.errored),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "objects": MetadataValue.table(rows[:PREVIEW_ROWS], schema=OBJECT_SCHEMA),
    }
    return MaterializeResult(metadata=meta)
