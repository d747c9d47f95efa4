"""A range's runs, read from the Dagster instance as plain data for `pipeline.redrive`.

The block sensor watches the store's open ranges (`pipeline.tick`: no run completed their current
blocks), not a window of recent failed runs, so a range that failed a month ago is still seen. A
success outside the range job (a UI materialisation of the assets) is not seen: at worst a
bounded, idempotent re-run.
"""

from __future__ import annotations

from collections.abc import Callable

from dagster import DagsterInstance, DagsterRunStatus, RunRecord, RunsFilter

from ..pipeline.redrive import Outcome, PastRun
from ..pipeline.run_keys import GENESIS_TAG, HASH_TAG, REDRIVE_TAG

# Dagster's own tags on the runs a sensor launches (and on re-executions).
PARTITION_TAG = "dagster/partition"
SENSOR_TAG = "dagster/sensor_name"
PARENT_RUN_TAG = "dagster/parent_run_id"
#: Newest runs of one range read as its history (the backoff stops growing long before).
HISTORY_RUNS = 20

_OUTCOMES = {
    DagsterRunStatus.SUCCESS: Outcome.SUCCEEDED,
    DagsterRunStatus.FAILURE: Outcome.FAILED,
    DagsterRunStatus.CANCELED: Outcome.CANCELED,
}


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


def run_history(
    instance: DagsterInstance, job_name: str, sensor_name: str, genesis: bytes
) -> Callable[[str], list[PastRun]]:
    """A range's runs of `job_name`, newest first, on the chain `genesis`: runs of a chain before
    its reset are another chain's (runs from before genesis tags were written are this chain's)."""

    def runs(partition: str) -> list[PastRun]:
        records = instance.get_run_records(
            RunsFilter(job_name=job_name, tags={PARTITION_TAG: partition}), limit=HISTORY_RUNS
        )
        return [
            past_run(r, sensor_name)
            for r in records
            if r.dagster_run.tags.get(GENESIS_TAG, genesis.hex()) == genesis.hex()
        ]

    return runs
