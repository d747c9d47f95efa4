"""Evaluates the computations of one block range and stores its allowed results.

A retry or re-run computes only what is not stored yet: a stored result is final (its digests may
already be committed), so it is read back, not recomputed. A determinism check (`recompute`)
evaluates everything again and writes nothing new: TFHE operations and the seeded
re-randomization are deterministic, and stores are idempotent by handle. A recomputed result
whose bytes differ from the stored ones is never hidden: the report names it (drift), because the
stored bytes are the ones this coprocessor committed and others must agree with.

With `squash`, each allowed result is squashed (SPEC §7) as soon as it is stored, on the same
`pool_size` threads as the evaluation, so the range's squash overlaps its evaluation instead of
following it, and the FHE work of a range never runs on more threads than configured.

Every reader of the same ct64 in the range, operations and squashes alike, shares one
decompression (`OperandCache`, issue #29): the scheduler announces each value's pending readers,
the value is let go after the last one, and at most `batch` decompressed values are held.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from ..compute.dag import NodeKey, RangeDag, build_dag, without_stored
from ..compute.evaluate import Ct64, FheBackend, PlainBackend
from ..compute.operand_cache import CacheStats, OperandCache, ct64_key
from ..compute.oracle import Plain
from ..compute.scheduler import EvalResult, run_dag
from ..compute.sns import SquashPipe, SquashReport
from ..protocol.digests import ciphertext_digest
from ..protocol.handles import parse_handle
from ..protocol.types import FheType
from ..store import Ciphertext, ComputationStatus, StoredComputation
from .block_ranges import BlockRange
from .errors import StepError
from .ports import Ct64Absence, Ct128Absence, ProducerBook
from .range_job import RangeJob
from .squash import SquashIO
from .step_report import CheckResult, StepReport
from .tables import hex_str, type_name

INPUT_INDEX_COMPUTED = 0xFF


class OutcomeBook(Protocol):
    """What recording an evaluation's outcome needs of the store: results, errors, waits."""

    def store_results(
        self, ciphertexts: Sequence[Ciphertext], done: Sequence[tuple[bytes, bytes]]
    ) -> int: ...

    def mark_errors(self, errors: Sequence[tuple[bytes, bytes, str]]) -> None: ...

    def mark_waiting(
        self,
        chain_id: int,
        range_key: str,
        waiting: Sequence[tuple[bytes, bytes, str]],
        inputs: Mapping[bytes, str],
    ) -> None: ...


class EvaluateBook(OutcomeBook, Ct64Absence, ProducerBook, SquashIO, Ct128Absence, Protocol):
    """What `evaluate_range` needs of the store: the range's computations, which operands are
    stored (and who produces the others), the operands' bytes, and where results and their
    squashes go."""

    def computations_of_range(
        self,
        range_key: str,
        statuses: Iterable[ComputationStatus] | None = None,
        *,
        chain_id: int,
    ) -> list[StoredComputation]: ...


