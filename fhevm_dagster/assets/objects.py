"""`ciphertext_objects`: every allowed handle's ct64 and ct128 in the object store the KMS reads.

A pipeline call (`pipeline.objects.upload_range`) and its metadata.
"""

from dagster import AssetExecutionContext, MaterializeResult, asset

from ..jobs import HOST_RANGE_GROUP
from ..partitions import host_ranges
from ..pipeline.errors import StepError
from ..pipeline.objects import upload_range
from ..resources.chain import HostChainResource
from ..resources.objects import ObjectStoreResource
from ..resources.signer import SignerResource
from ..resources.store import StoreResource
from .commits import ciphertext_digests
from .metadata import MISSING_INPUT_RETRY, failure, figures_metadata, table_metadata


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    deps=[ciphertext_digests],
    retry_policy=MISSING_INPUT_RETRY,
    kinds={"python", "s3"},
)
def ciphertext_objects(
    context: AssetExecutionContext,
    chain: HostChainResource,
    store: StoreResource,
    signer: SignerResource,
    objects: ObjectStoreResource,
) -> MaterializeResult:  # type: ignore[type-arg]
    """ct64 and ct128 of every digested handle of the range, attested, under the reference's keys.

    Re-running uploads nothing already there with the same bytes and a valid attestation.
    """
    try:
        table, figures = upload_range(
            store.get(), objects.backend(), signer.signer_account(), chain.chain_id,
            context.partition_key,
        )  # fmt: skip
    except StepError as exc:
        raise failure(exc) from exc
    return MaterializeResult(
        metadata={**figures_metadata(figures), **table_metadata(table, key="objects")}
    )
