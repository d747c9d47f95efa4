"""One gateway block range: input-verification requests collected, verified, answered.

Every step is idempotent: a request already decided is not verified again, and a request already
answered (in the store, or on chain: `CoprocessorAlreadyVerified/Rejected` at simulation) sends no
transaction. Requests for host chains this coprocessor does not serve get no answer (SPEC §6). The
store's requests of a range are those of its blocks now: a request a gateway reorg dropped is
removed (its answer would revert `VerifyProofNotRequested` for ever). A request whose verification
fails internally is deferred, not rejected (SPEC §6 step 5): every other request of the range is
answered, and the range is re-driven for it later. Answers are rechecked like commits: one that a
gateway reorg dropped is sent again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pandas as pd
from eth_account.signers.local import LocalAccount

from ..chain.calls import ContractCall, TxOutcome, TxStatus
from ..chain.config import GatewayConfig
from ..compute.inputs import Deferred, NotServed, RejectedInput, verify_input
from ..protocol.eip712 import sign_ciphertext_verification
from ..protocol.gateway_events import decode_requests
from ..protocol.handles import input_blob_hash
from ..store import Ciphertext, ProofKey, ProofRequest, ProofStatus, StaleRange
from .errors import RedriveLater, StepError
from .host import read_range_logs
from .identity import GenesisBook, require_identity
from .range_job import RangeJob
from .step_report import Note, StepReport
from .tables import hex_str, type_name

DECIDED = (ProofStatus.VERIFIED, ProofStatus.REJECTED, ProofStatus.NOT_SERVED)
DONE_RESPONSES = (TxStatus.CONFIRMED, TxStatus.ALREADY_DONE)

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


class RequestKeys(Protocol):
    def proof_request_keys(
        self, gateway_chain_id: int, first_block: int, last_block: int
    ) -> list[ProofKey]: ...


class RequestReader(Protocol):
    def get_proof_requests(self, keys: Sequence[ProofKey]) -> dict[ProofKey, ProofRequest]: ...


class ResponseBook(Protocol):
    """Where an answer's outcome goes: its status, transaction and gateway block."""

    def set_proof_response(
        self,
        key: ProofKey,
        status: TxStatus | str | None,
        tx_hash: bytes | None,
        reason: str | None,
        block: int | None = None,
    ) -> None: ...


class CollectBook(GenesisBook, Protocol):
    """What `collect_requests` needs of the store: the gateway's identity, and the range's
    requests written in one go."""

    def write_gateway_range(
        self,
        gateway_chain_id: int,
        range_key: str,
        first_block: int,
        last_block: int,
        last_hash: bytes,
        requests: Sequence[ProofRequest],
    ) -> tuple[int, list[ProofKey]]: ...


class VerifyBook(RequestKeys, RequestReader, Protocol):
    """What `verify_requests` needs of the store: the range's requests, their decisions, and
    the input ciphertexts of the verified ones."""

    def set_proof_status(
        self,
        key: ProofKey,
        status: ProofStatus | str,
        reason: str | None = None,
        handles: Sequence[bytes] | None = None,
    ) -> None: ...

    def defer_proof_request(self, key: ProofKey, reason: str) -> None: ...

    def put_ciphertexts(self, cts: Sequence[Ciphertext]) -> int: ...


class AnswerBook(RequestKeys, RequestReader, ResponseBook, Protocol):
    """What `answer_requests` needs of the store."""


class AnswerRecheckBook(RequestReader, ResponseBook, Protocol):
    """What `recheck_answers` needs of the store: the answers it placed in a span of gateway
    blocks, too."""

    def answers_in_gateway_blocks(
        self, gateway_chain_id: int, first: int, last: int
    ) -> list[ProofRequest]: ...


def range_requests(job: RangeJob[RequestKeys]) -> list[ProofKey]:
    """The keys of the requests the store holds in the range's gateway blocks."""
    rng = job.rng
    return list(job.store.proof_request_keys(job.gateway_chain.chain_id, rng.first, rng.last))


