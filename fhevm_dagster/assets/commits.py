"""The last steps of a host range: squash to ct128, digest, commit the digests on the gateway.

Each asset is a pipeline call (`pipeline.squash`, `pipeline.digest_commits`) and its metadata.
Every step is idempotent: a re-run squashes nothing stored, recomputes equal digests and sends no
transaction for a handle whose commit is confirmed in the store or visible on the gateway.
"""

from typing import Any

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
    asset_check,
)

from ..chain.ciphertext_commits import GatewayCommits, commit_events
from ..chain.client import ChainReader
from ..pipeline.consensus import commit_window, committed_problems, peer_report
from ..pipeline.digest_commits import commit_range
from ..pipeline.squash import digest_range, range_digests, range_handles, squash_range
from ..pipeline.tables import hex_str
from ..pipeline.uploads import purge_committed_ct128
from ..resources.fhe import fhe_pool
from .metadata import (
    MISSING_INPUT_RETRY,
    figures_metadata,
    partition_link,
    step_errors,
    table_metadata,
)

#: A gateway outage or a stuck transaction: retry the whole step, it skips what is done.
COMMIT_RETRY = RetryPolicy(max_retries=4, delay=15, backoff=Backoff.EXPONENTIAL)
GATEWAY_KEYS = {"store", "gateway", "signer", "commit_settings"}


def gateway_commits(context: Any) -> GatewayCommits:
    """The commit client of this coprocessor's sender, journaling in the store."""
    r = context.resources
    account = r.signer.tx_sender_account()
    lookback = r.commit_settings.lookback_blocks
    return GatewayCommits.of(r.gateway.config(), account, lookback, r.store.get())


def commit_assets(
    chain: str,
    partitions: DynamicPartitionsDefinition,
    commit_retry: RetryPolicy | None = COMMIT_RETRY,
) -> list[AssetsDefinition]:
    """`sns_ciphertexts`, `ciphertext_digests` and `digest_commits` of the chain `chain` (tests
    build `digest_commits` without retries to see one failure)."""

    def chain_id(context: Any) -> int:
        return int(getattr(context.resources, chain).chain_id)

    @asset(
        key=AssetKey([chain, "sns_ciphertexts"]),
        partitions_def=partitions,
        group_name=chain,
        deps=[AssetKey([chain, "ciphertexts"])],
        retry_policy=MISSING_INPUT_RETRY,
        kinds={"python", "tfhe"},
        pool=fhe_pool(),
        required_resource_keys={chain, "store", "fhe"},
    )
    def sns_ciphertexts(context: AssetExecutionContext) -> MaterializeResult:  # type: ignore[type-arg]
        """Every allowed ct64 of the range squashed to its ct128 decryption format and stored.

        Handles whose computation failed are reported, not squashed; handles without a ct64 yet
        fail the step (retryable) and name themselves.
        """
        fhe = context.resources.fhe
        with step_errors():
            store = context.resources.store
            figures = squash_range(
                store.get(), fhe.engine, chain_id(context), context.partition_key,
                fhe.pool_size, store.batch_handles,
            )  # fmt: skip
        figures = {**figures, "fhe_device": fhe.resolved_device}
        return MaterializeResult(metadata=figures_metadata(figures))

    @asset(
        key=AssetKey([chain, "ciphertext_digests"]),
        partitions_def=partitions,
        group_name=chain,
        io_manager_key="parquet_io_manager",
        deps=[sns_ciphertexts],
        retry_policy=MISSING_INPUT_RETRY,
        kinds={"python", "parquet"},
        required_resource_keys={chain, "store"},
    )
    def ciphertext_digests(context: AssetExecutionContext) -> Output[pd.DataFrame]:
        """keccak256 of every stored ct64 and ct128 of the range, stored and shown as a table."""
        with step_errors():
            store = context.resources.store
            df, figures = digest_range(
                store.get(), chain_id(context), context.partition_key, store.batch_handles
            )
        shown = ["handle", "fhe_type", "ciphertext_digest"]
        return Output(df, metadata={**figures_metadata(figures), **table_metadata(df, shown)})

    @asset(
        key=AssetKey([chain, "digest_commits"]),
        partitions_def=partitions,
        group_name=chain,
        io_manager_key="parquet_io_manager",
        # Committed once the KMS can fetch the bytes, as the reference: its transaction sender
        # takes only digests whose ciphertexts are uploaded.
        deps=[ciphertext_digests, AssetKey([chain, "ciphertext_objects"])],
        retry_policy=commit_retry,
        kinds={"python", "ethereum"},
        required_resource_keys={chain, "objects"} | GATEWAY_KEYS,
    )
    def digest_commits(context: AssetExecutionContext) -> Output[pd.DataFrame]:
        """`addCiphertextMaterial` for every stored digest of the range, at most once per sender.

        Handles confirmed in the store are skipped, the others simulated first:
        `CoprocessorAlreadyAdded` counts as done. Any failed commit (revert, outage) fails the
        range with its reason; the retry sends only what is still missing. Once committed and in
        the object store, a handle's ct128 bytes leave the store (`purge_ct128`).
        """
        r = context.resources
        with step_errors():
            store = r.store.get()
            table, figures = commit_range(
                store, gateway_commits(context), chain_id(context), context.partition_key,
                r.commit_settings.batch_size,
            )  # fmt: skip
            if r.commit_settings.purge_ct128:
                handles = [bytes.fromhex(h[2:]) for h in table["handle"]]
                figures |= purge_committed_ct128(store, r.objects.backend(), handles)
        shown = ["handle", "status", "tx_hash"]
        objects = partition_link((chain, "ciphertext_objects"), context.partition_key)
        metadata = {**figures_metadata(figures), **table_metadata(table, shown), "objects": objects}
        return Output(table, metadata=metadata)

    return [sns_ciphertexts, ciphertext_digests, digest_commits]


