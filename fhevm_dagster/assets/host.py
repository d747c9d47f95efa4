"""Assets of one host block range of one host chain: the range ingested (events decoded once,
computations stored) and its FHE DAG evaluated; specs of the range-asset factory."""

from ..pipeline.evaluate import RECOMPUTED_BYTES_CHECK, evaluate_range
from ..pipeline.host import ingest_range
from .metadata import MISSING_INPUT_RETRY, RPC_RETRY
from .range_asset import CHAIN, VERIFY_TAG, RangeAssetSpec, RangeCheck, RangeOut

__all__ = ["CIPHERTEXTS", "HOST_INGEST", "RECOMPUTED_BYTES_CHECK", "VERIFY_TAG"]

HOST_INGEST = RangeAssetSpec(
    ingest_range,
    name="host_ingest",
    outs=(
        RangeOut(
            "host_events",
            frozenset({"python", "parquet"}),
            shown=("block_number", "log_index", "status", "event", "operator"),
            description="Executor and ACL logs of the range, decoded; unknown and malformed "
            "logs kept and counted (a write-only view).",
        ),
        RangeOut(
            "fhe_computations",
            frozenset({"python", "sql"}),
            shown=(
                "block_number",
                "log_index",
                "operator",
                "output_handle",
                "fhe_type",
                "dependencies",
                "is_scalar",
                "is_allowed",
            ),
            description="Computation rows of SPEC §5, written to the store (idempotent).",
        ),
    ),
    resources=frozenset({CHAIN, "store"}),
    retry_policy=RPC_RETRY,
    description="Read the range's logs once, decode them once, store its computations.",
)

CIPHERTEXTS = RangeAssetSpec(
    evaluate_range,
    outs=(RangeOut("ciphertexts", frozenset({"python", "tfhe"})),),
    deps=("fhe_computations",),
    resources=frozenset({CHAIN, "store", "fhe"}),
    retry_policy=MISSING_INPUT_RETRY,
    fhe=True,
    checks=(
        RangeCheck(
            RECOMPUTED_BYTES_CHECK,
            "Every recomputed allowed result equals the ct64 already stored (and committed): "
            "deterministic evaluation, as consensus needs.",
            partitioned=False,
        ),
    ),
    description="The range's FHE DAG evaluated; every allowed result stored as a ct64 "
    """(idempotent).

Results stored by an earlier run are read back, not recomputed, unless the run is
tagged `fhevm/verify_determinism=1`: then everything is recomputed and a result whose
bytes differ from the stored ones fails the check below. Each new allowed result is
squashed as soon as it is stored, while evaluation goes on (`sns_ciphertexts` then only
squashes what is left; the `fhe` resource's `squash_during_evaluation` turns it off).
Inputs from earlier ranges or the gateway that are not stored yet fail the range with a
retryable error naming them; everything else of the range is evaluated and stored first.""",
)
