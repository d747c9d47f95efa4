"""Assets of one host block range: the range ingested (events decoded once, computations stored)
and its FHE DAG evaluated. Each asset is a pipeline call and its metadata."""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetOut,
    MetadataValue,
    Output,
    RetryRequested,
    asset,
    multi_asset,
)

from ..chain.client import ChainReader
from ..jobs import HOST_RANGE_GROUP
from ..partitions import host_ranges
from ..pipeline.block_ranges import parse_range_key
from ..pipeline.errors import RangeMoved, StepError
from ..pipeline.evaluate import evaluate_range, evaluation_table
from ..pipeline.host import ingest_range
from ..pipeline.tables import hex_str
from ..resources.chain import HostChainResource
from ..resources.fhe import FheResource
from ..resources.store import StoreResource
from .metadata import (
    MISSING_INPUT_RETRY,
    RPC_RETRY,
    failure,
    figures_metadata,
    table_metadata,
)

RECOMPUTED_BYTES_CHECK = "recomputed_bytes_match_stored"


@multi_asset(
    outs={
        "host_events": AssetOut(
            io_manager_key="parquet_io_manager",
            kinds={"python", "parquet"},
            description="Executor and ACL logs of the range, decoded; unknown and malformed "
            "logs kept and counted (a write-only view).",
        ),
        "fhe_computations": AssetOut(
            io_manager_key="parquet_io_manager",
            kinds={"python", "sql"},
            description="Computation rows of SPEC §5, written to the store (idempotent).",
        ),
    },
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    retry_policy=RPC_RETRY,
)
def host_ingest(
    context: AssetExecutionContext, chain: HostChainResource, store: StoreResource
) -> Iterator[Output[pd.DataFrame]]:
    """Read the range's logs once, decode them once, store its computations."""
    config = chain.config()
    try:
        report = ingest_range(
            ChainReader.of(config), config, store.get(), parse_range_key(context.partition_key)
        )
    except RangeMoved:
        raise RetryRequested(max_retries=3, seconds_to_wait=2) from None
    except StepError as exc:
        raise failure(exc) from exc
    for m in report.decoded.malformed:
        context.log.warning(
            f"malformed {m.event} log {hex_str(m.log.tx_hash)}#{m.log.log_index}: {m.error}"
        )
    events = report.events_table()
    computations = report.computations_table()
    yield Output(
        events,
        output_name="host_events",
        metadata={
            **figures_metadata(report.event_figures()),
            **table_metadata(events, ["block_number", "log_index", "status", "event", "operator"]),
        },
    )
    yield Output(
        computations,
        output_name="fhe_computations",
        metadata={
            **figures_metadata(report.computation_figures()),
            **table_metadata(computations.drop(columns=["tx_hash"])),
        },
    )


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=MISSING_INPUT_RETRY,
    deps=["fhe_computations"],
    kinds={"python", "tfhe"},
    check_specs=[
        AssetCheckSpec(
            RECOMPUTED_BYTES_CHECK,
            asset="ciphertexts",
            description="Every recomputed allowed result equals the ct64 already stored (and "
            "committed): deterministic evaluation, as consensus needs.",
        )
    ],
)
def ciphertexts(
    context: AssetExecutionContext,
    chain: HostChainResource,
    store: StoreResource,
    fhe: FheResource,
) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
    """The range's FHE DAG evaluated; every allowed result stored as a ct64 (idempotent).

    Inputs from earlier ranges or the gateway that are not stored yet fail the range with a
    retryable error naming them; everything else of the range is evaluated and stored first.
    A recomputed result whose bytes differ from the stored ones fails the check below.
    """
    config = chain.config()
    try:
        report, dag = evaluate_range(
            store.get(),
            fhe.engine,
            context.partition_key,
            config.key_id,
            fhe.pool_size,
            chain_id=config.chain_id,
        )
    except StepError as exc:
        context.add_output_metadata(figures_metadata(exc.figures))
        raise failure(exc) from exc
    for handle, message in report.errors.items():
        context.log.error(f"computation {handle} failed: {message}")
    for handle, message in report.drift.items():
        context.log.error(f"recomputed {handle} differs from the stored ciphertext: {message}")
    df = evaluation_table(report, dag)
    yield Output(df, metadata={**figures_metadata(report.figures()), **table_metadata(df)})
    yield AssetCheckResult(
        check_name=RECOMPUTED_BYTES_CHECK,
        passed=not report.drift,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "differing_handles": len(report.drift),
            "differences": MetadataValue.json(report.drift),
        },
    )
