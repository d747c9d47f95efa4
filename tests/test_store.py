"""Store behaviour, identical on SQLite and PostgreSQL: migrations, idempotent writes, queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from fhevm_dagster.chain.calls import SentTx, TxStatus
from fhevm_dagster.protocol.computations import AllowedHandle, ComputationRow
from fhevm_dagster.protocol.digests import Material
from fhevm_dagster.settings import load_settings
from fhevm_dagster.store import (
    LATEST_VERSION,
    Ciphertext,
    CommitState,
    CommitStatus,
    ComputationStatus,
    HostChain,
    ProofRequest,
    ProofStatus,
    StaleRange,
    Store,
    StoreTimeouts,
    create_store_engine,
    migrate,
    schema,
)
from fhevm_dagster.store.schema import metadata, proof_requests

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
def store(store_url: str) -> Iterator[Store]:
    st = Store.open(store_url)
    yield st
    st.dispose()


def test_migrated_schema_matches_models(store: Store) -> None:
    assert migrate(store.engine) == LATEST_VERSION  # second run is a no-op
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    relevant = [d for d in diffs if not (isinstance(d, tuple) and "store_schema_version" in str(d))]
    assert relevant == []


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
    d = Material(h(3), big_key, b"\x01" * 32, b"\x02" * 32)
    assert store.put_digests([d, d]) == 1 and store.get_digests([h(3)]) == {h(3): d}
    store.set_commit_status(CommitStatus(h(3), CommitState.SENT, tx(9), None))
    store.set_commit_status(CommitStatus(h(3), CommitState.CONFIRMED, tx(9), None))
    assert store.get_commit_statuses([h(3)])[h(3)].status is CommitState.CONFIRMED
    req = ProofRequest(
        2**200, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(4)
    )
    assert store.put_proof_request(req) and not store.put_proof_request(req)
    store.set_proof_status(req.key, "verified", handles=[h(1), h(2)])
    got = store.get_proof_request(req.key)
    assert got is not None and got.status == "verified" and got.handles == (h(1), h(2))
    other_gateway = ProofRequest(
        7, 1, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(5)
    )
    late = ProofRequest(8, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 9, tx(6))
    assert store.put_proof_request(other_gateway) and store.put_proof_request(late)
    assert store.proof_request_keys(10901, 0, 8) == [req.key]  # by gateway chain and block
    assert store.proof_request_keys(10901, 4, 9) == [req.key, late.key]


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
    got = store.get_proof_request(req.key)
    assert got is not None and got.status is ProofStatus.PENDING and got.response_status is None
    store.set_proof_status(req.key, ProofStatus.REJECTED, "3: bad proof")
    store.set_proof_response(req.key, TxStatus.ALREADY_DONE, None, None)
    got = store.get_proof_requests([req.key])[req.key]
    assert got.status is ProofStatus.REJECTED and got.response_status is TxStatus.ALREADY_DONE
    store.set_proof_status(req.key, "not_served", "other chain")  # plain strings still work
    store.set_proof_response(req.key, "confirmed", tx(5), None)
    got = store.get_proof_request(req.key)
    assert got is not None and got.status is ProofStatus.NOT_SERVED
    assert got.response_status is TxStatus.CONFIRMED and got.response_status == "confirmed"
    with pytest.raises(ValueError):
        store.set_proof_status(req.key, "verifyed")
    with pytest.raises(ValueError):
        store.set_proof_response(req.key, "sent", None, None)
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
    monkeypatch.setenv("FHEVM_DAGSTER_DATABASE_URL", f"sqlite:///{tmp_path}/sub/x.sqlite")
    assert load_settings().database_url.endswith("sub/x.sqlite")
    Store.open(load_settings().database_url).dispose()  # creates the folder and migrates
    assert (tmp_path / "sub" / "x.sqlite").is_file()
    monkeypatch.delenv("FHEVM_DAGSTER_DATABASE_URL")
    assert load_settings().database_url.endswith(".cache/fhevm-dagster/store.sqlite")


#: What migrations after v2 added: tables, and columns of older tables (with their indexes).
LATER_TABLES = {
    "sent_transactions", "chain_genesis", "chain_resets", "range_waits", "sender_leases",
}  # fmt: skip
LATER_COLUMNS = {
    "commit_status": {"gateway_block"},
    "host_ranges": {"is_empty", "completed_hash", "failed_runs", "last_failure_at"},
    "proof_requests": {"response_block", "deferrals"},
    "ciphertexts128": {"purged_at"},
}


def test_v2_store_is_migrated_with_its_proof_requests(store_url: str) -> None:
    """A v2 store (requests keyed by zkProofId alone, no transaction journal, commits without
    their gateway block, no range completion) becomes exactly `schema.py` (migration 3 adds
    `sent_transactions`, 4 re-keys requests, 5 adds `commit_status.gateway_block`, 6 the
    keeping-up state), keeps its rows and takes the same id from another transaction; a
    computation v2 failed for a missing input is pending again, its processed range complete."""
    from sqlalchemy import Column, Index, MetaData, Table

    from fhevm_dagster.store import migrations, schema

    old = MetaData()
    for table in schema.metadata.sorted_tables:
        if table.name in LATER_TABLES:
            continue
        later = LATER_COLUMNS.get(table.name, set())
        columns = [
            Column(
                c.name,
                c.type,
                primary_key=c.name == "zk_proof_id" if table is proof_requests else c.primary_key,
                nullable=c.nullable,
                server_default=c.server_default,
            )
            for c in table.c
            if c.name not in later
        ]
        indexes = [
            Index(i.name, *(c.name for c in i.columns))
            for i in table.indexes
            if not later & {c.name for c in i.columns}
        ]
        Table(table.name, old, *columns, *indexes)
    engine = create_store_engine(store_url)
    with engine.begin() as conn:
        old.create_all(conn)
        migrations._version_meta.create_all(conn)
        for v in (1, 2):
            conn.execute(migrations.schema_version.insert().values(version=v, description="v"))
        v2 = old.tables["proof_requests"]
        row = {c.name: None for c in v2.c if c.nullable}
        row |= {"zk_proof_id": "1", "gateway_chain_id": 10901, "contract_chain_id": 31337}
        row |= {"contract_address": "0x" + "cc" * 20, "user_address": "0x" + "dd" * 20}
        row |= {"ciphertext_with_proof": b"zk", "extra_data": b"", "block_number": 4}
        row |= {"tx_hash": tx(4), "status": "rejected", "reason": "3: bad"}
        conn.execute(v2.insert().values(row))
        conn.execute(old.tables["commit_status"].insert().values(handle=h(7), status="confirmed"))
    store = Store(engine)
    store.write_range(31337, RANGE, ROWS, ALLOWED)
    store.mark_range_processed(31337, RANGE, 0, 99, b"\x09" * 32)
    missing = "OperationError: missing input 0x01"
    store.mark_errors([(h(3), tx(1), missing), (h(5), tx(2), "DivisionByZero")])
    first = ProofRequest(1, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(4))
    assert migrate(engine) == LATEST_VERSION
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if "store_schema_version" not in str(d)] == []
    kept = store.get_proof_request(first.key)
    assert kept is not None and kept.status is ProofStatus.REJECTED
    again = ProofRequest(1, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 9, tx(9))
    assert store.put_proof_request(again)
    assert store.proof_request_keys(10901, 0, 9) == [first.key, again.key]
    assert store.get_commit_statuses([h(7)])[h(7)].gateway_block is None
    store.set_commit_status(CommitStatus(h(7), CommitState.CONFIRMED, tx(7), None, 12))
    store.set_commit_status(CommitStatus(h(7), CommitState.FAILED, tx(7), "reorg"))  # keeps 12
    assert [c.handle for c in store.commits_in_gateway_blocks(12, 12)] == [h(7)]
    rows = store.computations_of_range(RANGE, chain_id=31337)
    statuses = {c.output_handle: c.status for c in rows}
    assert statuses[h(3)] is ComputationStatus.PENDING  # transient: reopened
    assert statuses[h(5)] is ComputationStatus.ERROR  # deterministic: stays final
    with engine.connect() as conn:
        done = conn.execute(select(schema.host_ranges.c.completed_hash)).scalar_one()
    assert done == b"\x09" * 32
    engine.dispose()


def test_adopting_a_reset_removes_only_the_old_chains_rows(store: Store) -> None:
    other = ProofRequest(1, 7, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(4))
    mine = ProofRequest(1, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", 4, tx(4))
    for req in (other, mine):
        store.put_proof_request(req)
    store.write_range(31337, RANGE, ROWS, ALLOWED)
    foreign = h(3)[:22] + (1).to_bytes(8, "big") + h(3)[30:]  # the same handle on chain 1
    store.put_ciphertexts([Ciphertext(x, b"ct", 2, 0, "computed") for x in (h(3), foreign)])
    store.set_commit_status(CommitStatus(foreign, CommitState.CONFIRMED, None, None))
    old, new = b"\x01" * 32, b"\x02" * 32
    assert store.record_genesis(10901, old) == old and store.record_genesis(10901, new) == old
    gateway = store.adopt_reset(10901, old, new, gateway=True)
    assert gateway is not None and store.genesis_of(10901) == new
    assert gateway.removed["proof_requests"] == 1 and gateway.removed["commit_status"] == 1
    assert store.proof_request_keys(10901, 0, 9) == [] and store.proof_request_keys(7, 0, 9)
    assert store.adopt_reset(10901, old, new, gateway=True) is None  # adopted already
    store.record_genesis(31337, old)
    host = store.adopt_reset(31337, old, new, gateway=False)
    assert host is not None and host.removed["computations"] == 3
    assert store.computations_of_range(RANGE, chain_id=31337) == []
    assert list(store.get_ciphertexts([h(3), foreign])) == [foreign]


def test_a_read_never_waits_for_a_writer(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A range's write transaction is open (SQLite: the write lock held; PostgreSQL: row locks):
    reads (a metrics scrape, a sensor tick) answer at once from the last committed state, and on
    PostgreSQL a write blocked by the held lock fails after `DB_LOCK_TIMEOUT` instead of hanging."""
    import time

    from sqlalchemy.exc import OperationalError

    store.register_chain(HostChain(31337, "0x" + "aa" * 20, "0x" + "bb" * 20, 0))
    monkeypatch.setenv("FHEVM_DAGSTER_DB_LOCK_TIMEOUT", "1")
    timeouts = StoreTimeouts.of(load_settings())
    other = Store.open(str(store.engine.url), run_migrations=False, timeouts=timeouts)
    try:
        with store.writer.begin() as held:
            held.execute(
                schema.host_chains.update()
                .values(key_id="7")
                .where(schema.host_chains.c.chain_id == 31337)
            )
            started = time.monotonic()
            chain = other.get_chain(31337)
            assert chain is not None and chain.key_id == 0  # the committed state
            assert time.monotonic() - started < 1.0
            if store.backend == "postgresql":
                started = time.monotonic()
                with pytest.raises(OperationalError, match="lock timeout"):
                    other.register_chain(HostChain(31337, "0x" + "cc" * 20, "0x" + "bb" * 20, 0))
                assert time.monotonic() - started < 10.0
    finally:
        other.dispose()


