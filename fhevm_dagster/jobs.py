"""Jobs: one run of a host chain's range job per host block range, of `gateway_range_job` per
gateway range. Each selects its asset group (the chain's name, or `gateway_range`).

A job built with `max_runtime_s` carries Dagster's `dagster/max_runtime` tag: run monitoring
(dagster.yaml) fails a run still going after that many seconds (a hung call, a dead worker), which
frees its run slot; the block sensor then re-drives the range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import AssetSelection, define_asset_job, in_process_executor

if TYPE_CHECKING:  # what define_asset_job returns; dagster does not export the name
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

GATEWAY_RANGE_GROUP = "gateway_range"
GATEWAY_RANGE_JOB = "gateway_range_job"


def _tags(max_runtime_s: int) -> dict[str, str]:
    return {"dagster/max_runtime": str(max_runtime_s)} if max_runtime_s > 0 else {}


def host_range_job(chain: str, max_runtime_s: int = 0) -> UnresolvedAssetJobDefinition:
    """`<chain>_range_job`: ingest one block range of the host chain and everything after."""
    return define_asset_job(
        f"{chain}_range_job",
        selection=AssetSelection.groups(chain),
        description=f"One block range of {chain}: events, computations, ciphertexts, squash, "
        "digests, commits and objects.",
        # In-process on purpose: a process per step would reload the 1.6 GB server key in every
        # FHE step (measured ~25 s per load on a 2-core machine, the cost of a dozen Uint64
        # additions). One process per run loads it once; FHE calls release the GIL, so the
        # engine's thread pool still evaluates independent operations in parallel.
        executor_def=in_process_executor,
        tags=_tags(max_runtime_s),
    )


def gateway_range_job(max_runtime_s: int = 0) -> UnresolvedAssetJobDefinition:
    """`gateway_range_job`: answer the requests of one gateway block range."""
    return define_asset_job(
        GATEWAY_RANGE_JOB,
        selection=AssetSelection.groups(GATEWAY_RANGE_GROUP),
        description="Answer the input-verification requests of one gateway block range.",
        executor_def=in_process_executor,  # one server-key load per run, as for the host jobs
        tags=_tags(max_runtime_s),
    )
