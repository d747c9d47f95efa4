"""Host chains and the block ranges the sensor requested (reorg detection)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from . import schema as s
from .records import HostChain, HostRange
from .sql import StoreBase, insert


def _range(m: Any) -> HostRange:
    return HostRange(
        m.chain_id,
        m.partition_key,
        m.first_block,
        m.last_block,
        m.requested_hash,
        m.processed_hash,
        m.reorg_count,
        bool(m.is_empty),
        m.completed_hash,
        int(m.failed_runs),
    )


class StaleRange(RuntimeError):
    """A run read other blocks than the range book holds for its range (a reorg the block sensor
    saw after the run was requested, or one it has not seen yet): it writes nothing, and the
    range's run for the book's blocks does."""


def _upsert_range(
    conn: Connection,
    chain_id: int,
    partition_key: str,
    blocks: tuple[int, int],
    insert_values: dict[str, Any],
    update_values: dict[str, Any],
) -> None:
    """A range's row: inserted with `insert_values`, or its columns `update_values` changed."""
    t = s.host_ranges
    stmt = insert(conn, t).values(
        chain_id=chain_id,
        partition_key=partition_key,
        first_block=blocks[0],
        last_block=blocks[1],
        reorg_count=0,
        **insert_values,
    )
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["chain_id", "partition_key"], set_=update_values)
    )


def mark_processed(
    conn: Connection,
    chain_id: int,
    partition_key: str,
    first_block: int,
    last_block: int,
    last_hash: bytes,
) -> None:
    """Record on `conn` that a range was ingested with `last_hash`, fenced: a range the book
    requested with another last-block hash raises `StaleRange` (the caller's transaction rolls
    back), so of two overlapping runs of one range, the stale one never overwrites the other."""
    t = s.host_ranges
    where = (t.c.chain_id == chain_id, t.c.partition_key == partition_key)
    requested = conn.execute(select(t.c.requested_hash).where(*where)).scalar_one_or_none()
    if requested is not None and bytes(requested) != last_hash:
        raise StaleRange(
            f"range {partition_key} of chain {chain_id} was read with last block "
            f"0x{last_hash.hex()[:12]}…, the range book holds 0x{bytes(requested).hex()[:12]}…"
        )
    _upsert_range(
        conn,
        chain_id,
        partition_key,
        (first_block, last_block),
        {"requested_hash": last_hash, "processed_hash": last_hash},
        {"processed_hash": last_hash, "processed_at": func.now()},
    )


def _is_open(t: Any) -> Any:
    known = func.coalesce(t.c.processed_hash, t.c.requested_hash)
    return or_(t.c.completed_hash.is_(None), t.c.completed_hash != known)


