"""Engine creation for the store: one URL, SQLite by default, PostgreSQL in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from .. import settings

DATABASE_URL_ENV = "FHEVM_DAGSTER_DATABASE_URL"


def default_database_url() -> str:
    """`$FHEVM_DAGSTER_DATABASE_URL`, else the SQLite file `~/.cache/fhevm-dagster/store.sqlite`."""
    return settings.value(DATABASE_URL_ENV)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy own transactions (pysqlite's implicit BEGIN is unreliable for DDL).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front: concurrent writers (runs in separate processes)
    # then wait on busy_timeout instead of failing with a lock-upgrade deadlock.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_store_engine(url: str | None = None) -> Engine:
    """Engine for the store URL with the per-backend settings the store relies on."""
    url_obj = make_url(url or default_database_url())
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
    return create_engine(url_obj, pool_pre_ping=True)
