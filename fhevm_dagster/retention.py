"""Run history pruning: Dagster keeps every run and its event log forever, and has no setting to
stop it. A coprocessor runs a range job every few minutes per chain for months; its finished runs
older than `Settings.run_retention_days` go, through Dagster's own API (`delete_run`: the run
and its events, including the materializations it recorded), daily by `run_retention_sensor` and
on demand by `fhevm-dagster runs prune`.

The newest run of a range the store still has open (`host_ranges`: no successful run of its
current blocks) is kept, however old: it is the re-drive history of a failing range, what the
block sensor and the operator read. So is the newest successful run of every range: its events
hold the materializations the UI shows for the range's partition (a partition whose runs were
all deleted would read "missing", and a backfill of missing partitions would run it again).
A run's range is its `dagster/partition` tag on the chain of its job
(`host_<chain id>_range_job`, or `gateway_range_job` on the gateway's chain id).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRecord,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._time import get_current_datetime
from sqlalchemy import select

from .jobs import GATEWAY_RANGE_JOB
from .metrics import range_is_open
from .resources.chain import GatewayChainResource
from .resources.store import StoreResource
from .settings import variable
from .store import Store
from .store import schema as s

RETENTION = variable("run_retention_days")
PARTITION_TAG = "dagster/partition"
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
_HOST_JOB = re.compile(r"host_(\d+)_range_job")
#: Runs read per query.
PAGE = 100
#: Seconds of pruning per sensor tick: a tick must answer within Dagster's 60-s deadline.
TICK_BUDGET_S = 30.0
#: Ticks every 10 minutes; the day's pass starts at the first tick after 03:00 UTC and goes on,
#: tick after tick, until nothing is left to prune (a backlog), then waits for the next day.
TICK_INTERVAL_S = 600
PASS_HOUR_UTC = 3

Range = tuple[int, str]  # (chain id, partition key)


def range_of(record: RunRecord, gateway_chain_id: int) -> Range | None:
    """The range a run worked on, when it is a run of a range job."""
    run = record.dagster_run
    partition = run.tags.get(PARTITION_TAG)
    if partition is None:
        return None
    if run.job_name == GATEWAY_RANGE_JOB:
        return gateway_chain_id, partition
    host = _HOST_JOB.fullmatch(run.job_name)
    return (int(host.group(1)), partition) if host else None


def open_among(store: Store, ranges: Collection[Range]) -> set[Range]:
    """Which of `ranges` the store has open."""
    h = s.host_ranges
    by_chain: dict[int, list[str]] = {}
    for chain_id, key in ranges:
        by_chain.setdefault(chain_id, []).append(key)
    out: set[Range] = set()
    with store.engine.connect() as conn:
        for chain_id, keys in by_chain.items():
            query = select(h.c.partition_key).where(
                h.c.chain_id == chain_id, h.c.partition_key.in_(keys), range_is_open()
            )
            out.update((chain_id, key) for key in conn.execute(query).scalars())
    return out


@dataclass
class Pruned:
    """What a pass deleted (or would, in a dry run) and kept, and whether it reached the end."""

    deleted: list[RunRecord] = field(default_factory=list)
    kept: list[RunRecord] = field(default_factory=list)  # newest of open ranges, newest successes
    done: bool = False

    def summary(self, older_than_days: int, dry_run: bool = False) -> str:
        verb = "would delete" if dry_run else "deleted"
        more = "" if self.done else "; more next time"
        return (
            f"{verb} {len(self.deleted)} finished runs older than {older_than_days} days, kept "
            f"{len(self.kept)} (the newest run of a range still open, the newest success of "
            f"each range){more}"
        )


def _delete(instance: DagsterInstance, run_id: str) -> None:
    instance.delete_run(run_id)
    storage = instance.event_log_storage
    if isinstance(storage, SqliteEventLogStorage):
        # A SQLite instance keeps each run's events in a file of its own, which `delete_run`
        # empties but leaves (its pages unreclaimed): a file per run ever made, else.
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                os.unlink(storage.path_for_shard(run_id) + suffix)


def prune_runs(
    instance: DagsterInstance,
    is_open: Callable[[Collection[Range]], set[Range]],
    *,
    older_than_days: int,
    gateway_chain_id: int,
    dry_run: bool = False,
    deadline: float | None = None,
) -> Pruned:
    """Deletes finished runs last updated more than `older_than_days` ago, oldest first, except
    the newest run of each open range; stops at `deadline` (time.monotonic()) if given."""
    cutoff = get_current_datetime() - timedelta(days=older_than_days)
    old = RunsFilter(statuses=FINISHED, updated_before=cutoff)
    newest: dict[tuple[str, str], str | None] = {}
    newest_ok: dict[tuple[str, str], str | None] = {}
    out = Pruned()
    cursor: str | None = None  # the last run read that is still there: pages go on after it
    while True:
        page = instance.get_run_records(old, limit=PAGE, ascending=True, cursor=cursor)
        if not page:
            out.done = True
            return out
        ranges = {r.dagster_run.run_id: range_of(r, gateway_chain_id) for r in page}
        still_open = is_open({rng for rng in ranges.values() if rng is not None})
        for record in page:
            if deadline is not None and time.monotonic() >= deadline:
                return out
            run = record.dagster_run
            rng = ranges[run.run_id]
            if rng is not None and rng in still_open:
                key = (run.job_name, rng[1])
                if key not in newest:
                    latest = instance.get_run_records(
                        RunsFilter(job_name=run.job_name, tags={PARTITION_TAG: rng[1]}), limit=1
                    )
                    newest[key] = latest[0].dagster_run.run_id if latest else None
                if newest[key] == run.run_id:
                    out.kept.append(record)
                    cursor = run.run_id
                    continue
            if rng is not None and run.status is DagsterRunStatus.SUCCESS:
                key = (run.job_name, rng[1])
                if key not in newest_ok:
                    ok = instance.get_run_records(
                        RunsFilter(
                            job_name=run.job_name,
                            tags={PARTITION_TAG: rng[1]},
                            statuses=[DagsterRunStatus.SUCCESS],
                        ),
                        limit=1,
                    )
                    newest_ok[key] = ok[0].dagster_run.run_id if ok else None
                if newest_ok[key] == run.run_id:
                    out.kept.append(record)
                    cursor = run.run_id
                    continue
            if dry_run:
                cursor = run.run_id
            else:
                _delete(instance, run.run_id)
            out.deleted.append(record)


def run_retention_sensor(days: int) -> SensorDefinition:
    """The daily pruning sensor of runs older than `days` (`Settings.run_retention_days`; 0:
    every run is kept)."""
    kept = f"{days} days" if days > 0 else "ever (0: every run is kept)"

    @sensor(
        name="run_retention_sensor",
        minimum_interval_seconds=TICK_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Deletes finished runs older than {kept} ({RETENTION}) once a day "
        "(from 03:00 UTC, at most 30 s per tick), keeping the newest run of every open range and "
        "the newest successful run of every range.",
    )
    def _retention(
        context: SensorEvaluationContext, store: StoreResource, gateway: GatewayChainResource
    ) -> SensorResult:
        return retention_tick(context, days, store, gateway)

    return _retention


def retention_tick(
    context: SensorEvaluationContext, days: int, store: StoreResource, gateway: GatewayChainResource
) -> SensorResult:
    """The day's pruning pass; its cursor is the last day whose pass reached the end."""
    if days <= 0:
        return SensorResult(skip_reason=SkipReason(f"{RETENTION}=0: every run is kept"))
    now = get_current_datetime()
    today = now.date().isoformat()
    if context.cursor == today:
        why = f"today's pass is done; the next starts after {PASS_HOUR_UTC:02d}:00 UTC tomorrow"
        return SensorResult(skip_reason=SkipReason(why))
    if now.hour < PASS_HOUR_UTC:
        last = context.cursor or "never"
        why = f"today's pass starts after {PASS_HOUR_UTC:02d}:00 UTC (the last was done: {last})"
        return SensorResult(skip_reason=SkipReason(why))
    book = store.get()
    pruned = prune_runs(
        context.instance,
        lambda ranges: open_among(book, ranges),
        older_than_days=days,
        gateway_chain_id=gateway.chain_id,
        deadline=time.monotonic() + TICK_BUDGET_S,
    )
    cursor = today if pruned.done else context.cursor
    return SensorResult(skip_reason=SkipReason(pruned.summary(days)), cursor=cursor)
