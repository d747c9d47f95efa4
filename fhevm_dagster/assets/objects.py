"""`ciphertext_objects`: every allowed handle's ct64 and ct128 in the object store the KMS reads.

A pipeline call (`pipeline.uploads.upload_range`) and its metadata.
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DynamicPartitionsDefinition,
    MaterializeResult,
    asset,
)

from ..pipeline.uploads import upload_range
from .metadata import (
    MISSING_INPUT_RETRY,
    figures_metadata,
    partition_link,
    step_errors,
    table_metadata,
)


def object_assets(chain: str, partitions: DynamicPartitionsDefinition) -> list[AssetsDefinition]:
    """`ciphertext_objects` of the chain `chain`."""

    @asset(
        key=AssetKey([chain, "ciphertext_objects"]),
        partitions_def=partitions,
        group_name=chain,
        deps=[AssetKey([chain, "ciphertext_digests"])],
        retry_policy=MISSING_INPUT_RETRY,
        kinds={"python", "s3"},
        required_resource_keys={chain, "store", "signer", "objects"},
    )
    def ciphertext_objects(context: AssetExecutionContext) -> MaterializeResult:  # type: ignore[type-arg]
        """ct64 and ct128 of every digested handle of the range, attested, under the reference's
        keys. Re-running uploads nothing already there with the same bytes and a valid
        attestation."""
        r = context.resources
        with step_errors():
            table, figures = upload_range(
                r.store.get(), r.objects.backend(), r.signer.signer_account(),
                int(getattr(r, chain).chain_id), context.partition_key, r.store.batch_handles,
            )  # fmt: skip
        commits = partition_link((chain, "digest_commits"), context.partition_key)
        return MaterializeResult(
            metadata={
                **figures_metadata(figures),
                **table_metadata(table, key="objects"),
                "digest_commits": commits,
            }
        )

    return [ciphertext_objects]
