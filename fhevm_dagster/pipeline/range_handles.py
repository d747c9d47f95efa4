"""A host range's allowed handles, classified by what the store holds for them: once per step.

A handle is in one of three states: its ct64 is stored (squash, digest, commit, upload it), its
computation failed (reported, nothing to commit), or neither yet (retryable: its producer has not
run). Every step and check that needs the range's handles takes this one classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..store import ComputationStatus
from .block_ranges import BlockRange
from .errors import StepError
from .ports import Ct64Absence, ProducerBook
from .tables import hex_str


class HandleBook(Ct64Absence, ProducerBook, Protocol):
    """What the classification reads of the store: the range's allowed handles, which of them
    have no ct64, and their computations."""

    def allowed_handles_of_range(self, range_key: str, *, chain_id: int) -> list[bytes]: ...


@dataclass(frozen=True)
class RangeHandles:
    """A range's allowed handles by what the store holds for them."""

    rng: BlockRange
    stored: list[bytes]  # ct64 present (allow order): squash, digest, commit
    errored: dict[bytes, str]  # their computation failed: nothing to commit, reported
    missing: list[bytes]  # no ct64 and no error: not produced yet, a retryable failure

    def figures(self) -> dict[str, Any]:
        return {
            "errored": len(self.errored),
            "errored_handles": {hex_str(h): m for h, m in self.errored.items()},
        }

    def require_ct64(self) -> None:
        if self.missing:
            shown = ", ".join(hex_str(h) for h in self.missing[:20])
            raise StepError(
                f"range {self.rng.key}: {len(self.missing)} allowed handle(s) have no ct64 in the "
                f"store yet (run `ciphertexts` first): {shown}",
                retryable=True,
                figures={"missing": [hex_str(h) for h in self.missing]},
            )


def range_handles(store: HandleBook, chain_id: int, rng: BlockRange) -> RangeHandles:
    """Classifies the allowed handles of a range (in allow order) by their ct64, unread."""
    handles = store.allowed_handles_of_range(rng.key, chain_id=chain_id)
    absent = store.missing_ciphertexts(handles)
    missing = set(absent)
    errors: dict[bytes, str] = {}
    for comp in store.computations_by_output(absent):
        if comp.status is ComputationStatus.ERROR:
            errors[comp.output_handle] = comp.error_message or "computation failed"
    return RangeHandles(
        rng,
        [h for h in handles if h not in missing],
        errors,
        [h for h in absent if h not in errors],
    )
