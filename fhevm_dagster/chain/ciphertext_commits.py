"""The gateway's CiphertextCommits as this coprocessor sees it: commit events and commit sends.

`commit_events` finds the `AddCiphertextMaterial` (one per sender) and
`AddCiphertextMaterialConsensus` events of handles; `GatewayCommits` is the `CommitGateway` of
`pipeline.commits` on a real gateway, sending `addCiphertextMaterial` from one account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.types import FilterParams, LogReceipt

from ..pipeline.commits import (
    CommitGateway,
    GatewayUnreachable,
    OnChainCommit,
    SendResult,
    SendStatus,
)
from ..protocol.digests import Material
from .calls import ContractCall, TxJournal, TxOutcome
from .config import GatewayConfig
from .sender import TransactionSender, gateway_sender

ADD_EVENT_SIGNATURE = "AddCiphertextMaterial(bytes32,uint256,bytes32,bytes32,address)"
CONSENSUS_EVENT_SIGNATURE = (
    "AddCiphertextMaterialConsensus(bytes32,uint256,bytes32,bytes32,address[])"
)
ADD_TOPIC = bytes(Web3.keccak(text=ADD_EVENT_SIGNATURE))
CONSENSUS_TOPIC = bytes(Web3.keccak(text=CONSENSUS_EVENT_SIGNATURE))
#: Handles per eth_getLogs topic filter (nodes cap the size of an OR-list of topics).
_TOPIC_CHUNK = 100


def commit_key(handle: bytes) -> str:
    """The journal key of a handle's `addCiphertextMaterial`: one per handle and sender."""
    return f"commit:0x{handle.hex()}"


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
    if not address:
        raise CommitConfigError(
            "gateway ciphertext_commits_address is not configured "
            "(FHEVM_DAGSTER_GATEWAY_CIPHERTEXT_COMMITS_ADDRESS or a devnet)"
        )
    out: list[CommitEvent] = []
    wanted = list(dict.fromkeys(bytes(h) for h in handles))
    for i in range(0, len(wanted), _TOPIC_CHUNK):
        chunk = wanted[i : i + _TOPIC_CHUNK]
        params: FilterParams = {
            "fromBlock": from_block,
            "toBlock": "latest",
            "address": Web3.to_checksum_address(address),
            "topics": [
                [HexBytes(ADD_TOPIC), HexBytes(CONSENSUS_TOPIC)],
                [HexBytes(h) for h in chunk],
            ],
        }
        out.extend(_decode(log) for log in w3.eth.get_logs(params))
    return sorted(out, key=lambda e: (e.block_number, e.log_index))


def _decode(log: LogReceipt) -> CommitEvent:
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
    return SendResult(
        status,
        outcome.tx_hash,
        reason,
        None,
        unreachable=outcome.retryable,
        block_number=outcome.block_number if status is SendStatus.CONFIRMED else None,
    )


class GatewayCommits(CommitGateway):
    """`CommitGateway` on a real gateway chain, sending from the sender's account."""

    def __init__(self, sender: TransactionSender, address: str, from_block: int) -> None:
        if not address:
            raise CommitConfigError(
                "gateway ciphertext_commits_address is not configured "
                "(FHEVM_DAGSTER_GATEWAY_CIPHERTEXT_COMMITS_ADDRESS or a devnet)"
            )
        self.txs, self.address, self.from_block = sender, address, from_block
        self.sender = Web3.to_checksum_address(sender.address)

    @classmethod
    def of(
        cls, gateway: GatewayConfig, account: LocalAccount, from_block: int, journal: TxJournal
    ) -> GatewayCommits:
        sender = gateway_sender(gateway, account, journal)
        return cls(sender, gateway.ciphertext_commits_address, from_block)

    def committed(self, handles: Sequence[bytes]) -> dict[bytes, OnChainCommit]:
        try:
            events = commit_events(self.txs.w3, self.address, handles, self.from_block)
        except Exception as exc:  # any RPC failure: nothing can be decided, retry the step
            raise GatewayUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return {
            e.material.handle: OnChainCommit(e.material, e.tx_hash, e.block_number)
            for e in events
            if not e.consensus and e.sender == self.sender
        }

    def add_many(self, materials: Sequence[Material]) -> list[SendResult]:
        calls = [
            ContractCall(
                "CiphertextCommits",
                "addCiphertextMaterial",
                (m.handle, m.key_id, m.ciphertext_digest, m.sns_ciphertext_digest),
                label=f"addCiphertextMaterial(0x{m.handle.hex()})",
                key=commit_key(m.handle),
            )
            for m in materials
        ]
        return [_result(o) for o in self.txs.send_many(calls)]
