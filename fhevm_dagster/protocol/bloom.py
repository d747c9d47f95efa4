"""Ethereum's 2048-bit log bloom (yellow paper §4.3.1, M3:2048): what a header says of its logs.

A block's `logsBloom` sets 3 bits for the address and every topic of each of its logs. A bloom
that lacks one of an address's bits proves that the block has no log of that address (no false
negatives); one that has all three may still hold none (false positives). This is what lets a
reader prove a range empty from block headers, whatever a lagging replica's eth_getLogs says.
"""

from __future__ import annotations

from eth_utils.address import to_canonical_address
from eth_utils.crypto import keccak

BLOOM_BYTES = 256
_BITS = 2048


def bloom_bits(item: bytes) -> tuple[int, int, int]:
    """The 3 bit indices (0..2047, counted from the least significant bit) that `item` sets: the
    low 11 bits of each of the first three big-endian byte pairs of keccak256(item)."""
    digest = keccak(item)
    a, b, c = (int.from_bytes(digest[i : i + 2], "big") % _BITS for i in (0, 2, 4))
    return a, b, c


def may_contain(bloom: bytes, item: bytes) -> bool:
    """False only when `bloom` proves that `item` is in none of its logs."""
    if len(bloom) != BLOOM_BYTES:
        raise ValueError(f"a logs bloom is {BLOOM_BYTES} bytes, got {len(bloom)}")
    value = int.from_bytes(bloom, "big")
    return all(value >> bit & 1 for bit in bloom_bits(item))


def may_contain_address(bloom: bytes, address: str | bytes) -> bool:
    """False only when `bloom` proves that no log of its block was emitted by `address` (hex or
    20 bytes)."""
    return may_contain(bloom, to_canonical_address(address))
