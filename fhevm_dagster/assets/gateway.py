"""Assets of one gateway block range: input-verification requests, verification, answers.

Each asset is a pipeline call (`pipeline.gateway`) and its metadata; the requests of the range
come from the store, the parquet tables are views.
"""

import pandas as pd
from dagster import AssetExecutionContext, Output, RetryRequested, asset

from ..chain.client import ChainReader
from ..chain.sender import gateway_sender
from ..jobs import GATEWAY_RANGE_GROUP
from ..partitions import gateway_ranges
from ..pipeline.block_ranges import parse_range_key
from ..pipeline.errors import RangeMoved, StepError
from ..pipeline.gateway import answer_requests, collect_requests, verify_requests
from ..resources.chain import GatewayChainResource, HostChainResource
from ..resources.fhe import FheResource
from ..resources.signer import SignerResource
from ..resources.store import StoreResource
from .metadata import RPC_RETRY, STORE_RETRY, failure, figures_metadata, table_metadata


def _range_ids(
    context: AssetExecutionContext, gateway: GatewayChainResource, store: StoreResource
) -> list[int]:
    rng = parse_range_key(context.partition_key)
    return store.get().proof_request_ids(gateway.chain_id, rng.first, rng.last)


@asset(
    partitions_def=gateway_ranges,
    group_name=GATEWAY_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=RPC_RETRY,
    kinds={"python", "parquet"},
)
def proof_requests(
    context: AssetExecutionContext, gateway: GatewayChainResource, store: StoreResource
) -> Output[pd.DataFrame]:
    """`VerifyProofRequest` events of the range, decoded and stored (ciphertexts in the store)."""
    config = gateway.config()
    try:
        df, figures, warnings = collect_requests(
            ChainReader.of(config), config, store.get(), parse_range_key(context.partition_key)
        )
    except RangeMoved:
        raise RetryRequested(max_retries=3, seconds_to_wait=2) from None
    except StepError as exc:
        raise failure(exc) from exc
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
)
def verified_inputs(
    context: AssetExecutionContext,
    gateway: GatewayChainResource,
    chain: HostChainResource,
    fhe: FheResource,
    store: StoreResource,
) -> Output[pd.DataFrame]:
    """ZK proofs checked, lists expanded and compressed, input handles stored with their ct64."""
    host = chain.config()
    ids = _range_ids(context, gateway, store)
    try:
        df, figures, log = verify_requests(store.get(), fhe.engine, {host.chain_id: host}, ids)
    except StepError as exc:
        raise failure(exc) from exc
    for line in log:
        context.log.info(line)
    shown = ["zk_proof_id", "status", "code", "entries", "fhe_types"]
    return Output(df, metadata={**figures_metadata(figures), **table_metadata(df, shown)})


@asset(
    partitions_def=gateway_ranges,
    group_name=GATEWAY_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=RPC_RETRY,
    deps=[verified_inputs],
    kinds={"python", "ethereum"},
)
def proof_responses(
    context: AssetExecutionContext,
    gateway: GatewayChainResource,
    signer: SignerResource,
    store: StoreResource,
) -> Output[pd.DataFrame]:
    """Signed answers on the gateway: verifyProofResponse or rejectProofResponse, receipts checked.

    Check-then-send: answers recorded as done are skipped, and every call is simulated first, so
    an answer already on chain reads `already_done` and costs no transaction.
    """
    config = gateway.config()
    ids = _range_ids(context, gateway, store)
    try:
        df, figures, log = answer_requests(
            store.get(),
            lambda: gateway_sender(config, signer.tx_sender_account()),
            signer.signer_account,
            config,
            ids,
        )
    except StepError as exc:
        raise failure(exc) from exc
    for line in log:
        context.log.error(line)
    shown = ["zk_proof_id", "answer", "response_status", "tx_hash"]
    return Output(df, metadata={**figures_metadata(figures), **table_metadata(df, shown)})
