"""Prometheus figures of the coprocessor, computed on scrape from what the runs leave behind.

Runs are separate processes (one per range), so no counter lives in memory: the store holds every
outcome (computations, squashes, digests, commits, proof requests) and the Dagster instance every
per-range figure; an exporter reads both on each scrape. Names follow the reference coprocessor's
(zama-ai/fhevm v0.14.0) where one exists; the rest are `fhevm_dagster_*`. No Dagster here: the
per-range figures and chain heads come in as plain values from the caller (`sources` reads them).

A counter only goes up, yet the store's row counts can fall (a reorg or a chain reset removes
rows, a failed commit is sent again): each counter adds the increases of its count between
scrapes. Counts that are states (ranges open, inputs waited for, bytes held) are gauges.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import ColumnElement, Connection, Table, case, distinct, func, or_, select

from ..settings import variable
from ..store import CommitState, ComputationStatus, ProofStatus, Store
from ..store import schema as s

#: reference name -> (store table, status value) of the counters derived from store states.
REFERENCE_COUNTERS: dict[str, tuple[str, str, str]] = {
    "coprocessor_work_items_processed": (
        "computations", ComputationStatus.DONE, "FHE computations done",
    ),
    "coprocessor_work_items_errors": (
        "computations", ComputationStatus.ERROR, "FHE computations that failed",
    ),
    "coprocessor_txn_sender_add_ciphertext_material_success_counter": (
        "commit_status", CommitState.CONFIRMED, "addCiphertextMaterial confirmed on the gateway",
    ),
    "coprocessor_txn_sender_add_ciphertext_material_fail_counter": (
        "commit_status", CommitState.FAILED, "addCiphertextMaterial that failed",
    ),
    "coprocessor_gw_listener_verify_proof_success_counter": (
        "proof_requests", ProofStatus.VERIFIED, "input proofs verified",
    ),
    "coprocessor_gw_listener_verify_proof_fail_counter": (
        "proof_requests", ProofStatus.REJECTED, "input proofs rejected",
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


def range_is_open() -> ColumnElement[bool]:
    """A range is open until a successful run (or its empty record) completed its current blocks:
    never completed, or its last-block hash changed since (a reorg)."""
    h = s.host_ranges
    return or_(
        h.c.completed_hash.is_(None),
        h.c.completed_hash != func.coalesce(h.c.processed_hash, h.c.requested_hash),
    )


def _how_many(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


#: Range states of `fhevm_dagster_ranges`: predicates, not a partition (an empty range is also
#: complete; a failing range stays open until a run of it succeeds; a waiting one may be either).
RANGE_STATES = ("complete", "open", "empty", "failing", "alerting", "waiting")


@dataclass
class ChainState:
    """One chain's ranges (host or gateway, by chain id) and what holds them up."""

    ranges: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RANGE_STATES, 0))
    max_failed_runs: int = 0
    inputs_waited_for: int = 0
    uncommittable: int = 0


def _chain_states(conn: Connection, alert_after: int) -> dict[int, ChainState]:
    h, w = s.host_ranges, s.range_waits
    out: dict[int, ChainState] = {}
    rows = conn.execute(
        select(
            h.c.chain_id,
            func.count(),
            _how_many(range_is_open()),
            _how_many(h.c.is_empty.is_(True)),
            _how_many(h.c.failed_runs > 0),
            _how_many(h.c.failed_runs >= alert_after),
            func.max(h.c.failed_runs),
        ).group_by(h.c.chain_id)
    )
    for chain_id, total, open_, empty, failing, alerting, most in rows:
        st = out.setdefault(int(chain_id), ChainState())
        st.ranges.update(
            complete=int(total) - int(open_),
            open=int(open_),
            empty=int(empty),
            failing=int(failing),
            alerting=int(alerting),
        )
        st.max_failed_runs = int(most or 0)
    waits = select(w.c.chain_id, func.count(), func.count(distinct(w.c.range_key)))
    for chain_id, handles, ranges in conn.execute(waits.group_by(w.c.chain_id)):
        st = out.setdefault(int(chain_id), ChainState())
        st.inputs_waited_for, st.ranges["waiting"] = int(handles), int(ranges)
    # From the (few) failed computations to the handles an ACL event allowed: such a handle has
    # no ciphertext and never will, so its digest can never be committed.
    a, c = s.allowed_handles, s.computations
    failed = (
        select(a.c.chain_id, func.count(distinct(a.c.handle)))
        .select_from(c.join(a, a.c.handle == c.c.output_handle))
        .where(c.c.status == str(ComputationStatus.ERROR))
        .group_by(a.c.chain_id)
    )
    for chain_id, n in conn.execute(failed):
        out.setdefault(int(chain_id), ChainState()).uncommittable = int(n)
    return out


@dataclass(frozen=True, slots=True)
class Ct128State:
    held: int
    purged: int
    held_bytes: int


def _ct128_state(conn: Connection) -> Ct128State:
    t = s.ciphertexts128
    held = t.c.purged_at.is_(None)
    row = conn.execute(
        select(
            _how_many(held),
            _how_many(t.c.purged_at.is_not(None)),
            func.coalesce(func.sum(case((held, func.length(t.c.ciphertext)), else_=0)), 0),
        )
    ).one()
    return Ct128State(int(row[0]), int(row[1]), int(row[2]))


def _deferred_proofs(conn: Connection) -> int:
    p = s.proof_requests
    query = select(func.count()).where(p.c.status == str(ProofStatus.PENDING), p.c.deferrals > 0)
    return int(conn.execute(query).scalar_one())


