"""One gateway block range: input-verification requests collected, verified, answered.

Every step is idempotent: a request already decided is not verified again, and a request already
answered (in the store, or on chain: `CoprocessorAlreadyVerified/Rejected` at simulation) sends no
transaction. Requests for host chains this coprocessor does not serve get no answer (SPEC §6).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import pandas as pd
from eth_account.signers.local import LocalAccount

from ..chain.calls import ContractCall, TxOutcome
from ..chain.config import GatewayConfig, HostChainConfig
from ..compute.evaluate import EngineFactory
from ..compute.inputs import Deferred, NotServed, RejectedInput, verify_input
from ..protocol.eip712 import sign_ciphertext_verification
from ..protocol.gateway_events import decode_requests
from ..protocol.handles import input_blob_hash
from ..store import Ciphertext, ProofKey, ProofRequest, ProofStatus, ResponseStatus, Store
from .block_ranges import BlockRange
from .errors import StepError
from .host import LogSource, read_range_logs
from .identity import require_identity
from .tables import hex_str, type_name

DECIDED = (ProofStatus.VERIFIED, ProofStatus.REJECTED, ProofStatus.NOT_SERVED)
DONE_RESPONSES = (ResponseStatus.CONFIRMED, ResponseStatus.ALREADY_DONE)

REQUEST_COLUMNS = [
    "zk_proof_id", "contract_chain_id", "contract_address", "user_address", "ciphertext_bytes",
    "blob_hash", "extra_data", "block_number", "tx_hash", "log_index",
]  # fmt: skip
VERIFIED_COLUMNS = [
    "zk_proof_id",
    "tx_hash",
    "status",
    "code",
    "reason",
    "entries",
    "fhe_types",
    "handles",
]
RESPONSE_COLUMNS = [
    "zk_proof_id", "request_tx_hash", "answer", "response_status", "tx_hash", "reason", "sent",
]  # fmt: skip


class Sender(Protocol):
    @property
    def address(self) -> str: ...
    def send_many(self, calls: Sequence[ContractCall]) -> list[TxOutcome]: ...


def collect_requests(
    source: LogSource, gateway: GatewayConfig, store: Store, rng: BlockRange
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """`VerifyProofRequest` events of the range, stored; a table, figures, and warnings."""
    chain_id = source.chain_id()
    iv = gateway.require_input_verification()
    require_identity(source, store, "gateway")
    logs, last_hash = read_range_logs(source, rng, [iv])
    report = decode_requests(logs, iv)
    new = 0
    for r in report.requests:
        new += store.put_proof_request(
            ProofRequest(
                zk_proof_id=r.zk_proof_id,
                gateway_chain_id=chain_id,
                contract_chain_id=r.contract_chain_id,
                contract_address=r.contract_address,
                user_address=r.user_address,
                ciphertext_with_proof=r.ciphertext_with_proof,
                extra_data=r.extra_data,
                block_number=r.log.block_number,
                tx_hash=r.log.tx_hash,
            )
        )
    store.mark_range_processed(chain_id, rng.key, rng.first, rng.last, last_hash)
    warnings = [
        f"malformed VerifyProofRequest {hex_str(m.log.tx_hash)}#{m.log.log_index}: {m.error}"
        for m in report.malformed
    ]
    df = pd.DataFrame(
        [
            {
                "zk_proof_id": str(r.zk_proof_id),
                "contract_chain_id": str(r.contract_chain_id),
                "contract_address": r.contract_address,
                "user_address": r.user_address,
                "ciphertext_bytes": len(r.ciphertext_with_proof),
                "blob_hash": hex_str(input_blob_hash(r.ciphertext_with_proof)),
                "extra_data": hex_str(r.extra_data),
                "block_number": r.log.block_number,
                "tx_hash": hex_str(r.log.tx_hash),
                "log_index": r.log.log_index,
            }
            for r in report.requests
        ],
        columns=REQUEST_COLUMNS,
    )
    figures = {
        "gateway_chain_id": chain_id,
        "first_block": rng.first,
        "last_block": rng.last,
        "last_block_hash": hex_str(last_hash),
        "requests": len(report.requests),
        "new_requests": new,
        "malformed": len(report.malformed),
        "other_logs": report.other,
    }
    return df, figures, warnings


def _verified_row(req: ProofRequest) -> dict[str, Any]:
    handles = req.handles or ()
    code, _, reason = (req.reason or "").partition(": ")
    rejected = req.status == ProofStatus.REJECTED
    return {
        "zk_proof_id": str(req.zk_proof_id),
        "tx_hash": hex_str(req.tx_hash),
        "status": str(req.status),
        "code": code if rejected else "",
        "reason": reason if rejected else (req.reason or ""),
        "entries": len(handles),
        "fhe_types": ",".join(type_name(h[30]) for h in handles),
        "handles": ",".join(hex_str(h) for h in handles),
    }


def verify_requests(
    store: Store,
    engine_of: EngineFactory,
    hosts: Mapping[int, HostChainConfig],
    keys: Sequence[ProofKey],
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """Check the ZK proofs of undecided requests; store input handles with their ct64.

    Requests naming a host chain not in `hosts` are `not_served`. A request the bindings could
    not finish (a TFHE-rs panic) is deferred: the others are decided and the step fails retryably.
    """
    stored = store.get_proof_requests(keys)
    missing = [str(k) for k in keys if k not in stored]
    if missing:
        raise StepError(
            f"proof requests {missing} are not in the store: rematerialize proof_requests",
            retryable=False,
        )
    todo = [stored[k] for k in keys if stored[k].status not in DECIDED]
    seconds = 0.0
    deferred: dict[ProofKey, str] = {}
    log: list[str] = []
    for req in todo:
        host = hosts.get(req.contract_chain_id)
        started = time.monotonic()
        result = verify_input(
            engine_of(),
            req.ciphertext_with_proof,
            contract=req.contract_address,
            user=req.user_address,
            acl=host.acl_address if host else "0x" + "00" * 20,
            host_chain_id=req.contract_chain_id,
            served_chain_ids=set(hosts),
        )
        seconds += time.monotonic() - started
        if isinstance(result, NotServed):
            store.set_proof_status(req.key, ProofStatus.NOT_SERVED, result.reason)
            log.append(f"request {req.key} not answered: {result.reason}")
        elif isinstance(result, Deferred):
            deferred[req.key] = result.reason
            log.append(f"request {req.key} deferred: {result.reason}")
        elif isinstance(result, RejectedInput):
            reason = f"{result.code}: {result.reason}"
            store.set_proof_status(req.key, ProofStatus.REJECTED, reason)
            log.append(f"request {req.key} rejected: {result.reason}")
        else:
            assert host is not None  # verified only for a served chain
            cts = zip(result.handles, result.ciphertexts, result.fhe_types, strict=True)
            store.put_ciphertexts([Ciphertext(h, ct, t, host.key_id, "input") for h, ct, t in cts])
            store.set_proof_status(req.key, ProofStatus.VERIFIED, None, result.handles)
    final = store.get_proof_requests(keys)
    df = pd.DataFrame([_verified_row(final[k]) for k in keys], columns=VERIFIED_COLUMNS)
    statuses = Counter(r.status for r in final.values())
    figures = {
        "requests": len(keys),
        "verified": statuses[ProofStatus.VERIFIED],
        "rejected": statuses[ProofStatus.REJECTED],
        "not_served": statuses[ProofStatus.NOT_SERVED],
        "deferred": len(deferred),
        "newly_checked": len(todo),
        "verify_seconds": round(seconds, 2),
        "input_handles": int(df["entries"].sum()) if len(df) else 0,
        "rejections": {
            str(k): final[k].reason for k in keys if final[k].status == ProofStatus.REJECTED
        },
    }
    if deferred:
        detail = "; ".join(f"{i}: {reason}" for i, reason in deferred.items())
        raise StepError(
            f"{len(deferred)} requests failed internally and are not answered yet: {detail}",
            retryable=True,
            figures=figures,
        )
    return df, figures, log


def answer_call(
    req: ProofRequest, signer: LocalAccount, gateway_chain_id: int, iv: str
) -> ContractCall:
    """The answer to one request: a signed verifyProofResponse, or rejectProofResponse."""
    if req.status == ProofStatus.VERIFIED:
        handles = list(req.handles or ())
        signature = sign_ciphertext_verification(
            signer.key,
            gateway_chain_id=gateway_chain_id,
            input_verification_address=iv,
            ct_handles=handles,
            user_address=req.user_address,
            contract_address=req.contract_address,
            contract_chain_id=req.contract_chain_id,
            extra_data=req.extra_data,
        )
        return ContractCall(
            "InputVerification",
            "verifyProofResponse",
            (req.zk_proof_id, handles, signature, req.extra_data),
            label=f"verifyProofResponse({req.zk_proof_id})",
            key=f"proof:{req.zk_proof_id}:0x{req.tx_hash.hex()}:verifyProofResponse",
        )
    return ContractCall(
        "InputVerification",
        "rejectProofResponse",
        (req.zk_proof_id, req.extra_data),
        label=f"rejectProofResponse({req.zk_proof_id})",
        key=f"proof:{req.zk_proof_id}:0x{req.tx_hash.hex()}:rejectProofResponse",
    )


def answer_requests(
    store: Store,
    sender: Callable[[], Sender],
    signer: Callable[[], LocalAccount],
    gateway: GatewayConfig,
    keys: Sequence[ProofKey],
) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    """Send the answers not yet done (check-then-send: simulated first, so an answer already on
    chain reads `already_done` and costs no transaction)."""
    reqs = store.get_proof_requests(keys)
    pending = [
        reqs[k]
        for k in keys
        if reqs[k].response_status not in DONE_RESPONSES
        and reqs[k].status != ProofStatus.NOT_SERVED
    ]
    unverified = [str(r.key) for r in pending if r.status not in DECIDED]
    if unverified:
        raise StepError(
            f"requests {unverified} are not verified yet: rematerialize verified_inputs",
            retryable=False,
        )
    outcomes: dict[ProofKey, TxOutcome] = {}
    tx_sender = ""
    log: list[str] = []
    if pending:
        txs = sender()
        tx_sender = txs.address
        account = signer()
        iv = gateway.require_input_verification()
        calls = [answer_call(r, account, gateway.chain_id, iv) for r in pending]
        for req, outcome in zip(pending, txs.send_many(calls), strict=True):
            store.set_proof_response(req.key, outcome.status, outcome.tx_hash, outcome.reason)
            outcomes[req.key] = outcome
            if outcome.status == "failed":
                log.append(f"answer to request {req.key} failed: {outcome.reason}")
    final = store.get_proof_requests(keys)
    answers = {ProofStatus.VERIFIED: "verify", ProofStatus.REJECTED: "reject"}
    df = pd.DataFrame(
        [
            {
                "zk_proof_id": str(k.zk_proof_id),
                "request_tx_hash": hex_str(k.tx_hash),
                "answer": answers.get(final[k].status, "none"),
                "response_status": str(final[k].response_status or ""),
                "tx_hash": hex_str(final[k].response_tx_hash),
                "reason": final[k].response_reason or "",
                "sent": k in outcomes and outcomes[k].tx_hash is not None,
            }
            for k in keys
        ],
        columns=RESPONSE_COLUMNS,
    )
    counts = Counter(df["response_status"]) if len(df) else Counter[str]()
    figures = {
        "requests": len(keys),
        "answered_verify": int((df["answer"] == "verify").sum()) if len(df) else 0,
        "answered_reject": int((df["answer"] == "reject").sum()) if len(df) else 0,
        "confirmed": counts["confirmed"],
        "already_done": counts["already_done"],
        "failed": counts["failed"],
        "transactions_sent": sum(1 for o in outcomes.values() if o.tx_hash is not None),
        "skipped_already_answered": len(keys) - len(pending),
        "tx_sender": tx_sender,
        "rejections": {
            str(k): final[k].reason for k in keys if final[k].status == ProofStatus.REJECTED
        },
    }
    failed = {k: o for k, o in outcomes.items() if o.status == "failed"}
    if failed:
        detail = "; ".join(f"{i}: {o.error or ''} {o.reason}" for i, o in failed.items())
        raise StepError(
            f"{len(failed)} gateway answers failed: {detail}",
            retryable=any(o.retryable for o in failed.values()),
            figures=figures,
        )
    return df, figures, log
