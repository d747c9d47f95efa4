"""Input verification without chains: real tfhe_py, lists made by the real JS client (node-tfhe).

Handles are compared byte for byte with those the JS script computes (SPEC §2 with js-sha3),
and every kind of bad input gets the reference's decision with its reason, never an exception:
a rejection, no answer for a host chain not served, a retry for an internal failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tfhe_py
from eth_account import Account
from eth_account.messages import encode_typed_data

from fhevm_dagster.compute.inputs import (
    MAX_PROVEN_LIST_BYTES,
    Deferred,
    NotServed,
    RejectCode,
    RejectedInput,
    VerifiedInput,
    proof_metadata,
    verify_input,
)
from fhevm_dagster.protocol.eip712 import (
    InputProofError,
    ciphertext_verification_digest,
    ciphertext_verification_typed_data,
    decode_input_proof,
    encode_input_proof,
    sign_ciphertext_verification,
)
from fhevm_dagster.protocol.events import RawLog
from fhevm_dagster.protocol.gateway_events import (
    VERIFY_PROOF_REQUEST_TOPIC,
    decode_request,
    decode_requests,
)
from fhevm_dagster.protocol.handles import input_handles
from fhevm_dagster.resources.fhe import FheResource

INPUTS = Path(__file__).parent / "fixtures" / "inputs"
JS_LIST = Path(__file__).parents[1] / "tfhe-py" / "tests" / "fixtures" / "js_input_list"
OPS_EXERCISER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


def fixture(name: str) -> tuple[bytes, dict[str, Any]]:
    return (INPUTS / f"{name}.bin").read_bytes(), json.loads((INPUTS / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def engine() -> tfhe_py.Engine:
    return FheResource().engine()


def check(engine: tfhe_py.Engine, data: bytes, meta: dict[str, Any], **over: Any) -> Any:
    args: dict[str, Any] = {
        "contract": meta["contract"],
        "user": meta["user"],
        "acl": meta["acl"],
        "host_chain_id": meta["chain_id"],
    }
    return verify_input(engine, data, **(args | over))


def test_metadata_layout() -> None:
    _, meta = fixture("transfer_u64")
    got = proof_metadata(meta["contract"], meta["user"], meta["acl"], meta["chain_id"])
    assert len(got) == 92 and got.hex() == meta["metadata"]


@pytest.mark.parametrize("name", ["transfer_u64", "pair_bool_u8"])
def test_js_lists_verify_with_the_sdk_handles(engine: tfhe_py.Engine, name: str) -> None:
    data, meta = fixture(name)
    result = check(engine, data, meta)
    assert isinstance(result, VerifiedInput), result
    assert ["0x" + h.hex() for h in result.handles] == meta["handles"]
    assert list(result.fhe_types) == [t for _, t in meta["values"]]
    keys = FheResource().key_set(with_client_key=True)
    assert keys.client_key is not None
    values = [str(keys.client_key.decrypt(engine.decompress(ct))) for ct in result.ciphertexts]
    assert values == [v for v, _ in meta["values"]]
    # Deterministic: the same request gives the same stored bytes (coprocessor consensus).
    again = check(engine, data, meta)
    assert isinstance(again, VerifiedInput) and again.ciphertexts == result.ciphertexts


def test_handles_of_every_type_match_the_js_sdk() -> None:
    """The 8-type list of tfhe-py's fixtures: handles from the JS script, not recomputed here."""
    meta = json.loads(JS_LIST.with_suffix(".json").read_text())
    js = json.loads((INPUTS / "js_input_list.handles.json").read_text())["handles"]
    data = JS_LIST.with_suffix(".bin").read_bytes()
    types = [t for _, t in meta["values"]]
    ours = input_handles(data, types, meta["acl"], meta["chain_id"])
    assert ["0x" + h.hex() for h in ours] == js
    assert [h[21] for h in ours] == list(range(8)) and [h[30] for h in ours] == types


def reason(result: object, code: RejectCode, text: str) -> None:
    assert isinstance(result, RejectedInput), result
    assert result.code == code and text in result.reason, result


