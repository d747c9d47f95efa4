"""Gateway input-verification requests: what was asked, what we decided, what the answer became.

Statuses are stored as their enum values (the column values predate the enums); setters take
the enums or those same strings, and reject anything else before it reaches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, select, update

from ..chain.calls import TxStatus
from . import schema as s
from .chains import mark_processed
from .records import ProofKey, ProofRequest, ProofStatus
from .sql import StoreBase, chunks, insert

#: A request's identity in the table (`ProofKey`), its primary key since migration 4.
KEY_COLUMNS = ("gateway_chain_id", "zk_proof_id", "tx_hash")


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
        status=ProofStatus(m.status),
        reason=m.reason,
        handles=m.handles,
        response_status=None if m.response_status is None else TxStatus(m.response_status),
        response_tx_hash=m.response_tx_hash,
        response_reason=m.response_reason,
        response_block=None if m.response_block is None else int(m.response_block),
        deferrals=int(m.deferrals),
    )


def _where(t: Any, key: ProofKey) -> Any:
    return and_(
        t.c.gateway_chain_id == key.gateway_chain_id,
        t.c.zk_proof_id == str(key.zk_proof_id),
        t.c.tx_hash == key.tx_hash,
    )


def _request_values(req: ProofRequest) -> dict[str, Any]:
    return {
        "zk_proof_id": str(req.zk_proof_id),
        "gateway_chain_id": req.gateway_chain_id,
        "contract_chain_id": req.contract_chain_id,
        "contract_address": req.contract_address,
        "user_address": req.user_address,
        "ciphertext_with_proof": req.ciphertext_with_proof,
        "extra_data": req.extra_data,
        "block_number": req.block_number,
        "tx_hash": req.tx_hash,
        "status": str(ProofStatus(req.status)),
        "reason": req.reason,
        "handles": req.handles,
    }


class ProofQueries(StoreBase):
    def put_proof_request(self, req: ProofRequest) -> bool:
        """Insert a request seen on the gateway; True when it was new."""
        with self.writer.begin() as conn:
            stmt = insert(conn, s.proof_requests).values(_request_values(req))
            res = conn.execute(stmt.on_conflict_do_nothing(index_elements=list(KEY_COLUMNS)))
            return bool(res.rowcount)

    def write_gateway_range(
        self,
        gateway_chain_id: int,
        range_key: str,
        first_block: int,
        last_block: int,
        last_hash: bytes,
        requests: Sequence[ProofRequest],
    ) -> tuple[int, list[ProofKey]]:
        """Make the store's requests of gateway blocks `first..last` equal `requests` and mark
        the range processed, in one fenced transaction (`StaleRange`: nothing is written).
        Returns how many requests were new, and the keys removed: requests a gateway reorg
        dropped (their answer would revert `VerifyProofNotRequested` for ever)."""
        t = s.proof_requests
        keep = {r.key for r in requests}
        with self.writer.begin() as conn:
            mark_processed(conn, gateway_chain_id, range_key, first_block, last_block, last_hash)
            held = conn.execute(
                select(t.c.gateway_chain_id, t.c.zk_proof_id, t.c.tx_hash).where(
                    t.c.gateway_chain_id == gateway_chain_id,
                    t.c.block_number.between(first_block, last_block),
                )
            ).all()
            gone = [
                k
                for k in (ProofKey(m.gateway_chain_id, int(m.zk_proof_id), m.tx_hash) for m in held)
                if k not in keep
            ]
            for key in gone:
                conn.execute(delete(t).where(_where(t, key)))
            new = 0
            for req in requests:
                stmt = insert(conn, t).values(_request_values(req))
                res = conn.execute(stmt.on_conflict_do_nothing(index_elements=list(KEY_COLUMNS)))
                new += res.rowcount
        return new, gone

    def set_proof_status(
        self,
        key: ProofKey,
        status: ProofStatus | str,
        reason: str | None = None,
        handles: Sequence[bytes] | None = None,
    ) -> None:
        t = s.proof_requests
        with self.writer.begin() as conn:
            conn.execute(
                update(t)
                .where(_where(t, key))
                .values(
                    status=str(ProofStatus(status)),
                    reason=reason,
                    handles=None if handles is None else tuple(handles),
                )
            )

    def defer_proof_request(self, key: ProofKey, reason: str) -> None:
        """An internal failure (a TFHE-rs panic, a missing key): the request stays pending with
        why, and counts one more deferral; nothing is answered for it yet."""
        t = s.proof_requests
        with self.writer.begin() as conn:
            conn.execute(
                update(t)
                .where(_where(t, key))
                .values(reason=f"deferred: {reason}", deferrals=t.c.deferrals + 1)
            )

    def answers_in_gateway_blocks(
        self, gateway_chain_id: int, first: int, last: int
    ) -> list[ProofRequest]:
        """The requests whose confirmed answer was mined in gateway blocks `first..last`."""
        t = s.proof_requests
        q = select(t).where(
            t.c.gateway_chain_id == gateway_chain_id, t.c.response_block.between(first, last)
        )
        with self.engine.connect() as conn:
            found = [_proof_request(m) for m in conn.execute(q)]
        return sorted(found, key=lambda r: (r.response_block or 0, r.zk_proof_id))

    def set_proof_response(
        self,
        key: ProofKey,
        status: TxStatus | str | None,
        tx_hash: bytes | None,
        reason: str | None,
        block: int | None = None,
    ) -> None:
        """Record what became of the answer sent on the gateway (its gateway block when mined:
        rechecked after a gateway reorg); None: not answered (a reorg dropped the answer)."""
        t = s.proof_requests
        values = {
            "response_status": None if status is None else str(TxStatus(status)),
            "response_tx_hash": tx_hash,
            "response_reason": reason,
            "response_block": block,
        }
        with self.writer.begin() as conn:
            conn.execute(update(t).where(_where(t, key)).values(values))

    def get_proof_request(self, key: ProofKey) -> ProofRequest | None:
        t = s.proof_requests
        with self.engine.connect() as conn:
            m = conn.execute(select(t).where(_where(t, key))).first()
        return None if m is None else _proof_request(m)

    def get_proof_requests(self, keys: Sequence[ProofKey]) -> dict[ProofKey, ProofRequest]:
        """The stored requests among `keys`, by key."""
        t = s.proof_requests
        wanted = set(keys)
        out: dict[ProofKey, ProofRequest] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted({str(k.zk_proof_id) for k in wanted})):
                for m in conn.execute(select(t).where(t.c.zk_proof_id.in_(chunk))):
                    req = _proof_request(m)
                    if req.key in wanted:
                        out[req.key] = req
        return out

    def proof_requests_with_id(self, gateway_chain_id: int, zk_proof_id: int) -> list[ProofRequest]:
        """Every stored request of the gateway carrying `zk_proof_id`, oldest block first."""
        t = s.proof_requests
        q = select(t).where(
            t.c.gateway_chain_id == gateway_chain_id, t.c.zk_proof_id == str(zk_proof_id)
        )
        with self.engine.connect() as conn:
            found = [_proof_request(m) for m in conn.execute(q)]
        return sorted(found, key=lambda r: (r.block_number, r.tx_hash))

    def proof_request_keys(
        self, gateway_chain_id: int, first_block: int, last_block: int
    ) -> list[ProofKey]:
        """Keys of the requests emitted in gateway blocks first..last, in emission order (ids
        grow along the chain)."""
        t = s.proof_requests
        q = (
            select(t.c.gateway_chain_id, t.c.zk_proof_id, t.c.tx_hash, t.c.block_number)
            .where(t.c.gateway_chain_id == gateway_chain_id)
            .where(t.c.block_number.between(first_block, last_block))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        ordered = sorted(rows, key=lambda m: (m.block_number, int(m.zk_proof_id), m.tx_hash))
        return [ProofKey(m.gateway_chain_id, int(m.zk_proof_id), m.tx_hash) for m in ordered]
