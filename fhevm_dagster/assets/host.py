"""Assets of one host block range of one host chain: the range ingested (events decoded once,
computations stored) and its FHE DAG evaluated. Each asset is a pipeline call and its metadata."""

from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    DynamicPartitionsDefinition,
    MetadataValue,
    Output,
    asset,
    multi_asset,
)

from ..chain.client import ChainReader
from ..pipeline.block_ranges import parse_range_key
from ..pipeline.evaluate import evaluate_range, evaluation_table
from ..pipeline.host import ingest_range
from ..pipeline.tables import hex_str
from ..resources.fhe import fhe_pool
from .metadata import MISSING_INPUT_RETRY, RPC_RETRY, figures_metadata, step_errors, table_metadata

RECOMPUTED_BYTES_CHECK = "recomputed_bytes_match_stored"
#: Run tag of a determinism check: `1` recomputes results already stored and compares the bytes
#: (by default a retry or re-materialisation computes only what is not stored yet).
VERIFY_TAG = "fhevm/verify_determinism"


def host_assets(chain: str, partitions: DynamicPartitionsDefinition) -> list[AssetsDefinition]:
    """`host_ingest` (host_events + fhe_computations) and `ciphertexts` of the chain `chain`."""

    @multi_asset(
        name=f"{chain}__host_ingest",
        outs={
            "host_events": AssetOut(
                key=AssetKey([chain, "host_events"]),
                io_manager_key="parquet_io_manager",
                kinds={"python", "parquet"},
                description="Executor and ACL logs of the range, decoded; unknown and malformed "
                "logs kept and counted (a write-only view).",
            ),
            "fhe_computations": AssetOut(
                key=AssetKey([chain, "fhe_computations"]),
                io_manager_key="parquet_io_manager",
                kinds={"python", "sql"},
                description="Computation rows of SPEC §5, written to the store (idempotent).",
            ),
        },
        partitions_def=partitions,
        group_name=chain,
        retry_policy=RPC_RETRY,
        required_resource_keys={chain, "store"},
    )
    def host_ingest(context: AssetExecutionContext) -> Iterator[Output[pd.DataFrame]]:
        """Read the range's logs once, decode them once, store its computations."""
        config = getattr(context.resources, chain).config()
        with step_errors():
            report = ingest_range(
                ChainReader.of(config),
                config,
                context.resources.store.get(),
                parse_range_key(context.partition_key),
            )
        for m in report.decoded.malformed:
            where = f"{hex_str(m.log.tx_hash)}#{m.log.log_index}"
            context.log.warning(f"malformed {m.event} log {where}: {m.error}")
        events = report.events_table()
        computations = report.computations_table()
        shown = ["block_number", "log_index", "status", "event", "operator"]
        yield Output(
            events,
            output_name="host_events",
            metadata={
                **figures_metadata(report.event_figures()),
                **table_metadata(events, shown),
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
        key=AssetKey([chain, "ciphertexts"]),
        partitions_def=partitions,
        group_name=chain,
        io_manager_key="parquet_io_manager",
        retry_policy=MISSING_INPUT_RETRY,
        deps=[AssetKey([chain, "fhe_computations"])],
        kinds={"python", "tfhe"},
        pool=fhe_pool(),
        required_resource_keys={chain, "store", "fhe"},
        check_specs=[
            AssetCheckSpec(
                RECOMPUTED_BYTES_CHECK,
                asset=AssetKey([chain, "ciphertexts"]),
                description="Every recomputed allowed result equals the ct64 already stored (and "
                "committed): deterministic evaluation, as consensus needs.",
            )
        ],
    )
    def ciphertexts(
        context: AssetExecutionContext,
    ) -> Iterator[Output[pd.DataFrame] | AssetCheckResult]:
        """The range's FHE DAG evaluated; every allowed result stored as a ct64 (idempotent).

        Results stored by an earlier run are read back, not recomputed, unless the run is
        tagged `fhevm/verify_determinism=1`: then everything is recomputed and a result whose
        bytes differ from the stored ones fails the check below. Each new allowed result is
        squashed as soon as it is stored, while evaluation goes on (`sns_ciphertexts` then only
        squashes what is left; the `fhe` resource's `squash_during_evaluation` turns it off).
        Inputs from earlier ranges or the gateway that are not stored yet fail the range with a
        retryable error naming them; everything else of the range is evaluated and stored first.
        """
        config = getattr(context.resources, chain).config()
        fhe = context.resources.fhe
        with step_errors():
            report, dag = evaluate_range(
                context.resources.store.get(),
                fhe.engine,
                context.partition_key,
                config.key_id,
                fhe.pool_size,
                chain_id=config.chain_id,
                batch=context.resources.store.batch_handles,
                recompute=context.run.tags.get(VERIFY_TAG) == "1",
                squash=fhe.squash_during_evaluation,
            )
        for handle, message in report.errors.items():
            context.log.error(f"computation {handle} failed: {message}")
        for h, message in report.squash.errors.items():
            context.log.warning(f"squashing {h.hex()} failed ({message}): sns retries it")
        for handle, message in report.drift.items():
            context.log.error(f"recomputed {handle} differs from the stored ciphertext: {message}")
        df = evaluation_table(report, dag)
        figures = {**report.figures(), "fhe_device": fhe.resolved_device}
        yield Output(df, metadata={**figures_metadata(figures), **table_metadata(df)})
        yield AssetCheckResult(
            check_name=RECOMPUTED_BYTES_CHECK,
            passed=not report.drift,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "compared_handles": report.compared,
                "differing_handles": len(report.drift),
                "differences": MetadataValue.json(report.drift),
            },
        )

    return [host_ingest, ciphertexts]
