"""Gateway input-verification requests: what was asked, what we decided, what the answer became.

Statuses are stored as their enum values (the column values predate the enums); setters take
the enums or those same strings, and reject anything else before it reaches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select, update

from . import schema as s
from .records import ProofKey, ProofRequest, ProofStatus, ResponseStatus
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
        response_status=None if m.response_status is None else ResponseStatus(m.response_status),
        response_tx_hash=m.response_tx_hash,
        response_reason=m.response_reason,
    )


def _where(t: Any, key: ProofKey) -> Any:
    return and_(
        t.c.gateway_chain_id == key.gateway_chain_id,
        t.c.zk_proof_id == str(key.zk_proof_id),
        t.c.tx_hash == key.tx_hash,
    )


class ProofQueries(StoreBase):
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
            "status": str(ProofStatus(req.status)),
            "reason": req.reason,
            "handles": req.handles,
        }
        with self.writer.begin() as conn:
            stmt = insert(conn, s.proof_requests).values(values)
            res = conn.execute(stmt.on_conflict_do_nothing(index_elements=list(KEY_COLUMNS)))
            return bool(res.rowcount)

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

    def set_proof_response(
        self,
        key: ProofKey,
        status: ResponseStatus | str,
        tx_hash: bytes | None,
        reason: str | None,
    ) -> None:
        """Record what became of the answer sent on the gateway."""
        t = s.proof_requests
        values = {
            "response_status": str(ResponseStatus(status)),
            "response_tx_hash": tx_hash,
            "response_reason": reason,
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
