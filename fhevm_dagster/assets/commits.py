"""The last steps of a host range: squash to ct128, digest, commit the digests on the gateway.

Each asset is a pipeline call (`pipeline.squash`, `pipeline.commits`) and its metadata. Every step
is idempotent: a re-run squashes nothing already stored, recomputes equal digests and sends no
transaction for a handle whose commit is confirmed in the store or visible on the gateway.
"""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    MaterializeResult,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
    asset_check,
)

from ..chain.ciphertext_commits import GatewayCommits, commit_events
from ..chain.client import ChainReader
from ..jobs import HOST_RANGE_GROUP
from ..partitions import host_ranges
from ..pipeline.commits import commit_range
from ..pipeline.consensus import committed_problems, peer_report
from ..pipeline.errors import StepError
from ..pipeline.squash import digest_range, range_digests, range_handles, squash_range
from ..pipeline.tables import hex_str
from ..resources.chain import CommitSettings, GatewayChainResource, HostChainResource
from ..resources.fhe import FheResource
from ..resources.signer import SignerResource
from ..resources.store import StoreResource
from .metadata import MISSING_INPUT_RETRY, failure, figures_metadata, table_metadata

#: A gateway outage or a stuck transaction: retry the whole step, it skips what is done.
COMMIT_RETRY = RetryPolicy(max_retries=4, delay=15, backoff=Backoff.EXPONENTIAL)


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    deps=[AssetKey("ciphertexts")],
    retry_policy=MISSING_INPUT_RETRY,
    kinds={"python", "tfhe"},
)
def sns_ciphertexts(
    context: AssetExecutionContext, chain: HostChainResource, store: StoreResource, fhe: FheResource
) -> MaterializeResult:  # type: ignore[type-arg]
    """Every allowed ct64 of the range squashed to its ct128 decryption format and stored.

    Handles whose computation failed are reported, not squashed; handles without a ct64 yet fail
    the step (retryable) and name themselves.
    """
    try:
        figures = squash_range(
            store.get(), fhe.engine, chain.chain_id, context.partition_key, fhe.pool_size
        )
    except StepError as exc:
        raise failure(exc) from exc
    return MaterializeResult(metadata=figures_metadata(figures))


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    deps=[sns_ciphertexts],
    retry_policy=MISSING_INPUT_RETRY,
    kinds={"python", "parquet"},
)
def ciphertext_digests(
    context: AssetExecutionContext, chain: HostChainResource, store: StoreResource
) -> Output[pd.DataFrame]:
    """keccak256 of every stored ct64 and ct128 of the range, stored and shown as a table."""
    try:
        df, figures = digest_range(store.get(), chain.chain_id, context.partition_key)
    except StepError as exc:
        raise failure(exc) from exc
    shown = ["handle", "fhe_type", "ciphertext_digest"]
    return Output(df, metadata={**figures_metadata(figures), **table_metadata(df, shown)})


def build_digest_commits(retry_policy: RetryPolicy | None = COMMIT_RETRY) -> AssetsDefinition:
    """The `digest_commits` asset; tests build it without retries to see one failure."""

    @asset(
        name="digest_commits",
        partitions_def=host_ranges,
        group_name=HOST_RANGE_GROUP,
        io_manager_key="parquet_io_manager",
        deps=[ciphertext_digests],
        retry_policy=retry_policy,
        kinds={"python", "ethereum"},
    )
    def digest_commits(
        context: AssetExecutionContext,
        chain: HostChainResource,
        store: StoreResource,
        gateway: GatewayChainResource,
        signer: SignerResource,
        commit_settings: CommitSettings,
    ) -> Output[pd.DataFrame]:
        """`addCiphertextMaterial` for every stored digest of the range, at most once per sender.

        Handles confirmed in the store or already committed on the gateway by this sender are
        skipped; `CoprocessorAlreadyAdded` counts as done. Any failed commit (revert, outage)
        fails the range with its reason; the retry sends only what is still missing.
        """
        client = GatewayCommits.of(
            gateway.config(), signer.tx_sender_account(), commit_settings.start_block
        )
        try:
            table, figures = commit_range(
                store.get(),
                client,
                chain.chain_id,
                context.partition_key,
                commit_settings.batch_size,
            )
        except StepError as exc:
            raise failure(exc) from exc
        meta = {
            **figures_metadata(figures),
            **table_metadata(table, ["handle", "status", "tx_hash"]),
        }
        return Output(table, metadata=meta)

    return digest_commits


