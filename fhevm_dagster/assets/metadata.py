"""What every asset shows in the UI: hex handles, type names, table previews; and the shared
retry policy of the steps that talk to a chain."""

from __future__ import annotations

import pandas as pd
from dagster import Backoff, MetadataValue, RetryPolicy

from ..protocol.types import FheType

PREVIEW_ROWS = 20
# RPC nodes drop requests and lag behind: back off rather than fail the range.
RPC_RETRY = RetryPolicy(max_retries=4, delay=2, backoff=Backoff.EXPONENTIAL)


def hex_str(b: bytes | None) -> str:
    """`0x…` for bytes, "" for none (absent tx hashes and handles)."""
    return "" if b is None else "0x" + b.hex()


def type_name(value: int) -> str:
    """The FHE type's name, or the raw number when it is not a known type."""
    try:
        return FheType(value).name
    except ValueError:
        return str(value)


def preview(df: pd.DataFrame) -> MetadataValue:
    """The first rows of a table as markdown, for the asset's metadata."""
    return MetadataValue.md(
        df.head(PREVIEW_ROWS).to_markdown(index=False) if len(df) else "_empty_"
    )
