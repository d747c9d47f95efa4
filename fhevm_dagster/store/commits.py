"""The commit state of each handle's digests on the gateway (sent, confirmed, failed)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from . import schema as s
from .records import CommitState, CommitStatus
from .sql import StoreBase, chunks, insert, unique


class CommitQueries(StoreBase):
    def set_commit_status(self, status: CommitStatus) -> None:
        """Insert or update the commit state of a handle's digests on the gateway."""
        values = {
            "handle": status.handle,
            "status": str(status.status),
            "tx_hash": status.tx_hash,
            "reason": status.reason,
        }
        with self.engine.begin() as conn:
            stmt = insert(conn, s.commit_status).values(values)
            set_ = {k: stmt.excluded[k] for k in ("status", "tx_hash", "reason")}
            conn.execute(stmt.on_conflict_do_update(index_elements=["handle"], set_=set_))

    def get_commit_statuses(self, handles: Sequence[bytes]) -> dict[bytes, CommitStatus]:
        t = s.commit_status
        out: dict[bytes, CommitStatus] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = CommitStatus(
                        m.handle, CommitState(m.status), m.tx_hash, m.reason
                    )
        return out
