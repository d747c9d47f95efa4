"""The coprocessor store: SQLAlchemy schema, versioned migrations, idempotent queries."""

from .chains import StaleRange
from .engine import StoreTimeouts, create_store_engine
from .identity import ChainReset
from .migrations import LATEST_VERSION, migrate
from .queries import Store
from .records import (
    Ciphertext,
    CommitState,
    CommitStatus,
    ComputationStatus,
    HostChain,
    HostRange,
    ProofKey,
    ProofRequest,
    ProofStatus,
    RangeWrite,
    StoredComputation,
    TransactionComputations,
)

__all__ = [
    "LATEST_VERSION",
    "ChainReset",
    "Ciphertext",
    "CommitState",
    "CommitStatus",
    "ComputationStatus",
    "HostChain",
    "HostRange",
    "ProofKey",
    "ProofRequest",
    "ProofStatus",
    "RangeWrite",
    "StaleRange",
    "Store",
    "StoreTimeouts",
    "StoredComputation",
    "TransactionComputations",
    "create_store_engine",
    "migrate",
]
