"""Ciphertext digests of SPEC §7: what coprocessors commit on the gateway and the KMS checks.

`ciphertextDigest = keccak256(ct64)` and `snsCiphertextDigest = keccak256(ct128)`, over the exact
stored bytes: the digest is only reproducible across coprocessors because those bytes are.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.crypto import keccak

DIGEST_BYTES = 32


def ciphertext_digest(ct64: bytes) -> bytes:
    """`ciphertextDigest` of a stored ct64 (single-element CompressedCiphertextList)."""
    return bytes(keccak(ct64))


def sns_ciphertext_digest(ct128: bytes) -> bytes:
    """`snsCiphertextDigest` of a ct128 (single-element CompressedSquashedNoiseCiphertextList)."""
    return bytes(keccak(ct128))


@dataclass(frozen=True, slots=True)
class Material:
    """A handle's digests under its key (the reference's "ciphertext material"): the one model of
    what the store keeps, `addCiphertextMaterial` takes and its events report."""

    handle: bytes
    key_id: int
    ciphertext_digest: bytes
    sns_ciphertext_digest: bytes


def material(handle: bytes, key_id: int, ct64: bytes, ct128: bytes) -> Material:
    """The commit arguments of one handle from its stored bytes."""
    return Material(handle, key_id, ciphertext_digest(ct64), sns_ciphertext_digest(ct128))
