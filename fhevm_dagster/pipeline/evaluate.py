"""Evaluates the computations of one block range and stores its allowed results.

Re-running a range recomputes it and writes nothing new: TFHE operations and the seeded
re-randomization are deterministic, and stores are idempotent by handle. A recomputed result
whose bytes differ from the stored ones is never hidden: the report names it (drift), because the
stored bytes are the ones this coprocessor committed and others must agree with.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..compute.dag import NodeKey, RangeDag, build_dag
from ..compute.evaluate import (
    Ct64,
    EngineFactory,
    EvalResult,
    FheBackend,
    PlainBackend,
    run_dag,
)
from ..compute.oracle import Plain
from ..protocol.digests import ciphertext_digest
from ..protocol.handles import parse_handle
from ..protocol.types import FheType
from ..store import Ciphertext, ComputationStatus, Store, StoredComputation
from .errors import StepError
from .tables import hex_str, type_name

INPUT_INDEX_COMPUTED = 0xFF


@dataclass
class RangeReport:
    """What one evaluation did, for the asset's metadata."""

    range_key: str
    evaluated: int = 0
    stored: int = 0
    pruned: int = 0
    longest_chain: int = 0
    fhe_seconds: float = 0.0
    wall_seconds: float = 0.0
    operations: Counter[str] = field(default_factory=Counter)
    errors: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    drift: dict[str, str] = field(default_factory=dict)  # handle: stored vs recomputed digests
    peak_held: int = 0  # most results of the range held in memory at once

    @property
    def operations_per_second(self) -> float:
        return self.evaluated / self.wall_seconds if self.wall_seconds else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "stored": self.stored,
            "pruned": self.pruned,
            "errors": len(self.errors),
            "error_messages": self.errors,
            "missing_inputs": self.missing,
            "operations": dict(sorted(self.operations.items())),
            "fhe_seconds": round(self.fhe_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "operations_per_second": round(self.operations_per_second, 3),
            "longest_chain": self.longest_chain,
            "peak_held_ciphertexts": self.peak_held,
            "recomputed_differing": len(self.drift),
        }


class MissingInputsError(StepError):
    """Inputs of the range are not in the store yet: retry once their producers have run."""

    def __init__(self, range_key: str, missing: dict[bytes, str], report: RangeReport) -> None:
        self.range_key = range_key
        self.missing = missing
        self.report = report
        lines = [f"{h.hex()} ({where})" for h, where in sorted(missing.items())]
        super().__init__(
            f"range {range_key}: {len(missing)} input ciphertext(s) not in the store yet: "
            + "; ".join(lines),
            retryable=True,
            figures=report.figures(),
        )


def _failed_producers(store: Store, handles: Sequence[bytes]) -> dict[bytes, str]:
    """The missing handles whose producing computation failed for good, with why: waiting for
    them cannot help, so their consumers fail too instead of retrying the range."""
    return {
        c.output_handle: f"range {c.range_key}: {c.error_message or 'failed'}"
        for c in store.computations_by_output(handles)
        if c.status is ComputationStatus.ERROR
    }


def _producer_of(store: Store, handles: Sequence[bytes]) -> dict[bytes, str]:
    """Where each missing handle should come from, for the retry message."""
    producers = {c.output_handle: c.range_key for c in store.computations_by_output(handles)}
    out: dict[bytes, str] = {}
    for h in handles:
        if h in producers:
            out[h] = f"produced by range {producers[h]}, not evaluated yet"
        elif parse_handle(h).index != INPUT_INDEX_COMPUTED:
            out[h] = "a verified input: its gateway range has not stored it yet"
        else:
            out[h] = "produced by a range not ingested yet"
    return out