digest_commits = build_digest_commits()


@asset_check(asset=sns_ciphertexts, partitions_def=host_ranges, blocking=True)
def every_allowed_handle_squashed(
    context: AssetCheckExecutionContext, chain: HostChainResource, store: StoreResource
) -> AssetCheckResult:
    """Each allowed handle of the range has a ct64 and a ct128 (or a recorded computation error)."""
    st = store.get()
    handles = range_handles(st, chain.chain_id, context.partition_key)
    no128 = st.missing_ciphertexts128(list(handles.stored))
    return AssetCheckResult(
        passed=not handles.missing and not no128,
        metadata=figures_metadata(
            {
                "with_ct64": len(handles.stored),
                "without_ct64": [hex_str(h) for h in handles.missing],
                "without_ct128": [hex_str(h) for h in no128],
                **handles.figures(),
            }
        ),
    )


@asset_check(asset=ciphertext_digests, partitions_def=host_ranges, blocking=True)
def digests_match_bytes(
    context: AssetCheckExecutionContext, chain: HostChainResource, store: StoreResource
) -> AssetCheckResult:
    """The stored digests equal keccak256 of the stored ct64 and ct128 bytes."""
    st = store.get()
    handles = range_handles(st, chain.chain_id, context.partition_key)
    expected = {r.digest.handle: r.digest for r in range_digests(st, handles)}
    stored = st.get_digests(list(expected))
    wrong = [hex_str(h) for h, d in expected.items() if stored.get(h) != d]
    return AssetCheckResult(
        passed=not wrong and not handles.missing,
        metadata={"checked": len(expected), "mismatched_or_absent": MetadataValue.json(wrong)},
    )


def _unreachable(exc: Exception) -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.WARN,
        metadata={"error": f"gateway unreachable: {type(exc).__name__}: {exc}"},
    )


@asset_check(asset="digest_commits", partitions_def=host_ranges)
def digests_committed_on_gateway(
    context: AssetCheckExecutionContext,
    chain: HostChainResource,
    store: StoreResource,
    gateway: GatewayChainResource,
    signer: SignerResource,
    commit_settings: CommitSettings,
) -> AssetCheckResult:
    """This sender's AddCiphertextMaterial event exists for each handle with the stored digests."""
    st = store.get()
    handles = range_handles(st, chain.chain_id, context.partition_key)
    client = GatewayCommits.of(
        gateway.config(), signer.tx_sender_account(), commit_settings.start_block
    )
    try:
        problems = committed_problems(st, client, handles)
    except Exception as exc:  # any RPC failure: nothing can be decided now
        return _unreachable(exc)
    return AssetCheckResult(
        passed=not problems and not handles.missing,
        metadata=figures_metadata(
            {"checked": len(handles.stored), "sender": client.sender, "problems": problems}
        ),
    )


@asset_check(asset=ciphertext_digests, partitions_def=host_ranges)
def digests_agree_with_other_coprocessors(
    context: AssetCheckExecutionContext,
    chain: HostChainResource,
    store: StoreResource,
    gateway: GatewayChainResource,
    signer: SignerResource,
    commit_settings: CommitSettings,
) -> AssetCheckResult:
    """Drift detector: other coprocessors' AddCiphertextMaterial digests equal ours.

    A coprocessor whose bytes differ from its peers' is outvoted on every handle; this fails
    with a table of the handles that disagree. It judges our digests, committed or not, against
    what peers committed so far: run it again from the UI when peers are behind.
    """
    st = store.get()
    handles = range_handles(st, chain.chain_id, context.partition_key)
    gw = gateway.config()
    me = signer.tx_sender_account().address
    try:
        events = commit_events(
            ChainReader.of(gw).web3, gw.ciphertext_commits_address, list(handles.stored),
            commit_settings.start_block,
        )  # fmt: skip
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


COMMIT_ASSETS = [sns_ciphertexts, ciphertext_digests, digest_commits]
COMMIT_CHECKS = [
    every_allowed_handle_squashed,
    digests_match_bytes,
    digests_committed_on_gateway,
    digests_agree_with_other_coprocessors,
]