def test_ingestion_is_fenced_on_the_range_books_hash(store: Store) -> None:
    """Two runs of one range overlap (a reorg's run and the run it replaces, a manual launch):
    the one that read other blocks than the book holds writes nothing, whichever finishes last.
    (Before: write_range then mark_range_processed, last writer wins.)"""
    old, new = b"\x0a" * 32, b"\x0b" * 32
    store.record_range_request(31337, RANGE, 0, 99, old)
    store.write_range(31337, RANGE, ROWS[:1], ALLOWED[:1], processed=(0, 99, old))
    store.record_range_request(31337, RANGE, 0, 99, new, reorg=True)  # the sensor saw a reorg
    store.write_range(31337, RANGE, ROWS, ALLOWED, processed=(0, 99, new))
    with pytest.raises(StaleRange, match="the range book holds"):
        store.write_range(31337, RANGE, ROWS[:1], ALLOWED[:1], processed=(0, 99, old))
    assert len(store.computations_of_range(RANGE, chain_id=31337)) == len(ROWS)  # untouched
    rng = store.get_range(31337, RANGE)
    assert rng is not None and rng.processed_hash == new and rng.reorg_count == 1
    with pytest.raises(StaleRange):
        store.mark_range_processed(31337, RANGE, 0, 99, old)
    store.write_range(31337, "000000000100-000000000199", [], [], processed=(100, 199, old))