def test_bad_bytes_are_rejected(engine: tfhe_py.Engine) -> None:
    data, meta = fixture("transfer_u64")
    reason(check(engine, b"", meta), RejectCode.EMPTY, "empty")
    reason(check(engine, b"garbage" * 10, meta), RejectCode.MALFORMED, "malformed")
    for cut in (10, len(data) // 2, len(data) - 1):
        reason(check(engine, data[:cut], meta), RejectCode.MALFORMED, "malformed")
    huge = data + bytes(MAX_PROVEN_LIST_BYTES)
    reason(check(engine, huge, meta), RejectCode.OVERSIZED, f"limit is {MAX_PROVEN_LIST_BYTES}")


def test_forbidden_compute_load_and_too_many_entries(engine: tfhe_py.Engine) -> None:
    data, meta = fixture("proof_load_u8")
    assert meta["compute_load"] == "proof"
    reason(check(engine, data, meta), RejectCode.MALFORMED, "not conformant")
    data, meta = fixture("too_many_256")
    assert len(meta["values"]) == 256
    reason(check(engine, data, meta), RejectCode.TOO_MANY_ENTRIES, "at most 255 entries, got 256")


def test_proof_bound_to_other_metadata_is_rejected(engine: tfhe_py.Engine) -> None:
    data, meta = fixture("transfer_u64")
    other_user = Account.create().address
    reason(check(engine, data, meta, user=other_user), RejectCode.PROOF_REJECTED, "rejected")
    reason(check(engine, data, meta, contract=OPS_EXERCISER), RejectCode.PROOF_REJECTED, "")
    reason(check(engine, data, meta, host_chain_id=1), RejectCode.PROOF_REJECTED, "")


def test_request_for_a_chain_not_served_gets_no_answer(engine: tfhe_py.Engine) -> None:
    """SPEC §6 step 0: another coprocessor set serves it; a rejection would vote against it."""
    data, meta = fixture("transfer_u64")
    result = check(engine, data, meta, host_chain_id=1, served_chain_ids={meta["chain_id"]})
    assert isinstance(result, NotServed) and "host chain 1" in result.reason
    served = check(engine, data, meta, served_chain_ids={meta["chain_id"], 1})
    assert isinstance(served, VerifiedInput)


class PanickingEngine:
    """An engine whose TFHE-rs call panics: the internal failure SPEC §6 says to retry."""

    def verify_and_expand(self, data: bytes, metadata: bytes) -> list[tfhe_py.Ciphertext]:
        raise tfhe_py.TfhePanic("TFHE-rs panicked: out of memory")


def test_internal_failure_is_deferred_not_rejected() -> None:
    data, meta = fixture("transfer_u64")
    result = check(PanickingEngine(), data, meta)  # type: ignore[arg-type]
    assert isinstance(result, Deferred) and "panicked" in result.reason


def test_empty_list_is_verified_with_no_handles(engine: tfhe_py.Engine) -> None:
    keys = FheResource().key_set()
    _, meta = fixture("transfer_u64")
    metadata = proof_metadata(meta["contract"], meta["user"], meta["acl"], meta["chain_id"])
    data = tfhe_py.build_proven_list(keys.public_key, keys.crs, [], metadata)
    result = check(engine, data, meta)
    assert isinstance(result, VerifiedInput) and result.handles == ()


# --- EIP-712 and inputProof -------------------------------------------------------------------

FIELDS: dict[str, Any] = {
    "gateway_chain_id": 10901,
    "input_verification_address": "0x" + "11" * 20,
    "ct_handles": [bytes([1]) * 32, bytes([2]) * 32],
    "user_address": "0x" + "22" * 20,
    "contract_address": "0x" + "33" * 20,
    "contract_chain_id": 31337,
    "extra_data": b"\x00",
}


def test_signature_recovers_the_signer() -> None:
    account = Account.create()
    signature = sign_ciphertext_verification(account.key, **FIELDS)
    assert len(signature) == 65 and signature[64] in (27, 28)
    typed = ciphertext_verification_typed_data(**FIELDS)
    assert typed["domain"]["name"] == "InputVerification" and typed["domain"]["version"] == "1"
    signable = encode_typed_data(full_message=typed)
    assert Account.recover_message(signable, signature=signature) == account.address
    assert len(ciphertext_verification_digest(**FIELDS)) == 32
    other = ciphertext_verification_digest(**(FIELDS | {"extra_data": b"\x01"}))
    assert other != ciphertext_verification_digest(**FIELDS)


def test_input_proof_layout() -> None:
    handles = [bytes([i]) * 32 for i in range(3)]
    sigs = [bytes([9]) * 65]
    proof = encode_input_proof(handles, sigs, b"\x00")
    assert proof[:2] == bytes([3, 1]) and len(proof) == 2 + 96 + 65 + 1
    decoded = decode_input_proof(proof)
    assert list(decoded.handles) == handles and list(decoded.signatures) == sigs
    assert decoded.extra_data == b"\x00" and decoded.encode() == proof
    with pytest.raises(InputProofError, match="too short"):
        decode_input_proof(proof[:50])
    with pytest.raises(InputProofError, match="65 bytes"):
        encode_input_proof(handles, [b"x"])


def _log(topics: tuple[bytes, ...], data: bytes, address: str = "0x" + "aa" * 20) -> RawLog:
    return RawLog(address, topics, data, 1, bytes(32), bytes(32), 0, 0)


def test_request_decoding() -> None:
    from eth_abi.abi import encode

    data = encode(
        ["address", "address", "bytes", "bytes"],
        ["0x" + "33" * 20, "0x" + "22" * 20, b"ciphertext", b"\x00"],
    )
    topics = (VERIFY_PROOF_REQUEST_TOPIC, (5).to_bytes(32, "big"), (31337).to_bytes(32, "big"))
    req = decode_request(_log(topics, data))
    assert (req.zk_proof_id, req.contract_chain_id) == (5, 31337)
    assert req.ciphertext_with_proof == b"ciphertext" and req.extra_data == b"\x00"
    report = decode_requests(
        [_log(topics, data), _log(topics, b"junk"), _log((bytes(32),), b"")], "0x" + "AA" * 20
    )
    assert len(report.requests) == 1 and len(report.malformed) == 1 and report.other == 1
