"""Run retention on a real Dagster instance holding runs of several ages, ranges and chains: old
finished runs go (with their event-log files), except the newest run of a range the store has
open; the daily sensor prunes once a day from 03:00 UTC within its time budget; the CLI lists
before it deletes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    EventLogEntry,
    SensorResult,
    build_sensor_context,
    instance_for_test,
    job,
    op,
)
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.test_utils import freeze_time

from fhevm_dagster import retention
from fhevm_dagster.cli import main
from fhevm_dagster.resources.chain import GatewayChainResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.retention import open_among, prune_runs, run_retention_sensor
from fhevm_dagster.settings import load_settings
from fhevm_dagster.store import Store
from fhevm_dagster.store import schema as s

GATEWAY = 10901
DAY = 86400.0
R1, R2, R3 = "000000000000-000000000099", "000000000100-000000000199", "000000000200-000000000299"
R4 = "000000000300-000000000399"


@op
def noop() -> None:
    pass


@job(name="host_31337_range_job")
def host_31337() -> None:
    noop()


@job(name="gateway_range_job")
def gateway() -> None:
    noop()


@job(name="__ASSET_JOB")
def asset_job() -> None:
    noop()


def run(
    instance: DagsterInstance,
    job_def: object,
    partition: str | None,
    days_ago: float,
    end: DagsterEventType | None = DagsterEventType.RUN_SUCCESS,
) -> str:
    """A run that started and (unless `end` is None) ended `days_ago` days ago."""
    tags = {"dagster/partition": partition} if partition else {}
    r = instance.create_run_for_job(job_def, tags=tags)  # type: ignore[arg-type]
    at = time.time() - days_ago * DAY
    with freeze_time(at):  # Dagster stamps the run's update time with its clock
        for kind in (DagsterEventType.RUN_START, end):
            if kind is not None:
                event = DagsterEvent(kind.value, r.job_name)
                instance.handle_new_event(
                    EventLogEntry(None, logging.DEBUG, "", r.run_id, at, dagster_event=event)
                )
    return r.run_id


def open_range(store: Store, chain_id: int, key: str, completed: bool = False) -> None:
    """A range of `chain_id` the store has open (or complete)."""
    h = b"\x01" * 32
    with store.writer.begin() as conn:
        conn.execute(
            s.host_ranges.insert().values(
                chain_id=chain_id,
                partition_key=key,
                first_block=int(key[:12]),
                last_block=int(key[13:]),
                requested_hash=h,
                completed_hash=h if completed else None,
                failed_runs=0 if completed else 3,
            )
        )


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store.open(f"sqlite:///{tmp_path}/store.sqlite")
    yield st
    st.dispose()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    path = tmp_path / "dagster_home"
    path.mkdir()
    return path


@pytest.fixture()
def instance(home: Path) -> Iterator[DagsterInstance]:
    with instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def history(instance: DagsterInstance, store: Store) -> dict[str, str]:
    """Runs of every kind and age; name -> run id."""
    open_range(store, 31337, R1, completed=True)
    open_range(store, 31338, R1)  # the same key open on another chain: not R1 of 31337
    open_range(store, 31337, R2)
    open_range(store, 31337, R3)
    open_range(store, GATEWAY, R1)
    failure, canceled = DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED
    return {
        "complete_old": run(instance, host_31337, R1, 40),
        "open_older": run(instance, host_31337, R2, 50, failure),
        "open_newest": run(instance, host_31337, R2, 45, failure),
        "open_redriven_old": run(instance, host_31337, R3, 40, failure),
        "open_redriven_new": run(instance, host_31337, R3, 1, failure),
        "gateway_open_newest": run(instance, gateway, R1, 40, failure),
        "young": run(instance, host_31337, R1, 5),
        "stuck_started": run(instance, host_31337, R1, 40, None),
        "asset_job_old": run(instance, asset_job, None, 60, canceled),
        # A range done long ago: its one success holds the partition's materializations.
        "complete_only_success": run(instance, host_31337, R4, 90),
    }


GONE = {"complete_old", "open_older", "open_redriven_old", "asset_job_old"}


def remaining(instance: DagsterInstance, runs: dict[str, str]) -> set[str]:
    return {name for name, run_id in runs.items() if instance.has_run(run_id)}


def test_prune_keeps_young_unfinished_and_open_ranges_newest(
    instance: DagsterInstance, store: Store
) -> None:
    runs = history(instance, store)
    storage = instance.event_log_storage
    assert isinstance(storage, SqliteEventLogStorage)
    shards = {name: Path(storage.path_for_shard(run_id)) for name, run_id in runs.items()}
    assert all(p.exists() for p in shards.values())

    def is_open(ranges: object) -> set[tuple[int, str]]:
        return open_among(store, ranges)  # type: ignore[arg-type]

    dry = prune_runs(instance, is_open, older_than_days=30, gateway_chain_id=GATEWAY, dry_run=True)
    assert remaining(instance, runs) == set(runs)
    by_id = {v: k for k, v in runs.items()}
    assert {by_id[r.dagster_run.run_id] for r in dry.deleted} == GONE
    kept = {by_id[r.dagster_run.run_id] for r in dry.kept}
    assert kept == {"open_newest", "gateway_open_newest", "complete_only_success"} and dry.done

    pruned = prune_runs(instance, is_open, older_than_days=30, gateway_chain_id=GATEWAY)
    assert {by_id[r.dagster_run.run_id] for r in pruned.deleted} == GONE and pruned.done
    assert remaining(instance, runs) == set(runs) - GONE
    assert {n for n, p in shards.items() if not p.exists()} == GONE  # event-log files too
    # Again: nothing left to prune, the open ranges' newest runs still kept.
    again = prune_runs(instance, is_open, older_than_days=30, gateway_chain_id=GATEWAY)
    assert (len(again.deleted), len(again.kept), again.done) == (0, 3, True)


def tick(
    instance: DagsterInstance, store: Store, at: datetime, cursor: str | None, days: int = 30
) -> SensorResult:
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "store": StoreResource(database_url=str(store.engine.url)),
            "gateway": GatewayChainResource(chain_id=GATEWAY, rpc_url="http://127.0.0.1:9"),
        },
    )
    with freeze_time(at):
        result = run_retention_sensor(days)(context)
    assert isinstance(result, SensorResult)
    return result


def reason(result: SensorResult) -> str:
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


def test_the_sensor_prunes_once_a_day_off_peak_within_its_budget(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = DagsterInstance.ephemeral()  # in memory: no event-log file per run, 20x faster
    runs = history(instance, store)
    now = datetime.now(UTC)
    night, morning = now.replace(hour=1), now.replace(hour=3, minute=5)
    today = morning.date().isoformat()

    result = tick(instance, store, night, None)
    assert reason(result).startswith("today's pass starts after 03:00 UTC")
    assert remaining(instance, runs) == set(runs)

    monkeypatch.setattr(retention, "TICK_BUDGET_S", 0.0)  # out of time: the next tick goes on
    result = tick(instance, store, morning, None)
    assert "more next time" in reason(result) and result.cursor is None
    assert remaining(instance, runs) == set(runs)
    monkeypatch.undo()

    result = tick(instance, store, morning, None)
    assert reason(result).startswith("deleted 4 finished runs older than 30 days")
    assert result.cursor == today
    assert remaining(instance, runs) == set(runs) - GONE

    late = run(instance, host_31337, R1, 31)
    result = tick(instance, store, morning.replace(hour=22), today)
    assert reason(result).startswith("today's pass is done") and instance.has_run(late)

    monkeypatch.setenv("FHEVM_DAGSTER_RUN_RETENTION_DAYS", "0")
    result = tick(instance, store, morning, None, load_settings().run_retention_days)
    assert "every run is kept" in reason(result) and instance.has_run(late)


def test_runs_prune_cli(
    instance: DagsterInstance,
    store: Store,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On `$DAGSTER_HOME`'s instance and the configured store and gateway chain."""
    open_range(store, 31337, R1, completed=True)
    open_range(store, GATEWAY, R1)
    complete = run(instance, host_31337, R1, 40)
    newest_success = run(instance, host_31337, R1, 35)  # R1's materializations: kept
    kept = run(instance, gateway, R1, 40, DagsterEventType.RUN_FAILURE)
    oldest = run(instance, asset_job, None, 60, DagsterEventType.RUN_CANCELED)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("FHEVM_DAGSTER_DATABASE_URL", str(store.engine.url))
    monkeypatch.setenv("FHEVM_DAGSTER_GATEWAY_CHAIN_ID", str(GATEWAY))

    assert main(["runs", "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(instance.has_run(r) for r in (complete, kept, oldest))
    assert sorted(line.split()[1] for line in out if line.startswith("delete ")) == sorted(
        [complete, oldest]
    )
    assert f"keep {kept} gateway_range_job {R1} FAILURE" in "\n".join(out)
    assert f"keep {newest_success} host_31337_range_job {R1} SUCCESS" in "\n".join(out)
    assert out[-1].startswith("would delete 2 finished runs older than 30 days, kept 2")

    assert main(["runs", "prune", "--older-than-days", "50"]) == 0
    assert not instance.has_run(oldest) and instance.has_run(complete)
    assert main(["runs", "prune"]) == 0
    assert "deleted 1 finished runs older than 30 days" in capsys.readouterr().out
    assert not instance.has_run(complete) and instance.has_run(kept)
    assert instance.has_run(newest_success)


def test_open_among_both_backends(store_url: str) -> None:
    st = Store.open(store_url)
    open_range(st, 31337, R1)
    open_range(st, 31337, R2, completed=True)
    open_range(st, GATEWAY, R1)
    asked = {(31337, R1), (31337, R2), (31337, R3), (31338, R1), (GATEWAY, R1)}
    assert open_among(st, asked) == {(31337, R1), (GATEWAY, R1)}
    st.dispose()
