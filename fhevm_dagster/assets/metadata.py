"""How every asset shows a pipeline step in the UI, and how a step's failure reaches Dagster.

Figures become metadata as they are (numbers plot over partitions), dicts and lists become JSON,
tables become `MetadataValue.table` with a schema and `dagster/row_count`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pandas as pd
from dagster import (
    Backoff,
    Failure,
    MetadataValue,
    RetryPolicy,
    RetryRequested,
    TableColumn,
    TableRecord,
    TableSchema,
)

from ..pipeline.errors import RangeMoved, RedriveLater, StepError

PREVIEW_ROWS = 20
# RPC nodes drop requests and lag behind: back off rather than fail the range.
RPC_RETRY = RetryPolicy(max_retries=4, delay=2, backoff=Backoff.EXPONENTIAL)
# Inputs produced by an earlier range (or the gateway) appear once that run completes.
MISSING_INPUT_RETRY = RetryPolicy(max_retries=5, delay=10, backoff=Backoff.EXPONENTIAL)
STORE_RETRY = RetryPolicy(max_retries=2, delay=1)

_TYPES = {"b": "bool", "i": "int", "u": "int", "f": "float"}


def partition_link(asset_key: tuple[str, ...], partition: str) -> MetadataValue:
    """A link to one partition of another asset in the Dagster UI (same origin, any host)."""
    path = "/".join(quote(part, safe="") for part in asset_key)
    query = f"view=partitions&partition={quote(partition, safe='')}"
    return MetadataValue.url(f"/assets/{path}?{query}")


def figures_metadata(figures: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: MetadataValue.json(v) if isinstance(v, dict | list) else v for k, v in figures.items()
    }


def table_metadata(
    df: pd.DataFrame, columns: list[str] | None = None, *, key: str = "preview"
) -> dict[str, Any]:
    """The table's first rows (the chosen columns) under `key`, and its full row count."""
    shown = df[columns] if columns else df
    schema = TableSchema(
        columns=[TableColumn(c, _TYPES.get(shown[c].dtype.kind, "string")) for c in shown.columns]
    )
    records = [
        TableRecord({c: _cell(v) for c, v in row.items()})
        for row in shown.head(PREVIEW_ROWS).to_dict("records")
    ]
    return {
        "dagster/row_count": len(df),
        key: MetadataValue.table(records, schema=schema),
    }


def _cell(value: Any) -> str | int | float | bool | None:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


@contextmanager
def step_errors() -> Iterator[None]:
    """A pipeline step's errors as Dagster takes them: a range that moved while it was read is
    retried soon; a `StepError` fails the step with its figures, and the step's retry policy
    applies only when the error says a retry can help (`RedriveLater`: the block sensor's
    re-drive retries the range, later)."""
    try:
        yield
    except RangeMoved:
        raise RetryRequested(max_retries=3, seconds_to_wait=2) from None
    except RedriveLater as exc:  # no quick step retry: the range's re-drive is the back-off
        raise Failure(
            description=str(exc), metadata=figures_metadata(exc.figures), allow_retries=False
        ) from exc
    except StepError as exc:
        raise Failure(
            description=str(exc),
            metadata=figures_metadata(exc.figures),
            allow_retries=exc.retryable,
        ) from exc
