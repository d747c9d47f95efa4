"""The coprocessor's answer to an input verification (SPEC §6): EIP-712 typed data and inputProof.

One definition of `CiphertextVerification` for both sides: the gateway `InputVerification` checks
the signature of `verifyProofResponse`, and the host `InputVerifier` checks the same signatures
inside the user's `inputProof`. Pure: eth_account for the typed-data encoding, no web3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

EIP712_NAME = "InputVerification"
EIP712_VERSION = "1"
EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
CIPHERTEXT_VERIFICATION_TYPES: dict[str, list[dict[str, str]]] = {
    "CiphertextVerification": [
        {"name": "ctHandles", "type": "bytes32[]"},
        {"name": "userAddress", "type": "address"},
        {"name": "contractAddress", "type": "address"},
        {"name": "contractChainId", "type": "uint256"},
        {"name": "extraData", "type": "bytes"},
    ]
}
SIGNATURE_SIZE = 65
HANDLE_SIZE = 32


def ciphertext_verification_typed_data(
    *,
    gateway_chain_id: int,
    input_verification_address: str,
    ct_handles: Sequence[bytes],
    user_address: str,
    contract_address: str,
    contract_chain_id: int,
    extra_data: bytes = b"",
) -> dict[str, Any]:
    """The EIP-712 message a coprocessor signs for one verified input list."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, **CIPHERTEXT_VERIFICATION_TYPES},
        "primaryType": "CiphertextVerification",
        "domain": {
            "name": EIP712_NAME,
            "version": EIP712_VERSION,
            "chainId": gateway_chain_id,
            "verifyingContract": to_checksum_address(input_verification_address),
        },
        "message": {
            "ctHandles": [bytes(h) for h in ct_handles],
            "userAddress": to_checksum_address(user_address),
            "contractAddress": to_checksum_address(contract_address),
            "contractChainId": contract_chain_id,
            "extraData": bytes(extra_data),
        },
    }


def ciphertext_verification_digest(**fields: Any) -> bytes:
    """The 32-byte EIP-712 digest (what the gateway InputVerification recovers the signer from)."""
    signable = encode_typed_data(full_message=ciphertext_verification_typed_data(**fields))
    return keccak(b"\x19\x01" + signable.header + signable.body)


def sign_ciphertext_verification(
    private_key: bytes | str,
    *,
    gateway_chain_id: int,
    input_verification_address: str,
    ct_handles: Sequence[bytes],
    user_address: str,
    contract_address: str,
    contract_chain_id: int,
    extra_data: bytes = b"",
) -> bytes:
    """65-byte r||s||v signature (v = 27/28) of a coprocessor over CiphertextVerification."""
    typed = ciphertext_verification_typed_data(
        gateway_chain_id=gateway_chain_id,
        input_verification_address=input_verification_address,
        ct_handles=ct_handles,
        user_address=user_address,
        contract_address=contract_address,
        contract_chain_id=contract_chain_id,
        extra_data=extra_data,
    )
    signed = Account.sign_message(encode_typed_data(full_message=typed), private_key=private_key)
    return bytes(signed.signature)


class InputProofError(ValueError):
    """Bytes that are not a well-formed inputProof."""


@dataclass(frozen=True, slots=True)
class InputProof:
    """`u8(numHandles) || u8(numSigners) || handles || signatures || extraData` (SPEC §6)."""

    handles: tuple[bytes, ...]
    signatures: tuple[bytes, ...]
    extra_data: bytes = b""

    def encode(self) -> bytes:
        return encode_input_proof(self.handles, self.signatures, self.extra_data)


def encode_input_proof(
    handles: Sequence[bytes], signatures: Sequence[bytes], extra_data: bytes = b""
) -> bytes:
    """The `inputProof` a user passes to the app with the handles of a verified input list."""
    if len(handles) > 255 or len(signatures) > 255:
        raise InputProofError("an inputProof holds at most 255 handles and 255 signatures")
    for h in handles:
        if len(h) != HANDLE_SIZE:
            raise InputProofError(f"a handle has {HANDLE_SIZE} bytes, got {len(h)}")
    for sig in signatures:
        if len(sig) != SIGNATURE_SIZE:
            raise InputProofError(f"a signature has {SIGNATURE_SIZE} bytes, got {len(sig)}")
    return (
        bytes([len(handles), len(signatures)])
        + b"".join(bytes(h) for h in handles)
        + b"".join(bytes(s) for s in signatures)
        + bytes(extra_data)
    )


def decode_input_proof(data: bytes) -> InputProof:
    """Inverse of `encode_input_proof`."""
    if len(data) < 2:
        raise InputProofError("an inputProof starts with two count bytes")
    n_handles, n_signers = data[0], data[1]
    end_handles = 2 + HANDLE_SIZE * n_handles
    end_sigs = end_handles + SIGNATURE_SIZE * n_signers
    if len(data) < end_sigs:
        raise InputProofError(
            f"inputProof of {len(data)} bytes is too short for {n_handles} handles and "
            f"{n_signers} signatures"
        )
    return InputProof(
        handles=tuple(
            data[2 + HANDLE_SIZE * i : 2 + HANDLE_SIZE * (i + 1)] for i in range(n_handles)
        ),
        signatures=tuple(
            data[end_handles + SIGNATURE_SIZE * i : end_handles + SIGNATURE_SIZE * (i + 1)]
            for i in range(n_signers)
        ),
        extra_data=data[end_sigs:],
    )
