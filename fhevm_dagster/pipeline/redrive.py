"""Whether a range whose run failed is requested again (a re-drive), and when: pure, over the
range's run history as plain data.

Dagster's run retries stay off (web3 retries RPC requests, retry policies retry steps), so a run
that still fails, or that run monitoring failed (worker gone, start timeout, `dagster/max_runtime`),
would leave its range undone until someone noticed. The block sensor re-drives such a range: a
new run after a backoff that doubles per consecutive failed re-drive, at most `attempts` times.
Then it gives up and says so; a manual run of the range (a re-execution, a launch) starts the
count again, and a successful run ends it. A canceled run is an operator's decision: not re-driven.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


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
    """At most `attempts` re-drives in a row; the first `backoff_s` after the failure, each next
    one twice as long after the previous failure, never longer than `backoff_max_s`."""

    attempts: int = 5
    backoff_s: float = 60.0
    backoff_max_s: float = 1800.0

    def delay(self, redrives_failed: int) -> float:
        """Seconds from a failure to the next re-drive, after `redrives_failed` failed ones."""
        return min(self.backoff_s * 2.0**redrives_failed, self.backoff_max_s)


@dataclass(frozen=True, slots=True)
class Redrive:
    """Request the range again now, as re-drive `number` (unique among the range's runs)."""

    number: int
    failed: int  # consecutive failed re-drives before this one


@dataclass(frozen=True, slots=True)
class Backoff:
    """Re-drive `number` is due at `due` (a timestamp)."""

    number: int
    due: float


@dataclass(frozen=True, slots=True)
class Exhausted:
    """`failed` re-drives in a row failed: left to the operator."""

    failed: int
    last_end: float | None


RedriveDecision = Redrive | Backoff | Exhausted


def decide_redrive(
    history: Sequence[PastRun], last_hash: bytes, now: float, policy: RedrivePolicy
) -> RedriveDecision | None:
    """What to do for one unprocessed range, given its runs newest first. None: nothing (no run,
    one running, the latest succeeded or was canceled). Runs requested for another last-block
    hash (before a reorg) are not this range's history."""
    runs = [r for r in history if r.last_hash is None or r.last_hash == last_hash]
    if not runs or runs[0].outcome is not Outcome.FAILED:
        return None
    failed = 0
    for r in runs:  # the failed re-drives since the last first request or manual run
        if r.outcome is not Outcome.FAILED or r.manual or r.redrive is None:
            break
        failed += 1
    if failed >= policy.attempts:
        return Exhausted(failed, runs[0].end_time)
    number = max((r.redrive for r in history if r.redrive is not None), default=0) + 1
    due = (runs[0].end_time or now) + policy.delay(failed)
    if now < due:
        return Backoff(number, due)
    return Redrive(number, failed)
