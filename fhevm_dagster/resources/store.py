"""The coprocessor store as a Dagster resource: one migrated engine per process and URL."""

from __future__ import annotations

from functools import cache

from dagster import ConfigurableResource

from .. import settings
from ..store import Store, default_database_url


@cache
def _open(url: str) -> Store:
    return Store.open(url)


class StoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """`database_url` empty means `$FHEVM_DAGSTER_DATABASE_URL` or the default SQLite file;
    `range_batch_handles` 0 means `$FHEVM_DAGSTER_RANGE_BATCH_HANDLES`."""

    database_url: str = ""
    range_batch_handles: int = 0

    @property
    def batch_handles(self) -> int:
        """Ciphertexts a range step reads, computes and writes at a time: its memory bound."""
        return self.range_batch_handles or settings.integer("FHEVM_DAGSTER_RANGE_BATCH_HANDLES")

    @property
    def url(self) -> str:
        return self.database_url or default_database_url()

    def get(self) -> Store:
        """The process-wide store for this URL (migrated on first use)."""
        return _open(self.url)
