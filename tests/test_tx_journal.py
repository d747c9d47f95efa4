"""Stuck, dropped and forgotten gateway transactions (#11 point 4), on a real anvil gateway.

Each test has its own anvil node with the real gateway contracts (it turns automine off, so it
does not share the session devnet) and counts the sender's mined transactions by its nonce: a
duplicate `addCiphertextMaterial` reverts without an event, but it still takes a nonce.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hexbytes import HexBytes
from sqlalchemy import select
from web3 import Web3
from web3.exceptions import TransactionNotFound

from fhevm_dagster.chain.calls import SentTx, TxJournal, TxOutcome, TxStatus
from fhevm_dagster.chain.ciphertext_commits import GatewayCommits, commit_key
from fhevm_dagster.chain.config import DEFAULT_RPC
from fhevm_dagster.chain.sender import TransactionSender
from fhevm_dagster.devnet import (
    ToolMissingError,
    anvil_account,
    connect,
    deploy_gateway_contracts,
    free_port,
    start_anvil,
    stop_anvil,
)
from fhevm_dagster.devnet.anvil import rpc_call
from fhevm_dagster.devnet.tools import anvil_binary
from fhevm_dagster.protocol.digests import Material
from fhevm_dagster.store import Store
from fhevm_dagster.store import schema as s

SENDER = anvil_account(1)  # the gateway's one coprocessor transaction sender
T = TypeVar("T")


@dataclass(frozen=True)
class Gateway:
    url: str
    w3: Web3
    commits: str

    def rpc(self, method: str, *params: object) -> object:
        return rpc_call(self.url, method, list(params))

    def holds(self, tx_hash: bytes) -> bool:
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
            return True
        except TransactionNotFound:
            return False

    def mined_count(self) -> int:
        return int(self.w3.eth.get_transaction_count(SENDER.address, "latest"))


@pytest.fixture()
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    try:
        anvil_binary()
    except ToolMissingError as exc:
        pytest.skip(str(exc))
    node = start_anvil(tmp_path, "gateway", port=free_port(), chain_id=10901)
    try:
        w3 = connect(node.rpc_url)
        contracts = deploy_gateway_contracts(
            w3,
            anvil_account(0),
            coprocessor_signers=[anvil_account(2).address],
            coprocessor_tx_senders=[SENDER.address],
        )
        gw = Gateway(node.rpc_url, w3, contracts.ciphertext_commits)
        gw.rpc("evm_setAutomine", False)
        yield gw
    finally:
        stop_anvil(tmp_path, "gateway")


def commits(
    gw: Gateway, journal: TxJournal, deadline: float, bump: float, lease: float = 30.0
) -> GatewayCommits:
    """A fresh sender (nothing in memory: another process) journaling in `journal`."""
    sender = TransactionSender(
        connect(gw.url),
        SENDER,
        {"CiphertextCommits": gw.commits},
        journal=journal,
        batch_deadline_s=deadline,
        fee_bump_s=bump,
        poll_s=0.1,
        lease_s=lease,
    )
    return GatewayCommits(sender, gw.commits, 0, DEFAULT_RPC.logs_max_span)


def materials(n: int) -> list[Material]:
    handle = lambda: os.urandom(21) + b"\xff" + (31337).to_bytes(8, "big") + b"\x02\x00"  # noqa: E731
    return [Material(handle(), 0, os.urandom(32), os.urandom(32)) for _ in range(n)]


def journal_rows(store: Store, m: Material) -> list[tuple[bytes, int, int, int, str]]:
    """(hash, nonce, max fee, priority fee, status) of the key's journaled txs, oldest first."""
    t = s.sent_transactions
    cols = (t.c.tx_hash, t.c.nonce, t.c.max_fee_per_gas, t.c.max_priority_fee_per_gas, t.c.status)
    query = select(*cols).where(t.c.call_key == commit_key(m.handle))
    with store.engine.connect() as conn:
        rows = [(bytes(h), int(n), int(f), int(p), st) for h, n, f, p, st in conn.execute(query)]
    return sorted(rows, key=lambda r: (r[1], r[2]))  # each attempt at a nonce pays more


