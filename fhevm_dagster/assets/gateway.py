"""Assets of one gateway block range: input-verification requests, verification, answers.

Thin by design: fetching and sending are `resources/chain.py`, event decoding and EIP-712 are
`protocol/`, verification is `compute/inputs.py`, writes are `store/`. Every step is idempotent:
a request already verified is not verified again, and a request already answered (in the store,
or on chain: `CoprocessorAlreadyVerified/Rejected` at simulation) sends no transaction.
"""

import time
from collections import Counter
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    Failure,
    MetadataValue,
    RetryPolicy,
    RetryRequested,
    asset,
)
from eth_account.signers.local import LocalAccount

from ..compute.inputs import Deferred, NotServed, RejectedInput, verify_input
from ..jobs import GATEWAY_RANGE_GROUP
from ..partitions import gateway_ranges, parse_range_key
from ..protocol.eip712 import sign_ciphertext_verification
from ..protocol.gateway_events import decode_requests
from ..protocol.handles import input_blob_hash
from ..resources.chain import GatewayCall, GatewayChainResource, HostChainResource, TxOutcome
from ..resources.fhe import FheResource
from ..resources.signer import SignerResource
from ..resources.store import StoreResource
from ..store import Ciphertext, ProofRequest, ProofStatus
from .metadata import RPC_RETRY, hex_str, preview, type_name

STORE_RETRY = RetryPolicy(max_retries=2, delay=1)
VERIFIED, REJECTED, NOT_SERVED = ProofStatus.VERIFIED, ProofStatus.REJECTED, ProofStatus.NOT_SERVED
DECIDED = (VERIFIED, REJECTED, NOT_SERVED)
DONE_RESPONSES = ("confirmed", "already_done")

REQUEST_COLUMNS = [
    "zk_proof_id", "contract_chain_id", "contract_address", "user_address", "ciphertext_bytes",
    "blob_hash", "extra_data", "block_number", "tx_hash", "log_index",
]  # fmt: skip
VERIFIED_COLUMNS = ["zk_proof_id", "status", "code", "reason", "entries", "fhe_types", "handles"]
RESPONSE_COLUMNS = ["zk_proof_id", "answer", "response_status", "tx_hash", "reason", "sent"]


def _ids(df: pd.DataFrame) -> list[int]:
    return [int(x) for x in df["zk_proof_id"]] if len(df) else []


