"""Assets of one host block range: decoded events (parquet) and computation rows (store).

Thin by design: fetching is `resources/chain.py`, decoding and SPEC §5 are `protocol/`, writes are
`store/`. Later per-range assets (ciphertexts, sns_ciphertexts, ciphertext_digests, digest_commits)
join the `host_range` group and read `fhe_computations` rows from the store.
"""

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Failure,
    MetadataValue,
    Output,
    RetryPolicy,
    RetryRequested,
    asset,
)

from ..compute.ranges import MissingInputsError, RangeReport, evaluate_range
from ..jobs import HOST_RANGE_GROUP
from ..partitions import host_ranges, parse_range_key
from ..protocol.computations import allowed_handles, computations_from_events
from ..protocol.events import DecodeReport, RawLog, decode_logs
from ..protocol.opcodes import Operator
from ..resources.chain import HostChainResource
from ..resources.fhe import FheResource
from ..resources.store import StoreResource
from ..store import HostChain
from .metadata import RPC_RETRY, hex_str, preview, type_name

EVENT_COLUMNS = [
    "block_number",
    "block_hash",
    "tx_hash",
    "tx_index",
    "log_index",
    "address",
    "topics",
    "data",
    "status",
    "contract",
    "event",
    "operator",
    "detail",
]
STORE_RETRY = RetryPolicy(max_retries=2, delay=1)
RECOMPUTED_BYTES_CHECK = "recomputed_bytes_match_stored"
# Inputs produced by an earlier range (or the gateway) appear once that run completes.
MISSING_INPUT_RETRY = RetryPolicy(max_retries=5, delay=10, backoff=Backoff.EXPONENTIAL)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return hex_str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _row(
    log: RawLog, status: str, contract: str, event: str, op: str, detail: Any
) -> dict[str, Any]:
    return {
        "block_number": log.block_number,
        "block_hash": hex_str(log.block_hash),
        "tx_hash": hex_str(log.tx_hash),
        "tx_index": log.tx_index,
        "log_index": log.log_index,
        "address": log.address,
        "topics": ",".join(hex_str(t) for t in log.topics),
        "data": hex_str(log.data),
        "status": status,
        "contract": contract,
        "event": event,
        "operator": op,
        "detail": json.dumps(detail, sort_keys=True),
    }


def events_table(report: DecodeReport) -> pd.DataFrame:
    """One row per log (decoded, unknown or malformed), raw log kept so decoding can be replayed."""
    rows = [
        _row(d.log, "decoded", d.contract, d.event, d.operator.name if d.operator else "",
             {k: _jsonable(v) for k, v in d.args.items()})
        for d in report.decoded
    ]  # fmt: skip
    rows += [_row(u.log, "unknown", "", "", "", {"reason": u.reason}) for u in report.unknown]
    rows += [
        _row(m.log, "malformed", "", m.event, "", {"error": m.error}) for m in report.malformed
    ]
    df = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    return df.sort_values(["block_number", "log_index"], kind="stable").reset_index(drop=True)


