"""The code location loads without a chain or keys, and every job and sensor resolves."""

from __future__ import annotations

import pytest
from dagster import AssetKey

from fhevm_dagster.definitions import defs

pytestmark = pytest.mark.fast

HOST_ASSETS = {
    "host_events", "fhe_computations", "ciphertexts", "sns_ciphertexts", "ciphertext_digests",
    "digest_commits", "ciphertext_objects",
}  # fmt: skip
GATEWAY_ASSETS = {"proof_requests", "verified_inputs", "proof_responses"}


def test_every_job_and_sensor_resolves() -> None:
    d = defs()
    for name, assets in (("host_range_job", HOST_ASSETS), ("gateway_range_job", GATEWAY_ASSETS)):
        job = d.resolve_job_def(name)
        assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == assets
    for sensor in ("host_blocks_sensor", "gateway_blocks_sensor"):
        assert d.resolve_sensor_def(sensor).job_name in ("host_range_job", "gateway_range_job")
    graph = d.resolve_asset_graph()
    assert AssetKey("ciphertext_digests") in graph.get(AssetKey("digest_commits")).parent_keys
    resources = set(d.resources or {})
    assert {"chain", "gateway", "store", "fhe", "signer", "objects"} <= resources
