"""The coprocessor store as a Dagster resource: one migrated engine per process and URL."""

from __future__ import annotations

from functools import cache

from dagster import ConfigurableResource

from ..settings import Settings, load_settings
from ..store import Store


@cache
def _open(url: str) -> Store:
    return Store.open(url)


class StoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """`database_url` empty means `Settings.database_url` (by default a SQLite file);
    `range_batch_handles` 0 means `Settings.range_batch_handles`."""

    database_url: str = ""
    range_batch_handles: int = 0

    @classmethod
    def of(cls, settings: Settings) -> StoreResource:
        """The resource of the settings (`definitions.defs`); the URL stays out of Dagster's
        config (the UI shows config, and a PostgreSQL URL carries a password)."""
        return cls(range_batch_handles=settings.range_batch_handles)

    @property
    def batch_handles(self) -> int:
        """Ciphertexts a range step reads, computes and writes at a time: its memory bound."""
        return self.range_batch_handles or load_settings().range_batch_handles

    @property
    def url(self) -> str:
        return self.database_url or load_settings().database_url

    def get(self) -> Store:
        """The process-wide store for this URL (migrated on first use)."""
        return _open(self.url)
