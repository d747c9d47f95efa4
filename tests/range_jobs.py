"""Range jobs as tests build them: a host chain of the store's rows, the step's bounds and flags
(the Dagster layer builds them from resources: `assets/range_asset.py`)."""

from __future__ import annotations

from typing import Any

from fhevm_dagster.chain.config import HostChainConfig
from fhevm_dagster.compute.evaluate import EngineFactory
from fhevm_dagster.pipeline.block_ranges import parse_range_key
from fhevm_dagster.pipeline.evaluate import RangeReport, evaluate_range
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.store import Store


def host_job(
    store: Store,
    key: str,
    chain_id: int,
    *,
    key_id: int = 0,
    engine_of: EngineFactory | None = None,
    threads: int = 1,
    batch: int = 0,
    **more: Any,
) -> RangeJob[Store]:
    """The job of the host range `key` of chain `chain_id` (addresses unused by the steps)."""
    chain = HostChainConfig(chain_id, "http://unused", "0x" + "aa" * 20, "0x" + "bb" * 20, key_id)
    return RangeJob(parse_range_key(key), store, batch, threads, engine_of, host=chain, **more)


def evaluate(
    store: Store,
    engine_of: EngineFactory,
    key: str,
    key_id: int,
    threads: int,
    chain_id: int,
    batch: int = 0,
    *,
    recompute: bool = False,
    squash: bool = False,
    reuse_operands: bool = True,
) -> RangeReport:
    """`evaluate_range` of one host range; its report."""
    job = host_job(
        store, key, chain_id, key_id=key_id, engine_of=engine_of, threads=threads, batch=batch,
        recompute=recompute, squash_during_evaluation=squash, reuse_operands=reuse_operands,
    )  # fmt: skip
    report = evaluate_range(job).detail
    assert report is not None
    return report
