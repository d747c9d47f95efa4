"""`ciphertext_objects`: every allowed handle's ct64 and ct128 in the object store the KMS reads;
a spec of the range-asset factory (the step is `pipeline.uploads.upload_range`)."""

from ..pipeline.uploads import upload_range
from .metadata import MISSING_INPUT_RETRY
from .range_asset import CHAIN, RangeAssetSpec, RangeOut

CIPHERTEXT_OBJECTS = RangeAssetSpec(
    upload_range,
    outs=(
        RangeOut(
            "ciphertext_objects",
            frozenset({"python", "s3"}),
            stored=False,
            preview="objects",
            link=("digest_commits", "digest_commits"),
        ),
    ),
    deps=("ciphertext_digests",),
    resources=frozenset({CHAIN, "store", "signer", "objects"}),
    retry_policy=MISSING_INPUT_RETRY,
    description="ct64 and ct128 of every digested handle of the range, attested, under the "
    """reference's
keys. Re-running uploads nothing already there with the same bytes and a valid
attestation.""",
)
