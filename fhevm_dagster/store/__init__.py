"""The coprocessor store: SQLAlchemy schema, versioned migrations, idempotent queries."""

from .chains import StaleRange
from .engine import DATABASE_URL_ENV, create_store_engine, default_database_url
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
    "DATABASE_URL_ENV",
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
    "StoredComputation",
    "TransactionComputations",
    "create_store_engine",
    "default_database_url",
    "migrate",
]