def raw_logs(df: pd.DataFrame) -> list[RawLog]:
    """The raw logs kept in an events table."""

    def unhex(s: str) -> bytes:
        return bytes.fromhex(s.removeprefix("0x"))

    return [
        RawLog(
            address=str(r.address),
            topics=tuple(unhex(t) for t in str(r.topics).split(",") if t),
            data=unhex(str(r.data)),
            block_number=int(r.block_number),
            block_hash=unhex(str(r.block_hash)),
            tx_hash=unhex(str(r.tx_hash)),
            tx_index=int(r.tx_index),
            log_index=int(r.log_index),
        )
        for r in df.itertuples(index=False)
    ]


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=RPC_RETRY,
    kinds={"python", "parquet"},
)
def host_events(
    context: AssetExecutionContext, chain: HostChainResource, store: StoreResource
) -> pd.DataFrame:
    """Executor and ACL logs of the range, decoded; unknown and malformed logs kept and counted."""
    rng = parse_range_key(context.partition_key)
    chain_id = chain.chain_id()
    before = chain.block_hash(rng.last)
    logs = chain.get_logs(rng.first, rng.last)
    after = chain.block_hash(rng.last)
    if before is None or before != after:
        raise RetryRequested(max_retries=3, seconds_to_wait=2)  # the range moved under us
    st = store.get()
    st.register_chain(
        HostChain(chain_id, chain.acl_address, chain.executor_address, int(chain.key_id))
    )
    report = decode_logs(logs, chain.executor_address, chain.acl_address)
    df = events_table(report)
    st.mark_range_processed(chain_id, rng.key, rng.first, rng.last, after)
    for m in report.malformed:
        context.log.warning(
            f"malformed {m.event} log {hex_str(m.log.tx_hash)}#{m.log.log_index}: {m.error}"
        )
    counts = report.counts()
    context.add_output_metadata(
        {
            "chain_id": chain_id,
            "first_block": rng.first,
            "last_block": rng.last,
            "last_block_hash": hex_str(after),
            "logs": len(df),
            "unknown": counts.pop("unknown"),
            "malformed": counts.pop("malformed"),
            "events": MetadataValue.json(dict(sorted(counts.items()))),
            "preview": preview(df[["block_number", "log_index", "status", "event", "operator"]]),
        }
    )
    return df


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=STORE_RETRY,
    kinds={"python", "sql"},
)
def fhe_computations(
    context: AssetExecutionContext,
    host_events: pd.DataFrame,
    chain: HostChainResource,
    store: StoreResource,
) -> pd.DataFrame:
    """Computation rows of SPEC §5 written to the store (idempotent), summarised as a table."""
    rng = parse_range_key(context.partition_key)
    decoded = host_events[host_events["status"] == "decoded"]
    report = decode_logs(raw_logs(decoded), chain.executor_address, chain.acl_address)
    if report.malformed or report.unknown:
        raise Failure(f"events table no longer decodes: {report.counts()}")
    rows = computations_from_events(report.decoded)
    allowed = allowed_handles(report.decoded)
    chain_id = chain.chain_id()
    write = store.get().write_range(chain_id, rng.key, rows, allowed)
    df = pd.DataFrame(
        [
            {
                "block_number": r.block_number,
                "tx_hash": hex_str(r.tx_hash),
                "log_index": r.log_index,
                "operator": Operator(r.opcode).name,
                "output_handle": hex_str(r.output_handle),
                "fhe_type": type_name(r.fhe_type),
                "dependencies": len(r.dependencies),
                "is_scalar": r.is_scalar,
                "is_allowed": r.is_allowed,
            }
            for r in rows
        ],
        columns=[
            "block_number", "tx_hash", "log_index", "operator", "output_handle", "fhe_type",
            "dependencies", "is_scalar", "is_allowed",
        ],
    )  # fmt: skip
    per_op = Counter(Operator(r.opcode).name for r in rows)
    context.add_output_metadata(
        {
            "computations": len(rows),
            "allowed": sum(r.is_allowed for r in rows),
            "allowed_handles": len({a.handle for a in allowed}),
            "transactions": len({r.tx_hash for r in rows}),
            "per_operator": MetadataValue.json(dict(sorted(per_op.items()))),
            "store_inserted": write.inserted,
            "store_updated": write.updated,
            "store_unchanged": write.unchanged,
            "store_removed": write.removed,
            "preview": preview(df.drop(columns=["tx_hash"])),
        }
    )
    return df


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=MISSING_INPUT_RETRY,
    deps=[fhe_computations],
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
    rng = parse_range_key(context.partition_key)
    chain_id = chain.chain_id()
    st = store.get()
    registered = st.get_chain(chain_id)
    key_id = registered.key_id if registered else int(chain.key_id)
    try:
        report, dag = evaluate_range(
            st, fhe.engine, rng.key, key_id, fhe.pool_size, chain_id=chain_id
        )
    except MissingInputsError as exc:
        context.add_output_metadata(_evaluation_metadata(exc.report))
        raise Failure(description=str(exc), metadata=_evaluation_metadata(exc.report)) from exc
    for handle, message in report.errors.items():
        context.log.error(f"computation {handle} failed: {message}")
    for handle, message in report.drift.items():
        context.log.error(f"recomputed {handle} differs from the stored ciphertext: {message}")
    df = pd.DataFrame(
        [
            {
                "output_handle": hex_str(key[0]),
                "tx_hash": hex_str(key[1]),
                "operator": node.row.operator.name,
                "fhe_type": type_name(node.row.fhe_type),
                "allowed": node.row.is_allowed,
                "error": report.errors.get(key[0].hex(), ""),
            }
            for key, node in dag.nodes.items()
        ],
        columns=["output_handle", "tx_hash", "operator", "fhe_type", "allowed", "error"],
    )
    yield Output(df, metadata=_evaluation_metadata(report))
    yield AssetCheckResult(
        check_name=RECOMPUTED_BYTES_CHECK,
        passed=not report.drift,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "differing_handles": len(report.drift),
            "differences": MetadataValue.md(
                "| handle | stored vs recomputed |\n|---|---|\n"
                + "".join(f"| 0x{h} | {m} |\n" for h, m in report.drift.items())
            ),
        },
    )


def _evaluation_metadata(report: RangeReport) -> dict[str, Any]:
    return {
        "evaluated": report.evaluated,
        "stored": report.stored,
        "pruned": report.pruned,
        "errors": len(report.errors),
        "error_messages": MetadataValue.json(report.errors),
        "missing_inputs": MetadataValue.json(report.missing),
        "operations": MetadataValue.json(dict(sorted(report.operations.items()))),
        "fhe_seconds": round(report.fhe_seconds, 3),
        "wall_seconds": round(report.wall_seconds, 3),
        "operations_per_second": round(report.operations_per_second, 3),
        "longest_chain": report.longest_chain,
        "recomputed_differing": len(report.drift),
    }
