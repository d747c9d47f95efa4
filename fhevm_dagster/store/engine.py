"""Engine creation for the store: one URL, SQLite by default, PostgreSQL in production."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..settings import Settings, default


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy own transactions (pysqlite's implicit BEGIN is unreliable for DDL).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


#: Execution option of the store's write engine (`writer`).
_WRITE = "fhevm_dagster_write"


def writer(engine: Engine) -> Engine:
    """`engine` for write transactions: on SQLite they take the write lock when they begin."""
    return engine.execution_options(**{_WRITE: True})


def _sqlite_begin(conn: Any) -> None:
    # A write transaction takes the write lock up front (IMMEDIATE): concurrent writers (runs in
    # separate processes) then wait on busy_timeout instead of failing with a lock-upgrade
    # deadlock. A read begins deferred: in WAL mode it neither waits for nor blocks a writer (a
    # metrics scrape or a sensor tick never queues behind a range's writes).
    immediate = conn.get_execution_options().get(_WRITE)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@dataclass(frozen=True, slots=True)
class StoreTimeouts:
    """PostgreSQL session timeouts: a statement waiting for a lock, or running, or a transaction
    left idle, ends with an error (the step retries) instead of hanging a run until its maximum
    runtime (`Settings.db_lock_timeout`, `Settings.db_statement_timeout`)."""

    lock_s: float = default("db_lock_timeout")
    statement_s: float = default("db_statement_timeout")

    @classmethod
    def of(cls, settings: Settings) -> StoreTimeouts:
        return cls(settings.db_lock_timeout, settings.db_statement_timeout)

    def options(self) -> str:
        """The timeouts as libpq `options`."""
        timeouts = {
            "lock_timeout": self.lock_s,
            "statement_timeout": self.statement_s,
            "idle_in_transaction_session_timeout": self.statement_s,
        }
        return " ".join(f"-c {name}={int(seconds * 1000)}" for name, seconds in timeouts.items())


def create_store_engine(url: str, timeouts: StoreTimeouts | None = None) -> Engine:
    """Engine for the store URL with the per-backend settings the store relies on."""
    url_obj = make_url(url)
    if url_obj.get_backend_name() == "sqlite":
        db = url_obj.database
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url_obj, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url_obj.drivername == "postgresql":
        # SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; the project depends on psycopg2.
        url_obj = url_obj.set(drivername="postgresql+psycopg2")
    return create_engine(
        url_obj,
        pool_pre_ping=True,
        connect_args={"options": (timeouts or StoreTimeouts()).options()},
    )
