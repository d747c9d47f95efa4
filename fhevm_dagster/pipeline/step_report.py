"""What every range step returns (`step(job: RangeJob[Port]) -> StepReport`): plain data that the
range-asset factory (`assets/range_asset.py`) shows in Dagster's UI.

A step that cannot finish raises the `StepError` family (`pipeline.errors`) instead: a report is a
step that did its work (some handles of the range may still have failed for good: its figures
and checks say which).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import pandas as pd

D = TypeVar("D")
Level = Literal["debug", "info", "warning", "error"]
Severity = Literal["ERROR", "WARN"]


@dataclass(frozen=True)
class Note:
    """A line for the run's log."""

    level: Level
    message: str


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one of the step's checks (declared in its asset's spec); `metadata` is
    plain data (numbers, text, dicts and lists)."""

    name: str
    passed: bool
    metadata: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity = "ERROR"


@dataclass(frozen=True)
class StepOutput:
    """One more output of a multi-output step: its table and figures."""

    table: pd.DataFrame | None
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StepReport(Generic[D]):
    """Figures and table of the step's (first) output, the other outputs by name, log notes,
    check results, and the step's own report (`detail`) for callers that want more."""

    figures: dict[str, Any] = field(default_factory=dict)
    table: pd.DataFrame | None = None
    notes: list[Note] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    outputs: dict[str, StepOutput] = field(default_factory=dict)
    detail: D | None = None

    def note(self, level: Level, message: str) -> None:
        self.notes.append(Note(level, message))

    def check(self, name: str) -> CheckResult:
        """The result of the check `name` (KeyError when the step did not emit it)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)
