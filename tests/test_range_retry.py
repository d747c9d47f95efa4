"""A retry or re-run computes only what is not stored yet; squashing overlaps evaluation.

The oracle engine of `test_range_memory` stands in for TFHE (fast tier) and counts the
operations and squashes it is asked for, so "nothing computed twice" is observed, not inferred.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from range_jobs import evaluate, host_job
from test_range_memory import BATCH, CHAIN, POOL, RANGE, CountingStore, OracleEngine, transfers

from fhevm_dagster.compute.oracle import Plain
from fhevm_dagster.pipeline.evaluate import MissingInputsError
from fhevm_dagster.pipeline.squash import squash_range
from fhevm_dagster.store import ComputationStatus, Store
from fhevm_dagster.store import schema as s


class CountingEngine(OracleEngine):
    """The oracle engine, counting what it computes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.executed = 0
        self.squashed = 0

    def execute(self, op: int, values: list[Any], result_type: int, rerandomize: bool) -> Plain:
        with self.lock:
            self.executed += 1
        return super().execute(op, values, result_type, rerandomize)

    def squash(self, value: Plain) -> bytes:
        with self.lock:
            self.squashed += 1
        return super().squash(value)


def _values(store: Store, engine: OracleEngine, handles: list[bytes]) -> dict[bytes, int | None]:
    stored = store.get_ciphertexts(handles)
    return {h: engine.decompress(c.ciphertext).value for h, c in stored.items()}


