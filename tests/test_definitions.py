"""The code location loads without a chain or keys, and every job and sensor resolves: one
partition set, asset group, job and sensor per registered host chain, one gateway job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import AssetKey, EnvVar

from fhevm_dagster import settings
from fhevm_dagster.definitions import defs
from fhevm_dagster.resources.fhe import PublicKeysRefused

HOST_ASSETS = {
    "host_events", "fhe_computations", "ciphertexts", "sns_ciphertexts", "ciphertext_digests",
    "digest_commits", "ciphertext_objects",
}  # fmt: skip
GATEWAY_ASSETS = {
    "proof_requests", "verified_inputs", "proof_responses", "commits_rechecked",
    "answers_rechecked",
}  # fmt: skip


@pytest.fixture(autouse=True)
def two_host_chains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(tmp_path / "absent.json"))
    registry = tmp_path / "host_chains.json"
    registry.write_text(
        json.dumps(
            [
                {"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545"},
                {
                    "chain_id": 31338,
                    "rpc_url_env": "SECOND_RPC",
                    "confirmations": 3,
                    "head_range_size": 10,
                },
            ]
        )
    )
    monkeypatch.setenv("SECOND_RPC", "http://127.0.0.1:8547/key")
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_CHAINS", str(registry))
    monkeypatch.setenv("FHEVM_DAGSTER_ALLOW_TEST_KEYS", "1")  # throwaway chains, no devnet


def test_the_public_test_keys_serve_only_the_devnet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHEVM_DAGSTER_ALLOW_TEST_KEYS")
    with pytest.raises(PublicKeysRefused, match=r"host chain\(s\) \[31337, 31338\]"):
        defs()
    monkeypatch.setenv("FHEVM_DAGSTER_KEY_DIR", "/keys/of/this/network")
    assert defs().resolve_job_def("host_31337_range_job")  # loaded lazily: no key read here


def test_every_job_and_sensor_resolves() -> None:
    d = defs()
    for chain in ("host_31337", "host_31338"):
        job = d.resolve_job_def(f"{chain}_range_job")
        keys = job.asset_layer.executable_asset_keys
        assert keys == {AssetKey([chain, name]) for name in HOST_ASSETS}
        sensor = d.resolve_sensor_def(f"{chain}_blocks_sensor")
        assert sensor.job_name == f"{chain}_range_job"
        digests = AssetKey([chain, "ciphertext_digests"])
        assert (
            digests in d.resolve_asset_graph().get(AssetKey([chain, "digest_commits"])).parent_keys
        )
    gateway = d.resolve_job_def("gateway_range_job")
    assert {k.to_user_string() for k in gateway.asset_layer.executable_asset_keys} == GATEWAY_ASSETS
    assert d.resolve_sensor_def("gateway_blocks_sensor").job_name == "gateway_range_job"
    resources = d.resources or {}
    assert {"host_31337", "host_31338", "gateway", "store", "fhe", "signer", "objects"} <= set(
        resources
    )
    # No Dagster pool serialises the gateway senders (a dead run held its slot for an hour):
    # the sender's lease in the store orders them (`chain.sender`). On the CPU no step has one.
    pools = {
        step.name: step.pool
        for name in ("host_31337_range_job", "host_31338_range_job", "gateway_range_job")
        for step in d.resolve_job_def(name).graph.node_defs
        if step.pool
    }
    assert pools == {}
    second = resources["host_31338"]
    assert second.rpc_url == EnvVar("SECOND_RPC")  # the UI shows the variable, not the key
    sensor = d.resolve_sensor_def("host_31338_blocks_sensor")
    assert "(100 blocks while catching up, 10 at the chain's head, 3 confirmations" in (
        sensor.description or ""
    )
    first = d.resolve_sensor_def("host_31337_blocks_sensor")
    assert "(100 blocks, 20 confirmations" in (first.description or "")


def test_range_runs_have_a_maximum_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run monitoring (dagster.yaml) fails a range run past `dagster/max_runtime`: a hung RPC call
    or a worker killed by the OOM killer then no longer holds a run slot for good (#11)."""
    names = ("host_31337_range_job", "host_31338_range_job", "gateway_range_job")
    d = defs()
    assert {d.resolve_job_def(n).tags.get("dagster/max_runtime") for n in names} == {"3600"}
    monkeypatch.setenv("FHEVM_DAGSTER_RUN_MAX_RUNTIME", "900")
    d = defs()
    assert {d.resolve_job_def(n).tags.get("dagster/max_runtime") for n in names} == {"900"}
    monkeypatch.setenv("FHEVM_DAGSTER_RUN_MAX_RUNTIME", "0")  # no limit
    d = defs()
    assert {d.resolve_job_def(n).tags.get("dagster/max_runtime") for n in names} == {None}
    sensor = d.resolve_sensor_def("host_31337_blocks_sensor")
    assert "alerting after 5 failed runs in a row" in (sensor.description or "")
