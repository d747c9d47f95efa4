"""Host chains and the block ranges the sensor requested (reorg detection)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

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
    )


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
            stmt = insert(conn, t).values(
                chain_id=chain_id,
                partition_key=partition_key,
                first_block=first_block,
                last_block=last_block,
                requested_hash=last_hash,
                reorg_count=0,
            )
            set_: dict[str, Any] = {"requested_hash": last_hash}
            if reorg:
                set_ |= {"reorg_count": t.c.reorg_count + 1, "processed_hash": None}
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["chain_id", "partition_key"], set_=set_)
            )
            m = conn.execute(
                select(t).where(t.c.chain_id == chain_id, t.c.partition_key == partition_key)
            ).one()
        return _range(m)

    def mark_range_processed(
        self, chain_id: int, partition_key: str, first_block: int, last_block: int, last_hash: bytes
    ) -> None:
        """Record the last-block hash a range was ingested with (also for manual launches)."""
        t = s.host_ranges
        with self.writer.begin() as conn:
            stmt = insert(conn, t).values(
                chain_id=chain_id,
                partition_key=partition_key,
                first_block=first_block,
                last_block=last_block,
                requested_hash=last_hash,
                processed_hash=last_hash,
                reorg_count=0,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["chain_id", "partition_key"],
                    set_={"processed_hash": last_hash, "processed_at": func.now()},
                )
            )
