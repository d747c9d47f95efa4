"""Ciphertexts by handle: ct64 (compute format), ct128 (decryption format) and their digests.

Ciphertexts are deterministic, so every insert leaves an existing handle as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Table, func, select, update

from ..protocol.digests import Material
from . import schema as s
from .records import Ciphertext
from .sql import StoreBase, chunks, insert, unique


def insert_ciphertexts(conn: Connection, cts: Sequence[Ciphertext]) -> int:
    """Insert ct64s on `conn` (shared with `store_results`' transaction); returns the new count."""
    if not cts:
        return 0
    values = {
        ct.handle: {
            "handle": ct.handle,
            "ciphertext": ct.ciphertext,
            "fhe_type": ct.fhe_type,
            "key_id": str(ct.key_id),
            "origin": ct.origin,
        }
        for ct in cts
    }
    stmt = insert(conn, s.ciphertexts).on_conflict_do_nothing(index_elements=["handle"])
    return conn.execute(stmt, list(values.values())).rowcount


class CiphertextQueries(StoreBase):
    def put_ciphertexts(self, cts: Sequence[Ciphertext]) -> int:
        """Insert ct64s; an existing handle is left as is."""
        with self.writer.begin() as conn:
            return insert_ciphertexts(conn, cts)

    def get_ciphertexts(self, handles: Sequence[bytes]) -> dict[bytes, Ciphertext]:
        """The stored ct64s among `handles`, by handle."""
        t = s.ciphertexts
        out: dict[bytes, Ciphertext] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = Ciphertext(
                        m.handle, m.ciphertext, m.fhe_type, int(m.key_id), m.origin
                    )
        return out

    def _missing(self, table: Table, handles: Sequence[bytes]) -> list[bytes]:
        wanted = unique(handles)
        found: set[bytes] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(wanted):
                found.update(
                    conn.execute(select(table.c.handle).where(table.c.handle.in_(chunk))).scalars()
                )
        return [h for h in wanted if h not in found]

    def missing_ciphertexts(self, handles: Sequence[bytes]) -> list[bytes]:
        """Handles among `handles` without a ct64, in first-seen order."""
        return self._missing(s.ciphertexts, handles)

    def put_ciphertexts128(self, items: Sequence[tuple[bytes, bytes]]) -> int:
        """Insert (handle, ct128) pairs; existing handles are left as is."""
        if not items:
            return 0
        with self.writer.begin() as conn:
            stmt = insert(conn, s.ciphertexts128).on_conflict_do_nothing(index_elements=["handle"])
            rows = {h: {"handle": h, "ciphertext": ct} for h, ct in items}
            return conn.execute(stmt, list(rows.values())).rowcount

    def get_ciphertexts128(self, handles: Sequence[bytes]) -> dict[bytes, bytes]:
        """The ct128 bytes held among `handles` (not those purged)."""
        t = s.ciphertexts128
        out: dict[bytes, bytes] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                q = select(t).where(t.c.handle.in_(chunk), t.c.purged_at.is_(None))
                for m in conn.execute(q):
                    out[m.handle] = m.ciphertext
        return out

    def missing_ciphertexts128(self, handles: Sequence[bytes]) -> list[bytes]:
        """Handles never squashed (a purged ct128 was squashed: it is not missing)."""
        return self._missing(s.ciphertexts128, handles)

    def purged_ciphertexts128(self, handles: Sequence[bytes]) -> set[bytes]:
        """Which of `handles` had their ct128 bytes purged."""
        t = s.ciphertexts128
        out: set[bytes] = set()
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                q = select(t.c.handle).where(t.c.handle.in_(chunk), t.c.purged_at.is_not(None))
                out.update(bytes(h) for h in conn.execute(q).scalars())
        return out

    def purge_ciphertexts128(self, handles: Sequence[bytes]) -> int:
        """Drop the ct128 bytes of `handles` (committed, and in the object store the KMS reads):
        the row stays as the record that each was squashed. Returns how many were purged."""
        t = s.ciphertexts128
        n = 0
        with self.writer.begin() as conn:
            for chunk in chunks(unique(handles)):
                n += conn.execute(
                    update(t)
                    .where(t.c.handle.in_(chunk), t.c.purged_at.is_(None))
                    .values(ciphertext=b"", purged_at=func.now())
                ).rowcount
        return n

    def put_digests(self, digests: Sequence[Material]) -> int:
        if not digests:
            return 0
        rows = {
            d.handle: {
                "handle": d.handle,
                "key_id": str(d.key_id),
                "ct64_digest": d.ciphertext_digest,
                "ct128_digest": d.sns_ciphertext_digest,
            }
            for d in digests
        }
        with self.writer.begin() as conn:
            stmt = insert(conn, s.digests).on_conflict_do_nothing(index_elements=["handle"])
            return conn.execute(stmt, list(rows.values())).rowcount

    def get_digests(self, handles: Sequence[bytes]) -> dict[bytes, Material]:
        t = s.digests
        out: dict[bytes, Material] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = Material(m.handle, int(m.key_id), m.ct64_digest, m.ct128_digest)
        return out
