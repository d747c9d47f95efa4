"""A range's steps hold a bounded number of ciphertexts, however many transfers it has.

The FHE engine is replaced by the plaintext oracle behind the same calls, and every ciphertext
(bytes an engine produced or the store returned) is a counted `bytes`: the peak of live ones is
what evaluation, squash, digests and upload hold at once. Real store (SQLite), real DAG and
scheduler, real object upload; only the cryptography is fake, so this runs in the fast tier.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from range_jobs import evaluate, host_job
from transfer_dag import CHAIN, RANGE, write_transfers

from fhevm_dagster.compute.oracle import Plain
from fhevm_dagster.compute.oracle import evaluate as oracle_evaluate
from fhevm_dagster.objects.backends import FileBackend
from fhevm_dagster.pipeline.evaluate import MissingInputsError
from fhevm_dagster.pipeline.squash import digest_range, squash_range
from fhevm_dagster.pipeline.uploads import upload_range
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.store import Ciphertext, Store
from fhevm_dagster.store import schema as s

ACCOUNTS = 8
BATCH = 8
POOL = 2


class Counted(bytes):
    """Ciphertext bytes whose live instances are counted (CPython frees them at once)."""

    lock = threading.Lock()
    live = 0
    peak = 0

    def __new__(cls, data: bytes) -> Counted:
        with cls.lock:
            cls.live += 1
            cls.peak = max(cls.peak, cls.live)
        return super().__new__(cls, data)

    def __del__(self) -> None:
        with Counted.lock:
            Counted.live -= 1

    @classmethod
    def reset_peak(cls) -> None:
        with cls.lock:
            cls.peak = cls.live


class CountingStore(Store):
    """The real store, handing out counted ciphertext bytes."""

    def get_ciphertexts(self, handles: Sequence[bytes]) -> dict[bytes, Ciphertext]:
        return {
            h: Ciphertext(c.handle, Counted(c.ciphertext), c.fhe_type, c.key_id, c.origin)
            for h, c in super().get_ciphertexts(handles).items()
        }

    def get_ciphertexts128(self, handles: Sequence[bytes]) -> dict[bytes, bytes]:
        return {h: Counted(c) for h, c in super().get_ciphertexts128(handles).items()}


def _encode(p: Plain) -> Counted:
    assert p.value is not None
    return Counted(bytes([p.fhe_type]) + p.value.to_bytes(32, "big"))


class OracleEngine:
    """`tfhe_py.Engine`'s calls on plaintexts: a "ciphertext" is its type byte and value."""

    def decompress(self, data: bytes) -> Plain:
        return Plain(int.from_bytes(data[1:], "big"), FheType(data[0]))

    def execute(self, op: int, values: list[Any], result_type: int, rerandomize: bool) -> Plain:
        return oracle_evaluate(Operator(op), values, FheType(result_type))

    def compress(self, value: Plain) -> bytes:
        return _encode(value)

    def squash(self, value: Plain) -> bytes:
        return Counted(b"ct128" + _encode(value))


def transfers(store: Store, n: int) -> tuple[list[bytes], dict[bytes, int]]:
    """`n` confidential transfers between 8 accounts (`transfer_dag`), their inputs stored as
    oracle values: the allowed handles and their expected values."""
    return write_transfers(store, n, ACCOUNTS, lambda v: bytes(_encode(Plain(v, FheType.Uint64))))


def test_a_range_holds_a_bounded_number_of_ciphertexts(tmp_path: Path) -> None:
    """200 transfers (1000 computations, 400 allowed results): each step's live ciphertexts stay
    within a few batches, and the stored results are the oracle's."""
    store = CountingStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    allowed, plain = transfers(store, 200)
    engine: Any = OracleEngine()
    bound = 6 * BATCH + 10  # window + unstored batch + a transaction + operands in flight

    Counted.reset_peak()
    report = evaluate(store, lambda: engine, RANGE, 0, POOL, CHAIN, batch=BATCH)
    assert report.evaluated == 1000 and not report.errors
    assert Counted.peak <= bound, f"evaluation held {Counted.peak} ciphertexts"
    stored = store.get_ciphertexts(allowed)
    assert {h: engine.decompress(c.ciphertext).value for h, c in stored.items()} == {
        h: plain[h] for h in allowed
    }
    del stored

    Counted.reset_peak()
    job = host_job(store, RANGE, CHAIN, engine_of=lambda: engine, threads=POOL, batch=BATCH)
    figures = squash_range(job).figures
    assert figures["squashed"] == len(allowed)
    assert Counted.peak <= bound, f"squash held {Counted.peak} ciphertexts"

    Counted.reset_peak()
    table = digest_range(job).table
    assert table is not None
    assert len(table) == len(allowed)
    assert Counted.peak <= bound, f"digests held {Counted.peak} ciphertexts"

    Counted.reset_peak()
    signer = Account.from_key("0x" + "11" * 32)
    backend = FileBackend(tmp_path / "objects")
    job = host_job(store, RANGE, CHAIN, batch=BATCH, objects=lambda: backend, signer=lambda: signer)
    figures = upload_range(job).figures
    assert figures["uploaded"] + figures["skipped"] == 3 * len(allowed)
    assert Counted.peak <= bound, f"upload held {Counted.peak} ciphertexts"


@pytest.mark.parametrize("batch", [1, 3])
def test_a_small_batch_fails_and_stores_what_an_unbounded_one_does(
    tmp_path: Path, batch: int
) -> None:
    """A missing input leaves the same computations waiting and the same stored bytes and
    statuses, whatever the batch."""
    outcomes = []
    for b in (0, batch):
        store = CountingStore.open(f"sqlite:///{tmp_path / f'{b}.sqlite'}")
        transfers(store, 12)
        rows = store.computations_of_range(RANGE, chain_id=CHAIN)
        lost = rows[len(rows) // 2].dependencies[1]  # an amount, half way through
        with store.engine.begin() as conn:
            conn.execute(s.ciphertexts.delete().where(s.ciphertexts.c.handle == lost))
        with pytest.raises(MissingInputsError) as missing:
            evaluate(store, OracleEngine, RANGE, 0, POOL, CHAIN, batch=b)
        assert list(missing.value.missing) == [lost]
        statuses = {c.key: c.status for c in store.computations_of_range(RANGE, chain_id=CHAIN)}
        stored = store.snapshot()["ciphertexts"]
        assert not missing.value.report.errors
        outcomes.append((set(missing.value.report.waiting), statuses, stored))
    assert outcomes[0][0] and outcomes[0] == outcomes[1]