def _lease_overdue(conn: Connection, now: float) -> list[tuple[int, str, float]]:
    """(chain id, sender, seconds its holder is past the lease's expiry; 0 when free or in time):
    a holder that died keeps the lease until another process takes it over."""
    t = s.sender_leases
    rows = conn.execute(select(t.c.chain_id, t.c.sender, t.c.owner, t.c.expires_at))
    return [
        (int(chain_id), str(sender), max(now - expires, 0.0) if owner else 0.0)
        for chain_id, sender, owner, expires in rows
    ]


class _Monotone:
    """Counters from counts that may fall: each adds the rises of its count between scrapes
    (the first scrape starts it at the count). Scrapes may come from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._total: dict[str, float] = {}

    def __call__(self, name: str, count: float) -> float:
        with self._lock:
            last = self._last.get(name)
            rise = count if last is None else max(count - last, 0.0)
            self._last[name] = count
            self._total[name] = self._total.get(name, 0.0) + rise
            return self._total[name]


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


#: The setting named in the metrics' help.
_ALERT_AFTER = variable("redrive_alert_after")


class CoprocessorCollector(Collector):
    """Reads the store (and the caller's `inputs()`) on every scrape. `alert_after`: failed runs
    in a row that make a range alerting (`Settings.redrive_alert_after`)."""

    def __init__(self, store: Store, inputs: Callable[[], ScrapeInputs], alert_after: int) -> None:
        self.store, self.inputs, self.alert_after = store, inputs, alert_after
        self._monotone = _Monotone()

    def collect(self) -> Iterator[Metric]:
        counts = _status_counts(self.store)
        for name, (table, status, doc) in REFERENCE_COUNTERS.items():
            yield _counter(name, doc, self._monotone(name, counts.get(table, {}).get(status, 0)))
        name = "coprocessor_sns_worker_task_execute_success_counter"
        squashed = self._monotone(name, _count(self.store, s.ciphertexts128))
        yield _counter(name, "ct64s squashed", squashed)
        digests = _count(self.store, s.digests)
        confirmed = counts.get("commit_status", {}).get(CommitState.CONFIRMED, 0)
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
        yield from self._keeping_up()

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

    def _keeping_up(self) -> Iterator[Metric]:
        """Whether each chain keeps up, and what an operator must look at: ranges by state, the
        longest run of failures (alert on it), inputs waited for, allowed handles that can never
        be committed, deferred proofs, ct128 bytes held, leases a dead holder keeps."""
        with self.store.engine.connect() as conn:
            chains = _chain_states(conn, self.alert_after)
            ct128 = _ct128_state(conn)
            deferred = _deferred_proofs(conn)
            leases = _lease_overdue(conn, time.time())
        label = ["chain_id"]
        ranges = GaugeMetricFamily(
            "fhevm_dagster_ranges",
            "block ranges of each chain (host and gateway) by state: complete, open (no "
            "successful run of its current blocks), empty (no log: no run), failing (a failed "
            f"run since its last success), alerting ({_ALERT_AFTER} failed "
            "runs in a row), waiting (for inputs of other ranges); states overlap",
            labels=[*label, "state"],
        )
        most = GaugeMetricFamily(
            "fhevm_dagster_ranges_failed_runs_max",
            "most failed runs in a row of one range of the chain (re-drives go on)",
            labels=label,
        )
        waits = GaugeMetricFamily(
            "fhevm_dagster_inputs_waited_for",
            "handles that ranges of the chain wait for (range, handle): pending, not errors",
            labels=label,
        )
        lost = GaugeMetricFamily(
            "fhevm_dagster_allowed_handles_uncommittable",
            "allowed handles whose computation failed: no digest of them can ever be committed",
            labels=label,
        )
        for chain_id, st in sorted(chains.items()):
            for state in RANGE_STATES:
                ranges.add_metric([str(chain_id), state], st.ranges[state])
            most.add_metric([str(chain_id)], st.max_failed_runs)
            waits.add_metric([str(chain_id)], st.inputs_waited_for)
            lost.add_metric([str(chain_id)], st.uncommittable)
        yield from (ranges, most, waits, lost)
        yield GaugeMetricFamily(
            "fhevm_dagster_redrive_alert_after",
            f"failed runs in a row that make a range alerting ({_ALERT_AFTER})",
            value=self.alert_after,
        )
        yield GaugeMetricFamily(
            "fhevm_dagster_proof_requests_deferred",
            "pending input proofs deferred at least once by an internal failure",
            value=deferred,
        )
        g = GaugeMetricFamily(
            "fhevm_dagster_ciphertexts128",
            "ct128 rows: held (bytes in the store) or purged (committed, in the object store)",
            labels=["state"],
        )
        g.add_metric(["held"], ct128.held)
        g.add_metric(["purged"], ct128.purged)
        yield g
        yield GaugeMetricFamily(
            "fhevm_dagster_ciphertexts128_held_bytes",
            "bytes of the ct128s the store still holds (the disk they cost)",
            value=ct128.held_bytes,
        )
        g = GaugeMetricFamily(
            "fhevm_dagster_sender_lease_overdue_seconds",
            "seconds a gateway sender's nonce lease is held past its expiry (its holder died); "
            "0 when free or in time",
            labels=["chain_id", "sender"],
        )
        for chain_id, sender, overdue in leases:
            g.add_metric([str(chain_id), sender], overdue)
        yield g


def serve(
    store: Store,
    inputs: Callable[[], ScrapeInputs],
    host: str,
    port: int,
    alert_after: int,
) -> tuple[Any, threading.Thread]:
    """Starts the endpoint in a thread; returns (server, thread) so callers can stop it.
    `alert_after`: `Settings.redrive_alert_after`."""
    registry = CollectorRegistry()
    registry.register(CoprocessorCollector(store, inputs, alert_after))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread
