"""Engine creation for the store: one URL, SQLite by default, PostgreSQL in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..settings import Settings, load_settings


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


def _postgres_options(settings: Settings) -> str:
    """Session timeouts: a statement waiting for a lock, or running, or a transaction left idle,
    ends with an error (the step retries) instead of hanging a run until its maximum runtime."""
    lock = settings.db_lock_timeout
    statement = settings.db_statement_timeout
    timeouts = {
        "lock_timeout": lock,
        "statement_timeout": statement,
        "idle_in_transaction_session_timeout": statement,
    }
    return " ".join(f"-c {name}={int(seconds * 1000)}" for name, seconds in timeouts.items())


def create_store_engine(url: str | None = None, settings: Settings | None = None) -> Engine:
    """Engine for the store URL (None: `Settings.database_url`) with the per-backend settings the
    store relies on; `settings` is loaded when needed and not given."""
    url_obj = make_url(url or (settings or load_settings()).database_url)
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
        connect_args={"options": _postgres_options(settings or load_settings())},
    )
