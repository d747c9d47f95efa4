"""Assets of one gateway block range: input-verification requests, verification, answers.

Each asset is a pipeline call (`pipeline.gateway`) and its metadata; the requests of the range
come from the store, the parquet tables are views. The gateway serves every registered host chain:
requests naming another chain are not answered (SPEC §6).
"""

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, AssetsDefinition, Output, asset

from ..chain.client import ChainReader
from ..chain.sender import TransactionSender, gateway_sender
from ..jobs import GATEWAY_RANGE_GROUP
from ..partitions import gateway_ranges
from ..pipeline.block_ranges import parse_range_key
from ..pipeline.digest_commits import recheck_commits
from ..pipeline.gateway import (
    answer_requests,
    collect_requests,
    recheck_answers,
    verify_requests,
)
from ..resources.fhe import fhe_pool
from ..store import ProofKey
from .commits import COMMIT_RETRY, GATEWAY_KEYS, gateway_commits
from .metadata import (
    RPC_RETRY,
    STORE_RETRY,
    figures_metadata,
    step_errors,
    table_metadata,
)


def _answer_sender(context: Any) -> Callable[[], TransactionSender]:
    """The gateway sender of this coprocessor, journaling in the store (made when first used)."""
    r = context.resources
    return lambda: gateway_sender(r.gateway.config(), r.signer.tx_sender_account(), r.store.get())


def _range_keys(context: Any) -> list[ProofKey]:
    rng = parse_range_key(context.partition_key)
    r = context.resources
    return list(r.store.get().proof_request_keys(r.gateway.chain_id, rng.first, rng.last))


def gateway_assets(host_chains: Sequence[str]) -> list[AssetsDefinition]:
    """The gateway range's assets, serving the host chains named `host_chains`."""

    @asset(
        partitions_def=gateway_ranges,
        group_name=GATEWAY_RANGE_GROUP,
        io_manager_key="parquet_io_manager",
        retry_policy=RPC_RETRY,
        kinds={"python", "parquet"},
        required_resource_keys={"gateway", "store"},
    )
    def proof_requests(context: AssetExecutionContext) -> Output[pd.DataFrame]:
        """`VerifyProofRequest` events of the range, decoded and stored (ciphertexts included)."""
        config = context.resources.gateway.config()
        with step_errors():
            df, figures, warnings = collect_requests(
                ChainReader.of(config),
                config,
                context.resources.store.get(),
                parse_range_key(context.partition_key),
            )
        for line in warnings:
            context.log.warning(line)
        shown = ["zk_proof_id", "user_address", "ciphertext_bytes"]
        return Output(df, metadata={**figures_metadata(figures), **table_metadata(df, shown)})

    @asset(
        partitions_def=gateway_ranges,
        group_name=GATEWAY_RANGE_GROUP,
        io_manager_key="parquet_io_manager",
        retry_policy=STORE_RETRY,
        deps=[proof_requests],
        kinds={"python", "sql"},
        pool=fhe_pool(),
        required_resource_keys={*host_chains, "gateway", "fhe", "store"},
    )
    def verified_inputs(context: AssetExecutionContext) -> Output[pd.DataFrame]:
        """ZK proofs checked, lists expanded and compressed, input handles stored with their
        ct64."""
        r = context.resources
        hosts = [getattr(r, name).config() for name in host_chains]
        with step_errors():
            df, figures, log = verify_requests(
                r.store.get(), r.fhe.engine, {h.chain_id: h for h in hosts}, _range_keys(context)
            )
        for line in log:
            context.log.info(line)
        shown = ["zk_proof_id", "status", "code", "entries", "fhe_types"]
        figures = {**figures, "fhe_device": r.fhe.resolved_device}
        return Output(df, metadata={**figures_metadata(figures), **table_metadata(df, shown)})

    @asset(
        partitions_def=gateway_ranges,
        group_name=GATEWAY_RANGE_GROUP,
        io_manager_key="parquet_io_manager",
        retry_policy=RPC_RETRY,
        deps=[verified_inputs],
        kinds={"python", "ethereum"},
        required_resource_keys={"gateway", "signer", "store"},
    )
    def proof_responses(context: AssetExecutionContext) -> Output[pd.DataFrame]:
        """Signed answers on the gateway: verifyProofResponse or rejectProofResponse.

        Check-then-send: answers recorded as done are skipped, and every call is simulated
        first, so an answer already on chain reads `already_done` and costs no transaction.
        """
        r = context.resources
        with step_errors():
            df, figures, log = answer_requests(
                r.store.get(),
                _answer_sender(context),
                r.signer.signer_account,
                r.gateway.config(),
                _range_keys(context),
            )
        for line in log:
            context.log.error(line)
        shown = ["zk_proof_id", "answer", "response_status", "tx_hash"]
        return Output(df, metadata={**figures_metadata(figures), **table_metadata(df, shown)})

    @asset(
        partitions_def=gateway_ranges,
        group_name=GATEWAY_RANGE_GROUP,
        io_manager_key="parquet_io_manager",
        retry_policy=COMMIT_RETRY,
        deps=[proof_requests],
        kinds={"python", "ethereum"},
        required_resource_keys=GATEWAY_KEYS,
    )
    def commits_rechecked(context: AssetExecutionContext) -> Output[pd.DataFrame]:
        """The digest commits confirmed in this range's blocks, still on the gateway chain.

        A gateway reorg that drops a block holding our `addCiphertextMaterial` re-runs this
        range (the sensor's `…:reorg-<n>` run): each commit no longer on the canonical chain is
        sent again (check-then-send, `CoprocessorAlreadyAdded` is done), the others cost one
        `eth_getLogs` per 100 handles.
        """
        r = context.resources
        rng = parse_range_key(context.partition_key)
        with step_errors():
            table, figures = recheck_commits(
                r.store.get(), gateway_commits(context), rng.first, rng.last,
                r.commit_settings.batch_size,
            )  # fmt: skip
        shown = ["handle", "outcome", "status", "tx_hash"]
        return Output(table, metadata={**figures_metadata(figures), **table_metadata(table, shown)})

    @asset(
        partitions_def=gateway_ranges,
        group_name=GATEWAY_RANGE_GROUP,
        io_manager_key="parquet_io_manager",
        retry_policy=COMMIT_RETRY,
        deps=[proof_requests],
        kinds={"python", "ethereum"},
        required_resource_keys={"gateway", "signer", "store"},
    )
    def answers_rechecked(context: AssetExecutionContext) -> Output[pd.DataFrame]:
        """The answers to input requests mined in this range's blocks, still on the gateway.

        A gateway reorg that drops a block holding our `verifyProofResponse` re-runs this range
        (or the sensor runs it because the store holds answers there): each answer no longer on
        the canonical chain is sent again (check-then-send).
        """
        r = context.resources
        rng = parse_range_key(context.partition_key)
        with step_errors():
            table, figures = recheck_answers(
                r.store.get(),
                _answer_sender(context),
                r.signer.signer_account,
                r.gateway.config(),
                rng.first,
                rng.last,
            )
        shown = ["zk_proof_id", "outcome", "tx_hash", "gateway_block"]
        return Output(table, metadata={**figures_metadata(figures), **table_metadata(table, shown)})

    return [proof_requests, verified_inputs, proof_responses, commits_rechecked, answers_rechecked]
