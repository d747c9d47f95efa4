"""FHE types of the fhEVM (SPEC §2): the numbering shared by handles, host contracts and TFHE-rs."""

from __future__ import annotations

from enum import IntEnum


class FheType(IntEnum):
    """Encrypted value types, numbered as byte 30 of a handle and TFHE-rs `FheTypes`."""

    Bool = 0
    Uint4 = 1
    Uint8 = 2
    Uint16 = 3
    Uint32 = 4
    Uint64 = 5
    Uint128 = 6
    Uint160 = 7
    Uint256 = 8
    Uint512 = 9
    Uint1024 = 10
    Uint2048 = 11

    @property
    def bits(self) -> int:
        """Plaintext width in bits (Bool counts as 1)."""
        return _BITS[self]

    @property
    def retired(self) -> bool:
        """True for the 4/512/1024/2048-bit types that current host contracts no longer accept."""
        return self in RETIRED_TYPES


_BITS: dict[FheType, int] = {
    FheType.Bool: 1,
    FheType.Uint4: 4,
    FheType.Uint8: 8,
    FheType.Uint16: 16,
    FheType.Uint32: 32,
    FheType.Uint64: 64,
    FheType.Uint128: 128,
    FheType.Uint160: 160,
    FheType.Uint256: 256,
    FheType.Uint512: 512,
    FheType.Uint1024: 1024,
    FheType.Uint2048: 2048,
}

RETIRED_TYPES = frozenset({FheType.Uint4, FheType.Uint512, FheType.Uint1024, FheType.Uint2048})
#: The types of current host contracts (ebool, euint8..256, eaddress): all but the retired ones.
HOST_TYPES = frozenset(FheType) - RETIRED_TYPES


class UnknownFheTypeError(ValueError):
    """A type byte outside the table of SPEC §2."""


def fhe_type(value: int) -> FheType:
    """Convert a raw type byte into an `FheType`, with a clear error for unknown numbers."""
    try:
        return FheType(value)
    except ValueError:
        raise UnknownFheTypeError(f"unknown FHE type {value} (known: 0..{max(FheType)})") from None
