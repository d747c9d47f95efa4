"""Host-chain access (the only web3 user besides devnet/) and the ingestion settings.

Settings come from environment variables, else from the devnet's `devnet.json`, else defaults:

| variable | default |
|---|---|
| FHEVM_DAGSTER_HOST_RPC_URL | devnet `host_rpc_url`, else http://127.0.0.1:8545 |
| FHEVM_DAGSTER_HOST_ACL_ADDRESS | devnet `acl_address`, else the canonical local ACL |
| FHEVM_DAGSTER_HOST_EXECUTOR_ADDRESS | devnet `executor_address`, else the canonical executor |
| FHEVM_DAGSTER_KEY_ID | devnet `key_id`, else 0 |
| FHEVM_DAGSTER_HOST_START_BLOCK | devnet `host_start_block`, else 0 |
| FHEVM_DAGSTER_HOST_RANGE_SIZE | 100 |
| FHEVM_DAGSTER_HOST_CONFIRMATIONS | 0 (anvil mines on demand; use ~12 on real chains) |
| FHEVM_DAGSTER_HOST_MAX_RANGES_PER_TICK | 10 |
| FHEVM_DAGSTER_HOST_REORG_CHECK_RANGES | 8 (recent ranges whose last-block hash is rechecked) |
| FHEVM_DAGSTER_HOST_RPC_TIMEOUT | 10 (seconds) |
| FHEVM_DAGSTER_DEVNET_JSON | ~/.cache/fhevm-dagster/devnet/devnet.json |

Gateway chain (`GatewayChainResource`, `GatewayIngestSettings`):

| variable | default |
|---|---|
| FHEVM_DAGSTER_GATEWAY_RPC_URL | devnet `gateway_rpc_url`, else http://127.0.0.1:8546 |
| FHEVM_DAGSTER_GATEWAY_INPUT_VERIFICATION_ADDRESS | devnet `input_verification_address` |
| FHEVM_DAGSTER_GATEWAY_CIPHERTEXT_COMMITS_ADDRESS | devnet `ciphertext_commits_address` |
| FHEVM_DAGSTER_GATEWAY_RPC_TIMEOUT | 10 (seconds) |
| FHEVM_DAGSTER_GATEWAY_TX_RETRIES | 4 (attempts after the first, exponential backoff) |
| FHEVM_DAGSTER_GATEWAY_TX_BACKOFF | 1 (seconds, doubled per attempt) |
| FHEVM_DAGSTER_GATEWAY_RECEIPT_TIMEOUT | 120 (seconds) |
| FHEVM_DAGSTER_GATEWAY_START_BLOCK | devnet `gateway_start_block`, else 0 |
| FHEVM_DAGSTER_GATEWAY_RANGE_SIZE | 100 |
| FHEVM_DAGSTER_GATEWAY_CONFIRMATIONS | 0 |
| FHEVM_DAGSTER_GATEWAY_MAX_RANGES_PER_TICK | 10 |
| FHEVM_DAGSTER_GATEWAY_REORG_CHECK_RANGES | 8 |

Gateway transactions (`GatewayTransactions`, from `GatewayChainResource.transactions(account)`) are
generic: `send(GatewayCall("CiphertextCommits", "addCiphertextMaterial", (handle, key_id, d64,
d128)))` returns a `TxOutcome` (confirmed | already_done | failed, tx hash, decoded reason). Each
call is simulated first (check-then-send): a call that would revert is not sent, and an "already
done" revert (`ALREADY_DONE_ERRORS`) is reported as `already_done`. Reverts are decoded by the one
decoder of `fhevm_dagster.abi`, built from the shipped ABIs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from dagster import ConfigurableResource
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import (
    BlockNotFound,
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
    TransactionNotFound,
)

from ..abi import decode_revert, load_abi
from ..protocol.events import RawLog

CANONICAL_ACL = "0x50157CFfD6bBFA2DECe204a89ec419c23ef5755D"
CANONICAL_EXECUTOR = "0xe3a9105a3a932253A70F126eb1E3b589C643dD24"
DEVNET_JSON_ENV = "FHEVM_DAGSTER_DEVNET_JSON"
DEFAULT_DEVNET_JSON = Path("~/.cache/fhevm-dagster/devnet/devnet.json")


def devnet_info() -> dict[str, Any]:
    """The devnet's `DevnetInfo` JSON when present (read as data: no devnet import), else {}."""
    path = Path(os.environ.get(DEVNET_JSON_ENV) or DEFAULT_DEVNET_JSON).expanduser()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _setting(env: str, devnet_key: str | None, default: str) -> str:
    value = os.environ.get(env, "").strip()
    if value:
        return value
    if devnet_key is not None:
        found = devnet_info().get(devnet_key)
        if found is not None:
            return str(found)
    return default


