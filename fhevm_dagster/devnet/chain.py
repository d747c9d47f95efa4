"""Sending transactions to the local chains: connect, sign locally, wait, explain reverts.

Every transaction is signed in process (anvil test keys or the per-devnet coprocessor keys), so the
same code works against any node. Reverts, whether at gas estimation or in a mined receipt, become a
TransactionReverted that names the decoded custom error.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxParams, TxReceipt

from ..chain.client import connect as chain_connect
from ..chain.config import RpcSettings
from ..chain.reverts import REVERTS, revert_data
from ..chain.sender import padded_gas
from .anvil import TEST_MNEMONIC
from .artifacts import Artifact, decode_revert, load_artifact
from .errors import TransactionReverted

#: The local nodes answer at once or not at all: a long timeout, few retries.
_LOCAL_RPC = RpcSettings(timeout_s=60.0, retries=2)


def connect(rpc_url: str) -> Web3:
    """A Web3 client for one of the local nodes (the chain client's, with its retry layer)."""
    return chain_connect(rpc_url, _LOCAL_RPC)


@cache
def anvil_account(index: int) -> LocalAccount:
    """Anvil's deterministic account `index` (public test key of the default mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


def revert_error(label: str, exc: Exception, tx_hash: str | None = None) -> TransactionReverted:
    """A TransactionReverted naming the decoded custom error of a web3 contract exception."""
    data = revert_data(exc)
    if data:
        name, shown = decode_revert(data)
    else:
        name, shown = type(exc).__name__, str(exc)
    where = f" (tx {tx_hash})" if tx_hash else ""
    return TransactionReverted(f"{label} reverted: {shown}{where}", error=name, tx_hash=tx_hash)


def send_transaction(
    w3: Web3,
    account: LocalAccount,
    call: ContractFunction | ContractConstructor | None = None,
    *,
    to: str | None = None,
    data: bytes | None = None,
    value: int = 0,
    gas: int | None = None,
    label: str | None = None,
) -> TxReceipt:
    """Signs and sends `call` (or raw `to`/`data`), waits for the receipt, raises on revert."""
    label = label or str(getattr(call, "fn_name", "transaction"))
    params: TxParams = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": w3.eth.chain_id,
        "value": Web3.to_wei(value, "wei"),
    }
    if gas is not None:
        params["gas"] = gas
    try:
        if call is not None:
            tx = call.build_transaction(params)
        else:
            if to is not None:
                params["to"] = Web3.to_checksum_address(to)
            params["data"] = HexBytes(data or b"")
            if gas is None:
                params["gas"] = w3.eth.estimate_gas(params)
            tx = params
    except REVERTS as exc:
        raise revert_error(label, exc) from exc
    if gas is None:
        tx["gas"] = padded_gas(int(tx["gas"]))
    signed = account.sign_transaction(cast(Any, tx))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
    if receipt["status"] != 1:
        replay: dict[str, Any] = {
            k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")
        }
        try:
            w3.eth.call(replay, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except REVERTS as exc:
            raise revert_error(label, exc, tx_hash.to_0x_hex()) from exc
        raise TransactionReverted(
            f"{label} failed in block {receipt['blockNumber']} (tx {tx_hash.to_0x_hex()}, "
            f"gas used {receipt['gasUsed']} of {tx['gas']})",
            tx_hash=tx_hash.to_0x_hex(),
        )
    return receipt


def contract_at(w3: Web3, address: str, abi: list[dict[str, Any]]) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)


def deploy_artifact(
    w3: Web3, account: LocalAccount, artifact: Artifact, *args: Any
) -> tuple[Contract, TxReceipt]:
    """Deploys `artifact` with constructor `args` from `account`; returns contract and receipt."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send_transaction(
        w3, account, factory.constructor(*args), label=f"deploy {artifact.name}"
    )
    address = receipt["contractAddress"]
    if address is None:
        raise TransactionReverted(f"deploy {artifact.name}: receipt has no contract address")
    return contract_at(w3, address, artifact.abi), receipt


def deploy_contract(
    w3: Web3, account: LocalAccount, name: str, *args: Any
) -> tuple[Contract, TxReceipt]:
    """Deploys our compiled contract `name` (contracts/build/<name>.json)."""
    return deploy_artifact(w3, account, load_artifact(name), *args)


def rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call (anvil_* methods); raises on an RPC error."""
    reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in reply:
        raise TransactionReverted(f"{method} failed: {reply['error']}")
    return reply.get("result")


def set_balance(w3: Web3, address: str, wei: int) -> None:
    rpc(w3, "anvil_setBalance", [Web3.to_checksum_address(address), hex(wei)])
