"""The commit state of each handle's digests on the gateway (sent, confirmed, failed), with the
gateway block of a confirmed commit so a gateway reorg can be checked range by range."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, func, select

from . import schema as s
from .records import CommitState, CommitStatus
from .sql import StoreBase, chunks, insert, unique


def _status(m: Any) -> CommitStatus:
    block = None if m.gateway_block is None else int(m.gateway_block)
    return CommitStatus(m.handle, CommitState(m.status), m.tx_hash, m.reason, block)


class CommitQueries(StoreBase):
    def set_commit_status(self, status: CommitStatus) -> None:
        """Insert or update the commit state of a handle's digests on the gateway.

        A status without a gateway block keeps the stored one: a commit being sent again after
        a reorg stays in the range where it was lost until it is confirmed elsewhere.
        """
        values = {
            "handle": status.handle,
            "status": str(status.status),
            "tx_hash": status.tx_hash,
            "reason": status.reason,
            "gateway_block": status.gateway_block,
        }
        t = s.commit_status
        with self.writer.begin() as conn:
            stmt = insert(conn, t).values(values)
            set_: dict[str, Any] = {k: stmt.excluded[k] for k in ("status", "tx_hash", "reason")}
            set_["gateway_block"] = func.coalesce(stmt.excluded.gateway_block, t.c.gateway_block)
            conn.execute(stmt.on_conflict_do_update(index_elements=["handle"], set_=set_))

    def get_commit_statuses(self, handles: Sequence[bytes]) -> dict[bytes, CommitStatus]:
        t = s.commit_status
        out: dict[bytes, CommitStatus] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = _status(m)
        return out

    def commits_in_gateway_blocks(self, first: int, last: int) -> list[CommitStatus]:
        """The commits recorded in gateway blocks `first..last` (any status), by block."""
        t = s.commit_status
        query = (
            select(t)
            .where(t.c.gateway_block >= first, t.c.gateway_block <= last)
            .order_by(t.c.gateway_block, t.c.handle)
        )
        with self.engine.connect() as conn:
            return [_status(m) for m in conn.execute(query)]

    def holds_gateway_sends(self, first: int, last: int) -> bool:
        """Whether gateway blocks `first..last` hold a commit or an answer of ours, as the store
        recorded them: such a range must run even when the chain now shows no log there (a reorg
        dropped them, and they must be sent again)."""
        c, p = s.commit_status, s.proof_requests
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    select(
                        exists().where(c.c.gateway_block.between(first, last))
                        | exists().where(p.c.response_block.between(first, last))
                    )
                ).scalar()
            )
