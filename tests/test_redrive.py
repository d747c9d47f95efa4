"""The re-drive decision over a range's run history as plain data: backoff, bound, resets."""

from __future__ import annotations

from fhevm_dagster.pipeline.redrive import (
    Backoff,
    Completed,
    NeverRan,
    Outcome,
    PastRun,
    Redrive,
    RedrivePolicy,
    decide_redrive,
)

H = b"\x01" * 32
POLICY = RedrivePolicy(backoff_s=60, backoff_max_s=150, alert_after=3)
FAILED, OK, ACTIVE = Outcome.FAILED, Outcome.SUCCEEDED, Outcome.ACTIVE


def failed(end: float, redrive: int | None = None, **kw: object) -> PastRun:
    return PastRun(FAILED, end, redrive, last_hash=H, **kw)  # type: ignore[arg-type]


def test_open_ranges_without_a_failure() -> None:
    assert decide_redrive([], H, 0, POLICY) == NeverRan()  # a lost tick, a deleted run
    assert decide_redrive([PastRun(ACTIVE, None, last_hash=H)], H, 1e9, POLICY) is None
    assert decide_redrive([PastRun(OK, 5, last_hash=H), failed(1)], H, 1e9, POLICY) == Completed()
    canceled = PastRun(Outcome.CANCELED, 5, last_hash=H)
    assert decide_redrive([canceled], H, 1e9, POLICY) is None  # the operator's decision


def test_backoff_doubles_and_is_capped() -> None:
    history = [failed(1000)]
    assert decide_redrive(history, H, 1059, POLICY) == Backoff(1, 1060, 1)
    assert decide_redrive(history, H, 1060, POLICY) == Redrive(1, 1)
    history = [failed(2000, 1), *history]
    assert decide_redrive(history, H, 2119, POLICY) == Backoff(2, 2120, 2)
    assert decide_redrive(history, H, 2120, POLICY) == Redrive(2, 2)
    history = [failed(3000, 2), *history]
    assert decide_redrive(history, H, 3149, POLICY) == Backoff(3, 3150, 3, alerting=True)
    assert decide_redrive(history, H, 3150, POLICY) == Redrive(3, 3, alerting=True)


def test_never_gives_up_and_alerts() -> None:
    """However many re-drives failed (an outage of days), the next one comes at the capped
    backoff, alerting. (Before: after 5 re-drives, about 31 minutes, the range was left for an
    operator to notice.)"""
    history = [failed(10_000 + i, 1000 - i) for i in range(20)]
    assert decide_redrive(history, H, 10_149, POLICY) == Backoff(1001, 10_150, 20, alerting=True)
    assert decide_redrive(history, H, 10_150, POLICY) == Redrive(1001, 20, alerting=True)


def test_a_manual_run_resets_the_backoff() -> None:
    history = [failed(4000, 3), failed(3000, 2), failed(2000, 1), failed(1000)]
    # The operator re-executes the last re-drive (its tags copied): it fails too. The backoff
    # starts again, under a new number (the failures in a row still count for the alert).
    manual = failed(5000, 3, manual=True)
    assert decide_redrive([manual, *history], H, 5059, POLICY) == Backoff(4, 5060, 5, True)
    assert decide_redrive([manual, *history], H, 5060, POLICY) == Redrive(4, 5, True)
    launched = PastRun(FAILED, 5000, manual=True)  # a launch: no tags, no hash
    assert decide_redrive([launched, *history], H, 5060, POLICY) == Redrive(4, 5, True)


def test_stored_inputs_bring_the_redrive_forward() -> None:
    """A range that failed waiting for other ranges' results is re-driven as soon as they are
    all stored, not after its backoff."""
    history = [failed(2000, 1), failed(1000)]
    assert decide_redrive(history, H, 2001, POLICY) == Backoff(2, 2120, 2)
    assert decide_redrive(history, H, 2001, POLICY, inputs_ready=True) == Redrive(2, 2)


def test_a_running_redrive_is_awaited() -> None:
    history = [PastRun(ACTIVE, None, 1, last_hash=H), failed(1000)]
    assert decide_redrive(history, H, 1e9, POLICY) is None


def test_runs_of_another_generation_do_not_count() -> None:
    """After a reorg the range's runs for the old last-block hash are another range's history."""
    old = b"\x02" * 32
    history = [PastRun(FAILED, 900, r, last_hash=old) for r in (3, 2, 1, None)]
    assert decide_redrive(history, H, 1e9, POLICY) == NeverRan()  # the new blocks: no run yet
    history = [failed(1000), *history]
    assert decide_redrive(history, H, 1060, POLICY) == Redrive(4, 1)


def test_run_keys_name_range_generation_and_redrive() -> None:
    from fhevm_dagster.pipeline.run_keys import run_key, run_tags

    g = bytes.fromhex("abcdef01") + bytes(28)  # a genesis hash: its first 4 bytes name the chain
    assert run_key("k", g, 0) == "k@abcdef01"
    assert run_key("k", g, 2) == "k@abcdef01:reorg-2"
    assert run_key("k", g, 0, 3) == "k@abcdef01:redrive-3"
    assert run_key("k", g, 2, 3) == "k@abcdef01:reorg-2:redrive-3"
    assert run_tags("host_1", 1, "k", g, H, 2, 3) == {
        "fhevm/host_1_chain_id": "1",
        "fhevm/range": "host_1/k",
        "fhevm/genesis_hash": g.hex(),
        "fhevm/last_block_hash": H.hex(),
        "fhevm/reorg": "2",
        "fhevm/redrive": "3",
    }
