"""Assets of one gateway block range: input-verification requests, verification, answers, and
the rechecks of what this coprocessor placed in the range's blocks; specs of the range-asset
factory (the steps are in `pipeline.gateway` and `pipeline.digest_commits`).

The requests of the range come from the store, the parquet tables are views. The gateway serves
every registered host chain: requests naming another chain are not answered (SPEC §6).
"""

from collections.abc import Sequence

from dagster import AssetsDefinition

from ..jobs import GATEWAY_RANGE_GROUP
from ..partitions import gateway_ranges
from ..pipeline.digest_commits import recheck_commits
from ..pipeline.gateway import answer_requests, collect_requests, recheck_answers, verify_requests
from .commits import COMMIT_RETRY, GATEWAY_KEYS
from .metadata import RPC_RETRY, STORE_RETRY
from .range_asset import HOSTS, RangeAssetSpec, RangeGroup, RangeOut, range_asset

PARQUET = frozenset({"python", "parquet"})
ETHEREUM = frozenset({"python", "ethereum"})
SPECS = (
    RangeAssetSpec(
        collect_requests,
        outs=(
            RangeOut(
                "proof_requests", PARQUET, shown=("zk_proof_id", "user_address", "ciphertext_bytes")
            ),
        ),
        resources=frozenset({"gateway", "store"}),
        retry_policy=RPC_RETRY,
        description="`VerifyProofRequest` events of the range, decoded and stored (ciphertexts "
        "included).",
    ),
    RangeAssetSpec(
        verify_requests,
        outs=(
            RangeOut(
                "verified_inputs",
                frozenset({"python", "sql"}),
                shown=("zk_proof_id", "status", "code", "entries", "fhe_types"),
            ),
        ),
        deps=("proof_requests",),
        resources=frozenset({HOSTS, "gateway", "fhe", "store"}),
        retry_policy=STORE_RETRY,
        fhe=True,
        description="ZK proofs checked, lists expanded and compressed, input handles stored "
        "with their\nct64.",
    ),
    RangeAssetSpec(
        answer_requests,
        outs=(
            RangeOut(
                "proof_responses",
                ETHEREUM,
                shown=("zk_proof_id", "answer", "response_status", "tx_hash"),
            ),
        ),
        deps=("verified_inputs",),
        resources=frozenset({"gateway", "signer", "store"}),
        retry_policy=RPC_RETRY,
        description="Signed answers on the gateway: verifyProofResponse or rejectProofResponse."
        "\n\nCheck-then-send: answers recorded as done are skipped, and every call is simulated"
        "\nfirst, so an answer already on chain reads `already_done` and costs no transaction.",
    ),
    RangeAssetSpec(
        recheck_commits,
        outs=(
            RangeOut(
                "commits_rechecked", ETHEREUM, shown=("handle", "outcome", "status", "tx_hash")
            ),
        ),
        deps=("proof_requests",),
        resources=GATEWAY_KEYS,
        retry_policy=COMMIT_RETRY,
        description="The digest commits confirmed in this range's blocks, still on the gateway "
        "chain.\n\nA gateway reorg that drops a block holding our `addCiphertextMaterial` "
        "re-runs this\nrange (the sensor's `…:reorg-<n>` run): each commit no longer on the "
        "canonical chain is\nsent again (check-then-send, `CoprocessorAlreadyAdded` is done), "
        "the others cost one\n`eth_getLogs` per 100 handles.",
    ),
    RangeAssetSpec(
        recheck_answers,
        outs=(
            RangeOut(
                "answers_rechecked",
                ETHEREUM,
                shown=("zk_proof_id", "outcome", "tx_hash", "gateway_block"),
            ),
        ),
        deps=("proof_requests",),
        resources=frozenset({"gateway", "signer", "store"}),
        retry_policy=COMMIT_RETRY,
        description="The answers to input requests mined in this range's blocks, still on the "
        "gateway.\n\nA gateway reorg that drops a block holding our `verifyProofResponse` "
        "re-runs this range\n(or the sensor runs it because the store holds answers there): "
        "each answer no longer on\nthe canonical chain is sent again (check-then-send).",
    ),
)


def gateway_assets(host_chains: Sequence[str], pool: str | None = None) -> list[AssetsDefinition]:
    """The gateway range's assets, serving the host chains named `host_chains`; its FHE step
    runs in `pool` (`resources.fhe.fhe_pool`)."""
    where = RangeGroup((), GATEWAY_RANGE_GROUP, gateway_ranges, hosts=tuple(host_chains), pool=pool)
    return [range_asset(spec, where) for spec in SPECS]
