"""`Store`, the store's one read/write API. Every write is idempotent; no Dagster here.

The methods live in one module per aggregate (`chains`, `identity`, `computations`, `allowed`,
`ciphertexts`, `commits`, `proofs`, `transactions`); this class composes them over one engine.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from . import schema as s
from .allowed import AllowedQueries
from .chains import ChainQueries
from .ciphertexts import CiphertextQueries
from .commit_status import CommitQueries
from .computations import ComputationQueries
from .engine import StoreTimeouts, create_store_engine, writer
from .identity import IdentityQueries
from .migrations import migrate
from .proofs import ProofQueries
from .transactions import TransactionQueries


class Store(
    ChainQueries,
    IdentityQueries,
    ComputationQueries,
    AllowedQueries,
    CiphertextQueries,
    CommitQueries,
    ProofQueries,
    TransactionQueries,
):
    """The coprocessor store on one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writer = writer(engine)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        run_migrations: bool = True,
        timeouts: StoreTimeouts | None = None,
    ) -> Store:
        """Open (and by default migrate) the store at `url` (`Settings.database_url`)."""
        store = cls(create_store_engine(url, timeouts))
        if run_migrations:
            migrate(store.writer)
        return store

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows without timestamps, sorted: equal snapshots mean equal contents."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        stamps = {"created_at", "updated_at", "processed_at"}
        with self.engine.connect() as conn:
            for table in s.metadata.sorted_tables:
                cols = [col for col in table.c if col.name not in stamps]
                rows = conn.execute(select(*cols)).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out


__all__ = ["Store"]
