"""What is sent and what became of it: plain records shared by the sender and the pipeline,
and the journal the sender records its transactions in (the store implements it, web3-free)."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal, Protocol

#: Custom errors meaning "this coprocessor already did that": the goal is reached, not a failure.
#: Names as `fhevm_dagster.abi.decode_revert` gives them, which knows the reference's signatures
#: (`CoprocessorAlreadyVerified/Rejected(uint256,address,address)`, `...Added(bytes32,address)`).
ALREADY_DONE_ERRORS = frozenset(
    {"CoprocessorAlreadyVerified", "CoprocessorAlreadyRejected", "CoprocessorAlreadyAdded"}
)


class TxStatus(StrEnum):
    """What became of a state-changing call: the one spelling of it, for the sender, the steps
    and the store (a proof answer's `response_status` holds its value)."""

    CONFIRMED = "confirmed"  # mined with status 1
    ALREADY_DONE = "already_done"  # an `ALREADY_DONE_ERRORS` revert: the goal is reached
    FAILED = "failed"  # any other revert, or the chain could not be reached


def tx_status_of(error: str) -> TxStatus:
    """`already_done` for an `ALREADY_DONE_ERRORS` revert (decoded name), else `failed`."""
    return TxStatus.ALREADY_DONE if error in ALREADY_DONE_ERRORS else TxStatus.FAILED


@dataclass(frozen=True, slots=True)
class ContractCall:
    """One state-changing call: contract ABI name (`fhevm_dagster.abi`), function, arguments."""

    contract: str
    function: str
    args: tuple[Any, ...]
    label: str = ""
    #: What the call does, unique per intent ("commit:0x<handle>"): a call with a key whose
    #: journaled transaction is still pending is never sent again at a new nonce.
    key: str = ""

    @property
    def name(self) -> str:
        return self.label or f"{self.contract}.{self.function}"


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """What became of a `ContractCall`.

    `confirmed`: mined with status 1. `already_done`: an `ALREADY_DONE_ERRORS` revert (at
    simulation, so nothing was sent, or in the mined receipt). `failed`: any other revert (`error`
    names the custom error) or an RPC failure after the client's retries (`retryable` is True).
    """

    status: TxStatus
    tx_hash: bytes | None = None
    reason: str | None = None
    error: str | None = None
    block_number: int | None = None
    retryable: bool = False

    @property
    def done(self) -> bool:
        return self.status in (TxStatus.CONFIRMED, TxStatus.ALREADY_DONE)


SentStatus = Literal["pending", "confirmed", "failed", "replaced"]


@dataclass(frozen=True, slots=True)
class SentTx:
    """One signed transaction, journaled before its broadcast.

    `key` names what the call does ("commit:0x<handle>"; "" for a call without one), so a retry
    finds the transaction of an earlier attempt. Every attempt at one nonce (the first and its
    fee-bumped replacements) stays `pending` until one is mined: that one becomes `confirmed`
    (status 1) or `failed` (reverted), the others `replaced`. `failed` also marks attempts the
    node refused and attempts whose nonce another transaction took.
    """

    chain_id: int
    sender: str
    nonce: int
    key: str
    tx_hash: bytes
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    status: SentStatus = "pending"


@dataclass(frozen=True, slots=True)
class NonceBook:
    """A sender's nonce bookkeeping carried across processes by its lease: the next nonce after
    the last broadcast and that transaction's hash (a lagging node's pending count may not show
    it yet)."""

    next_nonce: int | None = None
    last_hash: bytes | None = None


class TxJournal(Hashable, Protocol):
    """Where the sender records its transactions before broadcasting them (the store, or
    `MemoryJournal`): a retry in another process looks its hash up instead of sending again.
    It also holds the sender's lease: one process at a time assigns nonces and broadcasts, for
    `ttl_s` at most unless renewed, so a process that dies holding it blocks the others seconds,
    not the life of its run."""

    def acquire_lease(
        self, chain_id: int, sender: str, owner: str, ttl_s: float
    ) -> NonceBook | None:
        """The lease for `owner` (free, expired, or its own already) and the nonce book; None
        while another owner holds it."""
        ...

    def renew_lease(self, chain_id: int, sender: str, owner: str, ttl_s: float) -> bool:
        """Extend `owner`'s lease; False when it lost it (expired and taken)."""
        ...

    def release_lease(self, chain_id: int, sender: str, owner: str, book: NonceBook) -> None:
        """Give the lease up, leaving the nonce book for the next owner."""
        ...

    def record_sent(self, tx: SentTx) -> None:
        """Adds `tx` (idempotent per hash)."""
        ...

    def pending_sent(self, chain_id: int, sender: str, keys: Sequence[str]) -> list[SentTx]:
        """The `pending` transactions of `sender` on `chain_id` for `keys`."""
        ...

    def mark_sent(self, tx_hashes: Sequence[bytes], status: SentStatus) -> None: ...


class MemoryJournal:
    """A `TxJournal` in memory: one process's sends only (tests, tools without a store)."""

    def __init__(self) -> None:
        self._txs: dict[bytes, SentTx] = {}
        self._lock = threading.Lock()
        self._leases: dict[tuple[int, str], tuple[str, float, NonceBook]] = {}

    def acquire_lease(
        self, chain_id: int, sender: str, owner: str, ttl_s: float
    ) -> NonceBook | None:
        now = time.time()
        with self._lock:
            holder, expires, book = self._leases.get((chain_id, sender), ("", 0.0, NonceBook()))
            if holder and holder != owner and expires > now:
                return None
            self._leases[(chain_id, sender)] = (owner, now + ttl_s, book)
            return book

    def renew_lease(self, chain_id: int, sender: str, owner: str, ttl_s: float) -> bool:
        with self._lock:
            holder, _, book = self._leases.get((chain_id, sender), ("", 0.0, NonceBook()))
            if holder != owner:
                return False
            self._leases[(chain_id, sender)] = (owner, time.time() + ttl_s, book)
            return True

    def release_lease(self, chain_id: int, sender: str, owner: str, book: NonceBook) -> None:
        with self._lock:
            holder, _, _ = self._leases.get((chain_id, sender), ("", 0.0, NonceBook()))
            if holder == owner:
                self._leases[(chain_id, sender)] = ("", 0.0, book)

    def record_sent(self, tx: SentTx) -> None:
        with self._lock:
            self._txs.setdefault(tx.tx_hash, tx)

    def pending_sent(self, chain_id: int, sender: str, keys: Sequence[str]) -> list[SentTx]:
        wanted = set(keys)
        with self._lock:
            return [
                t
                for t in self._txs.values()
                if t.status == "pending"
                and t.chain_id == chain_id
                and t.sender == sender
                and t.key in wanted
            ]

    def mark_sent(self, tx_hashes: Sequence[bytes], status: SentStatus) -> None:
        with self._lock:
            for h in tx_hashes:
                if h in self._txs:
                    self._txs[h] = replace(self._txs[h], status=status)
