"""The last steps of a host range: squash to ct128, digest, commit the digests on the gateway;
specs of the range-asset factory, and the peer-agreement check (run again from the UI).

Every step is idempotent: a re-run squashes nothing stored, recomputes equal digests and sends no
transaction for a handle whose commit is confirmed in the store or visible on the gateway.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    Backoff,
    PartitionsDefinition,
    RetryPolicy,
    asset_check,
)

from ..chain.ciphertext_commits import commit_events
from ..chain.client import ChainReader
from ..pipeline.block_ranges import parse_range_key
from ..pipeline.consensus import commit_window, peer_report
from ..pipeline.digest_commits import COMMITTED_CHECK, commit_range
from ..pipeline.range_handles import range_handles
from ..pipeline.squash import DIGESTS_CHECK, SQUASHED_CHECK, digest_range, squash_range
from .metadata import MISSING_INPUT_RETRY, figures_metadata, table_metadata
from .range_asset import CHAIN, RangeAssetSpec, RangeCheck, RangeOut

#: A gateway outage or a stuck transaction: retry the whole step, it skips what is done.
COMMIT_RETRY = RetryPolicy(max_retries=4, delay=15, backoff=Backoff.EXPONENTIAL)
GATEWAY_KEYS = frozenset({"store", "gateway", "signer", "commit_settings"})

SNS_CIPHERTEXTS = RangeAssetSpec(
    squash_range,
    outs=(RangeOut("sns_ciphertexts", frozenset({"python", "tfhe"}), stored=False),),
    deps=("ciphertexts",),
    resources=frozenset({CHAIN, "store", "fhe"}),
    retry_policy=MISSING_INPUT_RETRY,
    fhe=True,
    checks=(
        RangeCheck(
            SQUASHED_CHECK,
            "Each allowed handle has a ct64 and a ct128 (or a recorded computation error).",
            blocking=True,
        ),
    ),
    description="Every allowed ct64 of the range squashed to its ct128 decryption format and "
    "stored.\n\nHandles whose computation failed are reported, not squashed; handles without a "
    "ct64 yet\nfail the step (retryable) and name themselves.",
)

CIPHERTEXT_DIGESTS = RangeAssetSpec(
    digest_range,
    outs=(
        RangeOut(
            "ciphertext_digests",
            frozenset({"python", "parquet"}),
            shown=("handle", "fhe_type", "ciphertext_digest"),
        ),
    ),
    deps=("sns_ciphertexts",),
    resources=frozenset({CHAIN, "store"}),
    retry_policy=MISSING_INPUT_RETRY,
    checks=(
        RangeCheck(
            DIGESTS_CHECK,
            "The stored digests equal keccak256 of the stored ct64 and ct128 bytes.",
            blocking=True,
        ),
    ),
    description="keccak256 of every stored ct64 and ct128 of the range, stored and shown as a "
    "table.",
)


def digest_commits_spec(retry: RetryPolicy | None = COMMIT_RETRY) -> RangeAssetSpec:
    """`digest_commits` (tests build it without retries to see one failure)."""
    return RangeAssetSpec(
        commit_range,
        outs=(
            RangeOut(
                "digest_commits",
                frozenset({"python", "ethereum"}),
                shown=("handle", "status", "tx_hash"),
                link=("objects", "ciphertext_objects"),
            ),
        ),
        # Committed once the KMS can fetch the bytes, as the reference: its transaction sender
        # takes only digests whose ciphertexts are uploaded.
        deps=("ciphertext_digests", "ciphertext_objects"),
        resources=frozenset({CHAIN, "objects"}) | GATEWAY_KEYS,
        retry_policy=retry,
        checks=(
            RangeCheck(
                COMMITTED_CHECK,
                "This sender's AddCiphertextMaterial event exists for each handle with the "
                "stored\ndigests.",
            ),
        ),
        description="`addCiphertextMaterial` for every stored digest of the range, at most once "
        "per sender.\n\nHandles confirmed in the store are skipped, the others simulated "
        "first:\n`CoprocessorAlreadyAdded` counts as done. Any failed commit (revert, outage) "
        "fails the\nrange with its reason; the retry sends only what is still missing. Once "
        "committed and in\nthe object store, a handle's ct128 bytes leave the store "
        "(`purge_ct128`).",
    )


def peer_check(chain: str, partitions: PartitionsDefinition) -> AssetChecksDefinition:
    """The drift detector of the chain's digests (a separate check: run again from the UI)."""

    @asset_check(
        asset=AssetKey([chain, "ciphertext_digests"]),
        name="digests_agree_with_other_coprocessors",
        partitions_def=partitions,
        required_resource_keys={chain} | GATEWAY_KEYS,
    )
    def digests_agree_with_other_coprocessors(
        context: AssetCheckExecutionContext,
    ) -> AssetCheckResult:
        """Drift detector: other coprocessors' AddCiphertextMaterial digests equal ours.

        A coprocessor whose bytes differ from its peers' is outvoted on every handle; this fails
        with a table of the handles that disagree. It judges our digests, committed or not,
        against what peers committed so far, in the gateway blocks around our commits (the
        look-back window before and after): run it again from the UI when peers are behind.
        """
        r = context.resources
        st, gw = r.store.get(), r.gateway.config()
        rng = parse_range_key(context.partition_key)
        handles = range_handles(st, int(getattr(r, chain).chain_id), rng)
        me = r.signer.tx_sender_account().address
        statuses = st.get_commit_statuses(list(handles.stored))
        try:
            w3 = ChainReader.of(gw).web3
            first, last = commit_window(
                [s.gateway_block for s in statuses.values()],
                r.commit_settings.lookback_blocks,
                int(w3.eth.block_number),
            )
            address, span = gw.ciphertext_commits_address, gw.rpc.logs_max_span
            events = commit_events(w3, address, list(handles.stored), first, last, max_span=span)
        except Exception as exc:  # any RPC failure: nothing can be decided now
            return _unreachable(exc)
        report = peer_report(
            st,
            handles,
            [(e.sender, e.material) for e in events if e.sender is not None],
            {e.material.handle for e in events if e.consensus},
            me,
        )
        meta = {
            **figures_metadata(report.figures()),
            **table_metadata(report.disagreements, key="disagreements"),
        }
        return AssetCheckResult(passed=not report.disagreeing, metadata=meta)

    return digests_agree_with_other_coprocessors


def _unreachable(exc: Exception) -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.WARN,
        metadata={"error": f"gateway unreachable: {type(exc).__name__}: {exc}"},
    )
