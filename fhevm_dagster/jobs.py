"""Jobs: one run of `host_range_job` per host block range, of `gateway_range_job` per gateway range.

The job is partitioned by `host_ranges` (inferred from its assets) and selects the `host_range`
asset group, so later per-range assets (ciphertexts, sns_ciphertexts, ciphertext_digests,
digest_commits) join it by declaring that group.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

HOST_RANGE_GROUP = "host_range"

host_range_job = define_asset_job(
    "host_range_job",
    selection=AssetSelection.groups(HOST_RANGE_GROUP),
    description="Ingest one host block range: events, computations, and what follows from them.",
    # In-process on purpose: a process per step would reload the 1.6 GB server key in every FHE
    # step (measured ~25 s per load on a 2-core machine, the cost of a dozen Uint64 additions).
    # One process per run loads it once; FHE calls release the GIL, so the engine's thread pool
    # still evaluates independent operations in parallel.
    executor_def=in_process_executor,
)

GATEWAY_RANGE_GROUP = "gateway_range"

gateway_range_job = define_asset_job(
    "gateway_range_job",
    selection=AssetSelection.groups(GATEWAY_RANGE_GROUP),
    description="Answer the input-verification requests of one gateway block range.",
    executor_def=in_process_executor,  # one server-key load per run, as for host_range_job
)