def in_background(fn: Callable[[], T]) -> Callable[[], T]:
    """Runs `fn` in a thread; the returned function joins it and gives its result."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> T:
        thread.join(60)
        assert not thread.is_alive(), "the sender did not return"
        if "error" in box:
            raise box["error"]
        return box["result"]  # type: ignore[no-any-return]

    return join


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def pending(store: Store, ms: Sequence[Material]) -> list[SentTx]:
    return store.pending_sent(10901, SENDER.address, [commit_key(m.handle) for m in ms])


def test_dropped_transactions_are_replaced_at_their_nonce(gateway: Gateway, tmp_path: Path) -> None:
    """The pool loses a batch (`anvil_dropAllTransactions`): the retry re-sends each call at its
    journaled nonce with bumped fees, and exactly one transaction per call is mined."""
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        ms, before = materials(2), gateway.mined_count()
        first = commits(gateway, store, deadline=1.0, bump=60.0).add_many(ms)
        assert [r.status for r in first] == [TxStatus.FAILED] * 2
        assert all(r.retryable and "deadline" in (r.reason or "") for r in first)
        sent = {t.key: t for t in pending(store, ms)}
        assert sorted(t.nonce for t in sent.values()) == [before, before + 1]
        gateway.rpc("anvil_dropAllTransactions")
        gateway.rpc("evm_setAutomine", True)

        retry = commits(gateway, store, deadline=20.0, bump=60.0).add_many(ms)
        assert [r.status for r in retry] == [TxStatus.CONFIRMED] * 2
        assert gateway.mined_count() == before + 2  # one transaction per call
        for m, r in zip(ms, retry, strict=True):
            old = sent[commit_key(m.handle)]
            mined = gateway.w3.eth.get_transaction(r.tx_hash)  # type: ignore[arg-type]
            assert r.tx_hash != old.tx_hash and mined["nonce"] == old.nonce
            assert mined["maxFeePerGas"] * 8 >= old.max_fee_per_gas * 9
            assert mined["maxPriorityFeePerGas"] * 8 >= old.max_priority_fee_per_gas * 9
            assert [row[4] for row in journal_rows(store, m)] == ["replaced", "confirmed"]
    finally:
        store.dispose()


def test_a_transaction_dropped_while_awaited_is_replaced(gateway: Gateway, tmp_path: Path) -> None:
    """Dropped from the pool while its batch waits: replaced at its nonce within the batch."""
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        [m], before = materials(1), gateway.mined_count()
        join = in_background(lambda: commits(gateway, store, deadline=30.0, bump=0.5).add_many([m]))
        wait_for(lambda: bool(rows := journal_rows(store, m)) and gateway.holds(rows[0][0]))
        gateway.rpc("anvil_dropTransaction", "0x" + journal_rows(store, m)[0][0].hex())
        wait_for(lambda: len(rows := journal_rows(store, m)) >= 2 and gateway.holds(rows[-1][0]))
        gateway.rpc("evm_mine")
        [result] = join()
        assert result.status is TxStatus.CONFIRMED
        assert result.tx_hash != journal_rows(store, m)[0][0]
        assert gateway.w3.eth.get_transaction(HexBytes(result.tx_hash or b""))["nonce"] == before
        assert gateway.mined_count() == before + 1
    finally:
        store.dispose()


def test_a_new_process_finds_the_pending_transaction_instead_of_sending_again(
    gateway: Gateway,
    store_url: str,
) -> None:
    """A sender gives up (or crashes) between broadcast and receipt; a new one, with nothing in
    memory but the same store, sends nothing: it finds the hashes and reports them confirmed."""
    ms, before = materials(2), gateway.mined_count()
    first_store = Store.open(store_url)
    try:
        first = commits(gateway, first_store, deadline=0.5, bump=60.0).add_many(ms)
    finally:
        first_store.dispose()
    assert [r.status for r in first] == [TxStatus.FAILED] * 2

    store = Store.open(store_url)
    try:
        join = in_background(lambda: commits(gateway, store, deadline=30.0, bump=60.0).add_many(ms))
        time.sleep(1.0)  # the new sender looks its hashes up: found in the pool, it waits
        pool = int(gateway.w3.eth.get_transaction_count(SENDER.address, "pending"))
        assert pool == before + 2  # nothing new broadcast
        gateway.rpc("evm_mine")
        again = join()
        assert [r.status for r in again] == [TxStatus.CONFIRMED] * 2
        assert [r.tx_hash for r in again] == [r.tx_hash for r in first]
        assert gateway.mined_count() == before + 2
        assert pending(store, ms) == []
    finally:
        store.dispose()


def test_a_stuck_transaction_gets_a_fee_bumped_replacement(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Unmined after the bump interval: replaced at the same nonce, fees +12.5 % or more; the
    replacement is what is mined and reported."""
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        [m], before = materials(1), gateway.mined_count()
        join = in_background(lambda: commits(gateway, store, deadline=30.0, bump=0.5).add_many([m]))
        # Journaled before its broadcast: mine once the node holds the replacement.
        wait_for(lambda: len(rows := journal_rows(store, m)) >= 2 and gateway.holds(rows[1][0]))
        gateway.rpc("evm_mine")
        [result] = join()
        assert result.status is TxStatus.CONFIRMED
        rows = journal_rows(store, m)
        (h0, n0, fee0, tip0, st0), (_, n1, fee1, tip1, _) = rows[0], rows[1]
        assert n1 == n0 == before and st0 == "replaced"
        assert fee1 * 8 >= fee0 * 9 and tip1 * 8 >= tip0 * 9
        mined = [r for r in rows if r[4] == "confirmed"]
        assert len(mined) == 1 and result.tx_hash == mined[0][0] != h0
        assert gateway.mined_count() == before + 1
    finally:
        store.dispose()


