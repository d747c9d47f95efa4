"""The ciphertext attestation a KMS checks on every object it fetches (RFC-023).

Facts from the reference (zama-ai/fhevm v0.14.0, `shared/ciphertext-attestation`): the signed
payload is `abi.encodePacked(bytes8("FHEVMCTA"), uint8 version, bytes32 handle, uint256 keyId,
uint256 coprocessorContextId, bytes32 ciphertextDigest, bytes32 snsCiphertextDigest, uint8 format)`
(170 bytes), signed as a raw secp256k1 prehash of its keccak256 (no EIP-191/712 prefix) by the
coprocessor's signer key. The wire form, JSON in the object metadata `ct-attestation`, omits handle
and context id: a verifier takes them from the object key, so a moved object fails recovery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

DOMAIN_TAG = b"FHEVMCTA"
VERSION_V1 = 1
#: The reference uploads under coprocessor context 1 (`COPROCESSOR_CONTEXT_ID_1`).
CONTEXT_ID = 1
PAYLOAD_BYTES = 170


class CiphertextFormat(IntEnum):
    """The ct128 storage format, its discriminant is the payload's last byte."""

    UNCOMPRESSED_ON_CPU = 10
    COMPRESSED_ON_CPU = 11
    UNCOMPRESSED_ON_GPU = 20
    COMPRESSED_ON_GPU = 21

    @property
    def wire(self) -> str:
        """The JSON (and `Ct-Format` metadata) spelling: snake_case."""
        return self.name.lower()

    @classmethod
    def from_wire(cls, text: str) -> CiphertextFormat:
        try:
            return cls[text.upper()]
        except KeyError:
            raise AttestationError(f"unknown ciphertext format {text!r}") from None


#: Our ct128 is a `CompressedSquashedNoiseCiphertextList` computed on the CPU (SPEC §7).
OUR_FORMAT = CiphertextFormat.COMPRESSED_ON_CPU


class AttestationError(ValueError):
    """An attestation that is malformed, or whose signature does not hold."""


def _b32(name: str, value: bytes) -> bytes:
    if len(value) != 32:
        raise AttestationError(f"{name} must be 32 bytes, got {len(value)}")
    return value


@dataclass(frozen=True, slots=True)
class AttestationPayload:
    """Every field the signature binds."""

    handle: bytes
    key_id: int
    ciphertext_digest: bytes
    sns_ciphertext_digest: bytes
    format: CiphertextFormat = OUR_FORMAT
    context_id: int = CONTEXT_ID
    version: int = VERSION_V1

    def canonical_bytes(self) -> bytes:
        """The 170 packed bytes that are hashed and signed."""
        if self.version != VERSION_V1:
            raise AttestationError(f"unsupported attestation version {self.version}")
        out = (
            DOMAIN_TAG
            + bytes([self.version])
            + _b32("handle", self.handle)
            + self.key_id.to_bytes(32, "big")
            + self.context_id.to_bytes(32, "big")
            + _b32("ciphertext digest", self.ciphertext_digest)
            + _b32("sns ciphertext digest", self.sns_ciphertext_digest)
            + bytes([int(self.format)])
        )
        assert len(out) == PAYLOAD_BYTES
        return out

    def canonical_digest(self) -> bytes:
        return bytes(keccak(self.canonical_bytes()))


@dataclass(frozen=True, slots=True)
class Attestation:
    """The signed wire form (no handle, no context id)."""

    version: int
    key_id: int
    ciphertext_digest: bytes
    sns_ciphertext_digest: bytes
    format: CiphertextFormat
    signer: str  # checksummed address
    signature: bytes  # r || s || v, v = 27/28

    def to_json(self) -> str:
        """Compact JSON in the reference's field order and spellings (serde of alloy types)."""
        return json.dumps(
            {
                "version": self.version,
                "key_id": hex(self.key_id),
                "ciphertext_digest": "0x" + self.ciphertext_digest.hex(),
                "sns_ciphertext_digest": "0x" + self.sns_ciphertext_digest.hex(),
                "format": self.format.wire,
                "signer": self.signer,
                "signature": "0x" + self.signature.hex(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Attestation:
        try:
            raw: dict[str, Any] = json.loads(text)
            key_id = raw["key_id"]
            return cls(
                version=int(raw["version"]),
                key_id=int(key_id, 0) if isinstance(key_id, str) else int(key_id),
                ciphertext_digest=_b32(
                    "ciphertext digest", bytes.fromhex(raw["ciphertext_digest"].removeprefix("0x"))
                ),
                sns_ciphertext_digest=_b32(
                    "sns ciphertext digest",
                    bytes.fromhex(raw["sns_ciphertext_digest"].removeprefix("0x")),
                ),
                format=CiphertextFormat.from_wire(raw["format"]),
                signer=to_checksum_address(raw["signer"]),
                signature=bytes.fromhex(raw["signature"].removeprefix("0x")),
            )
        except AttestationError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AttestationError(f"malformed attestation JSON: {exc}") from None

    def payload(self, handle: bytes, context_id: int = CONTEXT_ID) -> AttestationPayload:
        return AttestationPayload(
            handle,
            self.key_id,
            self.ciphertext_digest,
            self.sns_ciphertext_digest,
            self.format,
            context_id,
            self.version,
        )

    def recover(self, handle: bytes, context_id: int = CONTEXT_ID) -> str:
        """The address the signature recovers to over the payload rebuilt with `handle`."""
        if len(self.signature) != 65:
            raise AttestationError(f"malformed signature: {len(self.signature)} bytes, not 65")
        digest = self.payload(handle, context_id).canonical_digest()
        try:
            return str(Account._recover_hash(digest, signature=self.signature))
        except Exception as exc:  # eth_keys' errors: one type for callers
            raise AttestationError(f"signature recovery failed: {exc}") from None

    def verify(self, handle: bytes, context_id: int = CONTEXT_ID) -> None:
        """Raises unless the signature recovers to the embedded signer (the reference's check)."""
        recovered = self.recover(handle, context_id)
        if recovered != self.signer:
            raise AttestationError(
                f"signature does not match: recovered {recovered}, attestation names {self.signer}"
            )


def sign(payload: AttestationPayload, account: LocalAccount) -> Attestation:
    """Signs the payload's keccak as a raw prehash, as the reference's `Signer::sign_hash`."""
    digest = payload.canonical_digest()
    signed = account.unsafe_sign_hash(digest)  # type: ignore[arg-type]  # Hash32 is bytes
    return Attestation(
        payload.version,
        payload.key_id,
        payload.ciphertext_digest,
        payload.sns_ciphertext_digest,
        payload.format,
        to_checksum_address(account.address),
        bytes(signed.signature),
    )
