"""The run launcher's worker health check, on a real Dagster instance configured with it: a run
whose RUN_START names a live process is running; once that process is killed (a zombie, then
reaped) or the pid belongs to a process started after the run, the run worker is gone, and one
iteration of Dagster's own run monitoring fails the run."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    EventLogEntry,
    instance_for_test,
    job,
    op,
)
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.monitoring.run_monitoring import execute_run_monitoring_iteration

from fhevm_dagster.launcher import LocalWorkerRunLauncher

LAUNCHER = {"module": "fhevm_dagster.launcher", "class": "LocalWorkerRunLauncher"}


@op
def noop() -> None:
    pass


@job
def range_job() -> None:
    noop()


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    overrides = {"run_launcher": LAUNCHER, "run_monitoring": {"enabled": True}}
    with instance_for_test(overrides=overrides) as inst:
        yield inst


@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a run worker."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def started_run(instance: DagsterInstance, pid: int, at: float) -> DagsterRun:
    """A run STARTED by the worker `pid` at `at`, as the worker records it (RUN_START, its pid)."""
    run = instance.create_run_for_job(range_job)
    event = DagsterEvent(DagsterEventType.RUN_START.value, run.job_name, pid=pid)
    instance.handle_new_event(
        EventLogEntry(None, logging.DEBUG, "", run.run_id, at, dagster_event=event)
    )
    started = instance.get_run_by_id(run.run_id)
    assert started is not None and started.status == DagsterRunStatus.STARTED
    return started


def health(instance: DagsterInstance, run: DagsterRun) -> WorkerStatus:
    launcher = instance.run_launcher
    assert isinstance(launcher, LocalWorkerRunLauncher)
    assert launcher.supports_check_run_worker_health
    return launcher.check_run_worker_health(run).status


def monitor_once(instance: DagsterInstance) -> None:
    """One iteration of the daemon's run monitoring."""
    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as ctx:
        list(execute_run_monitoring_iteration(ctx, logging.getLogger("test")))


def test_a_killed_worker_fails_its_run(
    instance: DagsterInstance, sleeper: subprocess.Popen[bytes]
) -> None:
    run = started_run(instance, sleeper.pid, time.time())
    assert health(instance, run) == WorkerStatus.RUNNING
    monitor_once(instance)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED  # type: ignore[union-attr]

    sleeper.kill()  # not reaped yet: a zombie is dead too
    time.sleep(0.2)
    assert health(instance, run) == WorkerStatus.FAILED
    sleeper.wait()
    assert health(instance, run) == WorkerStatus.FAILED
    monitor_once(instance)
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None and failed.status == DagsterRunStatus.FAILURE
    messages = [e.message for e in instance.all_logs(run.run_id) if e.message]
    assert any(f"pid {sleeper.pid}) is gone" in m for m in messages), messages


def test_a_reused_pid_is_not_the_worker(
    instance: DagsterInstance, sleeper: subprocess.Popen[bytes]
) -> None:
    """The run started a minute before the process now holding its worker's pid was born."""
    run = started_run(instance, sleeper.pid, time.time() - 60)
    assert health(instance, run) == WorkerStatus.FAILED


def test_a_run_without_a_worker_pid_yet_is_starting(instance: DagsterInstance) -> None:
    run = instance.create_run_for_job(range_job)
    assert health(instance, run) == WorkerStatus.RUNNING


def test_a_worker_on_another_host_is_not_checked(instance: DagsterInstance) -> None:
    """A code server elsewhere: its pids mean nothing here (max_runtime still applies)."""
    run = started_run(instance, 999_999_999, time.time())  # no such pid here
    instance.add_run_tags(run.run_id, {GRPC_INFO_TAG: '{"host": "code-server", "port": 4000}'})
    tagged = instance.get_run_by_id(run.run_id)
    assert tagged is not None and health(instance, tagged) == WorkerStatus.RUNNING
