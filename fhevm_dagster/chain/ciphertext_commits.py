"""The gateway's CiphertextCommits as this coprocessor sees it: commit events and commit sends.

`commit_events` finds the `AddCiphertextMaterial` (one per sender) and
`AddCiphertextMaterialConsensus` events of handles in a window of gateway blocks, read in spans a
provider accepts; `GatewayCommits` is the `CommitGateway` of `chain.commit_port` on a real
gateway, sending `addCiphertextMaterial` from one account. No decision scans the gateway from its
start: commits are decided from the store and the contract's own `CoprocessorAlreadyAdded` at
simulation (as the reference's transaction sender), and events are read only in bounded windows
(a gateway range's blocks, or the last `lookback` blocks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.types import FilterParams, LogReceipt

from ..protocol.digests import Material
from ..settings import variable
from .calls import ContractCall, TxJournal, TxOutcome, TxStatus
from .commit_port import CommitGateway, GatewayUnreachable, OnChainCommit
from .config import GatewayConfig
from .logs import get_logs_windowed
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
    w3: Web3,
    address: str,
    handles: Sequence[bytes],
    first: int,
    last: int | None = None,
    *,
    max_span: int,
) -> list[CommitEvent]:
    """Every AddCiphertextMaterial / ...Consensus event for `handles` in gateway blocks
    `first..last` (None: the head), in chain order, read `max_span` blocks at most at a time (the
    gateway's `RpcSettings.logs_max_span`)."""
    if not address:
        raise CommitConfigError(
            "gateway ciphertext_commits_address is not configured "
            f"({variable('gateway_ciphertext_commits_address')} or a devnet)"
        )
    out: list[CommitEvent] = []
    wanted = list(dict.fromkeys(bytes(h) for h in handles))
    end = int(w3.eth.block_number) if last is None else last
    for i in range(0, len(wanted), _TOPIC_CHUNK):
        chunk = wanted[i : i + _TOPIC_CHUNK]
        params: FilterParams = {
            "address": Web3.to_checksum_address(address),
            "topics": [
                [HexBytes(ADD_TOPIC), HexBytes(CONSENSUS_TOPIC)],
                [HexBytes(h) for h in chunk],
            ],
        }
        out.extend(
            _decode(log) for log in get_logs_windowed(w3, params, max(0, first), end, max_span)
        )
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


def _result(outcome: TxOutcome) -> TxOutcome:
    """The outcome as a commit step records it: the custom error named in the reason, an
    unreachable gateway said so, a block only for a confirmed commit."""
    reason = outcome.reason
    failed = outcome.status is TxStatus.FAILED
    if failed and outcome.error and reason and outcome.error not in reason:
        reason = f"{outcome.error}: {reason}"
    if outcome.retryable:
        reason = f"gateway unreachable: {reason}"
    confirmed = outcome.status is TxStatus.CONFIRMED
    return replace(outcome, reason=reason, block_number=outcome.block_number if confirmed else None)


class GatewayCommits(CommitGateway):
    """`CommitGateway` on a real gateway chain, sending from the sender's account; an earlier
    commit is looked up in the last `lookback` gateway blocks at most, `max_span` blocks per
    eth_getLogs at most."""

    def __init__(
        self, sender: TransactionSender, address: str, lookback: int, max_span: int
    ) -> None:
        if not address:
            raise CommitConfigError(
                "gateway ciphertext_commits_address is not configured "
                f"({variable('gateway_ciphertext_commits_address')} or a devnet)"
            )
        self.txs, self.address, self.lookback = sender, address, lookback
        self.max_span = max_span
        self.sender = Web3.to_checksum_address(sender.address)

    @classmethod
    def of(
        cls, gateway: GatewayConfig, account: LocalAccount, lookback: int, journal: TxJournal
    ) -> GatewayCommits:
        sender = gateway_sender(gateway, account, journal)
        return cls(sender, gateway.ciphertext_commits_address, lookback, gateway.rpc.logs_max_span)

    def committed(
        self, handles: Sequence[bytes], first: int | None = None, last: int | None = None
    ) -> dict[bytes, OnChainCommit]:
        try:
            end = int(self.txs.w3.eth.block_number) if last is None else last
            start = end - self.lookback if first is None else first
            events = commit_events(
                self.txs.w3, self.address, handles, start, end, max_span=self.max_span
            )
        except Exception as exc:  # any RPC failure: nothing can be decided, retry the step
            raise GatewayUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return {
            e.material.handle: OnChainCommit(e.material, e.tx_hash, e.block_number)
            for e in events
            if not e.consensus and e.sender == self.sender
        }

    def add_many(self, materials: Sequence[Material]) -> list[TxOutcome]:
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
