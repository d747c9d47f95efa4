"""What the block sensor does for one open range (one whose current blocks no run completed yet),
and when: pure, over the range's run history as plain data.

Dagster's run retries stay off (web3 retries RPC requests, retry policies retry steps), so a run
that still fails, or that run monitoring failed (worker gone, start timeout, `dagster/max_runtime`),
would leave its range undone until someone noticed. The block sensor re-drives such a range: a
new run after a backoff that doubles per consecutive failed re-drive, up to a ceiling, for as long
as it takes: an outage of any length ends with the range done (transient is not terminal). After
`alert_after` failed runs in a row the range is *alerting*: the sensor's log and skip reason and
the metrics name it, and re-drives go on. A range that waits for inputs of other ranges is re-driven
as soon as they are all stored, not after its backoff. A manual run of the range (a re-execution, a
launch) starts the backoff again, a successful run completes the range, and a canceled run is an
operator's decision: not re-driven.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ..settings import Settings


class Outcome(Enum):
    ACTIVE = "active"  # queued, starting, started, canceling
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class PastRun:
    """One run of a range's job. `redrive`: its re-drive number (None for the first request and
    for runs without the tag); `manual`: not requested by the sensor (a launch, a re-execution);
    `last_hash`: the last-block hash it was requested for, None when unknown (manual)."""

    outcome: Outcome
    end_time: float | None
    redrive: int | None = None
    manual: bool = False
    last_hash: bytes | None = None


@dataclass(frozen=True, slots=True)
class RedrivePolicy:
    """The first re-drive `backoff_s` after the failure, each next one twice as long after the
    previous failure, never longer than `backoff_max_s`; alerting from `alert_after` failed runs
    in a row."""

    backoff_s: float = 60.0
    backoff_max_s: float = 1800.0
    alert_after: int = 5

    @classmethod
    def of(cls, settings: Settings) -> RedrivePolicy:
        return cls(
            settings.redrive_backoff, settings.redrive_backoff_max, settings.redrive_alert_after
        )

    def delay(self, redrives_failed: int) -> float:
        """Seconds from a failure to the next re-drive, after `redrives_failed` failed ones."""
        return min(self.backoff_s * 2.0 ** min(redrives_failed, 64), self.backoff_max_s)


@dataclass(frozen=True, slots=True)
class Completed:
    """The latest run of the range's current blocks succeeded: the range is done."""


@dataclass(frozen=True, slots=True)
class NeverRan:
    """No run of the range's current blocks exists (a lost tick, a deleted run): request it."""


@dataclass(frozen=True, slots=True)
class Redrive:
    """Request the range again now, as re-drive `number` (unique among the range's runs)."""

    number: int
    failed_runs: int  # failed runs in a row before this one
    alerting: bool = False


@dataclass(frozen=True, slots=True)
class Backoff:
    """Re-drive `number` is due at `due` (a timestamp)."""

    number: int
    due: float
    failed_runs: int
    alerting: bool = False


RedriveDecision = Completed | NeverRan | Redrive | Backoff


def decide_redrive(
    history: Sequence[PastRun],
    last_hash: bytes,
    now: float,
    policy: RedrivePolicy,
    *,
    inputs_ready: bool = False,
) -> RedriveDecision | None:
    """What to do for one open range, given its runs newest first. None: nothing (one running,
    the latest canceled). Runs requested for another last-block hash (before a reorg) are not
    this range's history. `inputs_ready`: the range waited for inputs that are all stored now."""
    runs = [r for r in history if r.last_hash is None or r.last_hash == last_hash]
    if not runs:
        return NeverRan()
    latest = runs[0]
    if latest.outcome is Outcome.SUCCEEDED:
        return Completed()
    if latest.outcome is not Outcome.FAILED:
        return None
    failed_runs = 0
    for r in runs:
        if r.outcome is not Outcome.FAILED:
            break
        failed_runs += 1
    redrives_failed = 0  # the failed re-drives since the last first request or manual run
    for r in runs:
        if r.outcome is not Outcome.FAILED or r.manual or r.redrive is None:
            break
        redrives_failed += 1
    alerting = failed_runs >= policy.alert_after
    number = max((r.redrive for r in history if r.redrive is not None), default=0) + 1
    due = (latest.end_time or now) + (0.0 if inputs_ready else policy.delay(redrives_failed))
    if now < due:
        return Backoff(number, due, failed_runs, alerting)
    return Redrive(number, failed_runs, alerting)
