"""Inclusive block ranges and their partition keys, `000000001000-000000001099`: plain data."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WIDTH = 12
_KEY = re.compile(rf"^(\d{{{_WIDTH}}})-(\d{{{_WIDTH}}})$")


@dataclass(frozen=True, slots=True)
class BlockRange:
    """Inclusive block range [first, last]."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.last < 10**_WIDTH:
            raise ValueError(f"invalid block range {self.first}..{self.last}")

    @property
    def key(self) -> str:
        return f"{self.first:0{_WIDTH}d}-{self.last:0{_WIDTH}d}"

    def __len__(self) -> int:
        return self.last - self.first + 1


def parse_range_key(key: str) -> BlockRange:
    """Inverse of `BlockRange.key`, with a clear error for anything else."""
    m = _KEY.match(key)
    if m is None:
        raise ValueError(f"not a host range key: {key!r} (expected e.g. 000000001000-000000001099)")
    return BlockRange(int(m.group(1)), int(m.group(2)))


def next_ranges(start: int, safe_head: int, size: int, cap: int) -> list[BlockRange]:
    """Complete ranges from `start` to `safe_head`, aligned to multiples of `size`, at most `cap`.

    Aligned keys stay stable whatever the start block: the first range may be shorter.
    """
    if size < 1:
        raise ValueError("range size must be at least 1")
    out: list[BlockRange] = []
    first = start
    while len(out) < cap:
        last = (first // size + 1) * size - 1
        if last > safe_head:
            break
        out.append(BlockRange(first, last))
        first = last + 1
    return out