def test_the_batch_deadline_bounds_the_wait(gateway: Gateway, tmp_path: Path) -> None:
    """N stuck transactions fail retryably after about one deadline (not N timeouts), fee
    bumps included; the retry then confirms them without one more nonce."""
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        ms, before = materials(4), gateway.mined_count()
        started = time.monotonic()
        stuck: list[TxOutcome] = commits(gateway, store, deadline=2.0, bump=0.5).add_many(ms)
        elapsed = time.monotonic() - started
        assert [r.status for r in stuck] == [TxStatus.FAILED] * 4
        assert all(r.retryable for r in stuck)
        assert elapsed < 4.0, elapsed  # one deadline (2 s), not 4 x 2 s
        assert all(len(journal_rows(store, m)) >= 2 for m in ms)  # bumped while waiting

        gateway.rpc("evm_mine")
        retry = commits(gateway, store, deadline=10.0, bump=60.0).add_many(ms)
        assert [r.status for r in retry] == [TxStatus.CONFIRMED] * 4
        assert gateway.mined_count() == before + 4
    finally:
        store.dispose()


def test_two_processes_committing_one_handle_send_one_transaction(
    gateway: Gateway,
    store_url: str,
) -> None:
    """Two runs of one range (a re-drive while a dead run's worker still sends, a manual launch)
    commit the same handle at once, from two processes: the lease orders their journal look-ups
    and broadcasts, so the second resumes the first's transaction instead of sending its own.
    (Without the lease both simulate before either is mined and both broadcast: two
    transactions, the second reverting `CoprocessorAlreadyAdded`.)"""
    [m], before = materials(1), gateway.mined_count()
    stores = [Store.open(store_url) for _ in range(2)]
    try:
        joins = [
            in_background(lambda st=st: commits(gateway, st, 30.0, 60.0).add_many([m]))
            for st in stores
        ]
        wait_for(lambda: len(journal_rows(stores[0], m)) >= 1)
        time.sleep(1.5)  # both senders past their simulation and broadcast
        pool = int(gateway.w3.eth.get_transaction_count(SENDER.address, "pending"))
        assert pool == before + 1, "one broadcast"
        gateway.rpc("evm_mine")
        results = [join() for join in joins]
        assert [r.status for [r] in results] == [TxStatus.CONFIRMED] * 2
        assert len({r.tx_hash for [r] in results}) == 1
        assert gateway.mined_count() == before + 1
    finally:
        for st in stores:
            st.dispose()


def test_a_dead_lease_holder_blocks_the_others_only_until_it_expires(
    gateway: Gateway,
    store_url: str,
) -> None:
    """A process died holding the sender's lease (its run killed mid-broadcast): the next
    sender waits for the lease to expire (`lease_s`), then sends; no Dagster pool slot is held
    for the dead run's maximum runtime (an hour). The nonce book it left is used."""
    store = Store.open(store_url)
    try:
        gateway.rpc("evm_setAutomine", True)
        assert store.acquire_lease(10901, SENDER.address, "dead:1:x", 3.0) is not None
        [m] = materials(1)
        started = time.monotonic()
        [result] = commits(gateway, store, 30.0, 60.0, lease=3.0).add_many([m])
        waited = time.monotonic() - started
        assert result.status is TxStatus.CONFIRMED
        assert 2.0 <= waited < 10.0, waited
        book = store.acquire_lease(10901, SENDER.address, "next:1:y", 3.0)
        assert book is not None and book.next_nonce == gateway.mined_count()
    finally:
        store.dispose()
