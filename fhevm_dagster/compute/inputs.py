"""Verification of one encrypted input list (SPEC §6 steps 1-3), without Dagster or web3.

A request either verifies, giving the handles (SPEC §2, as the JS SDK computes them), the stored
ct64 of each entry and the entry types, or is rejected with a short code and a readable reason.
Untrusted bytes never raise out of `verify_input`: every failure of the bindings is a rejection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import tfhe_py

from ..protocol.handles import MAX_INPUTS, input_blob_hash, input_handles

#: TFHE-rs `safe_deserialize` limit of ciphertexts (SPEC §8); larger requests are not parsed.
MAX_PROVEN_LIST_BYTES = 16 * 1024 * 1024
METADATA_LEN = 92


class RejectCode(StrEnum):
    """Why a request was rejected (stable names for metadata, dashboards and tests)."""

    EMPTY = "empty"
    OVERSIZED = "oversized"
    MALFORMED = "malformed"  # not a conformant list: garbage, truncated, forbidden load/hash config
    TOO_MANY_ENTRIES = "too_many_entries"
    PROOF_REJECTED = "proof_rejected"  # bound to other metadata (contract, user, ACL, chain)
    WRONG_HOST_CHAIN = "wrong_host_chain"
    INVALID = "invalid"  # anything else the bindings refuse


@dataclass(frozen=True, slots=True)
class VerifiedInput:
    """A verified, expanded list: one handle, stored ct64 and FHE type per entry."""

    handles: tuple[bytes, ...]
    ciphertexts: tuple[bytes, ...]
    fhe_types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RejectedInput:
    code: RejectCode
    reason: str


def _address(value: str | bytes) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 20:
        raise ValueError(f"an address has 20 bytes, got {len(raw)}")
    return raw


def proof_metadata(
    contract: str | bytes, user: str | bytes, acl: str | bytes, host_chain_id: int
) -> bytes:
    """The 92 bytes a proof is bound to: `contract || user || acl || u256_be(host_chain_id)`."""
    return _address(contract) + _address(user) + _address(acl) + host_chain_id.to_bytes(32, "big")


def _classify(message: str) -> RejectCode:
    if "malformed or non-conformant" in message:
        return RejectCode.MALFORMED
    if f"at most {MAX_INPUTS} entries" in message:
        return RejectCode.TOO_MANY_ENTRIES
    if "input proof rejected" in message:
        return RejectCode.PROOF_REJECTED
    return RejectCode.INVALID


def verify_input(
    engine: tfhe_py.Engine,
    ciphertext_with_proof: bytes,
    *,
    contract: str | bytes,
    user: str | bytes,
    acl: str | bytes,
    host_chain_id: int,
    contract_chain_id: int | None = None,
) -> VerifiedInput | RejectedInput:
    """Verify and expand one `ciphertextWithZKProof` bound to (contract, user) on `host_chain_id`.

    `contract_chain_id` is the chain the request names; a request for another host chain than
    ours is rejected (its handles and ACL would be another chain's).
    """
    if contract_chain_id is not None and contract_chain_id != host_chain_id:
        return RejectedInput(
            RejectCode.WRONG_HOST_CHAIN,
            f"request is for host chain {contract_chain_id}, "
            f"this coprocessor serves {host_chain_id}",
        )
    if not ciphertext_with_proof:
        return RejectedInput(RejectCode.EMPTY, "ciphertextWithZKProof is empty")
    if len(ciphertext_with_proof) > MAX_PROVEN_LIST_BYTES:
        return RejectedInput(
            RejectCode.OVERSIZED,
            f"ciphertextWithZKProof has {len(ciphertext_with_proof)} bytes, "
            f"the limit is {MAX_PROVEN_LIST_BYTES}",
        )
    metadata = proof_metadata(contract, user, acl, host_chain_id)
    seed = input_blob_hash(ciphertext_with_proof)
    try:
        expanded = engine.verify_and_expand(ciphertext_with_proof, metadata, seed)
        types = tuple(ct.fhe_type for ct in expanded)
        stored = tuple(engine.compress(ct) for ct in expanded)
    except tfhe_py.TfheError as exc:
        return RejectedInput(_classify(str(exc)), str(exc))
    if len(types) > MAX_INPUTS:  # the bindings check it too; never sign more than the host reads
        return RejectedInput(
            RejectCode.TOO_MANY_ENTRIES, f"an input list holds at most {MAX_INPUTS} entries"
        )
    handles = input_handles(ciphertext_with_proof, types, acl, host_chain_id)
    return VerifiedInput(tuple(handles), stored, types)


def verify_inputs(
    engine: tfhe_py.Engine,
    requests: Sequence[tuple[bytes, str | bytes, str | bytes, int]],
    *,
    acl: str | bytes,
    host_chain_id: int,
) -> list[VerifiedInput | RejectedInput]:
    """`verify_input` over (ciphertextWithZKProof, contract, user, contract chain id) tuples."""
    return [
        verify_input(
            engine, data, contract=c, user=u, acl=acl, host_chain_id=host_chain_id,
            contract_chain_id=chain,
        )
        for data, c, u, chain in requests
    ]  # fmt: skip