class _ChainReader(ConfigurableResource):  # type: ignore[type-arg]
    """What both chains' resources read alike: chain id, head, block hashes."""

    rpc_url: str
    request_timeout_s: float = 10.0

    @property
    def web3(self) -> Web3:
        return _web3(self.rpc_url, self.request_timeout_s)

    def chain_id(self) -> int:
        return int(self.web3.eth.chain_id)

    def head(self) -> int:
        """Latest block number."""
        return int(self.web3.eth.block_number)

    def block_hash(self, number: int) -> bytes | None:
        """Hash of block `number`, or None when the chain is not that long (any more)."""
        try:
            block = self.web3.eth.get_block(number)
        except BlockNotFound:
            return None
        value = block.get("hash")
        return None if value is None else bytes(value)


class HostChainResource(_ChainReader):
    """JSON-RPC access to the host chain's executor and ACL logs."""

    acl_address: str = CANONICAL_ACL
    executor_address: str = CANONICAL_EXECUTOR
    key_id: str = "0"  # uint256 as decimal text

    @classmethod
    def from_env(cls) -> HostChainResource:
        return cls(
            rpc_url=_setting("FHEVM_DAGSTER_HOST_RPC_URL", "host_rpc_url", "http://127.0.0.1:8545"),
            acl_address=_setting("FHEVM_DAGSTER_HOST_ACL_ADDRESS", "acl_address", CANONICAL_ACL),
            executor_address=_setting(
                "FHEVM_DAGSTER_HOST_EXECUTOR_ADDRESS", "executor_address", CANONICAL_EXECUTOR
            ),
            key_id=_setting("FHEVM_DAGSTER_KEY_ID", "key_id", "0"),
            request_timeout_s=float(_setting("FHEVM_DAGSTER_HOST_RPC_TIMEOUT", None, "10")),
        )

    def get_logs(self, first: int, last: int) -> list[RawLog]:
        """Executor and ACL logs of blocks first..last, in chain order."""
        logs = self.web3.eth.get_logs(
            {
                "fromBlock": first,
                "toBlock": last,
                "address": [
                    Web3.to_checksum_address(self.executor_address),
                    Web3.to_checksum_address(self.acl_address),
                ],
            }
        )
        out = [
            RawLog(
                address=Web3.to_checksum_address(log["address"]),
                topics=tuple(bytes(HexBytes(t)) for t in log["topics"]),
                data=bytes(HexBytes(log["data"])),
                block_number=int(log["blockNumber"]),
                block_hash=bytes(HexBytes(log["blockHash"])),
                tx_hash=bytes(HexBytes(log["transactionHash"])),
                tx_index=int(log["transactionIndex"]),
                log_index=int(log["logIndex"]),
            )
            for log in logs
        ]
        return sorted(out, key=lambda r: (r.block_number, r.log_index))


@cache
def _web3(url: str, timeout: float) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))


class HostIngestSettings(ConfigurableResource):  # type: ignore[type-arg]
    """How the sensor cuts the host chain into ranges."""

    range_size: int = 100
    confirmations: int = 0
    max_ranges_per_tick: int = 10
    start_block: int = 0
    reorg_check_ranges: int = 8

    @classmethod
    def from_env(cls) -> HostIngestSettings:
        def num(env: str, devnet_key: str | None, default: int) -> int:
            return int(_setting(env, devnet_key, str(default)))

        return cls(
            range_size=num("FHEVM_DAGSTER_HOST_RANGE_SIZE", None, 100),
            confirmations=num("FHEVM_DAGSTER_HOST_CONFIRMATIONS", None, 0),
            max_ranges_per_tick=num("FHEVM_DAGSTER_HOST_MAX_RANGES_PER_TICK", None, 10),
            start_block=num("FHEVM_DAGSTER_HOST_START_BLOCK", "host_start_block", 0),
            reorg_check_ranges=num("FHEVM_DAGSTER_HOST_REORG_CHECK_RANGES", None, 8),
        )


# --- gateway chain ---------------------------------------------------------------------------

