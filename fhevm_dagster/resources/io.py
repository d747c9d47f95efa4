"""Parquet IO manager: per-range tables on disk so the UI shows lineage and previews.

Files live at `<base_dir>/<asset key path>/<partition key>.parquet` (`__all__.parquet` when
unpartitioned); an empty base_dir means `Settings.parquet_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext

from ..settings import default


class ParquetIOManager(ConfigurableIOManager):
    """Stores pandas DataFrames as parquet, one file per asset partition."""

    base_dir: str = str(default("parquet_dir"))

    def _path(self, asset_path: list[str], partition: str | None) -> Path:
        base = Path(self.base_dir).expanduser()
        return base.joinpath(*asset_path) / f"{partition or '__all__'}.parquet"

    def handle_output(self, context: OutputContext, obj: pd.DataFrame) -> None:
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"ParquetIOManager stores DataFrames, got {type(obj).__name__}")
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = self._path(list(context.asset_key.path), partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        obj.to_parquet(tmp, index=False)
        tmp.replace(path)  # atomic: a retried step never leaves half a file
        context.add_output_metadata({"parquet_path": str(path)})

    def load_input(self, context: InputContext) -> pd.DataFrame:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return pd.read_parquet(self._path(list(context.asset_key.path), partition))