def test_open_and_empty_ranges(store: Store) -> None:
    """A range is open until a run of its current blocks completes; an empty one is complete at
    once, and empty rows older than a block are pruned (the book stays small)."""
    h = [bytes([i]) * 32 for i in range(1, 6)]
    keys = [f"{i * 10:012d}-{i * 10 + 9:012d}" for i in range(5)]
    for i in (0, 1, 3):
        store.record_empty_range(31337, keys[i], i * 10, i * 10 + 9, h[i])
    store.record_range_request(31337, keys[2], 20, 29, h[2])
    store.record_range_request(31337, keys[4], 40, 49, h[4])
    assert [r.partition_key for r in store.open_ranges(31337, 10)] == [keys[2], keys[4]]
    store.record_range_failures(31337, keys[2], 3, 1000.0)
    store.mark_range_completed(31337, keys[2], b"\xff" * 32)  # other blocks: still open
    assert [r.failed_runs for r in store.open_ranges(31337, 10)] == [3, 0]
    store.mark_range_completed(31337, keys[2], h[2])
    assert [r.partition_key for r in store.open_ranges(31337, 10)] == [keys[4]]
    done = store.get_range(31337, keys[2])
    assert done is not None and not done.is_open and done.failed_runs == 0
    store.record_range_request(31337, keys[2], 20, 29, h[0], reorg=True)
    assert [r.partition_key for r in store.open_ranges(31337, 10)] == [keys[2], keys[4]]
    assert store.prune_empty_ranges(31337, 30) == 2  # 0-9 and 10-19: 30-39 and 2x are kept
    assert [store.get_range(31337, k) is None for k in keys] == [True, True, False, False, False]
    # The ranges a block sensor keeps when it cuts from a block: those ending at or after it.
    assert [r.partition_key for r in store.ranges_from(31337, 25, 10)] == keys[2:]
    assert [r.partition_key for r in store.ranges_from(31337, 30, 1)] == [keys[3]]
    assert store.ranges_from(31337, 50, 10) == [] and store.ranges_from(1, 0, 10) == []
