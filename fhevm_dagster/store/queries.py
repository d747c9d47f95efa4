"""The store's read/write API. Every write is idempotent; no Dagster here.

The compute core reads a range's computations by transaction (`computations_by_transaction`), finds
its inputs (`get_ciphertexts` / `missing_ciphertexts`) and writes back (`store_results`,
`mark_errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..protocol.computations import AllowedHandle, ComputationRow
from . import schema as s
from .engine import create_store_engine
from .migrations import migrate
from .records import (
    Ciphertext,
    CommitState,
    CommitStatus,
    ComputationStatus,
    Digest,
    HostChain,
    HostRange,
    ProofRequest,
    RangeWrite,
    StoredComputation,
    TransactionComputations,
)

_CHUNK = 500
_COMPUTATION_POSITION = (
    "chain_id",
    "range_key",
    "block_number",
    "block_hash",
    "tx_index",
    "log_index",
    "is_allowed",
    "caller",
)


def _insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """Dialect insert with ON CONFLICT support (same API on SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"store backend {conn.dialect.name} is not supported")


def _chunks(items: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _unique(items: Iterable[bytes]) -> list[bytes]:
    return list(dict.fromkeys(bytes(i) for i in items))


def _computation_values(chain_id: int, range_key: str, row: ComputationRow) -> dict[str, Any]:
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


class Store:
    """The coprocessor store on one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None, *, run_migrations: bool = True) -> Store:
        """Open (and by default migrate) the store at `url` or the default URL."""
        store = cls(create_store_engine(url))
        if run_migrations:
            migrate(store.engine)
        return store

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    # --- host chains -----------------------------------------------------------------------

    def register_chain(self, chain: HostChain) -> None:
        """Insert or update the chain's contracts and key id."""
        values = {
            "chain_id": chain.chain_id,
            "acl_address": chain.acl_address,
            "executor_address": chain.executor_address,
            "key_id": str(chain.key_id),
        }
        with self.engine.begin() as conn:
            stmt = _insert(conn, s.host_chains).values(values)
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

    # --- host ranges (sensor bookkeeping, reorg detection) --------------------------------

    @staticmethod
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

    def get_range(self, chain_id: int, partition_key: str) -> HostRange | None:
        t = s.host_ranges
        with self.engine.connect() as conn:
            m = conn.execute(
                select(t).where(t.c.chain_id == chain_id, t.c.partition_key == partition_key)
            ).first()
        return None if m is None else self._range(m)

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
        return [self._range(m) for m in rows]

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
        with self.engine.begin() as conn:
            stmt = _insert(conn, t).values(
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
        return self._range(m)

    def mark_range_processed(
        self, chain_id: int, partition_key: str, first_block: int, last_block: int, last_hash: bytes
    ) -> None:
        """Record the last-block hash a range was ingested with (also for manual launches)."""
        t = s.host_ranges
        with self.engine.begin() as conn:
            stmt = _insert(conn, t).values(
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

    # --- computations ----------------------------------------------------------------------

    def write_range(
        self,
        chain_id: int,
        range_key: str,
        rows: Sequence[ComputationRow],
        allowed: Sequence[AllowedHandle] = (),
    ) -> RangeWrite:
        """Make the store's rows of a range equal `rows`/`allowed`, idempotently.

        Rows keep their evaluation status when re-ingested; rows of the range that are no longer
        there (a reorg) are removed.
        """
        c = s.computations
        new = {r.key: _computation_values(chain_id, range_key, r) for r in rows}
        with self.engine.begin() as conn:
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
                stmt = _insert(conn, c)
                set_ = {col: stmt.excluded[col] for col in _COMPUTATION_POSITION}
                distinct = or_(*(c.c[col] != stmt.excluded[col] for col in _COMPUTATION_POSITION))
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["output_handle", "tx_hash"], set_=set_, where=distinct
                    ),
                    list(new.values()),
                )
            allowed_inserted = self._write_allowed(conn, chain_id, range_key, allowed)
        return RangeWrite(
            inserted=inserted,
            updated=len(new) - inserted - unchanged,
            unchanged=unchanged,
            removed=len(stale),
            allowed_inserted=allowed_inserted,
        )

    @staticmethod
    def _write_allowed(
        conn: Connection, chain_id: int, range_key: str, allowed: Sequence[AllowedHandle]
    ) -> int:
        t = s.allowed_handles
        keys = {(a.handle, a.account, a.kind) for a in allowed}
        existing = {
            (m.handle, m.account, m.kind)
            for m in conn.execute(
                select(t.c.handle, t.c.account, t.c.kind).where(
                    t.c.chain_id == chain_id, t.c.range_key == range_key
                )
            )
        }
        stale = existing - keys
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
            stmt = _insert(conn, t).on_conflict_do_nothing(
                index_elements=["handle", "account", "kind"]
            )
            conn.execute(stmt, fresh)
        return len(fresh)

    def computations_of_range(
        self,
        range_key: str,
        statuses: Iterable[ComputationStatus] | None = None,
        chain_id: int | None = None,
    ) -> list[StoredComputation]:
        """Computations of a range in (block, transaction, log) order."""
        c = s.computations
        q = select(c).where(c.c.range_key == range_key)
        if chain_id is not None:
            q = q.where(c.c.chain_id == chain_id)
        if statuses is not None:
            q = q.where(c.c.status.in_([str(x) for x in statuses]))
        q = q.order_by(c.c.block_number, c.c.tx_index, c.c.log_index)
        with self.engine.connect() as conn:
            return [_stored(m) for m in conn.execute(q)]

    def computations_by_transaction(
        self,
        range_key: str,
        statuses: Iterable[ComputationStatus] | None = None,
        chain_id: int | None = None,
    ) -> list[TransactionComputations]:
        """A range's computations grouped by transaction, transactions and logs in chain order."""
        groups: dict[bytes, list[StoredComputation]] = {}
        for comp in self.computations_of_range(range_key, statuses, chain_id):
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
            for chunk in _chunks(_unique(handles)):
                q = select(c).where(c.c.output_handle.in_(chunk))
                out.extend(_stored(m) for m in conn.execute(q))
        return out

    def _set_status(
        self,
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

    def mark_done(self, keys: Sequence[tuple[bytes, bytes]]) -> None:
        """Mark computations (output handle, tx hash) as evaluated."""
        with self.engine.begin() as conn:
            self._set_status(conn, keys, ComputationStatus.DONE, [None] * len(keys))

    def mark_errors(self, errors: Sequence[tuple[bytes, bytes, str]]) -> None:
        """Mark computations failed with a message each: (output handle, tx hash, message)."""
        with self.engine.begin() as conn:
            self._set_status(
                conn,
                [(h, t) for h, t, _ in errors],
                ComputationStatus.ERROR,
                [m for *_, m in errors],
            )

    def store_results(
        self, ciphertexts: Sequence[Ciphertext], done: Sequence[tuple[bytes, bytes]]
    ) -> int:
        """Store result ciphertexts and mark their computations done, atomically."""
        with self.engine.begin() as conn:
            n = self._put_ciphertexts(conn, ciphertexts)
            self._set_status(conn, done, ComputationStatus.DONE, [None] * len(done))
        return n

    # --- ciphertexts -----------------------------------------------------------------------

    @staticmethod
    def _put_ciphertexts(conn: Connection, cts: Sequence[Ciphertext]) -> int:
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
        stmt = _insert(conn, s.ciphertexts).on_conflict_do_nothing(index_elements=["handle"])
        return conn.execute(stmt, list(values.values())).rowcount

    def put_ciphertexts(self, cts: Sequence[Ciphertext]) -> int:
        """Insert ct64s; an existing handle is left as is (ciphertexts are deterministic)."""
        with self.engine.begin() as conn:
            return self._put_ciphertexts(conn, cts)

    def get_ciphertexts(self, handles: Sequence[bytes]) -> dict[bytes, Ciphertext]:
        """The stored ct64s among `handles`, by handle."""
        t = s.ciphertexts
        out: dict[bytes, Ciphertext] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(_unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = Ciphertext(
                        m.handle, m.ciphertext, m.fhe_type, int(m.key_id), m.origin
                    )
        return out

    def _missing(self, table: Table, handles: Sequence[bytes]) -> list[bytes]:
        wanted = _unique(handles)
        found: set[bytes] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
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
        with self.engine.begin() as conn:
            stmt = _insert(conn, s.ciphertexts128).on_conflict_do_nothing(index_elements=["handle"])
            rows = {h: {"handle": h, "ciphertext": ct} for h, ct in items}
            return conn.execute(stmt, list(rows.values())).rowcount

    def get_ciphertexts128(self, handles: Sequence[bytes]) -> dict[bytes, bytes]:
        t = s.ciphertexts128
        out: dict[bytes, bytes] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(_unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = m.ciphertext
        return out

    def missing_ciphertexts128(self, handles: Sequence[bytes]) -> list[bytes]:
        return self._missing(s.ciphertexts128, handles)

    # --- allowed handles -------------------------------------------------------------------

    def allowed_handles_of_range(self, range_key: str) -> list[bytes]:
        """Distinct handles made durable in a range, in (block, log) order."""
        t = s.allowed_handles
        q = select(t.c.handle).where(t.c.range_key == range_key)
        q = q.order_by(t.c.block_number, t.c.log_index)
        with self.engine.connect() as conn:
            return _unique(conn.execute(q).scalars())

    def allowed_among(self, handles: Sequence[bytes]) -> set[bytes]:
        """Which of `handles` an ACL event ever named."""
        t = s.allowed_handles
        out: set[bytes] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(_unique(handles)):
                out.update(conn.execute(select(t.c.handle).where(t.c.handle.in_(chunk))).scalars())
        return out

    # --- digests and commits ---------------------------------------------------------------

    def put_digests(self, digests: Sequence[Digest]) -> int:
        if not digests:
            return 0
        rows = {
            d.handle: {
                "handle": d.handle,
                "key_id": str(d.key_id),
                "ct64_digest": d.ct64_digest,
                "ct128_digest": d.ct128_digest,
            }
            for d in digests
        }
        with self.engine.begin() as conn:
            stmt = _insert(conn, s.digests).on_conflict_do_nothing(index_elements=["handle"])
            return conn.execute(stmt, list(rows.values())).rowcount

    def get_digests(self, handles: Sequence[bytes]) -> dict[bytes, Digest]:
        t = s.digests
        out: dict[bytes, Digest] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(_unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = Digest(m.handle, int(m.key_id), m.ct64_digest, m.ct128_digest)
        return out

    def set_commit_status(self, status: CommitStatus) -> None:
        """Insert or update the commit state of a handle's digests on the gateway."""
        values = {
            "handle": status.handle,
            "status": str(status.status),
            "tx_hash": status.tx_hash,
            "reason": status.reason,
        }
        with self.engine.begin() as conn:
            stmt = _insert(conn, s.commit_status).values(values)
            set_ = {k: stmt.excluded[k] for k in ("status", "tx_hash", "reason")}
            conn.execute(stmt.on_conflict_do_update(index_elements=["handle"], set_=set_))

    def get_commit_statuses(self, handles: Sequence[bytes]) -> dict[bytes, CommitStatus]:
        t = s.commit_status
        out: dict[bytes, CommitStatus] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(_unique(handles)):
                for m in conn.execute(select(t).where(t.c.handle.in_(chunk))):
                    out[m.handle] = CommitStatus(
                        m.handle, CommitState(m.status), m.tx_hash, m.reason
                    )
        return out

    # --- proof requests (gateway) ----------------------------------------------------------

    def put_proof_request(self, req: ProofRequest) -> bool:
        """Insert a request seen on the gateway; True when it was new."""
        values = {
            "zk_proof_id": str(req.zk_proof_id),
            "gateway_chain_id": req.gateway_chain_id,
            "contract_chain_id": req.contract_chain_id,
            "contract_address": req.contract_address,
            "user_address": req.user_address,
            "ciphertext_with_proof": req.ciphertext_with_proof,
            "extra_data": req.extra_data,
            "block_number": req.block_number,
            "tx_hash": req.tx_hash,
            "status": req.status,
            "reason": req.reason,
            "handles": req.handles,
        }
        with self.engine.begin() as conn:
            stmt = _insert(conn, s.proof_requests).values(values)
            res = conn.execute(stmt.on_conflict_do_nothing(index_elements=["zk_proof_id"]))
            return bool(res.rowcount)

    def set_proof_status(
        self,
        zk_proof_id: int,
        status: str,
        reason: str | None = None,
        handles: Sequence[bytes] | None = None,
    ) -> None:
        t = s.proof_requests
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.zk_proof_id == str(zk_proof_id))
                .values(
                    status=status,
                    reason=reason,
                    handles=None if handles is None else tuple(handles),
                )
            )

    def set_proof_response(
        self, zk_proof_id: int, status: str, tx_hash: bytes | None, reason: str | None
    ) -> None:
        """Record what became of the gateway answer (confirmed | already_done | failed)."""
        t = s.proof_requests
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(t.c.zk_proof_id == str(zk_proof_id))
                .values(response_status=status, response_tx_hash=tx_hash, response_reason=reason)
            )

    @staticmethod
    def _proof_request(m: Any) -> ProofRequest:
        return ProofRequest(
            zk_proof_id=int(m.zk_proof_id),
            gateway_chain_id=m.gateway_chain_id,
            contract_chain_id=m.contract_chain_id,
            contract_address=m.contract_address,
            user_address=m.user_address,
            ciphertext_with_proof=m.ciphertext_with_proof,
            extra_data=m.extra_data,
            block_number=m.block_number,
            tx_hash=m.tx_hash,
            status=m.status,
            reason=m.reason,
            handles=m.handles,
            response_status=m.response_status,
            response_tx_hash=m.response_tx_hash,
            response_reason=m.response_reason,
        )

    def get_proof_request(self, zk_proof_id: int) -> ProofRequest | None:
        t = s.proof_requests
        with self.engine.connect() as conn:
            m = conn.execute(select(t).where(t.c.zk_proof_id == str(zk_proof_id))).first()
        return None if m is None else self._proof_request(m)

    def get_proof_requests(self, zk_proof_ids: Sequence[int]) -> dict[int, ProofRequest]:
        """The stored requests among `zk_proof_ids`, by id."""
        t = s.proof_requests
        ids = list(dict.fromkeys(str(i) for i in zk_proof_ids))
        out: dict[int, ProofRequest] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                q = select(t).where(t.c.zk_proof_id.in_(ids[i : i + _CHUNK]))
                for m in conn.execute(q):
                    out[int(m.zk_proof_id)] = self._proof_request(m)
        return out

    # --- diagnostics -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table's rows without timestamps, sorted: equal snapshots mean equal contents."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        stamps = {"created_at", "updated_at", "processed_at"}
        with self.engine.connect() as conn:
            for table in s.metadata.sorted_tables:
                cols = [col for col in table.c if col.name not in stamps]
                rows = conn.execute(select(*cols)).all()
                out[table.name] = sorted((tuple(r) for r in rows), key=repr)
        return out


__all__ = ["Store"]