def collect_requests(job: RangeJob[CollectBook]) -> StepReport[None]:
    """`VerifyProofRequest` events of the range, stored; a table, figures, and warnings."""
    source, gateway, store, rng = job.log_source(), job.gateway_chain, job.store, job.rng
    chain_id = source.chain_id()
    iv = gateway.require_input_verification()
    require_identity(source, store, "gateway")
    logs, last_hash = read_range_logs(source, rng, [iv])
    report = decode_requests(logs, iv)
    requests = [
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
        for r in report.requests
    ]
    try:
        new, gone = store.write_gateway_range(
            chain_id, rng.key, rng.first, rng.last, last_hash, requests
        )
    except StaleRange as exc:  # another run of this range holds the book's blocks
        raise StepError(f"{exc}: this run writes nothing", retryable=False) from exc
    warnings = [
        f"malformed VerifyProofRequest {hex_str(m.log.tx_hash)}#{m.log.log_index}: {m.error}"
        for m in report.malformed
    ]
    warnings += [f"request {k} is no longer on the gateway (a reorg): removed" for k in gone]
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
        "removed_by_reorg": len(gone),
        "malformed": len(report.malformed),
        "other_logs": report.other,
    }
    return StepReport(figures, df, [Note("warning", w) for w in warnings])


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


def verify_requests(job: RangeJob[VerifyBook]) -> StepReport[None]:
    """Check the ZK proofs of undecided requests; store input handles with their ct64.

    Requests naming a host chain not in `hosts` are `not_served`. A request the bindings could
    not finish (a TFHE-rs panic) is deferred: it stays pending with why (and its count of
    deferrals), the others are decided, and the step succeeds so they are answered; the answer
    step fails the run afterwards, and the range's re-drive retries the deferred one later.
    """
    store, hosts, keys = job.store, job.hosts, range_requests(job)
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
            job.engine(),
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
            store.defer_proof_request(req.key, result.reason)
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
        "fhe_device": job.device,
    }
    return StepReport(figures, df, [Note("info", line) for line in log])


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


def _send_answers(
    store: ResponseBook,
    sender: Callable[[], Sender],
    signer: Callable[[], LocalAccount],
    gateway: GatewayConfig,
    requests: Sequence[ProofRequest],
) -> tuple[dict[ProofKey, TxOutcome], str]:
    """Send the answers of decided `requests` (check-then-send); outcomes go to the store."""
    if not requests:
        return {}, ""
    txs = sender()
    account = signer()
    iv = gateway.require_input_verification()
    calls = [answer_call(r, account, gateway.chain_id, iv) for r in requests]
    outcomes: dict[ProofKey, TxOutcome] = {}
    for req, outcome in zip(requests, txs.send_many(calls), strict=True):
        if outcome.error == NOT_REQUESTED:  # dropped by a reorg: its range's reorg run removes it
            outcome = TxOutcome(
                TxStatus.FAILED,
                None,
                f"{outcome.reason}: the request is not on the gateway now (a reorg); its "
                "range is read again",
                outcome.error,
                retryable=True,
            )
        block = outcome.block_number if outcome.status is TxStatus.CONFIRMED else None
        store.set_proof_response(req.key, outcome.status, outcome.tx_hash, outcome.reason, block)
        outcomes[req.key] = outcome
    return outcomes, txs.address


#: The gateway's revert for an answer to a request it does not hold.
NOT_REQUESTED = "VerifyProofNotRequested"


def answer_requests(job: RangeJob[AnswerBook]) -> StepReport[None]:
    """Send the answers not yet done (check-then-send: simulated first, so an answer already on
    chain reads `already_done` and costs no transaction). Requests still undecided (deferred)
    are answered around: everyone else's answer goes out, then `RedriveLater` names them."""
    store, keys = job.store, range_requests(job)
    reqs = store.get_proof_requests(keys)
    pending = [
        reqs[k]
        for k in keys
        if reqs[k].response_status not in DONE_RESPONSES
        and reqs[k].status != ProofStatus.NOT_SERVED
    ]
    undecided = [r for r in pending if r.status not in DECIDED]
    outcomes, tx_sender = _send_answers(
        store,
        job.answer_sender(),
        job.signer_account(),
        job.gateway_chain,
        [r for r in pending if r.status in DECIDED],
    )
    log = [
        f"answer to request {k} failed: {o.reason}"
        for k, o in outcomes.items()
        if o.status is TxStatus.FAILED
    ]
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
        **{str(st): counts[st] for st in TxStatus},
        "transactions_sent": sum(1 for o in outcomes.values() if o.tx_hash is not None),
        "skipped_already_answered": len(keys) - len(pending),
        "deferred": {str(r.key): r.reason for r in undecided},
        "tx_sender": tx_sender,
        "rejections": {
            str(k): final[k].reason for k in keys if final[k].status == ProofStatus.REJECTED
        },
    }
    failed = {k: o for k, o in outcomes.items() if o.status is TxStatus.FAILED}
    if failed:
        detail = "; ".join(f"{i}: {o.error or ''} {o.reason}" for i, o in failed.items())
        raise StepError(
            f"{len(failed)} gateway answers failed: {detail}",
            retryable=any(o.retryable for o in failed.values()),
            figures=figures,
        )
    if undecided:
        detail = "; ".join(f"{r.key}: {r.reason}" for r in undecided)
        raise RedriveLater(
            f"{len(undecided)} request(s) deferred (internal failures: retried with the range's "
            f"re-drive), every other request answered: {detail}",
            figures=figures,
        )
    return StepReport(figures, df, [Note("error", line) for line in log])


