"""Two host chains, one gateway, one code location: the registry read from a fresh devnet, the
second chain's range evaluated, squashed, digested, committed and uploaded; its balances decrypt
to the chain's plaintext ledger and every result handle names its own chain (SPEC §2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, EnvVar, instance_for_test, materialize
from dotenv import dotenv_values

from fhevm_dagster import settings
from fhevm_dagster.chain.ciphertext_commits import commit_events
from fhevm_dagster.chain.client import connect
from fhevm_dagster.chain.config import DEFAULT_RPC
from fhevm_dagster.chain.registry import host_chains_from_settings
from fhevm_dagster.compute.keys import KeySet
from fhevm_dagster.definitions import defs
from fhevm_dagster.devnet import (
    DevnetInfo,
    devnet_down,
    devnet_up,
    free_port,
    read_ledger,
    run_token_traffic,
)
from fhevm_dagster.devnet.env import write_env_file
from fhevm_dagster.devnet.traffic import token_contract
from fhevm_dagster.host_chains import host_chain_defs
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.protocol.handles import parse_handle
from fhevm_dagster.resources.chain import (
    CommitSettings,
    GatewayChainResource,
    HostChainResource,
)
from fhevm_dagster.resources.fhe import FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.signer import SignerResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.settings import load_settings
from fhevm_dagster.store import CommitState, Store


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetInfo]:
    state = tmp_path_factory.mktemp("two-hosts")
    ports = [free_port(), free_port()]
    info = devnet_up(state, ports[0], free_port(), host_ports=ports, host_chains=2)
    try:
        yield info
    finally:
        devnet_down(state)


@pytest.fixture()
def from_devnet(two_hosts: DevnetInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings a `dagster dev` next to this devnet would read."""
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(Path(two_hosts.state_dir) / "devnet.json"))


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


@pytest.mark.usefixtures("from_devnet")
def test_the_code_location_serves_every_devnet_host_chain(two_hosts: DevnetInfo) -> None:
    ids = [h.chain_id for h in two_hosts.host_chains]
    assert ids == [31337, 31338]
    d = defs()
    for chain_id in ids:
        assert d.resolve_job_def(f"host_{chain_id}_range_job")
        assert d.resolve_sensor_def(f"host_{chain_id}_blocks_sensor")
        resource = (d.resources or {})[f"host_{chain_id}"]
        assert isinstance(resource, HostChainResource) and resource.chain_id == chain_id


def test_env_file_is_the_whole_configuration(
    two_hosts: DevnetInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`devnet up --env-file .env` (make demo): with that file alone the code location serves
    both chains and the gateway of this devnet (it names devnet.json too: that is what lets the
    public test keys serve the devnet's chains)."""
    env = tmp_path / ".env"
    write_env_file(two_hosts, env)
    assert env.stat().st_mode & 0o077 == 0
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(tmp_path / "absent.json"))
    for key, value in dotenv_values(env).items():
        monkeypatch.setenv(key, str(value))
    chains = host_chains_from_settings(load_settings())
    assert [(c.chain_id, c.rpc_url) for c in chains] == [
        (h.chain_id, h.rpc_url) for h in two_hosts.host_chains
    ]
    d = defs()
    gateway = (d.resources or {})["gateway"]
    assert isinstance(gateway, GatewayChainResource)
    assert gateway.rpc_url == EnvVar("FHEVM_DAGSTER_GATEWAY_RPC_URL")
    assert gateway.ciphertext_commits_address == two_hosts.ciphertext_commits_address
    signer = SignerResource().tx_sender_account()
    assert signer.address == two_hosts.coprocessor_tx_sender_address


@pytest.mark.fhe
@pytest.mark.usefixtures("from_devnet")
def test_second_chain_range_is_committed(
    two_hosts: DevnetInfo, instance: DagsterInstance, tmp_path: Path
) -> None:
    info = two_hosts
    second = next(c for c in host_chains_from_settings(load_settings()) if c.chain_id == 31338)
    records = run_token_traffic(info, transfers=2, chain_id=second.chain_id)
    rng = BlockRange(min(r.block_number for r in records), max(r.block_number for r in records))
    host = host_chain_defs(second.name)
    instance.add_dynamic_partitions(str(host.partitions.name), [rng.key])
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    resources = {
        second.name: HostChainResource.of(second),
        "store": StoreResource(database_url=url),
        "fhe": FheResource(threads=2),
        "parquet_io_manager": ParquetIOManager(base_dir=str(tmp_path / "parquet")),
        "gateway": GatewayChainResource(
            chain_id=info.gateway_chain_id,
            rpc_url=info.gateway_rpc_url,
            input_verification_address=info.input_verification_address,
            ciphertext_commits_address=info.ciphertext_commits_address,
        ),
        "signer": SignerResource(),
        "commit_settings": CommitSettings(),
        "objects": ObjectStoreResource(url=f"file://{tmp_path / 'objects'}"),
    }
    result = materialize(
        [*host.assets, *host.checks],
        partition_key=rng.key,
        instance=instance,
        resources=resources,
    )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())

    store = Store.open(url)
    try:
        allowed = store.allowed_handles_of_range(rng.key, chain_id=second.chain_id)
        assert allowed and not store.allowed_handles_of_range(rng.key, chain_id=31337)
        assert {parse_handle(h).chain_id for h in allowed} == {second.chain_id}
        statuses = store.get_commit_statuses(allowed)
        assert all(statuses[h].status is CommitState.CONFIRMED for h in allowed)
        gateway = connect(info.gateway_rpc_url)
        events = commit_events(
            gateway, info.ciphertext_commits_address, allowed, 0, max_span=DEFAULT_RPC.logs_max_span
        )
        sender = info.coprocessor_tx_sender_address
        assert {e.material.handle for e in events if e.sender == sender} == set(allowed)

        keys: KeySet = FheResource().key_set(with_client_key=True)
        assert keys.client_key is not None
        engine = keys.engine()
        token = token_contract(connect(second.rpc_url), info, chain_id=second.chain_id)
        ledger = read_ledger(info, chain_id=second.chain_id)
        balances = {a: bytes(token.functions.balanceOf(a).call()) for a in ledger}
        stored = store.get_ciphertexts(list(balances.values()))
        decrypted = {
            a: keys.client_key.decrypt(engine.decompress(stored[h].ciphertext))
            for a, h in balances.items()
        }
        assert decrypted == ledger
    finally:
        store.dispose()
