"""Current shape of the coprocessor store (SQLAlchemy Core, portable SQLite/PostgreSQL).

Queries use these tables. The database itself is built by the versioned migrations in
`migrations.py`; a test compares the migrated database against this metadata, so a change here
without a migration fails.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class BytesList(TypeDecorator[tuple[bytes, ...]]):
    """An ordered list of byte strings, stored as a JSON array of hex (portable, readable)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps([bytes(v).hex() for v in value])

    def process_result_value(self, value: Any, dialect: Dialect) -> tuple[bytes, ...] | None:
        if value is None:
            return None
        return tuple(bytes.fromhex(v) for v in json.loads(value))


metadata = MetaData()
ADDRESS = String(42)
HASH = LargeBinary(32)
UINT256 = String(78)  # uint256 as decimal text: exact on both backends


def _created() -> Column[Any]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


def _updated() -> Column[Any]:
    return Column(
        "updated_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        onupdate=func.now(),
    )


host_chains = Table(
    "host_chains",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("acl_address", ADDRESS, nullable=False),
    Column("executor_address", ADDRESS, nullable=False),
    Column("key_id", UINT256, nullable=False),
    _created(),
    _updated(),
)

# A chain's identity beyond its id: the hash of its block 0, recorded when first seen (migration 4).
# A devnet restarted on the same id is another chain: its blocks, ids and handles start again.
chain_genesis = Table(
    "chain_genesis",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("genesis_hash", HASH, nullable=False),
    _created(),
    _updated(),
)

# Each adopted reset: which chain, which genesis replaced which, how many rows of the old one went.
chain_resets = Table(
    "chain_resets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("old_genesis_hash", HASH, nullable=False),
    Column("new_genesis_hash", HASH, nullable=False),
    Column("removed", Text, nullable=False),  # JSON: rows removed per table
    _created(),
)

host_ranges = Table(
    "host_ranges",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("partition_key", String(32), primary_key=True),
    Column("first_block", BigInteger, nullable=False),
    Column("last_block", BigInteger, nullable=False),
    Column("requested_hash", HASH, nullable=False),  # last block's hash when requested
    Column("processed_hash", HASH, nullable=True),  # last block's hash when ingested
    Column("reorg_count", Integer, nullable=False, server_default="0"),
    Column("processed_at", DateTime(timezone=True), nullable=True),
    # Migration 6. A range without a log of the chain's contracts, recorded without a run (its row
    # is pruned once it is older than the reorg window: the range book stays small).
    Column("is_empty", Boolean, nullable=False, server_default="0"),
    # The last-block hash of the range's last successful run (or of its empty record): a range is
    # open while this differs from its known hash, and the block sensor watches open ranges.
    Column("completed_hash", HASH, nullable=True),
    # Consecutive failed runs of the range's current blocks (the block sensor's re-drive count).
    Column("failed_runs", Integer, nullable=False, server_default="0"),
    Column("last_failure_at", Float, nullable=True),  # epoch seconds of the latest failed run
    _created(),
    _updated(),
    Index("ix_host_ranges_open", "chain_id", "completed_hash"),
)

# Inputs a range's computations wait for (migration 6): produced by a range not evaluated yet, or
# verified inputs not stored yet. Such computations stay pending (never an error) and the range is
# requested again once every handle it waits for is stored.
range_waits = Table(
    "range_waits",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("range_key", String(32), primary_key=True),
    Column("handle", HASH, primary_key=True),
    Column("reason", Text, nullable=False),
    _created(),
    Index("ix_range_waits_handle", "handle"),
)

