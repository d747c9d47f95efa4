"""The coprocessor store as a Dagster resource: one migrated engine per process and URL."""

from __future__ import annotations

from functools import cache

from dagster import ConfigurableResource

from ..store import Store, default_database_url


@cache
def _open(url: str) -> Store:
    return Store.open(url)


class StoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """`database_url` empty means `$FHEVM_DAGSTER_DATABASE_URL` or the default SQLite file."""

    database_url: str = ""

    @property
    def url(self) -> str:
        return self.database_url or default_database_url()

    def get(self) -> Store:
        """The process-wide store for this URL (migrated on first use)."""
        return _open(self.url)
