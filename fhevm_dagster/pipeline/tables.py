"""Shared helpers of the per-range tables (write-only views: steps read the store, not these)."""

from __future__ import annotations

from ..protocol.types import FheType


def hex_str(b: bytes | None) -> str:
    """`0x…` for bytes, "" for none (absent tx hashes and handles)."""
    return "" if b is None else "0x" + b.hex()


def type_name(value: int) -> str:
    """The FHE type's name, or the raw number when it is not a known type."""
    try:
        return FheType(value).name
    except ValueError:
        return str(value)