computations = Table(
    "computations",
    metadata,
    Column("output_handle", HASH, primary_key=True),
    Column("tx_hash", HASH, primary_key=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("range_key", String(32), nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", HASH, nullable=False),
    Column("tx_index", Integer, nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("opcode", SmallInteger, nullable=False),
    Column("dependencies", BytesList, nullable=False),
    Column("is_scalar", Boolean, nullable=False),
    Column("is_allowed", Boolean, nullable=False),
    Column("fhe_type", SmallInteger, nullable=False),
    Column("caller", ADDRESS, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("error_message", Text, nullable=True),
    _created(),
    _updated(),
    Index("ix_computations_range_order", "range_key", "block_number", "tx_index", "log_index"),
    Index("ix_computations_status", "status"),
)

ciphertexts = Table(
    "ciphertexts",
    metadata,
    Column("handle", HASH, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("fhe_type", SmallInteger, nullable=False),
    Column("key_id", UINT256, nullable=False),
    Column("origin", String(16), nullable=False),  # computed | input
    _created(),
)

ciphertexts128 = Table(
    "ciphertexts128",
    metadata,
    Column("handle", HASH, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),  # empty once purged
    # Migration 6: when the bytes were dropped, once committed and stored as an object (the
    # reference deletes its ct128 rows then); the row stays as the record that it was squashed.
    Column("purged_at", DateTime(timezone=True), nullable=True),
    _created(),
)

allowed_handles = Table(
    "allowed_handles",
    metadata,
    Column("handle", HASH, primary_key=True),
    Column("account", ADDRESS, primary_key=True),  # "" for public decryption
    Column("kind", String(16), primary_key=True),  # account | decryption
    Column("chain_id", BigInteger, nullable=False),
    Column("range_key", String(32), nullable=False),
    Column("caller", ADDRESS, nullable=False),
    Column("tx_hash", HASH, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("log_index", Integer, nullable=False),
    _created(),
    Index("ix_allowed_handles_range", "range_key"),
)

proof_requests = Table(
    "proof_requests",
    metadata,
    # A request is (gateway, zkProofId, transaction): ids restart on a reset gateway (migration 4).
    Column("zk_proof_id", UINT256, primary_key=True),
    Column("gateway_chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("contract_chain_id", BigInteger, nullable=False),
    Column("contract_address", ADDRESS, nullable=False),
    Column("user_address", ADDRESS, nullable=False),
    Column("ciphertext_with_proof", LargeBinary, nullable=False),
    Column("extra_data", LargeBinary, nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("tx_hash", HASH, primary_key=True),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("reason", Text, nullable=True),
    Column("handles", BytesList, nullable=True),
    # The answer sent on the gateway: confirmed | already_done | failed (migration 2).
    Column("response_status", String(16), nullable=True),
    Column("response_tx_hash", HASH, nullable=True),
    Column("response_reason", Text, nullable=True),
    # The gateway block of the confirmed answer (migration 6): a gateway range run rechecks the
    # answers of its blocks, so a reorg that drops one gets it sent again.
    Column("response_block", BigInteger, nullable=True),
    # Times the request was deferred (a TFHE-rs panic, a missing key): answered around, retried.
    Column("deferrals", Integer, nullable=False, server_default="0"),
    _created(),
    _updated(),
    Index("ix_proof_requests_status", "status"),
    Index("ix_proof_requests_response_block", "response_block"),
)

digests = Table(
    "digests",
    metadata,
    Column("handle", HASH, primary_key=True),
    Column("key_id", UINT256, nullable=False),
    Column("ct64_digest", HASH, nullable=False),
    Column("ct128_digest", HASH, nullable=False),
    _created(),
)

commit_status = Table(
    "commit_status",
    metadata,
    Column("handle", HASH, primary_key=True),
    Column("status", String(16), nullable=False),  # sent | confirmed | failed
    Column("tx_hash", HASH, nullable=True),
    Column("reason", Text, nullable=True),
    # The gateway block of the confirmed commit (migration 5): a gateway range run rechecks the
    # commits of its blocks, so a reorg that drops one gets it sent again.
    Column("gateway_block", BigInteger, nullable=True),
    _created(),
    _updated(),
    Index("ix_commit_status_gateway_block", "gateway_block"),
)

# Gateway transactions, journaled before broadcast so a retry finds them (migration 3).
sent_transactions = Table(
    "sent_transactions",
    metadata,
    Column("tx_hash", HASH, primary_key=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("sender", ADDRESS, nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("call_key", String(200), nullable=False),  # "commit:0x<handle>", "proof:<id>:<fn>"
    Column("max_fee_per_gas", UINT256, nullable=False),
    Column("max_priority_fee_per_gas", UINT256, nullable=False),
    Column("status", String(16), nullable=False),  # pending | confirmed | failed | replaced
    _created(),
    _updated(),
    Index("ix_sent_transactions_key", "chain_id", "sender", "call_key", "status"),
)

# Who may assign the next nonce of a sender (migration 6): a short lease with an expiry, held
# while transactions are simulated, signed, journaled and broadcast, never while receipts are
# awaited. A process that dies holding it blocks the others until `expires_at` (epoch seconds),
# not for the life of its run. `next_nonce`/`last_hash` carry the nonce bookkeeping across
# processes (a lagging node's pending count may not show our latest broadcast yet).
sender_leases = Table(
    "sender_leases",
    metadata,
    Column("chain_id", BigInteger, primary_key=True, autoincrement=False),
    Column("sender", ADDRESS, primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("expires_at", Float, nullable=False, server_default="0"),
    Column("next_nonce", BigInteger, nullable=True),
    Column("last_hash", HASH, nullable=True),
    _created(),
    _updated(),
)
