"""The block sensor's re-drive: a chain's failed range runs, read from the Dagster instance as
plain data for `pipeline.redrive`, and the run requests it decides.

Candidates are the ranges of the newest failed runs of the chain's range job that the store knows;
each one's runs (by partition tag) are its history, and only a successful run of the range's
current blocks ends it: a range the store saw ingested may still have failed in a later step
(squash, commit, upload), and that is most failures. A success outside the range job (a UI
materialisation of the assets) is not seen: at worst a bounded, idempotent re-run. Run keys and
tags of all range requests are made here, so a re-drive names the same range, generation and hash
as the first request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import DagsterRunStatus, RunRecord, RunRequest, RunsFilter, SensorEvaluationContext

from ..pipeline.redrive import (
    Backoff,
    Exhausted,
    Outcome,
    PastRun,
    Redrive,
    RedrivePolicy,
    decide_redrive,
)
from ..store import HostRange, Store

# Dagster's own tags on the runs a sensor launches (and on re-executions).
PARTITION_TAG = "dagster/partition"
SENSOR_TAG = "dagster/sensor_name"
PARENT_RUN_TAG = "dagster/parent_run_id"
HASH_TAG = "fhevm/last_block_hash"
GENESIS_TAG = "fhevm/genesis_hash"
REDRIVE_TAG = "fhevm/redrive"
#: Newest failed runs of a range job looked at per tick: older failures were given up long ago.
FAILED_RUNS_SCANNED = 100
#: Newest runs of one range read as its history.
HISTORY_RUNS = 50

_OUTCOMES = {
    DagsterRunStatus.SUCCESS: Outcome.SUCCEEDED,
    DagsterRunStatus.FAILURE: Outcome.FAILED,
    DagsterRunStatus.CANCELED: Outcome.CANCELED,
}


def run_key(partition: str, genesis: bytes, reorg_count: int, redrive: int | None = None) -> str:
    """The range, its chain (genesis prefix: a reset devnet's ranges are new runs), its reorg
    generation and its re-drive: Dagster skips a run key it has seen, so asking again is a no-op
    and a reset, a reorg or a re-drive is a new run."""
    key = f"{partition}@{genesis.hex()[:8]}"
    key = f"{key}:reorg-{reorg_count}" if reorg_count else key
    return f"{key}:redrive-{redrive}" if redrive else key


def run_tags(
    tag: str,
    chain_id: int,
    genesis: bytes,
    last_hash: bytes,
    reorg_count: int,
    redrive: int | None = None,
) -> dict[str, str]:
    tags = {
        f"fhevm/{tag}_chain_id": str(chain_id),
        GENESIS_TAG: genesis.hex(),
        HASH_TAG: last_hash.hex(),
    }
    if reorg_count:
        tags["fhevm/reorg"] = str(reorg_count)
    if redrive:
        tags[REDRIVE_TAG] = str(redrive)
    return tags


def past_run(record: RunRecord, sensor_name: str) -> PastRun:
    """One run as `pipeline.redrive` sees it."""
    run = record.dagster_run
    tags = run.tags
    outcome = _OUTCOMES.get(run.status, Outcome.ACTIVE)
    end = record.end_time
    if end is None and outcome is not Outcome.ACTIVE:  # ended without an end event (forced)
        end = record.update_timestamp.timestamp()
    redrive = tags.get(REDRIVE_TAG)
    last_hash = tags.get(HASH_TAG)
    return PastRun(
        outcome,
        end,
        int(redrive) if redrive and redrive.isdigit() else None,
        manual=PARENT_RUN_TAG in tags or tags.get(SENSOR_TAG) != sensor_name,
        last_hash=bytes.fromhex(last_hash) if last_hash else None,
    )


@dataclass
class RedriveTick:
    requests: list[RunRequest] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # re-drives in backoff
    given_up: list[str] = field(default_factory=list)  # ranges left to the operator


def _given_up(rng: HostRange, d: Exhausted) -> str:
    when = "" if d.last_end is None else f", the last ended {_iso(d.last_end)}"
    tried = (
        f"{d.failed} re-drives failed{when}"
        if d.failed
        else f"its run failed{when} and re-drive is off (FHEVM_DAGSTER_REDRIVE_ATTEMPTS=0)"
    )
    return (
        f"{rng.partition_key}: {tried}; re-materialise it by hand "
        "(a successful or manual run of the range resets the count)"
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def redrive_tick(
    context: SensorEvaluationContext,
    *,
    job_name: str,
    sensor_name: str,
    tag: str,
    chain_id: int,
    genesis: bytes,
    store: Store,
    policy: RedrivePolicy,
    cap: int,
) -> RedriveTick:
    """Requests re-driving the chain's failed ranges that are due, at most `cap`."""
    instance = context.instance
    failed = instance.get_run_records(
        RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.FAILURE]),
        limit=FAILED_RUNS_SCANNED,
    )
    partitions = dict.fromkeys(
        p for r in failed if (p := r.dagster_run.tags.get(PARTITION_TAG)) is not None
    )
    out = RedriveTick()
    now = time.time()
    for partition in partitions:
        rng = store.get_range(chain_id, partition)
        if rng is None:  # not this store's (another store, or a chain reset removed it)
            continue
        records = instance.get_run_records(
            RunsFilter(job_name=job_name, tags={PARTITION_TAG: partition}), limit=HISTORY_RUNS
        )
        # Runs of a chain before its reset are another chain's (runs from before genesis tags
        # were written are this chain's).
        history = [
            past_run(r, sensor_name)
            for r in records
            if r.dagster_run.tags.get(GENESIS_TAG, genesis.hex()) == genesis.hex()
        ]
        d = decide_redrive(history, rng.known_hash, now, policy)
        if isinstance(d, Redrive) and len(out.requests) < cap:
            out.requests.append(
                RunRequest(
                    run_key=run_key(partition, genesis, rng.reorg_count, d.number),
                    partition_key=partition,
                    tags=run_tags(
                        tag, chain_id, genesis, rng.known_hash, rng.reorg_count, d.number
                    ),
                )
            )
        elif isinstance(d, Backoff):
            out.waiting.append(f"re-drive {d.number} of {partition} in {d.due - now:.0f} s")
        elif isinstance(d, Exhausted):
            out.given_up.append(_given_up(rng, d))
    return out