CANONICAL_GATEWAY_RPC = "http://127.0.0.1:8546"
#: Custom errors meaning "this coprocessor already did that": the goal is reached, not a failure.
#: Names as `fhevm_dagster.abi.decode_revert` gives them, which knows the reference's signatures
#: (`CoprocessorAlreadyVerified/Rejected(uint256,address,address)`, `...Added(bytes32,address)`).
ALREADY_DONE_ERRORS = frozenset(
    {"CoprocessorAlreadyVerified", "CoprocessorAlreadyRejected", "CoprocessorAlreadyAdded"}
)
#: Gas ceiling of one transaction: under the EIP-7825 cap (2**24).
MAX_TX_GAS = 16_000_000
GATEWAY_CONTRACTS = ("InputVerification", "CiphertextCommits")

_T = TypeVar("_T")


def gateway_abi(name: str) -> list[dict[str, Any]]:
    """ABI of a gateway contract, shipped in fhevm_dagster/abi/<name>.json."""
    return load_abi(name)


_REVERTS = (ContractCustomError, ContractLogicError, ContractPanicError)


def _revert_of(exc: Exception) -> tuple[str, str]:
    data: Any = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return decode_revert(bytes.fromhex(data[2:]))
        except ValueError:
            pass
    return type(exc).__name__, str(exc)


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One state-changing call: contract ABI name (`GATEWAY_CONTRACTS`), function, arguments."""

    contract: str
    function: str
    args: tuple[Any, ...]
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"{self.contract}.{self.function}"


TxStatus = Literal["confirmed", "already_done", "failed"]


def tx_status_of(error: str) -> TxStatus:
    """`already_done` for an `ALREADY_DONE_ERRORS` revert (decoded name), else `failed`."""
    return "already_done" if error in ALREADY_DONE_ERRORS else "failed"


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """What became of a `GatewayCall`.

    `confirmed`: mined with status 1. `already_done`: an `ALREADY_DONE_ERRORS` revert (at
    simulation, so nothing was sent, or in the mined receipt). `failed`: any other revert (`error`
    names the custom error) or an RPC failure after every retry (`retryable` is then True).
    """

    status: TxStatus
    tx_hash: bytes | None = None
    reason: str | None = None
    error: str | None = None
    block_number: int | None = None
    attempts: int = 1
    retryable: bool = False

    @property
    def done(self) -> bool:
        return self.status in ("confirmed", "already_done")


class _Revert(Exception):
    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error, self.reason = error, reason


class _NonceError(Exception):
    pass


@dataclass(slots=True)
class _Pending:
    call: GatewayCall
    tx: dict[str, Any]
    tx_hash: bytes
    attempts: int


class GatewayTransactions:
    """Sends gateway transactions from one account: local nonces, retries, receipts, reasons.

    One instance per (RPC, account) per process (`GatewayChainResource.transactions`), so that
    concurrent senders in a process never reuse a nonce. Not for keys shared across processes.
    """

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        addresses: dict[str, str],
        *,
        retries: int = 4,
        backoff_s: float = 1.0,
        receipt_timeout_s: float = 120.0,
    ) -> None:
        self.w3, self.account = w3, account
        self.retries, self.backoff_s, self.receipt_timeout_s = retries, backoff_s, receipt_timeout_s
        self._contracts: dict[str, Contract] = {
            name: w3.eth.contract(address=Web3.to_checksum_address(addr), abi=gateway_abi(name))
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
                f"no address configured for gateway contract {name!r} "
                f"(configured: {sorted(self._contracts)})"
            ) from None

    def view(self, contract: str, function: str, *args: Any) -> Any:
        """A read-only call, retried on RPC failures."""
        fn = self.contract(contract).get_function_by_name(function)(*args)
        return self._retry(lambda: fn.call())[0]

    # -- retries and nonces -------------------------------------------------------------------

    def _retry(self, action: Callable[[], _T]) -> tuple[_T, int]:
        """Run `action`, retrying RPC failures (not reverts) with exponential backoff."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return action(), attempt
            except (*_REVERTS, _Revert, _NonceError):
                raise
            except Exception:
                if attempt > self.retries:
                    raise
                time.sleep(self.backoff_s * 2 ** (attempt - 1))

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

    # -- sending ------------------------------------------------------------------------------

    def _simulate(self, call: GatewayCall) -> dict[str, Any]:
        """The unsigned transaction of `call` with gas; raises `_Revert` when it would revert."""
        fn = self.contract(call.contract).get_function_by_name(call.function)(*call.args)
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        try:
            gas = int(fn.estimate_gas({"from": self.account.address}))
        except _REVERTS as exc:
            raise _Revert(*_revert_of(exc)) from exc
        tx = dict(
            fn.build_transaction(
                {
                    "from": self.account.address,
                    "chainId": self._chain_id,
                    "gas": min(int(gas * 1.2) + 50_000, MAX_TX_GAS),
                    "nonce": 0,
                }
            )
        )
        return tx

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

    def _submit(self, tx: dict[str, Any]) -> tuple[bytes, int]:
        """Sign with the next nonce and broadcast (same signed bytes on retry: no duplicate).

        The lock spans nonce choice and broadcast, so threads of a process never share a nonce.
        """
        with self._lock:
            for _ in range(3):
                nonce = self._next_nonce()
                tx["nonce"] = nonce
                signed = self.account.sign_transaction(cast(Any, tx))
                tx_hash = bytes(signed.hash)
                raw = bytes(signed.raw_transaction)
                try:
                    _, attempts = self._retry(partial(self._broadcast, raw, tx_hash))
                except _NonceError:  # someone else used this account: take the chain's count
                    self._forget_nonce()
                    continue
                except Exception:
                    self._forget_nonce()
                    raise
                self._nonce, self._last_hash = nonce + 1, tx_hash
                return tx_hash, attempts
        raise RuntimeError(f"could not find a usable nonce for {self.address}")

    def _start(self, call: GatewayCall) -> _Pending | TxOutcome:
        self.contract(call.contract)  # a configuration error raises, it is no outcome
        try:
            tx, attempts = self._retry(lambda: self._simulate(call))
        except _Revert as rev:
            return TxOutcome(tx_status_of(rev.error), None, rev.reason, rev.error)
        except Exception as exc:
            return TxOutcome("failed", None, f"RPC: {type(exc).__name__}: {exc}", retryable=True)
        try:
            tx_hash, more = self._submit(dict(tx))
        except Exception as exc:
            return TxOutcome(
                "failed", None, f"send: {type(exc).__name__}: {exc}", attempts=attempts,
                retryable=True,
            )  # fmt: skip
        return _Pending(call, tx, tx_hash, attempts + more - 1)

    def _finish(self, p: _Pending) -> TxOutcome:
        try:
            receipt, _ = self._retry(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    HexBytes(p.tx_hash), timeout=self.receipt_timeout_s
                )
            )
        except (TimeExhausted, TransactionNotFound) as exc:
            return TxOutcome(
                "failed", p.tx_hash, f"no receipt: {exc}", attempts=p.attempts, retryable=True
            )
        except Exception as exc:
            return TxOutcome(
                "failed", p.tx_hash, f"receipt: {type(exc).__name__}: {exc}", attempts=p.attempts,
                retryable=True,
            )  # fmt: skip
        block = int(receipt["blockNumber"])
        if receipt["status"] == 1:
            return TxOutcome("confirmed", p.tx_hash, None, None, block, p.attempts)
        replay = {k: v for k, v in p.tx.items() if k in ("from", "to", "data", "value", "gas")}
        try:
            self.w3.eth.call(cast(Any, replay), block - 1)
            error, reason = "Reverted", f"reverted in block {block} (gas used {receipt['gasUsed']})"
        except _REVERTS as exc:
            error, reason = _revert_of(exc)
        except Exception as exc:
            error, reason = "Reverted", f"reverted in block {block}; replay failed: {exc}"
        return TxOutcome(tx_status_of(error), p.tx_hash, reason, error, block, p.attempts)

    def send(self, call: GatewayCall) -> TxOutcome:
        """Simulate, send and wait for the receipt of one call."""
        return self.send_many([call])[0]

    def send_many(self, calls: Sequence[GatewayCall]) -> list[TxOutcome]:
        """Send every call with consecutive nonces, then wait for all receipts (pipelined).

        Outcomes are in the order of `calls`; a failed call does not stop the others.
        """
        started = [self._start(c) for c in calls]
        return [self._finish(s) if isinstance(s, _Pending) else s for s in started]


