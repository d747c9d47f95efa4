"""Prometheus figures of the coprocessor, computed on scrape from what the runs leave behind.

Runs are separate processes (one per range), so no counter lives in memory: the store holds every
outcome (computations, squashes, digests, commits, proof requests) and the Dagster instance every
per-range figure; an exporter reads both on each scrape. Names follow the reference coprocessor's
(zama-ai/fhevm v0.14.0) where one exists; the rest are `fhevm_dagster_*`. No Dagster here: the
per-range figures and chain heads come in as plain values from the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Table, func, select

from ..store import Store
from ..store import schema as s

#: reference name -> (store table, status value) of the counters derived from store states.
REFERENCE_COUNTERS: dict[str, tuple[str, str, str]] = {
    "coprocessor_work_items_processed": ("computations", "done", "FHE computations done"),
    "coprocessor_work_items_errors": ("computations", "error", "FHE computations that failed"),
    "coprocessor_txn_sender_add_ciphertext_material_success_counter": (
        "commit_status", "confirmed", "addCiphertextMaterial confirmed on the gateway",
    ),
    "coprocessor_txn_sender_add_ciphertext_material_fail_counter": (
        "commit_status", "failed", "addCiphertextMaterial that failed",
    ),
    "coprocessor_gw_listener_verify_proof_success_counter": (
        "proof_requests", "verified", "input proofs verified",
    ),
    "coprocessor_gw_listener_verify_proof_fail_counter": (
        "proof_requests", "rejected", "input proofs rejected",
    ),
}  # fmt: skip


def _status_counts(store: Store) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with store.engine.connect() as conn:
        for table in (s.computations, s.commit_status, s.proof_requests):
            rows = conn.execute(select(table.c.status, func.count()).group_by(table.c.status))
            out[table.name] = {str(status): int(n) for status, n in rows}
    return out


def _count(store: Store, table: Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _last_processed_block(store: Store, chain_id: int) -> int | None:
    t = s.host_ranges
    with store.engine.connect() as conn:
        value = conn.execute(
            select(func.max(t.c.last_block))
            .where(t.c.chain_id == chain_id)
            .where(t.c.processed_hash.is_not(None))
        ).scalar_one()
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class RangeFigure:
    """One numeric figure of a range's latest materialization (e.g. `ciphertexts` wall_seconds)
    of one host chain (`host_31337`)."""

    chain: str
    asset: str
    partition: str
    name: str
    value: float


@dataclass
class ScrapeInputs:
    """What the caller measured outside the store for this scrape."""

    host_heads: Mapping[int, int] = field(default_factory=dict)  # chain id -> head
    gateway_chain_id: int | None = None
    gateway_head: int | None = None
    gateway_last_block: int | None = None
    ranges: Sequence[RangeFigure] = ()
    uploads: Mapping[str, float] = field(default_factory=dict)  # uploaded, skipped, …
    errors: Mapping[str, str] = field(default_factory=dict)  # source -> why it is missing


def _counter(name: str, doc: str, value: float) -> Metric:
    """A counter under the reference's exact name: prometheus_client would append `_total` to a
    typed counter, and dashboards written for the reference query the bare name; untyped samples
    keep it and `rate()` works on them alike."""
    return UnknownMetricFamily(name, f"{doc} (counter)", value=value)


class CoprocessorCollector(Collector):
    """Reads the store (and the caller's `inputs()`) on every scrape."""

    def __init__(self, store: Store, inputs: Callable[[], ScrapeInputs]) -> None:
        self.store, self.inputs = store, inputs

    def collect(self) -> Iterator[Metric]:
        counts = _status_counts(self.store)
        for name, (table, status, doc) in REFERENCE_COUNTERS.items():
            yield _counter(name, doc, counts.get(table, {}).get(status, 0))
        squashed = _count(self.store, s.ciphertexts128)
        yield _counter(
            "coprocessor_sns_worker_task_execute_success_counter", "ct64s squashed", squashed
        )
        digests = _count(self.store, s.digests)
        confirmed = counts.get("commit_status", {}).get("confirmed", 0)
        g = GaugeMetricFamily(
            "coprocessor_add_ciphertext_material_unsent_gauge",
            "digests without a confirmed addCiphertextMaterial",
        )
        g.add_metric([], max(digests - confirmed, 0))
        yield g
        g = GaugeMetricFamily(
            "coprocessor_verify_proof_pending_gauge", "input proofs not answered yet"
        )
        g.add_metric([], counts.get("proof_requests", {}).get("pending", 0))
        yield g
        for table, by_status in sorted(counts.items()):
            g = GaugeMetricFamily(
                f"fhevm_dagster_{table}",
                f"rows of the store's {table} by status",
                labels=["status"],
            )
            for status, n in sorted(by_status.items()):
                g.add_metric([status], n)
            yield g

        inputs = self.inputs()
        if inputs.host_heads:
            g = GaugeMetricFamily(
                "fhevm_dagster_host_lag_blocks",
                "host chain head minus the last block of its last processed range",
                labels=["chain_id"],
            )
            for chain_id, head in sorted(inputs.host_heads.items()):
                done = _last_processed_block(self.store, chain_id)
                g.add_metric([str(chain_id)], head - (done if done is not None else -1))
            yield g
        if inputs.gateway_head is not None:
            g = GaugeMetricFamily(
                "fhevm_dagster_gateway_lag_blocks",
                "gateway chain head minus the last block of the last processed range",
            )
            done = inputs.gateway_last_block
            g.add_metric([], inputs.gateway_head - (done if done is not None else -1))
            yield g
        if inputs.uploads:
            for key, name, doc in (
                ("uploaded", "coprocessor_sns_worker_aws_upload_success_counter", "objects put"),
                (
                    "conflicts",
                    "coprocessor_sns_worker_aws_upload_failure_counter",
                    "uploads failed",
                ),
            ):
                yield _counter(name, doc, inputs.uploads.get(key, 0.0))
        by_name: dict[str, GaugeMetricFamily] = {}
        for f in inputs.ranges:
            metric = f"fhevm_dagster_range_{f.name}"
            if metric not in by_name:
                by_name[metric] = GaugeMetricFamily(
                    metric,
                    f"{f.name} of a range's latest materialization",
                    labels=["chain", "asset", "range"],
                )
            by_name[metric].add_metric([f.chain, f.asset, f.partition], f.value)
        yield from by_name.values()
        g = GaugeMetricFamily(
            "fhevm_dagster_scrape_source_up",
            "1 when a source answered this scrape",
            labels=["source"],
        )
        for source in ("host_rpc", "gateway_rpc", "dagster"):
            g.add_metric([source], 0.0 if source in inputs.errors else 1.0)
        yield g
