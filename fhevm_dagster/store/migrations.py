"""Versioned schema migrations.

A new database is created from `schema.metadata` and stamped with the latest version (the
Alembic "create_all + stamp" practice). An existing database is brought forward by the migrations
whose version is above its recorded one, in order, in one transaction with their version rows. To
change the schema: edit `schema.py` *and* append a `Migration` that alters existing databases
the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    inspect,
    select,
    text,
)

from . import schema


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Connection], None] | None  # None: the baseline, created by create_all


def _add_columns(table: str, *names: str) -> Callable[[Connection], None]:
    """An upgrade adding columns of `schema` to an existing table (portable ALTER TABLE). A column
    the table has already is skipped: SQLite's rebuild of a table (migration 4) makes its current
    shape."""

    def upgrade(conn: Connection) -> None:
        present = {c["name"] for c in inspect(conn).get_columns(table)}
        for name in names:
            if name in present:
                continue
            column = schema.metadata.tables[table].c[name]
            kind = column.type.compile(dialect=conn.dialect)
            default = column.server_default
            extra = ""
            if default is not None:  # a NOT NULL column needs its default for existing rows
                extra = f" DEFAULT '{default.arg}'"  # type: ignore[attr-defined]
                extra += "" if column.nullable else " NOT NULL"
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}{extra}"))

    return upgrade


def _create_table(table: str) -> Callable[[Connection], None]:
    """An upgrade creating a table of `schema` (with its indexes) in an existing database."""

    def upgrade(conn: Connection) -> None:
        schema.metadata.tables[table].create(conn)

    return upgrade


def _chain_identity(conn: Connection) -> None:
    """Genesis hashes and resets recorded; proof requests keyed by (gateway, id, transaction)."""
    schema.chain_genesis.create(conn)
    schema.chain_resets.create(conn)
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE proof_requests DROP CONSTRAINT proof_requests_pkey"))
        key = "zk_proof_id, gateway_chain_id, tx_hash"
        conn.execute(text(f"ALTER TABLE proof_requests ADD PRIMARY KEY ({key})"))
        return
    # SQLite cannot change a primary key: the table is rebuilt (at its current shape: later
    # migrations skip what it has) and its rows copied.
    present = {c["name"] for c in inspect(conn).get_columns("proof_requests")}
    columns = ", ".join(c.name for c in schema.proof_requests.c if c.name in present)
    conn.execute(text("ALTER TABLE proof_requests RENAME TO proof_requests_v2"))
    conn.execute(text("DROP INDEX ix_proof_requests_status"))
    schema.proof_requests.create(conn)
    conn.execute(
        text(f"INSERT INTO proof_requests ({columns}) SELECT {columns} FROM proof_requests_v2")
    )
    conn.execute(text("DROP TABLE proof_requests_v2"))


def _commit_blocks(conn: Connection) -> None:
    """`commit_status.gateway_block` and its index (commits rechecked per gateway range)."""
    _add_columns("commit_status", "gateway_block")(conn)
    for index in schema.commit_status.indexes:
        if index.name == "ix_commit_status_gateway_block":
            index.create(conn)


def _keep_up(conn: Connection) -> None:
    """Open ranges, empty ranges and re-drive state; the inputs ranges wait for; answer blocks and
    deferrals; purged ct128s; sender leases. Computations that an earlier version failed for a
    missing input (a transient cause, recorded as final by mistake) are pending again."""
    _add_columns("host_ranges", "is_empty", "completed_hash", "failed_runs", "last_failure_at")(
        conn
    )
    _add_columns("proof_requests", "response_block", "deferrals")(conn)
    _add_columns("ciphertexts128", "purged_at")(conn)
    for table, name in (
        ("host_ranges", "ix_host_ranges_open"),
        ("proof_requests", "ix_proof_requests_response_block"),
    ):
        if name not in {i["name"] for i in inspect(conn).get_indexes(table)}:
            next(i for i in schema.metadata.tables[table].indexes if i.name == name).create(conn)
    schema.range_waits.create(conn)
    schema.sender_leases.create(conn)
    c = schema.computations
    conn.execute(
        c.update()
        .where(c.c.status == "error", c.c.error_message.like("%missing input%"))
        .values(status="pending", error_message=None)
    )
    # Ranges an earlier version processed count as complete: only what fails from now on is open.
    h = schema.host_ranges
    conn.execute(
        h.update().where(h.c.processed_hash.is_not(None)).values(completed_hash=h.c.processed_hash)
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: chains, ranges, computations, ciphertexts, proofs, digests", None),
    Migration(
        2,
        "proof_requests: gateway response status, tx hash and reason",
        _add_columns("proof_requests", "response_status", "response_tx_hash", "response_reason"),
    ),
    Migration(
        3,
        "sent_transactions: gateway transactions journaled before broadcast",
        _create_table("sent_transactions"),
    ),
    Migration(
        4,
        "chain genesis hashes and resets; proof requests keyed by gateway, id and transaction",
        _chain_identity,
    ),
    Migration(
        5,
        "commit_status: gateway block of each confirmed commit (rechecked after gateway reorgs)",
        _commit_blocks,
    ),
    Migration(
        6,
        "keeping up: open/empty ranges, re-drive state, range waits, answer blocks, deferrals, "
        "purged ct128s, sender leases; missing-input errors reopened",
        _keep_up,
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

_version_meta = MetaData()
schema_version = Table(
    "store_schema_version",
    _version_meta,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

_PG_LOCK_ID = 0x6668_6576_6D00  # advisory lock key: serialises concurrent migrators


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer version of this package."""


def current_version(conn: Connection) -> int | None:
    """Recorded version, or None for a database without the version table."""
    if not inspect(conn).has_table(schema_version.name):
        return None
    return conn.execute(select(func.max(schema_version.c.version))).scalar_one_or_none()


def migrate(engine: Engine) -> int:
    """Bring the database to `LATEST_VERSION`; safe to call from many processes at once."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
        version = current_version(conn)
        if version is None:
            schema.metadata.create_all(conn)
            _version_meta.create_all(conn)
            latest = MIGRATIONS[-1]
            conn.execute(
                schema_version.insert().values(
                    version=latest.version, description=f"created at v{latest.version}"
                )
            )
            return latest.version
        if version > LATEST_VERSION:
            raise SchemaTooNewError(
                f"store schema is v{version}, this package knows up to v{LATEST_VERSION}"
            )
        for m in MIGRATIONS:
            if m.version > version and m.upgrade is not None:
                m.upgrade(conn)
                conn.execute(
                    schema_version.insert().values(version=m.version, description=m.description)
                )
        return LATEST_VERSION
