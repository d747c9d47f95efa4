"""Jobs: one run of `host_range_job` per host block range.

The job is partitioned by `host_ranges` (inferred from its assets) and selects the `host_range`
asset group, so later per-range assets (ciphertexts, sns_ciphertexts, ciphertext_digests,
digest_commits) join it by declaring that group.
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

HOST_RANGE_GROUP = "host_range"

host_range_job = define_asset_job(
    "host_range_job",
    selection=AssetSelection.groups(HOST_RANGE_GROUP),
    description="Ingest one host block range: events, computations, and what follows from them.",
)