class ChainQueries(StoreBase):
    def register_chain(self, chain: HostChain) -> None:
        """Insert or update the chain's contracts and key id."""
        values = {
            "chain_id": chain.chain_id,
            "acl_address": chain.acl_address,
            "executor_address": chain.executor_address,
            "key_id": str(chain.key_id),
        }
        with self.writer.begin() as conn:
            stmt = insert(conn, s.host_chains).values(values)
            changed = {k: stmt.excluded[k] for k in values if k != "chain_id"}
            distinct = or_(*(s.host_chains.c[k] != stmt.excluded[k] for k in changed))
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["chain_id"], set_=changed, where=distinct
                )
            )

    def get_chain(self, chain_id: int) -> HostChain | None:
        with self.engine.connect() as conn:
            m = conn.execute(
                select(s.host_chains).where(s.host_chains.c.chain_id == chain_id)
            ).first()
        if m is None:
            return None
        return HostChain(m.chain_id, m.acl_address, m.executor_address, int(m.key_id))

    def get_range(self, chain_id: int, partition_key: str) -> HostRange | None:
        t = s.host_ranges
        with self.engine.connect() as conn:
            m = conn.execute(
                select(t).where(t.c.chain_id == chain_id, t.c.partition_key == partition_key)
            ).first()
        return None if m is None else _range(m)

    def recent_ranges(self, chain_id: int, limit: int) -> list[HostRange]:
        """The `limit` ranges with the highest last block, highest first."""
        t = s.host_ranges
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t)
                .where(t.c.chain_id == chain_id)
                .order_by(t.c.last_block.desc())
                .limit(limit)
            ).all()
        return [_range(m) for m in rows]

    def ranges_from(self, chain_id: int, block: int, limit: int) -> list[HostRange]:
        """The `limit` ranges ending at or after `block`, lowest first: the ones a block sensor
        keeps as they are when it cuts new ranges from `block` (`pipeline.block_ranges`)."""
        t = s.host_ranges
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t)
                .where(t.c.chain_id == chain_id, t.c.last_block >= block)
                .order_by(t.c.last_block)
                .limit(limit)
            ).all()
        return [_range(m) for m in rows]

    def record_range_request(
        self,
        chain_id: int,
        partition_key: str,
        first_block: int,
        last_block: int,
        last_hash: bytes,
        *,
        reorg: bool = False,
    ) -> HostRange:
        """Remember that a range was requested with this last-block hash (a reorg bumps a count)."""
        t = s.host_ranges
        with self.writer.begin() as conn:
            set_: dict[str, Any] = {"requested_hash": last_hash}
            if reorg:  # other blocks: their runs are another range's history
                set_ |= {
                    "reorg_count": t.c.reorg_count + 1,
                    "processed_hash": None,
                    "is_empty": False,
                    "failed_runs": 0,
                    "last_failure_at": None,
                }
            blocks = (first_block, last_block)
            _upsert_range(
                conn, chain_id, partition_key, blocks, {"requested_hash": last_hash}, set_
            )
            m = conn.execute(
                select(t).where(t.c.chain_id == chain_id, t.c.partition_key == partition_key)
            ).one()
        return _range(m)

    def mark_range_processed(
        self, chain_id: int, partition_key: str, first_block: int, last_block: int, last_hash: bytes
    ) -> None:
        """Record the last-block hash a range was ingested with (also for manual launches);
        `StaleRange` when the book holds the range with another one."""
        with self.writer.begin() as conn:
            mark_processed(conn, chain_id, partition_key, first_block, last_block, last_hash)

    def record_empty_range(
        self, chain_id: int, partition_key: str, first_block: int, last_block: int, last_hash: bytes
    ) -> None:
        """A range proven without a log of the chain's contracts: processed and complete, without
        a run (a reorg that fills it changes its hash, and it is planned again)."""
        values = {
            "requested_hash": last_hash,
            "processed_hash": last_hash,
            "completed_hash": last_hash,
            "is_empty": True,
            "failed_runs": 0,
        }
        with self.writer.begin() as conn:
            _upsert_range(
                conn,
                chain_id,
                partition_key,
                (first_block, last_block),
                values,
                {**values, "processed_at": func.now()},
            )

    def open_ranges(self, chain_id: int, limit: int) -> list[HostRange]:
        """The chain's ranges whose current blocks no run completed yet, oldest first."""
        t = s.host_ranges
        q = (
            select(t)
            .where(t.c.chain_id == chain_id, _is_open(t))
            .order_by(t.c.last_block)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_range(m) for m in conn.execute(q)]

    def mark_range_completed(self, chain_id: int, partition_key: str, last_hash: bytes) -> None:
        """A run of the range's blocks `last_hash` succeeded: it is done (if they still are its
        blocks: a reorg since then keeps it open)."""
        t = s.host_ranges
        known = func.coalesce(t.c.processed_hash, t.c.requested_hash)
        with self.writer.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.chain_id == chain_id, t.c.partition_key == partition_key)
                .where(known == last_hash)
                .values(completed_hash=last_hash, failed_runs=0, last_failure_at=None)
            )

    def record_range_failures(
        self, chain_id: int, partition_key: str, failed_runs: int, last_failure_at: float | None
    ) -> None:
        """The block sensor's count of the range's failed runs in a row (metrics and alerts)."""
        t = s.host_ranges
        with self.writer.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.chain_id == chain_id, t.c.partition_key == partition_key)
                .where(t.c.failed_runs != failed_runs)  # a tick writes only what changed
                .values(failed_runs=failed_runs, last_failure_at=last_failure_at)
            )

    def prune_empty_ranges(self, chain_id: int, below_block: int) -> int:
        """Drop the records of empty ranges ending below `below_block` (older than the reorg
        window): with 2-second blocks they would be most of the book. Returns how many."""
        t = s.host_ranges
        with self.writer.begin() as conn:
            return conn.execute(
                delete(t).where(
                    and_(t.c.chain_id == chain_id, t.c.is_empty, t.c.last_block < below_block)
                )
            ).rowcount
