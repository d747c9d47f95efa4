"""How a pipeline step fails: a message for the operator, figures, and whether a retry can help."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .block_ranges import BlockRange


class StepError(RuntimeError):
    """A step that could not finish. `retryable`: a later attempt may succeed (missing inputs,
    an outage); otherwise re-running changes nothing until someone acts."""

    def __init__(
        self, message: str, *, retryable: bool, figures: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.figures = dict(figures or {})


class RangeMoved(StepError):
    """The range's last block changed while it was read (a reorg racing the step)."""

    def __init__(self, rng: BlockRange) -> None:
        super().__init__(f"range {rng.key} changed while it was read", retryable=True)


class RedriveLater(StepError):
    """Part of the range must wait with its own back-off (a request whose verification failed
    internally): everything else was done, and the run fails so that the block sensor re-drives
    the range after its back-off, not the step's quick retries."""

    def __init__(self, message: str, figures: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, retryable=True, figures=figures)
