"""Store behaviour, identical on SQLite and PostgreSQL: migrations, idempotent writes, queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from postgres_fixtures import postgres_database, postgres_url, store_url  # noqa: F401
from sqlalchemy import delete, select

from fhevm_dagster.chain.calls import SentTx
from fhevm_dagster.protocol.computations import AllowedHandle, ComputationRow
from fhevm_dagster.store import (
    DATABASE_URL_ENV,
    LATEST_VERSION,
    Ciphertext,
    CommitState,
    CommitStatus,
    ComputationStatus,
    Digest,
    HostChain,
    ProofRequest,
    ProofStatus,
    ResponseStatus,
    Store,
    create_store_engine,
    default_database_url,
    migrate,
)
from fhevm_dagster.store.migrations import schema_version
from fhevm_dagster.store.schema import metadata, proof_requests, sent_transactions

pytestmark = pytest.mark.fast

RANGE = "000000000000-000000000099"


def h(i: int, t: int = 2) -> bytes:
    return i.to_bytes(21, "big") + b"\xff" + (31337).to_bytes(8, "big") + bytes([t, 0])


def tx(i: int) -> bytes:
    return bytes([i]) * 32


def row(
    out: int, txi: int, log: int, deps: tuple[bytes, ...], allowed: bool = False
) -> ComputationRow:
    return ComputationRow(
        output_handle=h(out),
        tx_hash=tx(txi),
        block_number=10 + txi,
        block_hash=b"\x01" * 32,
        tx_index=0,
        log_index=log,
        opcode=0,
        dependencies=deps,
        is_scalar=False,
        is_allowed=allowed,
        fhe_type=2,
        caller="0x" + "11" * 20,
    )


ROWS = [
    row(3, 1, 2, (h(1), h(2)), allowed=True),
    row(4, 2, 0, (h(3), (5).to_bytes(32, "big"))),
    row(5, 2, 1, (h(4), h(3)), allowed=True),
]
ALLOWED = [
    AllowedHandle(h(3), "0x" + "11" * 20, "account", "0x" + "11" * 20, tx(1), 11, 3),
    AllowedHandle(h(5), "", "decryption", "0x" + "11" * 20, tx(2), 12, 2),
]


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:  # noqa: F811
    st = Store.open(store_url)
    yield st
    st.dispose()


def test_migrated_schema_matches_models(store: Store) -> None:
    assert migrate(store.engine) == LATEST_VERSION  # second run is a no-op
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    relevant = [d for d in diffs if not (isinstance(d, tuple) and "store_schema_version" in str(d))]
    assert relevant == []


def test_migration_3_adds_the_transaction_journal(store: Store) -> None:
    """A v2 database gets `sent_transactions` exactly as `schema.py` describes it."""
    with store.engine.begin() as conn:
        sent_transactions.drop(conn)
        conn.execute(delete(schema_version).where(schema_version.c.version == 3))
    assert migrate(store.engine) == 3
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if "store_schema_version" not in str(d)] == []


def test_transaction_journal(store: Store) -> None:
    me, other = "0x" + "aa" * 20, "0x" + "bb" * 20
    first = SentTx(10901, me, 7, "commit:0x01", tx(1), 2 * 10**9, 10**9)
    bump = SentTx(10901, me, 7, "commit:0x01", tx(2), 2_250_000_000, 1_125_000_000)
    for t in (first, first, bump, SentTx(10901, other, 7, "commit:0x01", tx(3), 1, 1)):
        store.record_sent(t)
    store.record_sent(SentTx(1, me, 0, "commit:0x01", tx(4), 1, 1))  # another chain
    store.record_sent(SentTx(10901, me, 8, "proof:5:verifyProofResponse", tx(5), 1, 1))
    assert store.pending_sent(10901, me, ["commit:0x01", "commit:0x02"]) == [first, bump]
    store.mark_sent([tx(2)], "confirmed")
    store.mark_sent([tx(1)], "replaced")
    assert store.pending_sent(10901, me, ["commit:0x01"]) == []
    assert [t.key for t in store.pending_sent(10901, me, ["proof:5:verifyProofResponse"])] == [
        "proof:5:verifyProofResponse"
    ]


def test_write_range_is_idempotent(store: Store) -> None:
    first = store.write_range(31337, RANGE, ROWS, ALLOWED)
    assert (first.inserted, first.unchanged, first.removed, first.allowed_inserted) == (3, 0, 0, 2)
    snap = store.snapshot()
    again = store.write_range(31337, RANGE, ROWS, ALLOWED)
    assert (again.inserted, again.unchanged, again.updated, again.removed) == (0, 3, 0, 0)
    assert store.snapshot() == snap
    assert len(snap["computations"]) == 3 and len(snap["allowed_handles"]) == 2


def test_reingest_keeps_status_and_removes_orphans(store: Store) -> None:
    store.write_range(31337, RANGE, ROWS, ALLOWED)
    store.mark_done([ROWS[0].key])
    res = store.write_range(31337, RANGE, ROWS[:1], ALLOWED[:1])  # a reorg dropped tx 2
    assert (res.removed, res.unchanged) == (2, 1)
    [kept] = store.computations_of_range(RANGE, chain_id=31337)
    assert kept.status is ComputationStatus.DONE and kept.dependencies == ROWS[0].dependencies
    assert store.allowed_handles_of_range(RANGE, chain_id=31337) == [h(3)]


def test_computations_by_transaction_order(store: Store) -> None:
    store.write_range(31337, RANGE, list(reversed(ROWS)), ALLOWED)
    groups = store.computations_by_transaction(RANGE, chain_id=31337)
    assert [g.tx_hash for g in groups] == [tx(1), tx(2)]
    assert [c.log_index for c in groups[1].computations] == [0, 1]
    assert groups[1].computations[0].dependencies == (h(3), (5).to_bytes(32, "big"))
    store.mark_errors([(h(4), tx(2), "boom")])
    errs = store.computations_of_range(RANGE, [ComputationStatus.ERROR], chain_id=31337)
    assert [(c.output_handle, c.error_message) for c in errs] == [(h(4), "boom")]
    assert store.computations_by_output([h(5)])[0].tx_hash == tx(2)


def test_ciphertexts_and_results(store: Store) -> None:
    store.write_range(31337, RANGE, ROWS, ALLOWED)
    inputs = [Ciphertext(h(1), b"ct1", 2, 7, "input"), Ciphertext(h(2), b"ct2", 2, 7, "input")]
    assert store.put_ciphertexts(inputs) == 2
    assert store.put_ciphertexts(inputs) == 0
    assert store.missing_ciphertexts([h(1), h(3), h(2), h(3)]) == [h(3)]
    n = store.store_results([Ciphertext(h(3), b"ct3", 2, 7, "computed")], [ROWS[0].key])
    assert n == 1 and store.missing_ciphertexts([h(3)]) == []
    got = store.get_ciphertexts([h(3), h(9)])
    assert list(got) == [h(3)] and got[h(3)].ciphertext == b"ct3" and got[h(3)].key_id == 7
    done = store.computations_of_range(RANGE, [ComputationStatus.DONE], chain_id=31337)
    assert [c.output_handle for c in done] == [h(3)]
    assert store.put_ciphertexts128([(h(3), b"sq3"), (h(3), b"sq3")]) == 1
    assert store.get_ciphertexts128([h(3)]) == {h(3): b"sq3"}
    assert store.missing_ciphertexts128([h(3), h(5)]) == [h(5)]


def test_chain_digests_commits_proofs(store: Store) -> None:
    big_key = 2**255 + 1
    store.register_chain(HostChain(31337, "0x" + "aa" * 20, "0x" + "bb" * 20, big_key))
    store.register_chain(HostChain(31337, "0x" + "aa" * 20, "0x" + "bb" * 20, big_key))
    chain = store.get_chain(31337)
    assert chain is not None and chain.key_id == big_key
    d = Digest(h(3), big_key, b"\x01" * 32, b"\x02" * 32)
    assert store.put_digests([d, d]) == 1 and store.get_digests([h(3)]) == {h(3): d}
    store.set_commit_status(CommitStatus(h(3), CommitState.SENT, tx(9), None))
    store.set_commit_status(CommitStatus(h(3), CommitState.CONFIRMED, tx(9), None))
    assert store.get_commit_statuses([h(3)])[h(3)].status is CommitState.CONFIRMED
    req = ProofRequest(
        2**200, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(4)
    )
    assert store.put_proof_request(req) and not store.put_proof_request(req)
    store.set_proof_status(2**200, "verified", handles=[h(1), h(2)])
    got = store.get_proof_request(2**200)
    assert got is not None and got.status == "verified" and got.handles == (h(1), h(2))
    other_gateway = ProofRequest(
        7, 1, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(5)
    )
    late = ProofRequest(8, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 9, tx(6))
    assert store.put_proof_request(other_gateway) and store.put_proof_request(late)
    assert store.proof_request_ids(10901, 0, 8) == [2**200]  # by gateway chain and block
    assert store.proof_request_ids(10901, 4, 9) == [2**200, 8]


def test_range_queries_are_per_chain(store: Store) -> None:
    """Range keys repeat across host chains: each chain sees only its own rows of a key."""
    other = [row(13, 11, 2, (h(1), h(2)), allowed=True)]
    other_allowed = [AllowedHandle(h(13), "", "decryption", "0x" + "22" * 20, tx(11), 21, 2)]
    store.write_range(31337, RANGE, ROWS, ALLOWED)
    store.write_range(1, RANGE, other, other_allowed)
    assert store.allowed_handles_of_range(RANGE, chain_id=31337) == [h(3), h(5)]
    assert store.allowed_handles_of_range(RANGE, chain_id=1) == [h(13)]
    assert store.allowed_handles_of_range(RANGE, chain_id=2) == []
    mine = store.computations_of_range(RANGE, chain_id=31337)
    assert [c.output_handle for c in mine] == [h(3), h(4), h(5)]
    assert [c.output_handle for c in store.computations_of_range(RANGE, chain_id=1)] == [h(13)]
    assert [g.tx_hash for g in store.computations_by_transaction(RANGE, chain_id=1)] == [tx(11)]
    again = store.write_range(1, RANGE, other, other_allowed)  # chain 31337's rows are not stale
    assert (again.unchanged, again.removed) == (1, 0)
    assert len(store.computations_of_range(RANGE, chain_id=31337)) == 3


def test_proof_statuses_are_enums_stored_as_before(store: Store) -> None:
    req = ProofRequest(7, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(4))
    store.put_proof_request(req)
    got = store.get_proof_request(7)
    assert got is not None and got.status is ProofStatus.PENDING and got.response_status is None
    store.set_proof_status(7, ProofStatus.REJECTED, "3: bad proof")
    store.set_proof_response(7, ResponseStatus.ALREADY_DONE, None, None)
    got = store.get_proof_requests([7])[7]
    assert got.status is ProofStatus.REJECTED and got.response_status is ResponseStatus.ALREADY_DONE
    store.set_proof_status(7, "not_served", "other chain")  # callers' plain strings still work
    store.set_proof_response(7, "confirmed", tx(5), None)
    got = store.get_proof_request(7)
    assert got is not None and got.status is ProofStatus.NOT_SERVED
    assert got.response_status is ResponseStatus.CONFIRMED and got.response_status == "confirmed"
    with pytest.raises(ValueError):
        store.set_proof_status(7, "verifyed")
    with pytest.raises(ValueError):
        store.set_proof_response(7, "sent", None, None)
    t = proof_requests
    with store.engine.connect() as conn:
        raw = conn.execute(select(t.c.status, t.c.response_status)).one()
    assert tuple(raw) == ("not_served", "confirmed")  # the column values did not change


def test_range_bookkeeping(store: Store) -> None:
    r = store.record_range_request(31337, RANGE, 0, 99, b"\x01" * 32)
    assert r.reorg_count == 0 and r.known_hash == b"\x01" * 32
    store.mark_range_processed(31337, RANGE, 0, 99, b"\x01" * 32)
    r = store.record_range_request(31337, RANGE, 0, 99, b"\x02" * 32, reorg=True)
    assert r.reorg_count == 1 and r.processed_hash is None and r.known_hash == b"\x02" * 32
    store.record_range_request(31337, "000000000100-000000000199", 100, 199, b"\x03" * 32)
    assert [x.last_block for x in store.recent_ranges(31337, 5)] == [199, 99]


def test_engine_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_store_engine("postgresql://u@h/db").url.drivername == "postgresql+psycopg2"
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path}/sub/x.sqlite")
    assert default_database_url().endswith("sub/x.sqlite")
    Store.open().dispose()  # creates the folder and migrates
    assert (tmp_path / "sub" / "x.sqlite").is_file()
    monkeypatch.delenv(DATABASE_URL_ENV)
    assert default_database_url().endswith(".cache/fhevm-dagster/store.sqlite")
