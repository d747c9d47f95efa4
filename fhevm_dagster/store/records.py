"""Plain records the store reads and writes (besides the protocol's `ComputationRow`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..chain.calls import TxStatus
from ..protocol.computations import ComputationRow


class ComputationStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    ERROR = "error"


class CommitState(StrEnum):
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class ProofStatus(StrEnum):
    """What the coprocessor decided about a gateway input-verification request."""

    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"
    NOT_SERVED = "not_served"  # for a host chain this coprocessor does not serve: no answer


@dataclass(frozen=True, slots=True)
class HostChain:
    chain_id: int
    acl_address: str
    executor_address: str
    key_id: int


@dataclass(frozen=True, slots=True)
class HostRange:
    """A block range the sensor requested; hashes are of its last block."""

    chain_id: int
    partition_key: str
    first_block: int
    last_block: int
    requested_hash: bytes
    processed_hash: bytes | None
    reorg_count: int
    #: Recorded without a run: no log of the chain's contracts, proven.
    is_empty: bool = False
    #: The last-block hash of its last successful run (or of its empty record).
    completed_hash: bytes | None = None
    #: Failed runs in a row of its current blocks, as the block sensor last counted them.
    failed_runs: int = 0

    @property
    def known_hash(self) -> bytes:
        """The hash the range was last seen with: processed if ingested, else requested."""
        return self.processed_hash or self.requested_hash

    @property
    def is_open(self) -> bool:
        """No run completed its current blocks yet: the block sensor watches it."""
        return self.completed_hash != self.known_hash


@dataclass(frozen=True, slots=True)
class StoredComputation(ComputationRow):
    """A computation row with its ingestion context and evaluation status."""

    chain_id: int
    range_key: str
    status: ComputationStatus
    error_message: str | None


@dataclass(frozen=True, slots=True)
class TransactionComputations:
    """The computations of one host transaction, in log order: one DAG for the compute core."""

    tx_hash: bytes
    block_number: int
    tx_index: int
    computations: tuple[StoredComputation, ...]


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """A ct64: `safe_serialize` of a single-element CompressedCiphertextList."""

    handle: bytes
    ciphertext: bytes
    fhe_type: int
    key_id: int
    origin: str  # "computed" | "input"


@dataclass(frozen=True, slots=True)
class CommitStatus:
    handle: bytes
    status: CommitState
    tx_hash: bytes | None
    reason: str | None
    #: Gateway block of the confirmed commit; None when unknown (a write keeps the stored one).
    gateway_block: int | None = None


@dataclass(frozen=True, slots=True, order=True)
class ProofKey:
    """A proof request's identity: its gateway, its zkProofId and the transaction that made it.

    The id alone repeats: a reset gateway counts from 1 again, and a reorg can give an id to
    another transaction. The transaction hash tells those apart (the ciphertext in its calldata is
    freshly encrypted, so two requests never share a transaction by chance).
    """

    gateway_chain_id: int
    zk_proof_id: int
    tx_hash: bytes

    def __str__(self) -> str:
        return f"{self.zk_proof_id} (tx 0x{self.tx_hash.hex()[:12]}…)"


@dataclass(frozen=True, slots=True)
class ProofRequest:
    """A gateway `VerifyProofRequest` and what became of it."""

    zk_proof_id: int
    gateway_chain_id: int
    contract_chain_id: int
    contract_address: str
    user_address: str
    ciphertext_with_proof: bytes
    extra_data: bytes
    block_number: int
    tx_hash: bytes
    status: ProofStatus = ProofStatus.PENDING
    reason: str | None = None
    handles: tuple[bytes, ...] | None = None
    response_status: TxStatus | None = None  # None until the answer is sent
    response_tx_hash: bytes | None = None
    response_reason: str | None = None
    response_block: int | None = None  # the gateway block of a confirmed answer
    deferrals: int = 0  # internal failures so far (the request stays pending)

    @property
    def key(self) -> ProofKey:
        return ProofKey(self.gateway_chain_id, self.zk_proof_id, self.tx_hash)


@dataclass(frozen=True, slots=True)
class RangeWrite:
    """What a range (re)ingestion changed in the store."""

    inserted: int
    updated: int
    unchanged: int
    removed: int
    allowed_inserted: int
