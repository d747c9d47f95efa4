"""Block-to-commit latency figures for `benchmarks/latency.py`: per transfer, where its time went
(from block timestamps and the Dagster instance's run records), and the tables over them.

A transfer's latency is the gateway block timestamp of the last of its allowed handles' commits
minus its host block's timestamp (both anvils stamp blocks with this machine's clock, in whole
seconds). Its host range's runs split that time into: `fill` (its range's last block after its
block), `pickup` (the range's first run requested by the sensor after that), `queue` (the run that
succeeded was launched after that request: waiting for one of dagster.yaml's 2 run slots, and
failed runs if any), `startup` (that run started after its launch: process start, code load) and
`commit` (the last commit's block after that run started).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

PARTS = ("fill", "pickup", "queue", "startup", "commit")
#: The steps of a host range run, in order (asset checks left out: a tenth of a second each).
STEPS = (
    "host_ingest", "ciphertexts", "sns_ciphertexts", "ciphertext_digests", "digest_commits",
    "ciphertext_objects",
)  # fmt: skip


@dataclass
class Transfer:
    """One timed transfer: where it landed, what it allowed, when that was committed."""

    block: int
    block_ts: int
    handles: list[bytes]
    committed_ts: dict[bytes, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return set(self.handles) <= set(self.committed_ts)

    @property
    def commit_ts(self) -> int:
        return max(self.committed_ts[h] for h in self.handles)

    @property
    def latency(self) -> float:
        return float(self.commit_ts - self.block_ts)


@dataclass(frozen=True)
class Breakdown:
    parts: dict[str, float]
    run_seconds: float
    runs: int
    steps: dict[str, float]


def range_key(block: int, size: int) -> str:
    first = block // size * size
    return f"{first:012d}-{first + size - 1:012d}"


def _ts(value: datetime) -> float:
    """Run record timestamps are UTC, naive in SQLite storage."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds per step of a run (last start to success, so a retried step counts its last try)."""
    kinds = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
    started: dict[str, float] = {}
    out: dict[str, float] = {}
    for e in instance.all_logs(run_id, of_type=kinds):
        if not e.step_key or e.dagster_event is None:
            continue
        step = e.step_key.rsplit("__", 1)[-1]
        if step not in STEPS:
            continue
        if e.dagster_event.event_type == DagsterEventType.STEP_START:
            started[step] = e.timestamp
        elif step in started:
            out[step] = e.timestamp - started[step]
    return out


def breakdown(
    instance: DagsterInstance, job: str, t: Transfer, size: int, range_end_ts: int
) -> Breakdown | None:
    """Where `t`'s latency went, from its host range's runs; None without a successful run."""
    key = range_key(t.block, size)
    records = list(instance.get_run_records(
        RunsFilter(job_name=job, tags={"dagster/partition": key}), ascending=True
    ))  # fmt: skip
    ok = [r for r in records if r.dagster_run.status == DagsterRunStatus.SUCCESS]
    if not records or not ok or ok[0].start_time is None or ok[0].end_time is None:
        return None
    run = ok[0]
    requested = _ts(records[0].create_timestamp)
    assert run.start_time is not None and run.end_time is not None
    launched = [
        e.timestamp
        for e in instance.all_logs(run.dagster_run.run_id, of_type=DagsterEventType.RUN_STARTING)
    ]
    left_queue = launched[-1] if launched else requested
    parts = {
        "fill": float(range_end_ts - t.block_ts),
        "pickup": requested - range_end_ts,
        "queue": left_queue - requested,
        "startup": run.start_time - left_queue,
        "commit": t.commit_ts - run.start_time,
    }
    steps = step_seconds(instance, run.dagster_run.run_id)
    return Breakdown(parts, run.end_time - run.start_time, len(records), steps)


def quantile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (q in 0..1)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(frozen=True)
class SizeResult:
    """One range size's figures."""

    size: int
    sent: int
    latencies: list[float]
    breakdowns: list[Breakdown]
    runs_host: int
    runs_gateway: int
    wall_s: float
    load: tuple[str, str]

    def row(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            figures = "- | - | -"
        else:
            figures = f"{quantile(lat, 0.5):.0f} s | {quantile(lat, 0.95):.0f} s | {lat[-1]:.0f} s"
        parts = " | ".join(f"{median([b.parts[p] for b in self.breakdowns]):.0f} s" for p in PARTS)
        run_s = median([b.run_seconds for b in self.breakdowns])
        runs = median([float(b.runs) for b in self.breakdowns])
        return (
            f"| {self.size} | {len(lat)}/{self.sent} | {figures} | {parts} | {run_s:.0f} s "
            f"| {runs:.0f} | {self.runs_host} / {self.runs_gateway} |"
        )


HEADER = (
    "| range size | measured | p50 | p95 | max | fill p50 | pickup p50 | queue p50 | startup p50 "
    "| run→commit p50 | run p50 | runs/range p50 | host / gateway runs |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def steps_table(results: Sequence[SizeResult]) -> str:
    """Median seconds per step of the transfers' successful host runs, one row per size."""
    names = [s for s in STEPS if any(s in b.steps for r in results for b in r.breakdowns)]
    lines = [
        "| range size | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for r in results:
        cells = [median([b.steps[s] for b in r.breakdowns if s in b.steps]) for s in names]
        lines.append(f"| {r.size} | " + " | ".join(f"{c:.1f} s" for c in cells) + " |")
    return "\n".join(lines)


def recommend(results: Sequence[SizeResult], current: str) -> str:
    """The size with the lowest p95 among those that committed every transfer."""
    full = [r for r in results if r.latencies and len(r.latencies) == r.sent]
    if not full:
        return f"recommendation: none (no size committed every transfer); Makefile has {current}"
    best = min(full, key=lambda r: quantile(sorted(r.latencies), 0.95))
    p95 = quantile(sorted(best.latencies), 0.95)
    return (
        f"recommendation: RANGE_SIZE={best.size} (lowest p95, {p95:.0f} s, with every transfer "
        f"committed); the Makefile has RANGE_SIZE={current}"
    )


def as_dict(r: SizeResult) -> dict[str, Any]:
    """JSON-friendly figures of one size (written beside the run's logs)."""
    return {
        "size": r.size,
        "sent": r.sent,
        "latencies": r.latencies,
        "breakdowns": [b.__dict__ for b in r.breakdowns],
        "runs_host": r.runs_host,
        "runs_gateway": r.runs_gateway,
        "wall_s": r.wall_s,
        "load": r.load,
    }
