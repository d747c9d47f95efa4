"""Sending contract calls from one account: nonces, a journal, pipelined sends, fee bumps.

`TransactionSender.send_many([ContractCall(...)])` returns one `TxOutcome` per call (confirmed |
already_done | failed, tx hash, decoded reason). Each call is simulated first (check-then-send): a
call that would revert is not sent, and an "already done" revert (`ALREADY_DONE_ERRORS`) is
reported as `already_done`. Each transaction is journaled (sign, record, broadcast), so a retry of
a keyed call finds its earlier transaction by hash instead of sending a duplicate at a new nonce;
a stuck or dropped one is replaced at its nonce with fees raised by 12.5 %. Across processes the
journal's lease orders the senders of one account: a batch's journal look-ups, simulations and
broadcasts happen under it, its receipts are awaited outside it (an answer to a user never waits
for a commit batch's receipts), and a process that dies holding it blocks the others until it
expires. A batch's receipts are awaited together until one deadline. RPC failures are retried by
the client (`chain.client`); what outlasts those retries, or the deadline, is a `failed` outcome
marked `retryable`, for the Dagster step to retry.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt

from ..abi import load_abi
from .calls import (
    ContractCall,
    MemoryJournal,
    NonceBook,
    SentTx,
    TxJournal,
    TxOutcome,
    TxStatus,
    tx_status_of,
)
from .client import connect
from .config import GATEWAY_CONTRACTS, GatewayConfig, RpcSettings
from .reverts import REVERTS, revert_of

#: Gas ceiling of one transaction: under the EIP-7825 cap (2**24), so newer forks work too.
MAX_TX_GAS = 16_000_000
#: Nonce races (another sender used the account) are re-tried with the chain's count this often.
_NONCE_ATTEMPTS = 3


def padded_gas(estimate: int) -> int:
    """Gas for a transaction whose estimate is `estimate`: 20 % and 50k more, under the cap."""
    return min(int(estimate * 1.2) + 50_000, MAX_TX_GAS)


class _Revert(Exception):
    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error, self.reason = error, reason


class _NonceError(Exception):
    pass


class SenderBusy(RuntimeError):
    """Another process held the account's lease too long, or took it over: retry later."""


