"""Computations of host ranges: idempotent (re)ingestion, reads in chain order, evaluation status.

The compute core reads a range's computations (`computations_of_range`), and writes back results
and errors (`store_results`, `mark_errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, or_, select, update

from ..protocol.computations import AllowedHandle, ComputationRow
from . import schema as s
from .allowed import write_allowed
from .chains import mark_processed
from .ciphertexts import insert_ciphertexts
from .records import (
    Ciphertext,
    ComputationStatus,
    RangeWrite,
    StoredComputation,
    TransactionComputations,
)
from .sql import StoreBase, chunks, insert, unique

# Columns a re-ingestion may change (a reorg moves a transaction); the rest is the handle's content.
_POSITION = (
    "chain_id",
    "range_key",
    "block_number",
    "block_hash",
    "tx_index",
    "log_index",
    "is_allowed",
    "caller",
)


def _values(chain_id: int, range_key: str, row: ComputationRow) -> dict[str, Any]:
    return {
        "output_handle": row.output_handle,
        "tx_hash": row.tx_hash,
        "chain_id": chain_id,
        "range_key": range_key,
        "block_number": row.block_number,
        "block_hash": row.block_hash,
        "tx_index": row.tx_index,
        "log_index": row.log_index,
        "opcode": row.opcode,
        "dependencies": tuple(row.dependencies),
        "is_scalar": row.is_scalar,
        "is_allowed": row.is_allowed,
        "fhe_type": row.fhe_type,
        "caller": row.caller,
    }


def _stored(m: Any) -> StoredComputation:
    return StoredComputation(
        output_handle=m.output_handle,
        tx_hash=m.tx_hash,
        block_number=m.block_number,
        block_hash=m.block_hash,
        tx_index=m.tx_index,
        log_index=m.log_index,
        opcode=m.opcode,
        dependencies=tuple(m.dependencies),
        is_scalar=m.is_scalar,
        is_allowed=m.is_allowed,
        fhe_type=m.fhe_type,
        caller=m.caller,
        chain_id=m.chain_id,
        range_key=m.range_key,
        status=ComputationStatus(m.status),
        error_message=m.error_message,
    )


def _set_status(
    conn: Connection,
    keys: Sequence[tuple[bytes, bytes]],
    status: ComputationStatus,
    messages: Sequence[str | None],
) -> None:
    if not keys:
        return
    c = s.computations
    conn.execute(
        update(c)
        .where(c.c.output_handle == bindparam("h"), c.c.tx_hash == bindparam("t"))
        .values(status=str(status), error_message=bindparam("msg")),
        [{"h": h, "t": t, "msg": m} for (h, t), m in zip(keys, messages, strict=True)],
    )


class ComputationQueries(StoreBase):
    def write_range(
        self,
        chain_id: int,
        range_key: str,
        rows: Sequence[ComputationRow],
        allowed: Sequence[AllowedHandle] = (),
        processed: tuple[int, int, bytes] | None = None,
    ) -> RangeWrite:
        """Make the store's rows of a range equal `rows`/`allowed`, idempotently; with
        `processed` (first block, last block, last-block hash), mark the range ingested in the
        same transaction, fenced (`StaleRange`: nothing is written).

        Rows keep their evaluation status when re-ingested; rows of the range that are no longer
        there (a reorg) are removed.
        """
        c = s.computations
        new = {r.key: _values(chain_id, range_key, r) for r in rows}
        with self.writer.begin() as conn:
            if processed is not None:
                mark_processed(conn, chain_id, range_key, *processed)
            existing = {
                (m.output_handle, m.tx_hash): m._mapping
                for m in conn.execute(
                    select(c).where(c.c.chain_id == chain_id, c.c.range_key == range_key)
                )
            }
            stale = [k for k in existing if k not in new]
            if stale:
                conn.execute(
                    delete(c).where(
                        c.c.output_handle == bindparam("h"), c.c.tx_hash == bindparam("t")
                    ),
                    [{"h": h, "t": t} for h, t in stale],
                )
            inserted = sum(1 for k in new if k not in existing)
            unchanged = sum(
                1
                for k, v in new.items()
                if k in existing and all(existing[k][col] == v[col] for col in v)
            )
            if new:
                stmt = insert(conn, c)
                set_ = {col: stmt.excluded[col] for col in _POSITION}
                distinct = or_(*(c.c[col] != stmt.excluded[col] for col in _POSITION))
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["output_handle", "tx_hash"], set_=set_, where=distinct
                    ),
                    list(new.values()),
                )
            allowed_inserted = write_allowed(conn, chain_id, range_key, allowed)
        return RangeWrite(
            inserted=inserted,
            updated=len(new) - inserted - unchanged,
            unchanged=unchanged,
            removed=len(stale),
            allowed_inserted=allowed_inserted,
        )

    def computations_of_range(
        self,
        range_key: str,
        statuses: Iterable[ComputationStatus] | None = None,
        *,
        chain_id: int,
    ) -> list[StoredComputation]:
        """A chain's computations of a range in (block, transaction, log) order."""
        c = s.computations
        q = select(c).where(c.c.chain_id == chain_id, c.c.range_key == range_key)
        if statuses is not None:
            q = q.where(c.c.status.in_([str(x) for x in statuses]))
        q = q.order_by(c.c.block_number, c.c.tx_index, c.c.log_index)
        with self.engine.connect() as conn:
            return [_stored(m) for m in conn.execute(q)]

    def computations_by_transaction(
        self,
        range_key: str,
        statuses: Iterable[ComputationStatus] | None = None,
        *,
        chain_id: int,
    ) -> list[TransactionComputations]:
        """A range's computations grouped by transaction, transactions and logs in chain order."""
        groups: dict[bytes, list[StoredComputation]] = {}
        for comp in self.computations_of_range(range_key, statuses, chain_id=chain_id):
            groups.setdefault(comp.tx_hash, []).append(comp)
        return [
            TransactionComputations(tx, comps[0].block_number, comps[0].tx_index, tuple(comps))
            for tx, comps in groups.items()
        ]

    def computations_by_output(self, handles: Sequence[bytes]) -> list[StoredComputation]:
        """Computations producing any of `handles` (e.g. allowed results of earlier ranges)."""
        c = s.computations
        out: list[StoredComputation] = []
        with self.engine.connect() as conn:
            for chunk in chunks(unique(handles)):
                q = select(c).where(c.c.output_handle.in_(chunk))
                out.extend(_stored(m) for m in conn.execute(q))
        return out

    def mark_done(self, keys: Sequence[tuple[bytes, bytes]]) -> None:
        """Mark computations (output handle, tx hash) as evaluated."""
        with self.writer.begin() as conn:
            _set_status(conn, keys, ComputationStatus.DONE, [None] * len(keys))

    def mark_errors(self, errors: Sequence[tuple[bytes, bytes, str]]) -> None:
        """Mark computations failed with a message each: (output handle, tx hash, message)."""
        with self.writer.begin() as conn:
            _set_status(
                conn,
                [(h, t) for h, t, _ in errors],
                ComputationStatus.ERROR,
                [m for *_, m in errors],
            )

    def mark_waiting(
        self,
        chain_id: int,
        range_key: str,
        waiting: Sequence[tuple[bytes, bytes, str]],
        inputs: Mapping[bytes, str],
    ) -> None:
        """Record what a range waits for, replacing what it waited for before: its computations
        `waiting` (output handle, tx hash, why) stay pending with the reason, and `inputs` (handle:
        why) are the handles it waits for (none: the range waits for nothing)."""
        w = s.range_waits
        with self.writer.begin() as conn:
            _set_status(
                conn,
                [(h, t) for h, t, _ in waiting],
                ComputationStatus.PENDING,
                [m for *_, m in waiting],
            )
            conn.execute(delete(w).where(w.c.chain_id == chain_id, w.c.range_key == range_key))
            if inputs:
                conn.execute(
                    w.insert(),
                    [
                        {"chain_id": chain_id, "range_key": range_key, "handle": h, "reason": r}
                        for h, r in inputs.items()
                    ],
                )

    def range_waits(self, chain_id: int) -> dict[str, dict[bytes, bool]]:
        """The chain's waiting ranges: per range, each handle it waits for and whether it is
        stored now (a range whose handles are all stored can run again at once)."""
        w, ct = s.range_waits, s.ciphertexts
        q = (
            select(w.c.range_key, w.c.handle, ct.c.handle.is_not(None))
            .select_from(w.outerjoin(ct, ct.c.handle == w.c.handle))
            .where(w.c.chain_id == chain_id)
        )
        out: dict[str, dict[bytes, bool]] = {}
        with self.engine.connect() as conn:
            for range_key, handle, stored in conn.execute(q):
                out.setdefault(range_key, {})[bytes(handle)] = bool(stored)
        return out

    def store_results(
        self, ciphertexts: Sequence[Ciphertext], done: Sequence[tuple[bytes, bytes]]
    ) -> int:
        """Store result ciphertexts and mark their computations done, atomically."""
        with self.writer.begin() as conn:
            n = insert_ciphertexts(conn, ciphertexts)
            _set_status(conn, done, ComputationStatus.DONE, [None] * len(done))
        return n