def _unreachable(exc: Exception) -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.WARN,
        metadata={"error": f"gateway unreachable: {type(exc).__name__}: {exc}"},
    )


def commit_checks(
    chain: str, partitions: DynamicPartitionsDefinition
) -> list[AssetChecksDefinition]:
    """The checks of the chain's squash, digest and commit assets."""

    def handles_of(context: Any) -> Any:
        st = context.resources.store.get()
        cid = int(getattr(context.resources, chain).chain_id)
        return st, range_handles(st, cid, context.partition_key)

    @asset_check(
        asset=AssetKey([chain, "sns_ciphertexts"]),
        name="every_allowed_handle_squashed",
        partitions_def=partitions,
        blocking=True,
        required_resource_keys={chain, "store"},
    )
    def every_allowed_handle_squashed(context: AssetCheckExecutionContext) -> AssetCheckResult:
        """Each allowed handle has a ct64 and a ct128 (or a recorded computation error)."""
        st, handles = handles_of(context)
        no128 = st.missing_ciphertexts128(list(handles.stored))
        figures = {
            "with_ct64": len(handles.stored),
            "without_ct64": [hex_str(h) for h in handles.missing],
            "without_ct128": [hex_str(h) for h in no128],
            **handles.figures(),
        }
        return AssetCheckResult(
            passed=not handles.missing and not no128, metadata=figures_metadata(figures)
        )

    @asset_check(
        asset=AssetKey([chain, "ciphertext_digests"]),
        name="digests_match_bytes",
        partitions_def=partitions,
        blocking=True,
        required_resource_keys={chain, "store"},
    )
    def digests_match_bytes(context: AssetCheckExecutionContext) -> AssetCheckResult:
        """The stored digests equal keccak256 of the stored ct64 and ct128 bytes."""
        st, handles = handles_of(context)
        batch = context.resources.store.batch_handles
        expected = {r.digest.handle: r.digest for r in range_digests(st, handles, batch)}
        stored = st.get_digests(list(expected))
        wrong = [hex_str(h) for h, d in expected.items() if stored.get(h) != d]
        return AssetCheckResult(
            passed=not wrong and not handles.missing,
            metadata={
                "checked": len(expected),
                # Committed and in the object store: `ciphertext get --source objects` checks them.
                "not_checked_ct128_purged": len(handles.stored) - len(expected),
                "mismatched_or_absent": MetadataValue.json(wrong),
            },
        )

    @asset_check(
        asset=AssetKey([chain, "digest_commits"]),
        name="digests_committed_on_gateway",
        partitions_def=partitions,
        required_resource_keys={chain} | GATEWAY_KEYS,
    )
    def digests_committed_on_gateway(context: AssetCheckExecutionContext) -> AssetCheckResult:
        """This sender's AddCiphertextMaterial event exists for each handle with the stored
        digests."""
        st, handles = handles_of(context)
        client = gateway_commits(context)
        try:
            problems = committed_problems(st, client, handles)
        except Exception as exc:  # any RPC failure: nothing can be decided now
            return _unreachable(exc)
        figures = {
            "checked": len(handles.stored),
            "sender": client.sender,
            "problems": problems,
            "waiting": [hex_str(h) for h in handles.missing],
            **handles.figures(),
        }
        # A handle whose computation failed for a deterministic reason is never committed: the
        # rest of the range is, and the check names what could not be done (a warning).
        severity = (
            AssetCheckSeverity.ERROR if problems or handles.missing else AssetCheckSeverity.WARN
        )
        return AssetCheckResult(
            passed=not problems and not handles.missing and not handles.errored,
            severity=severity,
            metadata=figures_metadata(figures),
        )

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
        st, handles = handles_of(context)
        r = context.resources
        gw = r.gateway.config()
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

    return [
        every_allowed_handle_squashed,
        digests_match_bytes,
        digests_committed_on_gateway,
        digests_agree_with_other_coprocessors,
    ]
