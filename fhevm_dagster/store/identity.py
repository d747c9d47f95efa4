"""Which chain the store's rows belong to: a chain id and the hash of its block 0 (genesis).

A devnet restarted on the same chain id is another chain: its blocks, zkProofIds and even its
handles start again (a handle names the chain id, not the genesis). Adopting a reset removes
every row of the old chain, so nothing of it is mistaken for the new one's, and records what
went in `chain_resets`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Table, delete, func, select, true, update

from . import schema as s
from .sql import StoreBase, insert


@dataclass(frozen=True, slots=True)
class ChainReset:
    """An adopted reset: the genesis replaced, and the old chain's rows removed per table."""

    chain_id: int
    old_genesis: bytes
    new_genesis: bytes
    removed: dict[str, int]


def _of_chain(table: Table, chain_id: int) -> ColumnElement[bool]:
    """Rows whose handle names `chain_id` (bytes 22..29 of a handle, big-endian)."""
    return func.substr(table.c.handle, 23, 8) == chain_id.to_bytes(8, "big")


def _remove_chain(conn: Connection, chain_id: int, *, gateway: bool) -> dict[str, int]:
    removed: dict[str, int] = {}
    by_id: list[tuple[Table, object]] = [
        (s.host_ranges, s.host_ranges.c.chain_id == chain_id),
        (s.range_waits, s.range_waits.c.chain_id == chain_id),
    ]
    if gateway:
        # Requests of the old gateway; commits were made on it, so none holds on the new one.
        by_id += [
            (s.proof_requests, s.proof_requests.c.gateway_chain_id == chain_id),
            (s.commit_status, true()),
        ]
    else:
        by_id += [
            (s.computations, s.computations.c.chain_id == chain_id),
            (s.allowed_handles, s.allowed_handles.c.chain_id == chain_id),
            *(
                (t, _of_chain(t, chain_id))
                for t in (s.ciphertexts, s.ciphertexts128, s.digests, s.commit_status)
            ),
        ]
    for table, where in by_id:
        removed[table.name] = conn.execute(delete(table).where(where)).rowcount  # type: ignore[arg-type]
    return removed


class IdentityQueries(StoreBase):
    def genesis_of(self, chain_id: int) -> bytes | None:
        t = s.chain_genesis
        with self.engine.connect() as conn:
            found = conn.execute(select(t.c.genesis_hash).where(t.c.chain_id == chain_id))
            return found.scalar_one_or_none()

    def record_genesis(self, chain_id: int, genesis: bytes) -> bytes:
        """The genesis the store knows for `chain_id`: `genesis` when it knew none yet."""
        t = s.chain_genesis
        with self.writer.begin() as conn:
            stmt = insert(conn, t).values(chain_id=chain_id, genesis_hash=genesis)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["chain_id"]))
            return bytes(
                conn.execute(select(t.c.genesis_hash).where(t.c.chain_id == chain_id)).scalar_one()
            )

    def ciphertext_handles_of_chain(self, chain_id: int) -> list[bytes]:
        """Every handle of `chain_id` with a ct64 or a ct128: what its objects are keyed by."""
        with self.engine.connect() as conn:
            found = {
                bytes(h)
                for t in (s.ciphertexts, s.ciphertexts128)
                for h in conn.execute(select(t.c.handle).where(_of_chain(t, chain_id))).scalars()
            }
        return sorted(found)

    def adopt_reset(
        self,
        chain_id: int,
        old: bytes,
        new: bytes,
        *,
        gateway: bool,
        removed_elsewhere: dict[str, int] | None = None,
    ) -> ChainReset | None:
        """Replace genesis `old` by `new` and remove the old chain's rows, in one transaction;
        None when the store no longer holds `old` (another process adopted the reset first).
        `removed_elsewhere` (the old chain's objects) is recorded with the rows."""
        t = s.chain_genesis
        with self.writer.begin() as conn:
            swapped = conn.execute(
                update(t)
                .where(t.c.chain_id == chain_id, t.c.genesis_hash == old)
                .values(genesis_hash=new)
            )
            if not swapped.rowcount:
                return None
            removed = _remove_chain(conn, chain_id, gateway=gateway) | (removed_elsewhere or {})
            conn.execute(
                s.chain_resets.insert().values(
                    chain_id=chain_id,
                    old_genesis_hash=old,
                    new_genesis_hash=new,
                    removed=json.dumps(removed, sort_keys=True),
                )
            )
        return ChainReset(chain_id, old, new, removed)
