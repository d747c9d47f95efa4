"""Inclusive block ranges and their partition keys, `000000001000-000000001099`: plain data.

How a chain is cut (`cut_ranges`): a range is the rest of the aligned range-size range that holds
its first block (`[1000, 1099]`, or `[1003, 1099]` after head ranges) once that whole range is
under the safe head; else, at the chain's head, head-size ranges aligned to the head size (which
divides the range size, so no range crosses a range-size boundary). Small ranges at the head
shorten the wait for a range's last block (latency); large ones while catching up mean fewer runs
(throughput). A range already cut is kept as it is, whatever the sizes now: its key is a
partition and names runs, so new ranges are only cut between the kept ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


def _cut(first: int, bound: int, size: int, head_size: int) -> BlockRange | None:
    """The new range from `first` ending at `bound` at the latest: the rest of its aligned
    range-size range, else its aligned head-size range, else None."""
    for step in (size, head_size):
        last = (first // step + 1) * step - 1
        if last <= bound:
            return BlockRange(first, last)
    return None


def cut_ranges(
    start: int,
    safe_head: int,
    size: int,
    head_size: int,
    kept: Sequence[BlockRange],
    cap: int,
) -> list[BlockRange]:
    """Complete ranges from `start` to `safe_head`, at most `cap`: the `kept` ones (ranges cut
    before, by first block; those ending before `start` are skipped) as they are, new ones
    between them.

    A new range is the rest of its aligned `size` range when all of it is under the safe head,
    else an aligned `head_size` range: the same start, head and kept ranges give the same keys,
    and no range overlaps another. A gap before a kept range that no size fits (ranges cut under
    other sizes) is one range.
    """
    if not 1 <= head_size <= size or size % head_size:
        raise ValueError(f"head range size {head_size} must divide range size {size}")
    out: list[BlockRange] = []
    ahead = iter(kept)
    nxt = next(ahead, None)
    first = start
    while len(out) < cap:
        while nxt is not None and nxt.last < first:
            nxt = next(ahead, None)
        if nxt is not None and nxt.first <= first:  # a kept range holds `first`
            if nxt.last > safe_head:
                break
            rng: BlockRange | None = nxt
            nxt = next(ahead, None)
        else:
            gap = safe_head if nxt is None else min(safe_head, nxt.first - 1)
            rng = _cut(first, gap, size, head_size)
            if rng is None and nxt is not None and nxt.first - 1 <= safe_head:
                rng = BlockRange(first, nxt.first - 1)
        if rng is None:
            break
        out.append(rng)
        first = rng.last + 1
    return out