ANSWER_RECHECK_COLUMNS = ["zk_proof_id", "request_tx_hash", "outcome", "tx_hash", "gateway_block"]


class AnswerChain(Sender, Protocol):
    def mined_block(self, tx_hash: bytes) -> int | None: ...


def recheck_answers(job: RangeJob[AnswerRecheckBook]) -> StepReport[None]:
    """Check the answers recorded in gateway blocks `first..last` against the canonical gateway
    chain, as commits are: a receipt in another block is moved, none at all means a reorg
    dropped the answer, and it is sent again (check-then-send: an answer the reorg moved to a
    later block reads `already_done`). A table per answer and figures."""
    started = time.monotonic()
    store, sender, gateway = job.store, job.answer_sender(), job.gateway_chain
    first, last = job.rng.first, job.rng.last
    answered = store.answers_in_gateway_blocks(gateway.chain_id, first, last)
    outcome: dict[ProofKey, str] = {}
    lost: list[ProofRequest] = []
    txs = sender() if answered else None
    for req in answered:
        assert txs is not None and req.response_tx_hash is not None
        try:
            block = txs.mined_block(req.response_tx_hash)
        except Exception as exc:  # any RPC failure: nothing can be decided now
            raise StepError(
                f"gateway unreachable while rechecking answers: {exc}", retryable=True
            ) from exc
        if block == req.response_block:
            outcome[req.key] = "kept"
        elif block is not None:
            outcome[req.key] = "moved"
            store.set_proof_response(
                req.key, req.response_status, req.response_tx_hash, req.response_reason, block
            )
        else:
            lost.append(req)
            why = f"gateway reorg: answer 0x{req.response_tx_hash.hex()} is not on the chain"
            store.set_proof_response(req.key, None, None, why)
    outcomes, _ = _send_answers(store, sender, job.signer_account(), gateway, lost)
    for req in lost:
        o = outcomes[req.key]
        outcome[req.key] = "resent" if o.status is not TxStatus.FAILED else "failed"
    final = store.get_proof_requests([r.key for r in answered])
    table = pd.DataFrame(
        [
            {
                "zk_proof_id": str(k.zk_proof_id),
                "request_tx_hash": hex_str(k.tx_hash),
                "outcome": outcome[k],
                "tx_hash": hex_str(final[k].response_tx_hash),
                "gateway_block": final[k].response_block,
            }
            for k in (r.key for r in answered)
        ],
        columns=ANSWER_RECHECK_COLUMNS,
    )
    failed = {k: o for k, o in outcomes.items() if o.status is TxStatus.FAILED}
    figures = {
        "first_block": first,
        "last_block": last,
        "answers_in_range": len(answered),
        "kept": sum(1 for o in outcome.values() if o == "kept"),
        "moved": sum(1 for o in outcome.values() if o == "moved"),
        "lost": len(lost),
        "failed": {str(k): o.reason for k, o in failed.items()},
        "seconds": round(time.monotonic() - started, 3),
    }
    if failed:
        raise StepError(
            f"{len(failed)} of {len(lost)} answer(s) lost to a gateway reorg could not be sent "
            "again (a retry sends only those)",
            retryable=True,
            figures=figures,
        )
    return StepReport(figures, table)
