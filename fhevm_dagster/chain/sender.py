"""Sending contract calls from one account: local nonces, pipelined sends, receipts, reasons.

`TransactionSender.send_many([ContractCall(...)])` returns one `TxOutcome` per call (confirmed |
already_done | failed, tx hash, decoded reason). Each call is simulated first (check-then-send): a
call that would revert is not sent, and an "already done" revert (`ALREADY_DONE_ERRORS`) is
reported as `already_done`. RPC failures are retried by the client (`chain.client`); what
outlasts those retries is a `failed` outcome marked `retryable`, for the Dagster step to retry.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import TimeExhausted, TransactionNotFound

from ..abi import load_abi
from .calls import ContractCall, TxOutcome, tx_status_of
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


@dataclass(slots=True)
class _Pending:
    call: ContractCall
    tx: dict[str, Any]
    tx_hash: bytes


class TransactionSender:
    """Sends calls to named contracts from one account, never reusing a nonce within a process.

    One instance per (node, account, contracts) per process (`sender_for`). Not for keys shared
    across processes: two processes sending from one account race for nonces.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        addresses: Mapping[str, str],
        *,
        receipt_timeout_s: float = 120.0,
    ) -> None:
        self.w3, self.account, self.receipt_timeout_s = w3, account, receipt_timeout_s
        self._contracts: dict[str, Contract] = {
            name: w3.eth.contract(address=Web3.to_checksum_address(addr), abi=load_abi(name))
            for name, addr in addresses.items()
            if addr
        }
        self._lock = threading.Lock()
        self._nonce: int | None = None  # next nonce after our last broadcast
        self._last_hash: bytes | None = None
        self._chain_id: int | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def contract(self, name: str) -> Contract:
        try:
            return self._contracts[name]
        except KeyError:
            raise ValueError(
                f"no address configured for contract {name!r} "
                f"(configured: {sorted(self._contracts)})"
            ) from None

    def view(self, contract: str, function: str, *args: Any) -> Any:
        """A read-only call."""
        return self.contract(contract).get_function_by_name(function)(*args).call()

    def _next_nonce(self) -> int:
        """The node's pending count, unless it lags behind a transaction we know it holds.

        Lagging (load-balanced) nodes report an old count right after a send; a reorg or a
        reverted devnet drops our transactions, and then the node's count is right again.
        """
        chain = int(self.w3.eth.get_transaction_count(self.account.address, "pending"))
        if self._nonce is not None and self._nonce > chain and self._last_hash is not None:
            try:
                self.w3.eth.get_transaction(HexBytes(self._last_hash))
                return self._nonce
            except TransactionNotFound:
                pass
        return chain

    def _forget_nonce(self) -> None:
        self._nonce, self._last_hash = None, None

    def _simulate(self, call: ContractCall) -> dict[str, Any]:
        """The unsigned transaction of `call` with gas; raises `_Revert` when it would revert."""
        fn = self.contract(call.contract).get_function_by_name(call.function)(*call.args)
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        try:
            gas = int(fn.estimate_gas({"from": self.account.address}))
        except REVERTS as exc:
            raise _Revert(*revert_of(exc)) from exc
        params = {"from": self.account.address, "chainId": self._chain_id, "nonce": 0}
        return dict(fn.build_transaction({**params, "gas": padded_gas(gas)}))

    def _broadcast(self, raw: bytes, tx_hash: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            text = str(exc).lower()
            if "already known" in text:
                return  # an earlier attempt of this very transaction got through
            if "nonce" in text:  # too low / too high: did our own earlier attempt land?
                try:
                    self.w3.eth.get_transaction(HexBytes(tx_hash))
                    return
                except TransactionNotFound:
                    raise _NonceError(str(exc)) from exc
            raise

    def _submit(self, tx: dict[str, Any]) -> bytes:
        """Sign with the next nonce and broadcast; the lock spans both, so threads never share
        a nonce."""
        with self._lock:
            for _ in range(_NONCE_ATTEMPTS):
                nonce = self._next_nonce()
                tx["nonce"] = nonce
                signed = self.account.sign_transaction(cast(Any, tx))
                tx_hash = bytes(signed.hash)
                try:
                    self._broadcast(bytes(signed.raw_transaction), tx_hash)
                except _NonceError:  # someone else used this account: take the chain's count
                    self._forget_nonce()
                    continue
                except Exception:
                    self._forget_nonce()
                    raise
                self._nonce, self._last_hash = nonce + 1, tx_hash
                return tx_hash
        raise RuntimeError(f"could not find a usable nonce for {self.address}")

    def _start(self, call: ContractCall) -> _Pending | TxOutcome:
        self.contract(call.contract)  # a configuration error raises, it is no outcome
        try:
            tx = self._simulate(call)
        except _Revert as rev:
            return TxOutcome(tx_status_of(rev.error), None, rev.reason, rev.error)
        except Exception as exc:
            return TxOutcome("failed", None, f"RPC: {type(exc).__name__}: {exc}", retryable=True)
        try:
            tx_hash = self._submit(dict(tx))
        except Exception as exc:
            return TxOutcome("failed", None, f"send: {type(exc).__name__}: {exc}", retryable=True)
        return _Pending(call, tx, tx_hash)

    def _finish(self, p: _Pending) -> TxOutcome:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(p.tx_hash), timeout=self.receipt_timeout_s
            )
        except (TimeExhausted, TransactionNotFound) as exc:
            return TxOutcome("failed", p.tx_hash, f"no receipt: {exc}", retryable=True)
        except Exception as exc:
            reason = f"receipt: {type(exc).__name__}: {exc}"
            return TxOutcome("failed", p.tx_hash, reason, retryable=True)
        block = int(receipt["blockNumber"])
        if receipt["status"] == 1:
            return TxOutcome("confirmed", p.tx_hash, None, None, block)
        replay = {k: v for k, v in p.tx.items() if k in ("from", "to", "data", "value", "gas")}
        try:
            self.w3.eth.call(cast(Any, replay), block - 1)
            error, reason = "Reverted", f"reverted in block {block} (gas used {receipt['gasUsed']})"
        except REVERTS as exc:
            error, reason = revert_of(exc)
        except Exception as exc:
            error, reason = "Reverted", f"reverted in block {block}; replay failed: {exc}"
        return TxOutcome(tx_status_of(error), p.tx_hash, reason, error, block)

    def send(self, call: ContractCall) -> TxOutcome:
        """Simulate, send and wait for the receipt of one call."""
        return self.send_many([call])[0]

    def send_many(self, calls: Sequence[ContractCall]) -> list[TxOutcome]:
        """Send every call with consecutive nonces, then wait for all receipts (pipelined).

        Outcomes are in the order of `calls`; a failed call does not stop the others.
        """
        started = [self._start(c) for c in calls]
        return [self._finish(s) if isinstance(s, _Pending) else s for s in started]


@cache
def sender_for(
    url: str,
    rpc: RpcSettings,
    key: bytes,
    addresses: tuple[tuple[str, str], ...],
    receipt_timeout_s: float,
) -> TransactionSender:
    """The process-wide sender of one account on one node (shared nonce bookkeeping)."""
    account: LocalAccount = Account.from_key(key)
    return TransactionSender(
        connect(url, rpc), account, dict(addresses), receipt_timeout_s=receipt_timeout_s
    )


def gateway_sender(gateway: GatewayConfig, account: LocalAccount) -> TransactionSender:
    """The process-wide sender of `account` on the gateway (shared nonce bookkeeping)."""
    addresses = (gateway.input_verification_address, gateway.ciphertext_commits_address)
    return sender_for(
        gateway.rpc_url,
        gateway.rpc,
        bytes(account.key),
        tuple(zip(GATEWAY_CONTRACTS, addresses, strict=True)),
        gateway.receipt_timeout_s,
    )
