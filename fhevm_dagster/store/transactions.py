"""The journal of sent transactions (`chain.calls.TxJournal`): written before each broadcast."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import cast

from sqlalchemy import or_, select, update

from ..chain.calls import NonceBook, SentStatus, SentTx
from . import schema as s
from .sql import StoreBase, chunks, insert, unique


class TransactionQueries(StoreBase):
    def record_sent(self, tx: SentTx) -> None:
        """Journal a signed transaction (before broadcasting it); a known hash is kept as is."""
        values = {
            "tx_hash": tx.tx_hash,
            "chain_id": tx.chain_id,
            "sender": tx.sender,
            "nonce": tx.nonce,
            "call_key": tx.key,
            "max_fee_per_gas": str(tx.max_fee_per_gas),
            "max_priority_fee_per_gas": str(tx.max_priority_fee_per_gas),
            "status": tx.status,
        }
        with self.writer.begin() as conn:
            stmt = insert(conn, s.sent_transactions).values(values)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["tx_hash"]))

    def pending_sent(self, chain_id: int, sender: str, keys: Sequence[str]) -> list[SentTx]:
        """The pending transactions of `sender` on `chain_id` for `keys`, by nonce."""
        t = s.sent_transactions
        out: list[SentTx] = []
        with self.engine.connect() as conn:
            for chunk in chunks(list(dict.fromkeys(keys))):
                query = select(t).where(
                    t.c.chain_id == chain_id,
                    t.c.sender == sender,
                    t.c.status == "pending",
                    t.c.call_key.in_(chunk),
                )
                out.extend(
                    SentTx(
                        int(r.chain_id),
                        r.sender,
                        int(r.nonce),
                        r.call_key,
                        bytes(r.tx_hash),
                        int(r.max_fee_per_gas),
                        int(r.max_priority_fee_per_gas),
                        cast(SentStatus, r.status),
                    )
                    for r in conn.execute(query)
                )
        return sorted(out, key=lambda x: (x.nonce, x.max_fee_per_gas))

    def mark_sent(self, tx_hashes: Sequence[bytes], status: SentStatus) -> None:
        t = s.sent_transactions
        with self.writer.begin() as conn:
            for chunk in chunks(unique(tx_hashes)):
                conn.execute(update(t).where(t.c.tx_hash.in_(chunk)).values(status=status))

    def acquire_lease(
        self, chain_id: int, sender: str, owner: str, ttl_s: float
    ) -> NonceBook | None:
        """The sender's lease for `owner` when free, expired or already its own (one atomic
        update: on PostgreSQL the row lock decides between two claimants, on SQLite the write
        lock); its nonce book. None while another owner holds it."""
        t = s.sender_leases
        now = time.time()
        with self.writer.begin() as conn:
            stmt = insert(conn, t).values(chain_id=chain_id, sender=sender, expires_at=0.0)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["chain_id", "sender"]))
            mine = (t.c.chain_id == chain_id, t.c.sender == sender)
            claimed = conn.execute(
                update(t)
                .where(*mine)
                .where(or_(t.c.owner.is_(None), t.c.owner == owner, t.c.expires_at < now))
                .values(owner=owner, expires_at=now + ttl_s)
            )
            if not claimed.rowcount:
                return None
            row = conn.execute(select(t.c.next_nonce, t.c.last_hash).where(*mine)).one()
        next_nonce = None if row.next_nonce is None else int(row.next_nonce)
        return NonceBook(next_nonce, None if row.last_hash is None else bytes(row.last_hash))

    def renew_lease(self, chain_id: int, sender: str, owner: str, ttl_s: float) -> bool:
        t = s.sender_leases
        with self.writer.begin() as conn:
            return bool(
                conn.execute(
                    update(t)
                    .where(t.c.chain_id == chain_id, t.c.sender == sender, t.c.owner == owner)
                    .values(expires_at=time.time() + ttl_s)
                ).rowcount
            )

    def release_lease(self, chain_id: int, sender: str, owner: str, book: NonceBook) -> None:
        t = s.sender_leases
        with self.writer.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.chain_id == chain_id, t.c.sender == sender, t.c.owner == owner)
                .values(
                    owner=None, expires_at=0.0, next_nonce=book.next_nonce, last_hash=book.last_hash
                )
            )
