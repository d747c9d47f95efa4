"""Handle layout and derivations of SPEC §2.

The coprocessor never recomputes computed handles in production (it trusts `result` from the event);
the computed-handle formulas are here for tests and tooling. Input handles must match the JS SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils.crypto import keccak

from .types import FheType, fhe_type

HANDLE_VERSION = 0
COMPUTED_INDEX = 0xFF
MAX_INPUTS = 255

_INPUT_BLOB_DOMAIN = b"ZK-w_rct"
_INPUT_HANDLE_DOMAIN = b"ZK-w_hdl"


class HandleError(ValueError):
    """A value that is not a well-formed 32-byte handle."""


@dataclass(frozen=True, slots=True)
class Handle:
    """The fields of a 32-byte handle (SPEC §2 table)."""

    raw: bytes
    prehandle: bytes
    index: int
    chain_id: int
    type_byte: int
    version: int

    @property
    def is_computed(self) -> bool:
        return self.index == COMPUTED_INDEX

    @property
    def fhe_type(self) -> FheType:
        """The FHE type of byte 30; raises `UnknownFheTypeError` for unknown numbers."""
        return fhe_type(self.type_byte)

    def hex(self) -> str:
        return "0x" + self.raw.hex()


def as_handle_bytes(value: bytes | str) -> bytes:
    """Accept 32 raw bytes or a 0x-hex string; anything else is a `HandleError`."""
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)
    if len(raw) != 32:
        raise HandleError(f"a handle has 32 bytes, got {len(raw)}")
    return raw


def parse_handle(value: bytes | str) -> Handle:
    """Split a handle into its fields without judging them (type validity is checked lazily)."""
    raw = as_handle_bytes(value)
    return Handle(
        raw=raw,
        prehandle=raw[:21],
        index=raw[21],
        chain_id=int.from_bytes(raw[22:30], "big"),
        type_byte=raw[30],
        version=raw[31],
    )


def type_of(handle: bytes) -> FheType:
    """FHE type of a handle (byte 30)."""
    return parse_handle(handle).fhe_type


def finish_handle(prehandle: bytes, index: int, chain_id: int, fhe_type: int) -> bytes:
    """Overwrite bytes 21..31 of a keccak pre-handle with index, chain id, type and version."""
    if not 0 <= index <= 0xFF:
        raise HandleError(f"handle index {index} out of range")
    return (
        prehandle[:21]
        + bytes([index])
        + (chain_id & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
        + bytes([fhe_type, HANDLE_VERSION])
    )


def _address_bytes(address: str | bytes) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x")) if isinstance(address, str) else bytes(address)
    if len(raw) != 20:
        raise ValueError(f"an address has 20 bytes, got {len(raw)}")
    return raw


def input_blob_hash(ciphertext_with_zk_proof: bytes) -> bytes:
    """`keccak256("ZK-w_rct" || ciphertextWithZKProof)`: seeds the input handles of one list."""
    return keccak(_INPUT_BLOB_DOMAIN + ciphertext_with_zk_proof)


def input_handle_hash(
    blob_hash: bytes, index: int, acl_address: str | bytes, chain_id: int
) -> bytes:
    """The full 32-byte `h_i` of entry `index` (SPEC §2), before bytes 21..31 are overwritten.

    Also the re-randomization metadata of the entry's ciphertext (SPEC §6 step 4).
    """
    if not 0 <= index < MAX_INPUTS:
        raise HandleError(f"input index {index} out of range 0..{MAX_INPUTS - 1}")
    return keccak(
        _INPUT_HANDLE_DOMAIN
        + blob_hash
        + bytes([index])
        + _address_bytes(acl_address)
        + chain_id.to_bytes(32, "big")
    )


def input_handle(
    ciphertext_with_zk_proof: bytes,
    index: int,
    fhe_type: int,
    acl_address: str | bytes,
    chain_id: int,
) -> bytes:
    """Handle of entry `index` of a verified input list, byte for byte as the JS SDK computes it."""
    blob_hash = input_blob_hash(ciphertext_with_zk_proof)
    pre = input_handle_hash(blob_hash, index, acl_address, chain_id)
    return finish_handle(pre, index, chain_id, fhe_type)


def input_handles(
    ciphertext_with_zk_proof: bytes,
    fhe_types: Sequence[int],
    acl_address: str | bytes,
    chain_id: int,
) -> list[bytes]:
    """Handles of every entry of an input list, in list order."""
    if len(fhe_types) > MAX_INPUTS:
        raise HandleError(f"an input list holds at most {MAX_INPUTS} entries, got {len(fhe_types)}")
    blob_hash = input_blob_hash(ciphertext_with_zk_proof)
    return [
        finish_handle(input_handle_hash(blob_hash, i, acl_address, chain_id), i, chain_id, t)
        for i, t in enumerate(fhe_types)
    ]


# --- computed handles (host-contracts 0.10.0), for tests and tooling only -----------------------


def _computed(pre_image: bytes, chain_id: int, result_type: int) -> bytes:
    return finish_handle(keccak(pre_image), COMPUTED_INDEX, chain_id, result_type)


def _tail(acl: str | bytes, chain_id: int) -> bytes:
    return _address_bytes(acl) + chain_id.to_bytes(32, "big")


def binary_op_handle(
    op: int,
    lhs: bytes,
    rhs: bytes,
    scalar_byte: int,
    result_type: int,
    acl: str | bytes,
    chain_id: int,
) -> bytes:
    """`keccak(op, lhs, rhs, scalarByte, acl, chainid)`."""
    pre = bytes([op]) + lhs + rhs + bytes([scalar_byte]) + _tail(acl, chain_id)
    return _computed(pre, chain_id, result_type)


def unary_op_handle(op: int, ct: bytes, acl: str | bytes, chain_id: int) -> bytes:
    """`keccak(op, ct, acl, chainid)`; the result keeps the operand type."""
    return _computed(bytes([op]) + ct + _tail(acl, chain_id), chain_id, ct[30])


def if_then_else_handle(
    op: int, control: bytes, if_true: bytes, if_false: bytes, acl: str | bytes, chain_id: int
) -> bytes:
    """`keccak(op, control, ifTrue, ifFalse, acl, chainid)`; the result has the branch type."""
    pre = bytes([op]) + control + if_true + if_false + _tail(acl, chain_id)
    return _computed(pre, chain_id, if_true[30])


def cast_handle(op: int, ct: bytes, to_type: int, acl: str | bytes, chain_id: int) -> bytes:
    """`keccak(op, ct, uint8 toType, acl, chainid)`."""
    return _computed(bytes([op]) + ct + bytes([to_type]) + _tail(acl, chain_id), chain_id, to_type)


def trivial_encrypt_handle(
    op: int, pt: int, to_type: int, acl: str | bytes, chain_id: int
) -> bytes:
    """`keccak(op, uint256 pt, uint8 toType, acl, chainid)`."""
    pre = bytes([op]) + pt.to_bytes(32, "big") + bytes([to_type]) + _tail(acl, chain_id)
    return _computed(pre, chain_id, to_type)


def rand_handle(op: int, rand_type: int, seed: bytes, chain_id: int) -> bytes:
    """`keccak(op, uint8 randType, bytes16 seed)`: no ACL or chain id in the pre-image."""
    return _computed(bytes([op, rand_type]) + seed, chain_id, rand_type)


def rand_bounded_handle(
    op: int, upper_bound: int, rand_type: int, seed: bytes, chain_id: int
) -> bytes:
    """`keccak(op, uint256 upperBound, uint8 randType, bytes16 seed)`."""
    pre = bytes([op]) + upper_bound.to_bytes(32, "big") + bytes([rand_type]) + seed
    return _computed(pre, chain_id, rand_type)