def test_a_retry_computes_only_what_is_not_stored(tmp_path: Path) -> None:
    """A range failed half way by a missing input: its retry evaluates only the transactions
    that did not store their results (intermediates are never stored, so a failed transaction's
    are computed again), a re-run after success evaluates nothing, and a determinism check
    (`recompute`) evaluates everything again; the stored results are the oracle's."""
    store = CountingStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    allowed, plain = transfers(store, 24)
    rows = store.computations_of_range(RANGE, chain_id=CHAIN)
    lost = rows[len(rows) // 2].dependencies[1]  # an amount, half way through
    with store.engine.begin() as conn:
        saved = conn.execute(s.ciphertexts.select().where(s.ciphertexts.c.handle == lost)).one()
        conn.execute(s.ciphertexts.delete().where(s.ciphertexts.c.handle == lost))

    first = CountingEngine()
    with pytest.raises(MissingInputsError) as missing:
        evaluate(store, lambda: first, RANGE, 0, POOL, CHAIN, batch=BATCH)
    assert list(missing.value.missing) == [lost]
    assert not missing.value.report.errors, "a missing input fails nothing"
    waiting = len(missing.value.report.waiting)
    assert 0 < waiting < len(rows) and first.executed == len(rows) - waiting
    failed_txs = {bytes.fromhex(h) for h in missing.value.report.waiting}
    failed_txs = {r.tx_hash for r in rows if r.output_handle in failed_txs}
    redo = sum(1 for r in rows if r.tx_hash in failed_txs)
    assert redo < len(rows) / 2

    with store.engine.begin() as conn:  # the gateway range stores the input at last
        conn.execute(s.ciphertexts.insert().values(**saved._mapping))
    retry = CountingEngine()
    report = evaluate(store, lambda: retry, RANGE, 0, POOL, CHAIN, batch=BATCH)
    assert retry.executed == report.evaluated == redo, "only failed transactions are evaluated"
    assert len(report.skipped) == len(rows) - redo and not report.errors
    assert _values(store, retry, allowed) == {h: plain[h] for h in allowed}

    again = CountingEngine()
    report = evaluate(store, lambda: again, RANGE, 0, POOL, CHAIN, batch=BATCH)
    assert again.executed == 0 and report.evaluated == 0 and len(report.skipped) == len(rows)

    check = CountingEngine()
    report = evaluate(store, lambda: check, RANGE, 0, POOL, CHAIN, batch=BATCH, recompute=True)
    assert check.executed == len(rows) and report.compared == len(allowed)
    assert not report.drift and report.stored == 0


def _split(store: Store, parts: int) -> list[str]:
    """The transfers' range cut into `parts` consecutive ranges (by block), as ingestion of
    smaller ranges would write them: later ranges read the balances earlier ones produce."""
    rows = store.computations_of_range(RANGE, chain_id=CHAIN)
    allowed = {a.handle: a for a in _allowed(store)}
    size = -(-(rows[-1].block_number + 1) // parts)
    keys = [f"{i * size:012d}-{(i + 1) * size - 1:012d}" for i in range(parts)]
    with store.engine.begin() as conn:
        conn.execute(s.computations.delete())
        conn.execute(s.allowed_handles.delete())
    for i, key in enumerate(keys):
        mine = [r for r in rows if r.block_number // size == i]
        store.write_range(
            CHAIN, key, mine, [allowed[r.output_handle] for r in mine if r.is_allowed]
        )
    return keys


def _allowed(store: Store) -> list[Any]:
    from fhevm_dagster.protocol.computations import AllowedHandle

    with store.engine.connect() as conn:
        return [
            AllowedHandle(m.handle, m.account, m.kind, m.caller, m.tx_hash, m.block_number,
                          m.log_index)
            for m in conn.execute(s.allowed_handles.select())
        ]  # fmt: skip


def test_a_range_ahead_of_its_inputs_waits_and_nothing_becomes_final(tmp_path: Path) -> None:
    """Three consecutive ranges of chained balances run out of order (the later ones first, as
    two runs at once do): a computation whose input is not stored yet stays pending (never an
    error), the handles each range waits for are recorded, and once the producers run, every
    range completes with the oracle's values. (Before: the first range ahead marked its
    consumers ERROR "missing input", and a range reading those failed them for good.)"""
    store = CountingStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    allowed, plain = transfers(store, 24)
    first, second, third = _split(store, 3)
    engine = CountingEngine()
    for key in (third, second):
        with pytest.raises(MissingInputsError) as missing:
            evaluate(store, lambda: engine, key, 0, POOL, CHAIN, batch=BATCH)
        report = missing.value.report
        assert report.waiting and not report.errors, report.errors
        waits = store.range_waits(CHAIN)[key]
        assert waits and not any(waits.values())  # waits for handles not stored yet
        statuses = {c.status for c in store.computations_of_range(key, chain_id=CHAIN)}
        assert ComputationStatus.ERROR not in statuses
    report = evaluate(store, lambda: engine, first, 0, POOL, CHAIN, batch=BATCH)
    assert not report.errors and first not in store.range_waits(CHAIN)
    assert all(store.range_waits(CHAIN)[second].values()), "its inputs are stored now"
    for key in (second, third):
        report = evaluate(store, lambda: engine, key, 0, POOL, CHAIN, batch=BATCH)
        assert not report.errors and not report.waiting
    assert store.range_waits(CHAIN) == {}
    statuses = {
        c.status for k in (first, second, third)
        for c in store.computations_of_range(k, chain_id=CHAIN)
    }  # fmt: skip
    assert statuses == {ComputationStatus.DONE}
    assert _values(store, engine, allowed) == {h: plain[h] for h in allowed}


def test_squashing_overlaps_evaluation_within_the_memory_bound(tmp_path: Path) -> None:
    """With `squash`, every allowed result is squashed as it is stored, during evaluation, with
    the same bound on live ciphertexts; `squash_range` then has nothing left to do."""
    from test_range_memory import Counted

    store = CountingStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    allowed, plain = transfers(store, 200)
    engine = CountingEngine()
    Counted.reset_peak()
    report = evaluate(store, lambda: engine, RANGE, 0, POOL, CHAIN, batch=BATCH, squash=True)
    assert engine.squashed == len(allowed) == report.squash_stored
    assert Counted.peak <= 6 * BATCH + 10, f"evaluation and squash held {Counted.peak}"
    ct128 = store.get_ciphertexts128(allowed)
    assert {h: engine.decompress(c[len(b"ct128") :]).value for h, c in ct128.items()} == {
        h: plain[h] for h in allowed
    }
    job = host_job(store, RANGE, CHAIN, engine_of=lambda: engine, threads=POOL, batch=BATCH)
    figures = squash_range(job).figures
    assert figures["already_stored"] == len(allowed) and figures["squashed"] == 0
    assert engine.squashed == len(allowed)