def _drift(results: Sequence[Ciphertext], stored: dict[bytes, Ciphertext]) -> dict[str, str]:
    """Recomputed results whose bytes differ from what the store already holds."""
    out: dict[str, str] = {}
    for r in results:
        before = stored.get(r.handle)
        if before is not None and before.ciphertext != r.ciphertext:
            out[r.handle.hex()] = (
                f"stored ct64 {ciphertext_digest(before.ciphertext).hex()}, "
                f"recomputed {ciphertext_digest(r.ciphertext).hex()}"
            )
    return out


def evaluate_range(
    store: Store,
    engine_of: EngineFactory,
    range_key: str,
    key_id: int,
    pool_size: int,
    chain_id: int,
    batch: int = 0,
) -> tuple[RangeReport, RangeDag]:
    """Evaluates the range, stores allowed results, records errors per computation.

    Results are stored `batch` at a time as they come, and inputs are read from the store when
    their consumer starts, so memory is bounded by `batch` rather than by the range (0: no
    bound; see `run_dag`). Raises `MissingInputsError` (after storing everything it could) when
    inputs from earlier ranges or the gateway are missing. `engine_of` is called only when there
    is work: a range without computations does not pay the key load.
    """
    started = time.perf_counter()
    rows = store.computations_of_range(range_key, chain_id=chain_id)
    dag = build_dag(rows)
    report = RangeReport(range_key, pruned=len(dag.pruned), longest_chain=dag.longest_chain())
    absent = store.missing_ciphertexts(sorted(dag.external))
    failed = _failed_producers(store, absent)
    missing = [h for h in absent if h not in failed]
    engine = engine_of() if dag.order else None

    def load(handles: Sequence[bytes]) -> dict[bytes, Ct64]:
        return {h: Ct64(c.ciphertext) for h, c in store.get_ciphertexts(handles).items()}

    def sink(values: list[tuple[NodeKey, Ct64]]) -> None:
        results = [
            Ciphertext(k[0], v.data, dag.nodes[k].row.fhe_type, key_id, "computed")
            for k, v in values
        ]
        stored = store.get_ciphertexts([r.handle for r in results])
        report.drift.update(_drift(results, stored))
        report.stored += store.store_results(results, [k for k, _ in values])

    result: EvalResult[Ct64] = (
        run_dag(dag, FheBackend(engine), load, sink, pool_size, failed, batch)
        if engine
        else EvalResult()
    )
    intermediates = [k for k in result.done if not dag.nodes[k].row.is_allowed]
    store.mark_errors([(h, tx, msg) for (h, tx), msg in result.errors.items()])
    store.store_results([], intermediates + dag.pruned)
    report.evaluated = len(result.done)
    report.peak_held = result.peak_held
    report.fhe_seconds = sum(result.op_seconds.values())
    report.errors = {k[0].hex(): msg for k, msg in result.errors.items()}
    for key in result.done:
        row = dag.nodes[key].row
        report.operations[f"{row.operator.name}:{FheType(row.fhe_type).name}"] += 1
    report.wall_seconds = time.perf_counter() - started
    if missing:
        where = _producer_of(store, missing)
        report.missing = {h.hex(): w for h, w in where.items()}
        raise MissingInputsError(range_key, where, report)
    return report, dag


def oracle_range(
    rows: Sequence[StoredComputation], inputs: dict[bytes, Plain]
) -> dict[bytes, Plain]:
    """The plaintext value of every allowed result of a range, given its external inputs.

    The reference of the tests and a debugging aid: decrypt the inputs (test keys), then compare
    each stored result's decryption with this.
    """
    dag = build_dag(rows)
    out: dict[bytes, Plain] = {}

    def keep(values: list[tuple[NodeKey, Plain]]) -> None:
        out.update((k[0], v) for k, v in values)

    run_dag(dag, PlainBackend(), lambda hs: {h: inputs[h] for h in hs if h in inputs}, keep, 1)
    return out


def evaluation_table(report: RangeReport, dag: RangeDag) -> pd.DataFrame:
    """One row per computation of the range's DAG, with its error if it failed."""
    return pd.DataFrame(
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
