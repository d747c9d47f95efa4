"""The sensor side's writes to the range book, as data, and the one function that applies them.

A tick decides its writes without writing (`pipeline.tick`); the sensor applies them here, in the
order decided. Ingest records a range as processed itself (`Store.mark_range_processed` and the
range writes of `store/`): that fact is written in the same fenced transaction as the range's
rows, so it cannot wait for a tick.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..store import HostRange
from .block_ranges import BlockRange


@dataclass(frozen=True, slots=True)
class Requested:
    """A run of `rng` was requested for its blocks `last_hash` (`reorg`: other blocks than the
    book held: a new generation)."""

    rng: BlockRange
    last_hash: bytes
    reorg: bool


@dataclass(frozen=True, slots=True)
class ProvenEmpty:
    """`rng` holds no log of the chain's contracts: processed and complete, without a run."""

    rng: BlockRange
    last_hash: bytes


@dataclass(frozen=True, slots=True)
class PruneEmpty:
    """Empty ranges ending below `below_block` (older than the reorg window) leave the book."""

    below_block: int


@dataclass(frozen=True, slots=True)
class RunCompleted:
    """A run of the range's blocks `last_hash` succeeded: the range is done."""

    partition: str
    last_hash: bytes


@dataclass(frozen=True, slots=True)
class RunsFailed:
    """The range's failed runs in a row, as the tick counted them (metrics and alerts)."""

    partition: str
    failed_runs: int
    last_failure_at: float | None


BookWrite = Requested | ProvenEmpty | PruneEmpty | RunCompleted | RunsFailed


class RangeBookWriter(Protocol):
    def record_range_request(
        self,
        chain_id: int,
        partition_key: str,
        first_block: int,
        last_block: int,
        last_hash: bytes,
        *,
        reorg: bool = False,
    ) -> HostRange: ...
    def record_empty_range(
        self, chain_id: int, partition_key: str, first_block: int, last_block: int, last_hash: bytes
    ) -> None: ...
    def prune_empty_ranges(self, chain_id: int, below_block: int) -> int: ...
    def mark_range_completed(self, chain_id: int, partition_key: str, last_hash: bytes) -> None: ...
    def record_range_failures(
        self, chain_id: int, partition_key: str, failed_runs: int, last_failure_at: float | None
    ) -> None: ...


def apply_writes(book: RangeBookWriter, chain_id: int, writes: Iterable[BookWrite]) -> None:
    """Write `writes` of the chain `chain_id` to the book, in order (each is idempotent)."""
    for w in writes:
        match w:
            case Requested(rng, last_hash, reorg):
                book.record_range_request(
                    chain_id, rng.key, rng.first, rng.last, last_hash, reorg=reorg
                )
            case ProvenEmpty(rng, last_hash):
                book.record_empty_range(chain_id, rng.key, rng.first, rng.last, last_hash)
            case PruneEmpty(below_block):
                book.prune_empty_ranges(chain_id, below_block)
            case RunCompleted(partition, last_hash):
                book.mark_range_completed(chain_id, partition, last_hash)
            case RunsFailed(partition, failed_runs, last_failure_at):
                book.record_range_failures(chain_id, partition, failed_runs, last_failure_at)
