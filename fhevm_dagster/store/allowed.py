"""Handles an ACL event made durable (allowed for an account or public decryption), by range."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, delete, select

from ..protocol.computations import AllowedHandle
from . import schema as s
from .sql import StoreBase, chunks, insert, unique


def write_allowed(
    conn: Connection, chain_id: int, range_key: str, allowed: Sequence[AllowedHandle]
) -> int:
    """Make the range's allowed handles equal `allowed` (inside `write_range`'s transaction).

    Returns how many were inserted.
    """
    t = s.allowed_handles
    existing = {
        (m.handle, m.account, m.kind)
        for m in conn.execute(
            select(t.c.handle, t.c.account, t.c.kind).where(
                t.c.chain_id == chain_id, t.c.range_key == range_key
            )
        )
    }
    stale = existing - {(a.handle, a.account, a.kind) for a in allowed}
    if stale:
        conn.execute(
            delete(t).where(
                t.c.handle == bindparam("h"),
                t.c.account == bindparam("a"),
                t.c.kind == bindparam("k"),
            ),
            [{"h": h, "a": a, "k": k} for h, a, k in stale],
        )
    values = {
        (a.handle, a.account, a.kind): {
            "handle": a.handle,
            "account": a.account,
            "kind": a.kind,
            "chain_id": chain_id,
            "range_key": range_key,
            "caller": a.caller,
            "tx_hash": a.tx_hash,
            "block_number": a.block_number,
            "log_index": a.log_index,
        }
        for a in allowed
    }
    fresh = [v for k, v in values.items() if k not in existing]
    if fresh:
        stmt = insert(conn, t).on_conflict_do_nothing(index_elements=["handle", "account", "kind"])
        conn.execute(stmt, fresh)
    return len(fresh)


class AllowedQueries(StoreBase):
    def allowed_handles_of_range(self, range_key: str, *, chain_id: int) -> list[bytes]:
        """Distinct handles made durable in a chain's range, in (block, log) order."""
        t = s.allowed_handles
        q = select(t.c.handle).where(t.c.chain_id == chain_id, t.c.range_key == range_key)
        q = q.order_by(t.c.block_number, t.c.log_index)
        with self.engine.connect() as conn:
            return unique(conn.execute(q).scalars())

    def allowed_among(self, handles: Sequence[bytes]) -> set[bytes]:
        """Which of `handles` an ACL event ever named."""
        t = s.allowed_handles
        out: set[bytes] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                out.update(conn.execute(select(t.c.handle).where(t.c.handle.in_(chunk))).scalars())
        return out
