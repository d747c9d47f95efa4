"""SQL helpers shared by the store's aggregate modules (one dialect insert, bounded IN lists)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite

T = TypeVar("T")
CHUNK = 500  # IN-list size: well under SQLite's bound-parameter limit


class StoreBase:
    """What every aggregate mixin of `Store` shares: the engine reads open connections on, and
    the same engine marked for writing (`engine.writer`): a write transaction takes SQLite's
    write lock when it begins, a read never does."""

    engine: Engine
    writer: Engine


def insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """Dialect insert with ON CONFLICT support (same API on SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"store backend {conn.dialect.name} is not supported")


def chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def unique(items: Iterable[bytes]) -> list[bytes]:
    """Distinct byte strings in first-seen order (callers may pass bytearray/memoryview)."""
    return list(dict.fromkeys(bytes(i) for i in items))