@cache
def _transactions(
    url: str,
    timeout: float,
    key: bytes,
    addresses: tuple[tuple[str, str], ...],
    retries: int,
    backoff: float,
    receipt_timeout: float,
) -> GatewayTransactions:
    from eth_account import Account

    account: LocalAccount = Account.from_key(key)
    return GatewayTransactions(
        _web3(url, timeout),
        account,
        dict(addresses),
        retries=retries,
        backoff_s=backoff,
        receipt_timeout_s=receipt_timeout,
    )


class GatewayChainResource(_ChainReader):
    """JSON-RPC access to the gateway: InputVerification logs and coprocessor transactions."""

    input_verification_address: str = ""
    ciphertext_commits_address: str = ""
    tx_retries: int = 4
    tx_backoff_s: float = 1.0
    receipt_timeout_s: float = 120.0

    @classmethod
    def from_env(cls) -> GatewayChainResource:
        return cls(
            rpc_url=_setting(
                "FHEVM_DAGSTER_GATEWAY_RPC_URL", "gateway_rpc_url", CANONICAL_GATEWAY_RPC
            ),
            input_verification_address=_setting(
                "FHEVM_DAGSTER_GATEWAY_INPUT_VERIFICATION_ADDRESS", "input_verification_address", ""
            ),
            ciphertext_commits_address=_setting(
                "FHEVM_DAGSTER_GATEWAY_CIPHERTEXT_COMMITS_ADDRESS", "ciphertext_commits_address", ""
            ),
            request_timeout_s=float(_setting("FHEVM_DAGSTER_GATEWAY_RPC_TIMEOUT", None, "10")),
            tx_retries=int(_setting("FHEVM_DAGSTER_GATEWAY_TX_RETRIES", None, "4")),
            tx_backoff_s=float(_setting("FHEVM_DAGSTER_GATEWAY_TX_BACKOFF", None, "1")),
            receipt_timeout_s=float(_setting("FHEVM_DAGSTER_GATEWAY_RECEIPT_TIMEOUT", None, "120")),
        )

    def get_logs(self, first: int, last: int) -> list[RawLog]:
        """InputVerification logs of blocks first..last, in chain order."""
        if not self.input_verification_address:
            raise ValueError("gateway input_verification_address is not configured")
        logs = self.web3.eth.get_logs(
            {
                "fromBlock": first,
                "toBlock": last,
                "address": Web3.to_checksum_address(self.input_verification_address),
            }
        )
        out = [
            RawLog(
                address=Web3.to_checksum_address(log["address"]),
                topics=tuple(bytes(HexBytes(t)) for t in log["topics"]),
                data=bytes(HexBytes(log["data"])),
                block_number=int(log["blockNumber"]),
                block_hash=bytes(HexBytes(log["blockHash"])),
                tx_hash=bytes(HexBytes(log["transactionHash"])),
                tx_index=int(log["transactionIndex"]),
                log_index=int(log["logIndex"]),
            )
            for log in logs
        ]
        return sorted(out, key=lambda r: (r.block_number, r.log_index))

    def transactions(self, account: LocalAccount) -> GatewayTransactions:
        """The process-wide sender of `account` on this gateway (shared nonce bookkeeping)."""
        addresses = (
            ("InputVerification", self.input_verification_address),
            ("CiphertextCommits", self.ciphertext_commits_address),
        )
        return _transactions(
            self.rpc_url,
            self.request_timeout_s,
            bytes(account.key),
            addresses,
            self.tx_retries,
            self.tx_backoff_s,
            self.receipt_timeout_s,
        )


class GatewayIngestSettings(ConfigurableResource):  # type: ignore[type-arg]
    """How the gateway sensor cuts the gateway chain into ranges."""

    range_size: int = 100
    confirmations: int = 0
    max_ranges_per_tick: int = 10
    start_block: int = 0
    reorg_check_ranges: int = 8

    @classmethod
    def from_env(cls) -> GatewayIngestSettings:
        def num(env: str, devnet_key: str | None, default: int) -> int:
            return int(_setting(env, devnet_key, str(default)))

        return cls(
            range_size=num("FHEVM_DAGSTER_GATEWAY_RANGE_SIZE", None, 100),
            confirmations=num("FHEVM_DAGSTER_GATEWAY_CONFIRMATIONS", None, 0),
            max_ranges_per_tick=num("FHEVM_DAGSTER_GATEWAY_MAX_RANGES_PER_TICK", None, 10),
            start_block=num("FHEVM_DAGSTER_GATEWAY_START_BLOCK", "gateway_start_block", 0),
            reorg_check_ranges=num("FHEVM_DAGSTER_GATEWAY_REORG_CHECK_RANGES", None, 8),
        )
