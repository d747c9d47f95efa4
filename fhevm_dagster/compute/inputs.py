"""Verification of one encrypted input list (SPEC §6), without Dagster or web3.

The decisions are the reference coprocessor's (zama-ai/fhevm v0.14.0, zkproof-worker): a list
that fails deserialization or its proof is rejected; a request for a host chain this coprocessor
does not serve gets no answer at all (another coprocessor set serves it); an internal failure (a
TFHE-rs panic) is neither: nothing is sent and the request is retried. A verified list is expanded,
each entry re-randomized with its handle hash as metadata and compressed, byte for byte as the
reference does, so that every coprocessor signs the same handles and stores the same ct64.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

import tfhe_py

from ..protocol.handles import MAX_INPUTS, input_blob_hash, input_handle_hash, input_handles

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
    INVALID = "invalid"  # anything else the bindings refuse


@dataclass(frozen=True, slots=True)
class VerifiedInput:
    """A verified, expanded list: one handle, stored ct64 and FHE type per entry."""

    handles: tuple[bytes, ...]
    ciphertexts: tuple[bytes, ...]
    fhe_types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RejectedInput:
    """A list the reference rejects: answered with `rejectProofResponse`."""

    code: RejectCode
    reason: str


@dataclass(frozen=True, slots=True)
class NotServed:
    """A request for a host chain this coprocessor does not serve: no answer at all."""

    reason: str


@dataclass(frozen=True, slots=True)
class Deferred:
    """An internal failure (TFHE-rs panicked): no answer now, the request is retried."""

    reason: str


Verdict = VerifiedInput | RejectedInput | NotServed | Deferred


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
    served_chain_ids: Collection[int] | None = None,
) -> Verdict:
    """Verify and expand one `ciphertextWithZKProof` bound to (contract, user) on `host_chain_id`.

    `host_chain_id` is the chain the request names (`contractChainId`) and `acl` that chain's ACL.
    With `served_chain_ids`, a request for any other chain is `NotServed`. Untrusted bytes never
    raise: every refusal of the bindings is a rejection, every panic a `Deferred`.
    """
    if served_chain_ids is not None and host_chain_id not in served_chain_ids:
        served = ", ".join(str(c) for c in sorted(served_chain_ids))
        return NotServed(
            f"request is for host chain {host_chain_id}; this coprocessor serves {served}"
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
    blob_hash = input_blob_hash(ciphertext_with_proof)
    try:
        expanded = engine.verify_and_expand(ciphertext_with_proof, metadata)
        if len(expanded) > MAX_INPUTS:  # the bindings check it too; never sign more than fits
            return RejectedInput(
                RejectCode.TOO_MANY_ENTRIES, f"an input list holds at most {MAX_INPUTS} entries"
            )
        hashes = [input_handle_hash(blob_hash, i, acl, host_chain_id) for i in range(len(expanded))]
        fresh = engine.rerandomize_inputs(expanded, blob_hash, hashes)
        stored = tuple(engine.compress(ct) for ct in fresh)
    except tfhe_py.TfhePanic as exc:
        return Deferred(str(exc))
    except tfhe_py.TfheError as exc:
        return RejectedInput(_classify(str(exc)), str(exc))
    types = tuple(ct.fhe_type for ct in fresh)
    handles = input_handles(ciphertext_with_proof, types, acl, host_chain_id)
    return VerifiedInput(tuple(handles), stored, types)
