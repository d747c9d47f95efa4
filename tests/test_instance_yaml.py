"""The shipped Dagster instance files load on the installed Dagster, with run monitoring on
(start and cancel timeouts; it enforces `dagster/max_runtime`), the run launcher that lets it
check run workers (a dead one's run fails within a poll interval), and run retries off (web3
retries RPC requests, retry policies retry steps, the block sensors re-drive failed ranges)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.scheduler.instigation import TickStatus
from sqlalchemy.engine import make_url

from fhevm_dagster.launcher import LocalWorkerRunLauncher
from fhevm_dagster.pipeline.run_keys import RANGE_TAG

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "dagster.yaml"
POSTGRES = ROOT / "deploy" / "dagster-postgres.yaml"
PG_ENV = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


def home_with(path: Path, tmp_path: Path) -> Path:
    shutil.copy(path, tmp_path / "dagster.yaml")
    return tmp_path


@pytest.mark.parametrize("path", [LOCAL, POSTGRES], ids=["local", "postgres"])
def test_instance_file_validates(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PG_ENV:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    config, _ = dagster_instance_config(str(home_with(path, tmp_path)))  # raises when invalid
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0
    # A dead run worker is found within a minute (not at the run's maximum runtime, an hour),
    # and its run failed, not resumed: the launcher cannot resume one; the sensor re-drives it.
    assert 0 < monitoring["poll_interval_seconds"] <= 60
    assert monitoring["max_resume_run_attempts"] == 0
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == (
        "fhevm_dagster.launcher",
        "LocalWorkerRunLauncher",
    )
    assert config["run_retries"]["enabled"] is False
    # One run per range at a time: the block sensors tag each run with its chain and range.
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": RANGE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    # Block sensors tick every 10 s per chain: their skipped ticks go within a day or two.
    ticks = config["retention"]["sensor"]["purge_after_days"]
    assert 0 < ticks["skipped"] <= 2
    assert ticks["success"] > 0 and ticks["failure"] > 0
    assert all(n > 0 for n in config["retention"]["schedule"]["purge_after_days"].values())


def check(instance: DagsterInstance) -> None:
    assert isinstance(instance.run_launcher, LocalWorkerRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert not instance.run_retries_enabled
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
    sensor_ticks = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    assert sensor_ticks[TickStatus.SKIPPED] == 1 and sensor_ticks[TickStatus.FAILURE] == 30


def test_local_instance_loads(tmp_path: Path) -> None:
    with DagsterInstance.from_config(str(home_with(LOCAL, tmp_path))) as instance:
        check(instance)


def test_postgres_instance_loads(
    postgres_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = make_url(postgres_database)
    for name, value in zip(
        PG_ENV, (url.host, url.port, url.username, url.password or "", url.database), strict=True
    ):
        monkeypatch.setenv(name, str(value))
    with DagsterInstance.from_config(str(home_with(POSTGRES, tmp_path))) as instance:
        check(instance)
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