@asset(
    partitions_def=gateway_ranges,
    group_name=GATEWAY_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=RPC_RETRY,
    kinds={"python", "parquet"},
)
def proof_requests(
    context: AssetExecutionContext, gateway: GatewayChainResource, store: StoreResource
) -> pd.DataFrame:
    """`VerifyProofRequest` events of the range, decoded and stored (ciphertexts in the store)."""
    rng = parse_range_key(context.partition_key)
    chain_id = gateway.chain_id()
    before = gateway.block_hash(rng.last)
    logs = gateway.get_logs(rng.first, rng.last)
    after = gateway.block_hash(rng.last)
    if before is None or before != after:
        raise RetryRequested(max_retries=3, seconds_to_wait=2)  # the range moved under us
    report = decode_requests(logs, gateway.input_verification_address)
    st = store.get()
    new = 0
    for r in report.requests:
        new += st.put_proof_request(
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
    st.mark_range_processed(chain_id, rng.key, rng.first, rng.last, after)
    for m in report.malformed:
        context.log.warning(
            f"malformed VerifyProofRequest {hex_str(m.log.tx_hash)}#{m.log.log_index}: {m.error}"
        )
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
    context.add_output_metadata(
        {
            "gateway_chain_id": chain_id,
            "first_block": rng.first,
            "last_block": rng.last,
            "last_block_hash": hex_str(after),
            "requests": len(report.requests),
            "new_requests": new,
            "malformed": len(report.malformed),
            "other_logs": report.other,
            "preview": preview(df[["zk_proof_id", "user_address", "ciphertext_bytes"]]),
        }
    )
    return df


def _verified_row(req: ProofRequest) -> dict[str, Any]:
    handles = req.handles or ()
    code, _, reason = (req.reason or "").partition(": ")
    return {
        "zk_proof_id": str(req.zk_proof_id),
        "status": req.status,
        "code": code if req.status == REJECTED else "",
        "reason": reason if req.status == REJECTED else (req.reason or ""),
        "entries": len(handles),
        "fhe_types": ",".join(type_name(h[30]) for h in handles),
        "handles": ",".join(hex_str(h) for h in handles),
    }


@asset(
    partitions_def=gateway_ranges,
    group_name=GATEWAY_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=STORE_RETRY,
    kinds={"python", "sql"},
)
def verified_inputs(
    context: AssetExecutionContext,
    proof_requests: pd.DataFrame,
    chain: HostChainResource,
    fhe: FheResource,
    store: StoreResource,
) -> pd.DataFrame:
    """ZK proofs checked, lists expanded and compressed, input handles stored with their ct64."""
    st = store.get()
    ids = _ids(proof_requests)
    stored = st.get_proof_requests(ids)
    missing = [i for i in ids if i not in stored]
    if missing:
        raise Failure(
            f"proof requests {missing} are not in the store: rematerialize proof_requests"
        )
    todo = [stored[i] for i in ids if stored[i].status not in DECIDED]
    host_chain_id = chain.chain_id() if todo else 0
    seconds = 0.0
    deferred: dict[int, str] = {}
    for req in todo:
        started = time.monotonic()
        result = verify_input(
            fhe.engine(),
            req.ciphertext_with_proof,
            contract=req.contract_address,
            user=req.user_address,
            acl=chain.acl_address,
            host_chain_id=req.contract_chain_id,
            served_chain_ids={host_chain_id},
        )
        seconds += time.monotonic() - started
        if isinstance(result, NotServed):
            st.set_proof_status(req.zk_proof_id, NOT_SERVED, result.reason)
            context.log.info(f"request {req.zk_proof_id} not answered: {result.reason}")
            continue
        if isinstance(result, Deferred):
            deferred[req.zk_proof_id] = result.reason
            context.log.error(f"request {req.zk_proof_id} deferred: {result.reason}")
            continue
        if isinstance(result, RejectedInput):
            st.set_proof_status(req.zk_proof_id, REJECTED, f"{result.code}: {result.reason}")
            context.log.warning(f"request {req.zk_proof_id} rejected: {result.reason}")
            continue
        st.put_ciphertexts(
            [
                Ciphertext(h, ct, t, int(chain.key_id), "input")
                for h, ct, t in zip(
                    result.handles, result.ciphertexts, result.fhe_types, strict=True
                )
            ]
        )
        st.set_proof_status(req.zk_proof_id, VERIFIED, None, result.handles)
    final = st.get_proof_requests(ids)
    df = pd.DataFrame([_verified_row(final[i]) for i in ids], columns=VERIFIED_COLUMNS)
    statuses = Counter(r.status for r in final.values())
    rejections = {str(i): final[i].reason for i in ids if final[i].status == REJECTED}
    context.add_output_metadata(
        {
            "requests": len(ids),
            "verified": statuses[VERIFIED],
            "rejected": statuses[REJECTED],
            "not_served": statuses[NOT_SERVED],
            "deferred": len(deferred),
            "newly_checked": len(todo),
            "verify_seconds": round(seconds, 2),
            "input_handles": int(df["entries"].sum()) if len(df) else 0,
            "rejections": MetadataValue.json(rejections),
            "preview": preview(df[["zk_proof_id", "status", "code", "entries", "fhe_types"]]),
        }
    )
    if deferred:
        detail = "; ".join(f"{i}: {reason}" for i, reason in deferred.items())
        raise Failure(
            f"{len(deferred)} requests failed internally and are not answered yet: {detail}",
            allow_retries=True,
        )
    return df


def _call_for(
    req: ProofRequest, signer: LocalAccount, gateway_chain_id: int, iv: str
) -> GatewayCall:
    """The answer to one request: a signed verifyProofResponse, or rejectProofResponse."""
    if req.status == VERIFIED:
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
        return GatewayCall(
            "InputVerification",
            "verifyProofResponse",
            (req.zk_proof_id, handles, signature, req.extra_data),
            label=f"verifyProofResponse({req.zk_proof_id})",
        )
    return GatewayCall(
        "InputVerification",
        "rejectProofResponse",
        (req.zk_proof_id, req.extra_data),
        label=f"rejectProofResponse({req.zk_proof_id})",
    )


@asset(
    partitions_def=gateway_ranges,
    group_name=GATEWAY_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    retry_policy=RPC_RETRY,
    kinds={"python", "ethereum"},
)
def proof_responses(
    context: AssetExecutionContext,
    verified_inputs: pd.DataFrame,
    gateway: GatewayChainResource,
    signer: SignerResource,
    store: StoreResource,
) -> pd.DataFrame:
    """Signed answers on the gateway: verifyProofResponse or rejectProofResponse, receipts checked.

    Check-then-send: answers recorded as done are skipped, and every call is simulated first, so
    an answer already on chain reads `already_done` and costs no transaction.
    """
    st = store.get()
    ids = _ids(verified_inputs)
    reqs = st.get_proof_requests(ids)
    pending = [
        reqs[i]
        for i in ids
        if reqs[i].response_status not in DONE_RESPONSES and reqs[i].status != NOT_SERVED
    ]
    unverified = [r.zk_proof_id for r in pending if r.status not in DECIDED]
    if unverified:
        raise Failure(f"requests {unverified} are not verified yet: rematerialize verified_inputs")
    outcomes: dict[int, TxOutcome] = {}
    sender = ""
    if pending:
        chain_id = gateway.chain_id()
        account = signer.tx_sender_account()
        sender = account.address
        signer_account = signer.signer_account()
        iv = gateway.input_verification_address
        calls = [_call_for(r, signer_account, chain_id, iv) for r in pending]
        results = gateway.transactions(account).send_many(calls)
        for req, outcome in zip(pending, results, strict=True):
            st.set_proof_response(req.zk_proof_id, outcome.status, outcome.tx_hash, outcome.reason)
            outcomes[req.zk_proof_id] = outcome
            if outcome.status == "failed":
                context.log.error(f"answer to request {req.zk_proof_id} failed: {outcome.reason}")
    final = st.get_proof_requests(ids)
    df = pd.DataFrame(
        [
            {
                "zk_proof_id": str(i),
                "answer": {VERIFIED: "verify", REJECTED: "reject"}.get(final[i].status, "none"),
                "response_status": final[i].response_status or "",
                "tx_hash": hex_str(final[i].response_tx_hash),
                "reason": final[i].response_reason or "",
                "sent": i in outcomes and outcomes[i].tx_hash is not None,
            }
            for i in ids
        ],
        columns=RESPONSE_COLUMNS,
    )
    counts = Counter(df["response_status"]) if len(df) else Counter[str]()
    failed = {i: o for i, o in outcomes.items() if o.status == "failed"}
    context.add_output_metadata(
        {
            "requests": len(ids),
            "answered_verify": int((df["answer"] == "verify").sum()) if len(df) else 0,
            "answered_reject": int((df["answer"] == "reject").sum()) if len(df) else 0,
            "confirmed": counts["confirmed"],
            "already_done": counts["already_done"],
            "failed": counts["failed"],
            "transactions_sent": sum(1 for o in outcomes.values() if o.tx_hash is not None),
            "skipped_already_answered": len(ids) - len(pending),
            "tx_sender": sender,
            "rejections": MetadataValue.json(
                {str(i): final[i].reason for i in ids if final[i].status == REJECTED}
            ),
            "preview": preview(df[["zk_proof_id", "answer", "response_status", "tx_hash"]]),
        }
    )
    if failed:
        detail = "; ".join(f"{i}: {o.error or ''} {o.reason}" for i, o in failed.items())
        raise Failure(
            f"{len(failed)} gateway answers failed: {detail}",
            allow_retries=any(o.retryable for o in failed.values()),
        )
    return df
