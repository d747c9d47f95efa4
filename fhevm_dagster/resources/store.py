"""The coprocessor store as a Dagster resource: one migrated engine per process and URL."""

from __future__ import annotations

from functools import cache

from dagster import ConfigurableResource, EnvVar

from ..settings import Settings, default
from ..store import Store, StoreTimeouts


@cache
def _open(url: str, timeouts: StoreTimeouts) -> Store:
    return Store.open(url, timeouts=timeouts)


class StoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """The store's URL, its memory bound and its PostgreSQL session timeouts (`Settings`)."""

    database_url: str = default("database_url")
    #: Ciphertexts a range step reads, computes and writes at a time: its memory bound.
    range_batch_handles: int = default("range_batch_handles")
    lock_timeout_s: float = default("db_lock_timeout")
    statement_timeout_s: float = default("db_statement_timeout")

    @classmethod
    def of(cls, settings: Settings) -> StoreResource:
        """The resource of the settings (`definitions.defs`). A URL set in the environment is
        handed to Dagster as its variable (`EnvVar`): a PostgreSQL URL carries a password, and
        the UI shows config."""
        env = settings.variable_if_set("database_url")
        return cls(
            database_url=EnvVar(env) if env else settings.database_url,
            range_batch_handles=settings.range_batch_handles,
            lock_timeout_s=settings.db_lock_timeout,
            statement_timeout_s=settings.db_statement_timeout,
        )

    def get(self) -> Store:
        """The process-wide store for this URL (migrated on first use)."""
        timeouts = StoreTimeouts(self.lock_timeout_s, self.statement_timeout_s)
        return _open(self.database_url, timeouts)
