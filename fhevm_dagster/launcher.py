"""Dagster's default run launcher, plus a health check of the run workers on this host.

With `DefaultRunLauncher`, run monitoring cannot check a run worker (its
`supports_check_run_worker_health` is False): a worker killed (the OOM killer, kill -9, its code
server gone) leaves its run STARTED, holding a run slot until `dagster/max_runtime` fails it, an
hour later, and every range behind it waits. The worker writes its own pid in the run's
RUN_START event; the daemon, on the same host, reads in /proc whether that process still lives
and is the same one (a pid is reused: a process started after the run's start is another).
Run monitoring then fails a dead worker's run within its poll interval, and the block sensor
re-drives the range. Launching and terminating stay Dagster's own; nothing is resumed.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

PROC = Path("/proc")
#: Seconds a process may seem to have started after its run's start event and still be the run's
#: worker: /proc/stat gives the boot time in whole seconds, and the wall clock may be stepped.
#: A worker starts seconds before its RUN_START (it imports Dagster and the code location first).
START_SLACK_S = 2.0
_LOCAL = {"localhost", "127.0.0.1", "::1", socket.gethostname()}


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError(f"no btime in {proc / 'stat'}")


def process_start(pid: int, proc: Path = PROC) -> float | None:
    """Epoch seconds at which process `pid` started; None when it is gone or a zombie (killed,
    not reaped yet by its parent: dead all the same)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 2, the command name, is parenthesised and may hold spaces: count after its ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_ticks = fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    if state in ("Z", "X", "x"):
        return None
    return _boot_time(proc) + start_ticks / os.sysconf("SC_CLK_TCK")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class LocalWorkerRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose run workers run monitoring can check: alive per /proc, for a
    code server on this host (`dagster dev`, one machine); a worker elsewhere is not checked."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return (PROC / "stat").exists()

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        grpc = json.loads(run.tags.get(GRPC_INFO_TAG) or "{}")
        host = grpc.get("host")
        if host is not None and "socket" not in grpc and host not in _LOCAL:
            # Its pid means nothing here: left to `dagster/max_runtime`.
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker on {host}: not checked")
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
        ).records
        entry = records[0].event_log_entry if records else None
        pid = entry.dagster_event.pid if entry and entry.dagster_event else None
        if entry is None or pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker starting (no pid yet)")
        started = process_start(pid)
        if started is None:
            msg = f"run worker (pid {pid}) is gone: killed, or its code server was"
            return CheckRunHealthResult(WorkerStatus.FAILED, msg, run_worker_id=str(pid))
        if started > entry.timestamp + START_SLACK_S:
            msg = (
                f"run worker (pid {pid}) is gone: pid {pid} is now a process started at "
                f"{_iso(started)}, after the run started at {_iso(entry.timestamp)}"
            )
            return CheckRunHealthResult(WorkerStatus.FAILED, msg, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