def bumped(fee: int) -> int:
    """`fee` raised by at least 12.5 % (and 1 wei): what nodes accept as a replacement."""
    return fee + max(1, -(-fee // 8))


@dataclass(slots=True)
class _Pending:
    """A call in flight: its transaction at `tx["nonce"]` and every attempt's hash there."""

    call: ContractCall
    tx: dict[str, Any]
    hashes: list[bytes]
    sent_at: float  # monotonic time of the latest attempt; -inf: look at it at once
    resumed: bool = False  # from the journal: if the node holds it, a bump interval first

    @property
    def nonce(self) -> int:
        return int(self.tx["nonce"])


class TransactionSender:
    """Sends calls to named contracts from one account, never reusing a nonce within a process.

    Every signed transaction is journaled (`TxJournal`) before its broadcast. A call with a
    `key` whose journaled transaction is still pending is not sent at a new nonce: its hash is
    looked up, and a dropped or stuck one is replaced at the same nonce with bumped fees.
    Receipts of a batch are awaited together until one deadline, with a fee bump for each
    transaction still unmined `fee_bump_s` after its latest attempt.

    One instance per (node, account, contracts, journal) per process (`sender_for`). Processes
    sharing a key take turns through the journal's lease (`lease_s` long unless renewed), which
    also carries the nonce bookkeeping from one holder to the next.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        addresses: Mapping[str, str],
        *,
        journal: TxJournal | None = None,
        batch_deadline_s: float = 180.0,
        fee_bump_s: float = 30.0,
        poll_s: float = 0.5,
        lease_s: float = 30.0,
    ) -> None:
        self.w3, self.account = w3, account
        self.journal: TxJournal = journal if journal is not None else MemoryJournal()
        self.batch_deadline_s, self.fee_bump_s, self.poll_s = batch_deadline_s, fee_bump_s, poll_s
        self.lease_s = lease_s
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._leased = False
        self._contracts: dict[str, Contract] = {
            name: w3.eth.contract(address=Web3.to_checksum_address(addr), abi=load_abi(name))
            for name, addr in addresses.items()
            if addr
        }
        self._lock = threading.RLock()
        self._nonce: int | None = None  # next nonce after our last broadcast
        self._last_hash: bytes | None = None
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def contract(self, name: str) -> Contract:
        try:
            return self._contracts[name]
        except KeyError:
            raise ValueError(
                f"no address configured for contract {name!r} "
                f"(configured: {sorted(self._contracts)})"
            ) from None

    @contextlib.contextmanager
    def _lease(self) -> Iterator[None]:
        """Hold the account's lease (and, in this process, the lock): wait while another
        process holds it, `3 x lease_s` at most (`SenderBusy`)."""
        with self._lock:
            if self._leased:  # re-entered by this thread
                yield
                return
            deadline = time.monotonic() + 3 * self.lease_s
            while True:
                book = self.journal.acquire_lease(
                    self.chain_id, self.address, self._owner, self.lease_s
                )
                if book is not None:
                    break
                if time.monotonic() > deadline:
                    raise SenderBusy(
                        f"the lease of sender {self.address} stayed with another process for "
                        f"{3 * self.lease_s:g} s"
                    )
                time.sleep(0.2)
            self._nonce, self._last_hash, self._leased = book.next_nonce, book.last_hash, True
            try:
                yield
            finally:
                self._leased = False
                # A store error here leaves the lease to expire on its own, `lease_s` later.
                with contextlib.suppress(Exception):
                    self.journal.release_lease(
                        self.chain_id,
                        self.address,
                        self._owner,
                        NonceBook(self._nonce, self._last_hash),
                    )

    def _renew(self) -> None:
        """Keep the lease while a long batch is being sent; losing it stops the batch."""
        if not self.journal.renew_lease(self.chain_id, self.address, self._owner, self.lease_s):
            raise SenderBusy(f"the lease of sender {self.address} expired mid-batch")

    def mined_block(self, tx_hash: bytes) -> int | None:
        """The block of `tx_hash`'s receipt on the node's chain; None when there is none (never
        mined, or dropped by a reorg)."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
        return int(receipt["blockNumber"])

    def view(self, contract: str, function: str, *args: Any) -> Any:
        """A read-only call."""
        return self.contract(contract).get_function_by_name(function)(*args).call()

    def _next_nonce(self) -> int:
        """The node's pending count, unless it lags behind a transaction we know it holds.

        Lagging (load-balanced) nodes report an old count right after a send; a reorg or a
        reverted devnet drops our transactions, and then the node's count is right again.
        """
        chain = self._count("pending")
        last = self._last_hash
        if self._nonce is not None and self._nonce > chain and last and self._known(last):
            return self._nonce
        return chain

    def _count(self, block: Literal["pending", "latest"]) -> int:
        return int(self.w3.eth.get_transaction_count(self.account.address, block))

    def _known(self, tx_hash: bytes) -> bool:
        """Whether the node holds `tx_hash` (in its pool or mined)."""
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
            return True
        except TransactionNotFound:
            return False

    def _forget_nonce(self) -> None:
        self._nonce, self._last_hash = None, None

    def _fees(self) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) for now: the node's tip, twice the base fee."""
        tip = int(self.w3.eth.max_priority_fee)
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        return 2 * base + tip, tip

    def _simulate(self, call: ContractCall) -> dict[str, Any]:
        """The unsigned transaction of `call` with gas and fees; raises `_Revert` when it would
        revert."""
        fn = self.contract(call.contract).get_function_by_name(call.function)(*call.args)
        try:
            gas = int(fn.estimate_gas({"from": self.account.address}))
        except REVERTS as exc:
            raise _Revert(*revert_of(exc)) from exc
        max_fee, tip = self._fees()
        params = {
            "from": self.account.address,
            "chainId": self.chain_id,
            "nonce": 0,
            "gas": padded_gas(gas),
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        }
        return dict(fn.build_transaction(cast(Any, params)))

    def _sign_and_record(self, tx: dict[str, Any], key: str) -> tuple[bytes, bytes]:
        """Sign `tx` and journal it before anything is broadcast: (raw, hash)."""
        signed = self.account.sign_transaction(cast(Any, tx))
        tx_hash = bytes(signed.hash)
        self.journal.record_sent(
            SentTx(
                self.chain_id,
                self.address,
                int(tx["nonce"]),
                key,
                tx_hash,
                int(tx["maxFeePerGas"]),
                int(tx["maxPriorityFeePerGas"]),
            )
        )
        return bytes(signed.raw_transaction), tx_hash

    def _broadcast(self, raw: bytes, tx_hash: bytes) -> None:
        """Broadcast; a refusal the node answered (not a lost request) marks the journal."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            text = str(exc).lower()
            if "already known" in text:
                return  # an earlier attempt of this very transaction got through
            if "nonce" in text and self._known(tx_hash):
                return  # too low / too high, but our own earlier attempt landed
            if not isinstance(exc, OSError):  # the node answered: this hash is not in its pool
                self.journal.mark_sent([tx_hash], "failed")
            if "nonce" in text:
                raise _NonceError(str(exc)) from exc
            raise

    def _submit(self, tx: dict[str, Any], key: str) -> bytes:
        """Sign with the next nonce, journal, broadcast; the lock spans all three, so threads
        never share a nonce."""
        with self._lock:
            for _ in range(_NONCE_ATTEMPTS):
                nonce = self._next_nonce()
                tx["nonce"] = nonce
                raw, tx_hash = self._sign_and_record(tx, key)
                try:
                    self._broadcast(raw, tx_hash)
                except _NonceError:  # someone else used this account: take the chain's count
                    self._forget_nonce()
                    continue
                except Exception:
                    self._forget_nonce()
                    raise
                self._nonce, self._last_hash = nonce + 1, tx_hash
                return tx_hash
        raise RuntimeError(f"could not find a usable nonce for {self.address}")

    def _start(self, call: ContractCall, journaled: Sequence[SentTx]) -> _Pending | TxOutcome:
        """Resume the call's journaled transaction, or simulate and send it afresh."""
        self.contract(call.contract)  # a configuration error raises, it is no outcome
        if journaled:
            hashes = [t.tx_hash for t in journaled]
            try:
                mined = self._mined(hashes)
            except Exception as exc:
                return TxOutcome(TxStatus.FAILED, hashes[-1], f"RPC: {exc}", retryable=True)
            if mined is not None:
                return mined
        try:
            tx = self._simulate(call)
        except _Revert as rev:
            return TxOutcome(tx_status_of(rev.error), None, rev.reason, rev.error)
        except Exception as exc:
            return TxOutcome(
                TxStatus.FAILED, None, f"RPC: {type(exc).__name__}: {exc}", retryable=True
            )
        if journaled:  # not mined: continue at its nonce, never a new one
            last = journaled[-1]
            tx.update(
                nonce=last.nonce,
                maxFeePerGas=max(t.max_fee_per_gas for t in journaled),
                maxPriorityFeePerGas=max(t.max_priority_fee_per_gas for t in journaled),
            )
            return _Pending(call, tx, [t.tx_hash for t in journaled], -math.inf, resumed=True)
        try:
            tx_hash = self._submit(tx, call.key)
        except Exception as exc:
            return TxOutcome(
                TxStatus.FAILED, None, f"send: {type(exc).__name__}: {exc}", retryable=True
            )
        return _Pending(call, tx, [tx_hash], time.monotonic())

    def _mined(self, hashes: Sequence[bytes]) -> TxOutcome | None:
        """The outcome of whichever of `hashes` (attempts at one nonce) was mined, journaled."""
        for tx_hash in hashes:
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                continue
            outcome = self._outcome(receipt, tx_hash)
            self.journal.mark_sent([tx_hash], "confirmed" if receipt["status"] == 1 else "failed")
            self.journal.mark_sent([h for h in hashes if h != tx_hash], "replaced")
            return outcome
        return None

    def _outcome(self, receipt: TxReceipt, tx_hash: bytes) -> TxOutcome:
        block = int(receipt["blockNumber"])
        if receipt["status"] == 1:
            return TxOutcome(TxStatus.CONFIRMED, tx_hash, None, None, block)
        try:
            sent = self.w3.eth.get_transaction(HexBytes(tx_hash))
            replay = {k: sent[k] for k in ("from", "to", "input", "value", "gas")}
            replay["data"] = replay.pop("input")
            self.w3.eth.call(cast(Any, replay), block - 1)
            error, reason = "Reverted", f"reverted in block {block} (gas used {receipt['gasUsed']})"
        except REVERTS as exc:
            error, reason = revert_of(exc)
        except Exception as exc:
            error, reason = "Reverted", f"reverted in block {block}; replay failed: {exc}"
        return TxOutcome(tx_status_of(error), tx_hash, reason, error, block)

    def _nudge(self, p: _Pending) -> TxOutcome | None:
        """Act on a transaction unmined since its latest attempt: replace it at its nonce with
        bumped fees, or, when another transaction took that nonce, send the call afresh."""
        latest, pending = self._count("latest"), self._count("pending")
        if latest > p.nonce or (pending < p.nonce and not any(map(self._known, p.hashes))):
            # The nonce is used by another transaction (or forgotten by the chain: a gap).
            if (mined := self._mined(p.hashes)) is not None:
                return mined  # ours after all, mined since the last look
            self.journal.mark_sent(p.hashes, "failed")
            with self._lease():
                fresh = self._start(p.call, ())
            if isinstance(fresh, TxOutcome):
                return fresh
            p.tx, p.hashes, p.sent_at, p.resumed = fresh.tx, fresh.hashes, fresh.sent_at, False
            return None
        ours = any(map(self._known, p.hashes))
        if (p.resumed and ours) or (pending > p.nonce and not ours):
            p.sent_at, p.resumed = time.monotonic(), False  # in a pool: give it an interval
            return None
        self._replace(p)  # stuck in the pool, dropped from it, or never broadcast
        return None

    def _replace(self, p: _Pending) -> None:
        max_fee, tip = self._fees()
        new_tip = max(bumped(int(p.tx["maxPriorityFeePerGas"])), tip)
        new_max = max(bumped(int(p.tx["maxFeePerGas"])), max_fee - tip + new_tip)
        tx = {**p.tx, "maxFeePerGas": new_max, "maxPriorityFeePerGas": new_tip}
        with self._lock:
            raw, tx_hash = self._sign_and_record(tx, p.call.key)
            p.tx, p.sent_at, p.resumed = tx, time.monotonic(), False
            p.hashes.append(tx_hash)
            # Refused or lost: the next look decides again, within the deadline.
            with contextlib.suppress(Exception):
                self._broadcast(raw, tx_hash)

    def _await(self, started: Sequence[_Pending], deadline: float) -> dict[int, TxOutcome]:
        """Every receipt of the batch until `deadline`, nudging the slow ones; by `id`."""
        out: dict[int, TxOutcome] = {}
        waiting = sorted(started, key=lambda p: p.nonce)
        while waiting:
            try:  # one request per look while nothing is mined: receipts only below the count
                count = self._count("latest")
            except Exception:
                count = -1
            for p in waiting:
                try:
                    mined = self._mined(p.hashes) if p.nonce < count else None
                    if mined is None and time.monotonic() - p.sent_at >= self.fee_bump_s:
                        mined = self._nudge(p)
                except Exception:
                    mined = None  # the node did not answer: look again, within the deadline
                if mined is not None:
                    out[id(p)] = mined
            waiting = sorted((p for p in waiting if id(p) not in out), key=lambda p: p.nonce)
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                break
            time.sleep(min(self.poll_s, left))
        for p in waiting:
            reason = (
                f"no receipt within the batch deadline ({self.batch_deadline_s:g} s); "
                f"{len(p.hashes)} attempt(s) at nonce {p.nonce} stay journaled: a retry "
                "resumes them"
            )
            out[id(p)] = TxOutcome(TxStatus.FAILED, p.hashes[-1], reason, retryable=True)
        return out

    def send(self, call: ContractCall) -> TxOutcome:
        """Simulate, send and wait for the receipt of one call."""
        return self.send_many([call])[0]

    def send_many(self, calls: Sequence[ContractCall]) -> list[TxOutcome]:
        """Send every call (consecutive nonces, or the nonce of its pending journaled
        transaction), then await all receipts until one deadline.

        Outcomes are in the order of `calls`; a failed call does not stop the others.
        """
        deadline = time.monotonic() + self.batch_deadline_s
        keys = [c.key for c in calls if c.key]
        for c in calls:
            self.contract(c.contract)  # a configuration error raises, it is no outcome
        started: list[_Pending | TxOutcome] = []
        try:
            with self._lease():  # the journal read under it: no other process sends these keys
                journaled: dict[str, list[SentTx]] = {}
                if keys:
                    for t in self.journal.pending_sent(self.chain_id, self.address, keys):
                        journaled.setdefault(t.key, []).append(t)
                for c in calls:
                    self._renew()
                    started.append(self._start(c, journaled.get(c.key, []) if c.key else []))
        except Exception as exc:  # the lease lost or busy, the node or the store unreachable
            why = str(exc) if isinstance(exc, SenderBusy) else f"{type(exc).__name__}: {exc}"
            started += [TxOutcome(TxStatus.FAILED, None, why, retryable=True)] * (
                len(calls) - len(started)
            )
        done = self._await([s for s in started if isinstance(s, _Pending)], deadline)
        return [done[id(s)] if isinstance(s, _Pending) else s for s in started]


@cache
def sender_for(
    url: str,
    rpc: RpcSettings,
    key: bytes,
    addresses: tuple[tuple[str, str], ...],
    journal: TxJournal,
    batch_deadline_s: float,
    fee_bump_s: float,
    lease_s: float,
) -> TransactionSender:
    """The process-wide sender of one account on one node (shared nonce bookkeeping)."""
    account: LocalAccount = Account.from_key(key)
    return TransactionSender(
        connect(url, rpc),
        account,
        dict(addresses),
        journal=journal,
        batch_deadline_s=batch_deadline_s,
        fee_bump_s=fee_bump_s,
        lease_s=lease_s,
    )


def gateway_sender(
    gateway: GatewayConfig, account: LocalAccount, journal: TxJournal
) -> TransactionSender:
    """The process-wide sender of `account` on the gateway, journaling in `journal` (the store)."""
    addresses = (gateway.input_verification_address, gateway.ciphertext_commits_address)
    return sender_for(
        gateway.rpc_url,
        gateway.rpc,
        bytes(account.key),
        tuple(zip(GATEWAY_CONTRACTS, addresses, strict=True)),
        journal,
        gateway.batch_deadline_s,
        gateway.fee_bump_s,
        gateway.sender_lease_s,
    )
