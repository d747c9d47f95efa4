"""The gateway's CiphertextCommits for this coprocessor: event lookups and commit transactions.

Transactions go through the shared gateway client (`GatewayChainResource.transactions`: local
nonces, pipelined sends, retries with backoff, receipts, decoded reverts); this module adds what is
specific to digest commits: finding this sender's `AddCiphertextMaterial` events and the consensus
material, and mapping outcomes to `compute.commits.SendResult`.

The sender is `SignerResource.tx_sender_account()`. Settings (environment, then the devnet's
`devnet.json`):

| variable | default |
|---|---|
| FHEVM_DAGSTER_GATEWAY_START_BLOCK | devnet `gateway_start_block`, else 0 (commit search start) |
| FHEVM_DAGSTER_COMMIT_BATCH | 32 (transactions in flight at once) |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import ConfigurableResource
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

from ..compute.commits import (
    CommitGateway,
    GatewayUnreachable,
    OnChainCommit,
    SendResult,
    SendStatus,
)
from ..protocol.digests import Material
from .chain import GatewayCall, GatewayChainResource, TxOutcome, _setting

ADD_EVENT_SIGNATURE = "AddCiphertextMaterial(bytes32,uint256,bytes32,bytes32,address)"
CONSENSUS_EVENT_SIGNATURE = (
    "AddCiphertextMaterialConsensus(bytes32,uint256,bytes32,bytes32,address[])"
)
ADD_TOPIC = bytes(Web3.keccak(text=ADD_EVENT_SIGNATURE))
CONSENSUS_TOPIC = bytes(Web3.keccak(text=CONSENSUS_EVENT_SIGNATURE))
#: Handles per eth_getLogs topic filter (nodes cap the size of an OR-list of topics).
_TOPIC_CHUNK = 100


class CommitConfigError(RuntimeError):
    """The commit client is not configured (no CiphertextCommits address)."""


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """An `AddCiphertextMaterial` (or, with `senders`, `...Consensus`) event on the gateway."""

    material: Material
    sender: str | None
    senders: tuple[str, ...]
    tx_hash: bytes
    block_number: int
    log_index: int
    consensus: bool


def commit_events(
    w3: Web3, address: str, handles: Sequence[bytes], from_block: int = 0
) -> list[CommitEvent]:
    """Every AddCiphertextMaterial / ...Consensus event for `handles`, in chain order."""
    out: list[CommitEvent] = []
    wanted = list(dict.fromkeys(bytes(h) for h in handles))
    for i in range(0, len(wanted), _TOPIC_CHUNK):
        chunk = wanted[i : i + _TOPIC_CHUNK]
        logs = w3.eth.get_logs(
            {
                "fromBlock": from_block,
                "toBlock": "latest",
                "address": Web3.to_checksum_address(address),
                "topics": [
                    [HexBytes(ADD_TOPIC), HexBytes(CONSENSUS_TOPIC)],
                    [HexBytes(h) for h in chunk],
                ],
            }
        )
        for log in logs:
            out.append(_decode(log))
    return sorted(out, key=lambda e: (e.block_number, e.log_index))


def _decode(log: Any) -> CommitEvent:
    topic0 = bytes(HexBytes(log["topics"][0]))
    handle = bytes(HexBytes(log["topics"][1]))
    data = bytes(HexBytes(log["data"]))
    consensus = topic0 == CONSENSUS_TOPIC
    if consensus:
        key_id, d64, d128, senders = abi_decode(
            ["uint256", "bytes32", "bytes32", "address[]"], data
        )
        sender, all_senders = None, tuple(Web3.to_checksum_address(a) for a in senders)
    else:
        key_id, d64, d128, one = abi_decode(["uint256", "bytes32", "bytes32", "address"], data)
        sender, all_senders = Web3.to_checksum_address(one), ()
    return CommitEvent(
        Material(handle, int(key_id), bytes(d64), bytes(d128)),
        sender,
        all_senders,
        bytes(HexBytes(log["transactionHash"])),
        int(log["blockNumber"]),
        int(log["logIndex"]),
        consensus,
    )


def _result(outcome: TxOutcome) -> SendResult:
    status = {
        "confirmed": SendStatus.CONFIRMED,
        "already_done": SendStatus.ALREADY_DONE,
        "failed": SendStatus.FAILED,
    }[outcome.status]
    reason = outcome.reason
    if outcome.status == "failed" and outcome.error and reason and outcome.error not in reason:
        reason = f"{outcome.error}: {reason}"
    return SendResult(status, outcome.tx_hash, reason, None, unreachable=outcome.retryable)


class Web3CommitGateway(CommitGateway):
    """`CommitGateway` on a real gateway chain, sending from one transaction-sender account."""

    def __init__(self, gateway: GatewayChainResource, account: LocalAccount, from_block: int):
        if not gateway.ciphertext_commits_address:
            raise CommitConfigError(
                "gateway ciphertext_commits_address is not configured "
                "(FHEVM_DAGSTER_GATEWAY_CIPHERTEXT_COMMITS_ADDRESS or a devnet)"
            )
        self.gateway = gateway
        self.sender = Web3.to_checksum_address(account.address)
        self.txs = gateway.transactions(account)
        self.from_block = from_block

    def committed(self, handles: Sequence[bytes]) -> dict[bytes, OnChainCommit]:
        try:
            events = commit_events(
                self.gateway.web3, self.gateway.ciphertext_commits_address, handles, self.from_block
            )
        except Exception as exc:  # any RPC failure: nothing can be decided, retry the step
            raise GatewayUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return {
            e.material.handle: OnChainCommit(e.material, e.tx_hash, e.block_number)
            for e in events
            if not e.consensus and e.sender == self.sender
        }

    def add_many(self, materials: Sequence[Material]) -> list[SendResult]:
        calls = [
            GatewayCall(
                "CiphertextCommits",
                "addCiphertextMaterial",
                (m.handle, m.key_id, m.ciphertext_digest, m.sns_ciphertext_digest),
                label=f"addCiphertextMaterial(0x{m.handle.hex()})",
            )
            for m in materials
        ]
        return [_result(o) for o in self.txs.send_many(calls)]


class CommitSettings(ConfigurableResource):  # type: ignore[type-arg]
    """From which gateway block to look for earlier commits, and how many to send at once.

    The sender's key is `SignerResource.tx_sender_account()` (one place for keys).
    """

    start_block: int = 0
    batch_size: int = 32

    @classmethod
    def from_env(cls) -> CommitSettings:
        return cls(
            start_block=int(
                _setting("FHEVM_DAGSTER_GATEWAY_START_BLOCK", "gateway_start_block", "0")
            ),
            batch_size=int(_setting("FHEVM_DAGSTER_COMMIT_BATCH", None, "32")),
        )

    def client(self, gateway: GatewayChainResource, account: LocalAccount) -> Web3CommitGateway:
        return Web3CommitGateway(gateway, account, self.start_block)


def gateway_commit_events(
    gateway: GatewayChainResource, handles: Sequence[bytes], from_block: int = 0
) -> list[CommitEvent]:
    """Every commit event for `handles` on `gateway`'s CiphertextCommits (consumers, the CLI)."""
    if not gateway.ciphertext_commits_address:
        raise CommitConfigError(
            "gateway ciphertext_commits_address is not configured "
            "(FHEVM_DAGSTER_GATEWAY_CIPHERTEXT_COMMITS_ADDRESS or a devnet)"
        )
    return commit_events(gateway.web3, gateway.ciphertext_commits_address, handles, from_block)
