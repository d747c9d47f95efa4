"""host_blocks_sensor against a real anvil: the re-drive of a range whose run failed, and the
request of an open range without any run."""

from __future__ import annotations

import time

from dagster import DagsterInstance, DagsterRunStatus
from host_defs import HOST
from sensor_ticker import (
    end_time,
    fail_run,
    finish_run,
    launched,
    make_ticker,
    mine_to,
    plain_key,
    sleep_until,
)

from fhevm_dagster.devnet.anvil import AnvilNode
from fhevm_dagster.pipeline.redrive import RedrivePolicy
from fhevm_dagster.resources.store import StoreResource


def test_failed_range_is_redriven_with_backoff_until_it_succeeds(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    """A range whose run failed is requested again under `<key>:redrive-<n>` after a backoff that
    doubles up to a ceiling, for as long as it fails: after `redrive_alert_after` failed runs in
    a row the tick says ALERT and the store counts them, and re-drives go on (before: after
    `redrive_attempts` re-drives the sensor gave up and left the range to an operator). A
    successful run completes the range in the store: it is not looked at again."""
    mine_to(fresh_chain, 12)
    t = make_ticker(
        instance,
        fresh_chain,
        store_url,
        redrive=RedrivePolicy(backoff_s=2.0, backoff_max_s=3.0, alert_after=2),
    )
    key = "000000000000-000000000009"
    (first,) = launched(t, t.tick(runs=False))
    run = fail_run(instance, first)
    # The run had ingested the range before it failed (in squash, commit, upload: most failures
    # are there): the range is still re-driven.
    store = StoreResource(database_url=store_url).get()
    last_hash = bytes.fromhex(first.tags["fhevm/last_block_hash"])
    store.mark_range_processed(31337, key, 0, 9, last_hash)
    t.tick(runs=False)
    assert t.launched == []  # 2 s backoff from the failure
    for n, delay in ((1, 2.0), (2, 3.0), (3, 3.0), (4, 3.0)):  # 4 s, 8 s, … capped at 3 s
        # A second early (a tick under load takes a fraction of one): not yet.
        sleep_until(end_time(instance, run) + delay - 1.0)
        t.tick(runs=False)
        assert t.launched == []
        sleep_until(end_time(instance, run) + delay)
        (again,) = launched(t, t.tick(runs=False))
        assert (again.partition_key, plain_key(again)) == (key, f"{key}:redrive-{n}")
        assert again.tags["fhevm/redrive"] == str(n)
        assert again.tags["fhevm/last_block_hash"] == first.tags["fhevm/last_block_hash"]
        alert = [m for m in t.logs if m.startswith(f"ALERT {HOST} range {key}")]
        assert bool(alert) == (n >= 2), t.logs  # 2 failed runs in a row: alerting
        t.tick(runs=False)
        assert t.launched == []  # requested: not twice
        run = fail_run(instance, again)
    recorded = store.get_range(31337, key)
    assert recorded is not None and recorded.failed_runs == 4 and recorded.is_open
    sleep_until(end_time(instance, run) + 3.0)
    (again,) = launched(t, t.tick(runs=False))
    assert plain_key(again) == f"{key}:redrive-5"
    assert "5 failed runs in a row" in next(m for m in t.logs if m.startswith("ALERT"))
    # That one succeeds: the range is complete, nothing more, however long.
    finish_run(instance, again, DagsterRunStatus.SUCCESS)
    t.tick(runs=False)
    done = store.get_range(31337, key)
    assert done is not None and not done.is_open and done.failed_runs == 0
    time.sleep(4.0)  # past any backoff
    assert launched(t, t.tick(runs=False)) == []
    assert store.open_ranges(31337, 10) == []


def test_a_range_without_any_run_is_requested_from_the_store(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    """A range the store holds as open whose run was lost (deleted with a dead daemon, or older
    than the planner's window) is requested again under its own run key, found through the
    store, however old. (Before: only the newest 100 failed runs and the planner's recent window
    were looked at.)"""
    mine_to(fresh_chain, 95)
    t = make_ticker(instance, fresh_chain, store_url, reorg_check_ranges=2)
    t.tick(runs=False)
    assert len(t.launched) == 9
    t.tick(runs=False)
    assert t.launched == []  # each has its run
    old = "000000000000-000000000009"
    for run in instance.get_runs():
        if run.tags.get("dagster/partition") == old:
            instance.delete_run(run.run_id)  # Dagster forgets it: its run key is free again
    t.run_keys = {k for k in t.run_keys if not k.startswith(old)}
    t.tick(runs=False)
    assert t.launched == [(old, old)]
