"""The block sensor's watch over open ranges: each one's runs, read from the Dagster instance as
plain data for `pipeline.redrive`, and the run requests it decides.

Candidates are the store's open ranges (`Store.open_ranges`: no run completed their current
blocks), not a window of recent failed runs, so a range that failed a month ago is still seen. A
range whose latest run succeeded is marked complete in the store (and is not looked at again); a
failed one is re-driven, backed off, without a give-up; one without any run is requested again. A
success outside the range job (a UI materialisation of the assets) is not seen: at worst a bounded,
idempotent re-run. Run keys and tags of all range requests are made here, so a re-drive names the
same range, generation and hash as the first request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import DagsterRunStatus, RunRecord, RunRequest, RunsFilter, SensorEvaluationContext

from ..pipeline.redrive import (
    Backoff,
    Completed,
    NeverRan,
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
#: One run per range at a time: the instance's `tag_concurrency_limits` apply the limit per value
#: (a reorg's run or a re-drive waits for a run of the same range still going).
RANGE_TAG = "fhevm/range"
#: Open ranges looked at per tick, oldest first: in steady state the ranges in flight and the
#: failing ones; a backlog larger than this is worked through over the next ticks.
OPEN_SCANNED = 200
#: Newest runs of one range read as its history (the backoff stops growing long before).
HISTORY_RUNS = 20

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
    partition: str,
    genesis: bytes,
    last_hash: bytes,
    reorg_count: int,
    redrive: int | None = None,
) -> dict[str, str]:
    tags = {
        f"fhevm/{tag}_chain_id": str(chain_id),
        RANGE_TAG: f"{tag}/{partition}",
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
    alerting: list[str] = field(default_factory=list)  # ranges failing `alert_after` times in a row
    completed: int = 0  # open ranges found done (their latest run succeeded)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _alert(rng: HostRange, failed_runs: int, last_end: float | None) -> str:
    when = "" if last_end is None else f", the last ended {_iso(last_end)}"
    return (
        f"{rng.partition_key}: {failed_runs} failed runs in a row{when}; re-driven until it "
        "succeeds (look at its last run's error)"
    )


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
    """Marks the chain's open ranges that a run completed; requests the failed ones that are due
    (at most `cap`) and those without any run."""
    instance = context.instance
    waits = store.range_waits(chain_id)
    out = RedriveTick()
    now = time.time()
    for rng in store.open_ranges(chain_id, OPEN_SCANNED):
        partition = rng.partition_key
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
        waited = waits.get(partition, {})
        ready = bool(waited) and all(waited.values())
        d = decide_redrive(history, rng.known_hash, now, policy, inputs_ready=ready)
        if isinstance(d, Completed):
            store.mark_range_completed(chain_id, partition, rng.known_hash)
            out.completed += 1
            continue
        if isinstance(d, NeverRan):
            if len(out.requests) < cap:
                out.requests.append(
                    RunRequest(
                        run_key=run_key(partition, genesis, rng.reorg_count),
                        partition_key=partition,
                        tags=run_tags(
                            tag, chain_id, partition, genesis, rng.known_hash, rng.reorg_count
                        ),
                    )
                )
            continue
        if d is None:
            continue
        last_end = history[0].end_time
        store.record_range_failures(chain_id, partition, d.failed_runs, last_end)
        if d.alerting:
            out.alerting.append(_alert(rng, d.failed_runs, last_end))
        if isinstance(d, Redrive) and len(out.requests) < cap:
            out.requests.append(
                RunRequest(
                    run_key=run_key(partition, genesis, rng.reorg_count, d.number),
                    partition_key=partition,
                    tags=run_tags(
                        tag, chain_id, partition, genesis, rng.known_hash, rng.reorg_count, d.number
                    ),
                )
            )
        elif isinstance(d, Backoff):
            why = " (its inputs are stored)" if ready else ""
            out.waiting.append(f"re-drive {d.number} of {partition} in {d.due - now:.0f} s{why}")
    return out