@dataclass
class RangeReport:
    """What one evaluation did, for the asset's metadata."""

    rng: BlockRange
    evaluated: int = 0
    stored: int = 0
    pruned: int = 0
    skipped: set[NodeKey] = field(default_factory=set)  # not evaluated: results stored before
    compared: int = 0  # recomputed results compared with stored bytes (determinism check)
    longest_chain: int = 0
    fhe_seconds: float = 0.0
    wall_seconds: float = 0.0
    operations: Counter[str] = field(default_factory=Counter)
    errors: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # inputs not stored yet: where from
    waiting: dict[str, str] = field(default_factory=dict)  # computations pending on those
    drift: dict[str, str] = field(default_factory=dict)  # handle: stored vs recomputed digests
    peak_held: int = 0  # most results of the range held in memory at once
    squash: SquashReport = field(default_factory=SquashReport)  # its ct128 stay empty
    squash_stored: int = 0
    operands: CacheStats = field(default_factory=CacheStats)  # decompressions, reuse

    @property
    def operations_per_second(self) -> float:
        return self.evaluated / self.wall_seconds if self.wall_seconds else 0.0

    def figures(self) -> dict[str, Any]:
        return {
            "evaluated": self.evaluated,
            "stored": self.stored,
            "pruned": self.pruned,
            "skipped_stored": len(self.skipped),
            "compared_with_stored": self.compared,
            "errors": len(self.errors),
            "error_messages": self.errors,
            "missing_inputs": self.missing,
            "waiting": len(self.waiting),
            "operations": dict(sorted(self.operations.items())),
            "fhe_seconds": round(self.fhe_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "operations_per_second": round(self.operations_per_second, 3),
            "longest_chain": self.longest_chain,
            "peak_held_ciphertexts": self.peak_held,
            "recomputed_differing": len(self.drift),
            "squashed": len(self.squash.seconds) - len(self.squash.errors),
            "squash_errors": {h.hex(): e for h, e in self.squash.errors.items()},
            "squash_seconds": round(sum(self.squash.seconds.values()), 3),
            "decompressions": self.operands.decompressions,
            "decompressions_reused": self.operands.reused,
            "decompressed_peak_held": self.operands.peak_held,
        }


class MissingInputsError(StepError):
    """Inputs of the range are not in the store yet: retry once their producers have run. The
    computations reading them are pending, never errors: nothing about them is final."""

    def __init__(self, rng: BlockRange, missing: dict[bytes, str], report: RangeReport) -> None:
        self.rng = rng
        self.missing = missing
        self.report = report
        lines = [f"{h.hex()} ({where})" for h, where in sorted(missing.items())]
        super().__init__(
            f"range {rng.key}: {len(missing)} input ciphertext(s) not in the store yet: "
            + "; ".join(lines),
            retryable=True,
            figures=report.figures(),
        )


def _failed_producers(store: ProducerBook, handles: Sequence[bytes]) -> dict[bytes, str]:
    """The missing handles whose producing computation failed for good (a deterministic failure:
    nothing transient is ever recorded as an error), with why: waiting for them cannot help, so
    their consumers fail too instead of retrying the range."""
    return {
        c.output_handle: f"range {c.range_key}: {c.error_message or 'failed'}"
        for c in store.computations_by_output(handles)
        if c.status is ComputationStatus.ERROR
    }


def _producer_of(store: ProducerBook, handles: Sequence[bytes]) -> dict[bytes, str]:
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


RECOMPUTED_BYTES_CHECK = "recomputed_bytes_match_stored"


def evaluate_range(job: RangeJob[EvaluateBook]) -> StepReport[RangeReport]:
    """Evaluates what the range has not stored yet, stores allowed results, records errors per
    computation; with `job.recompute`, everything, comparing with what is stored (the check
    `recomputed_bytes_match_stored`); with `job.squash_during_evaluation`, stores the ct128 of
    each new allowed result too, squashed while evaluation goes on.

    Results are stored `job.batch` at a time as they come, and inputs are read from the store
    when their consumer starts, so memory is bounded by the batch rather than by the range (0: no
    bound; see `run_dag`). Inputs from earlier ranges or the gateway that are not stored yet
    leave their consumers pending (recorded with why, and the handles as the range's waits), and
    `MissingInputsError` is raised after everything else was stored. The engine is loaded only
    when there is work: a range without computations does not pay the key load.
    `job.reuse_operands=False` announces no readers, so every read decompresses, as the
    reference does (a switch for benchmarks; the figures count decompressions either way).
    """
    report, dag = _evaluate(job)
    out: StepReport[RangeReport] = StepReport(
        {**report.figures(), "fhe_device": job.device}, evaluation_table(report, dag), detail=report
    )
    for handle, message in report.errors.items():
        out.note("error", f"computation {handle} failed: {message}")
    for h, message in report.squash.errors.items():
        out.note("warning", f"squashing {h.hex()} failed ({message}): sns retries it")
    for handle, message in report.drift.items():
        out.note("error", f"recomputed {handle} differs from the stored ciphertext: {message}")
    metadata = {
        "compared_handles": report.compared,
        "differing_handles": len(report.drift),
        "differences": report.drift,
    }
    out.checks.append(CheckResult(RECOMPUTED_BYTES_CHECK, not report.drift, metadata))
    return out


def _evaluate(job: RangeJob[EvaluateBook]) -> tuple[RangeReport, RangeDag]:
    """The range evaluated: what it did and its whole DAG (see `evaluate_range`)."""
    started = time.perf_counter()
    store, chain, batch = job.store, job.host_chain, job.batch
    rows = store.computations_of_range(job.rng.key, chain_id=chain.chain_id)
    full = dag = build_dag(rows)
    report = RangeReport(job.rng, pruned=len(dag.pruned), longest_chain=dag.longest_chain())
    skipped: list[NodeKey] = []
    if not job.recompute:
        allowed = [k[0] for k in dag.order if dag.nodes[k].row.is_allowed]
        stored = set(allowed) - set(store.missing_ciphertexts(allowed))
        dag, skipped = without_stored(dag, stored)
        report.skipped = set(skipped)
    absent = store.missing_ciphertexts(sorted(dag.external))
    failed = _failed_producers(store, absent)
    where = _producer_of(store, [h for h in absent if h not in failed])
    engine = job.engine() if dag.order else None
    cache = OperandCache(engine.decompress, batch) if engine else None

    def load(handles: Sequence[bytes]) -> dict[bytes, Ct64]:
        return {h: Ct64(c.ciphertext) for h, c in store.get_ciphertexts(handles).items()}

    def put_ct128(items: list[tuple[bytes, bytes]]) -> None:
        report.squash_stored += store.put_ciphertexts128(items)

    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(
            ThreadPoolExecutor(max(1, job.threads), thread_name_prefix="fhe")
        )
        pipe = (
            stack.enter_context(SquashPipe(engine, pool, put_ct128, limit=batch, cache=cache))
            if engine and job.squash_during_evaluation
            else None
        )

        def sink(values: list[tuple[NodeKey, Ct64]]) -> None:
            results = [
                Ciphertext(k[0], v.data, dag.nodes[k].row.fhe_type, chain.key_id, "computed")
                for k, v in values
            ]
            stored = store.get_ciphertexts([r.handle for r in results])
            report.compared += sum(1 for r in results if r.handle in stored)
            report.drift.update(_drift(results, stored))
            report.stored += store.store_results(results, [k for k, _ in values])
            if pipe is not None:
                todo = set(store.missing_ciphertexts128([r.handle for r in results]))
                pipe.submit([(r.handle, r.ciphertext) for r in results if r.handle in todo])
                for r in results:
                    if cache is not None and r.handle not in todo:
                        cache.forgo(ct64_key(r.ciphertext), 1)  # its announced squash read

        backend = FheBackend(engine, cache) if engine else None
        result: EvalResult[Ct64] = EvalResult()
        if backend is not None:
            readers = backend if job.reuse_operands else None
            sink_reads = 1 if pipe is not None else 0
            result = run_dag(
                dag,
                backend,
                load,
                sink,
                job.threads,
                failed,
                batch,
                pool,
                where,
                readers,
                sink_reads,
            )
        if pipe is not None:
            report.squash = pipe.close()
        if cache is not None:
            cache.clear()
            report.operands = cache.stats
    _record(job, dag, skipped, result, report)
    report.wall_seconds = time.perf_counter() - started
    if result.waited_for:
        report.missing = {h.hex(): w for h, w in result.waited_for.items()}
        raise MissingInputsError(job.rng, result.waited_for, report)
    return report, full


def _record(
    job: RangeJob[OutcomeBook],
    dag: RangeDag,
    skipped: list[NodeKey],
    result: EvalResult[Ct64],
    report: RangeReport,
) -> None:
    """The evaluation's outcome in the store (errors, waits, what is done) and in the report."""
    store = job.store
    intermediates = [k for k in result.done if not dag.nodes[k].row.is_allowed]
    store.mark_errors([(h, tx, msg) for (h, tx), msg in result.errors.items()])
    store.mark_waiting(
        job.host_chain.chain_id,
        job.rng.key,
        [(h, tx, msg) for (h, tx), msg in result.waiting.items()],
        result.waited_for,
    )
    store.store_results([], intermediates + dag.pruned + skipped)
    report.evaluated = len(result.done)
    report.peak_held = result.peak_held
    report.fhe_seconds = sum(result.op_seconds.values())
    report.errors = {k[0].hex(): msg for k, msg in result.errors.items()}
    report.waiting = {k[0].hex(): msg for k, msg in result.waiting.items()}
    for key in result.done:
        row = dag.nodes[key].row
        report.operations[f"{row.operator.name}:{FheType(row.fhe_type).name}"] += 1


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


EVALUATION_COLUMNS = [
    "output_handle", "tx_hash", "operator", "fhe_type", "allowed", "evaluated", "error",
]  # fmt: skip


def evaluation_table(report: RangeReport, dag: RangeDag) -> pd.DataFrame:
    """One row per computation of the range's DAG: its error if it failed, and whether this run
    evaluated it (or read its stored result)."""
    return pd.DataFrame(
        [
            {
                "output_handle": hex_str(key[0]),
                "tx_hash": hex_str(key[1]),
                "operator": node.row.operator.name,
                "fhe_type": type_name(node.row.fhe_type),
                "allowed": node.row.is_allowed,
                "evaluated": key not in report.skipped,
                "error": report.errors.get(key[0].hex(), ""),
            }
            for key, node in dag.nodes.items()
        ],
        columns=EVALUATION_COLUMNS,
    )
