"""Two coprocessors reach consensus on the devnet: the gateway's threshold is 2 of 2.

Each coprocessor has its own signer and transaction sender, its own store and its own Dagster
instance, and the same keys. Both process the same gateway range (a node-tfhe input) and the same
host range (confidential transfers); the gateway reaches `VerifyProofResponse` consensus on the
input and `AddCiphertextMaterialConsensus` on every allowed handle only if both computed the same
bytes. The drift check on `digest_commits` passes for both; a third instance fed another server
key computes other bytes, and its drift check fails with a table of the handles that disagree.

Slow (three full evaluations of the traffic, and a second server key is derived once): CI runs
one transfer (`FHEVM_DAGSTER_CONSENSUS_TRANSFERS`, default 1); by hand, set it higher.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetChecksDefinition, AssetsDefinition, instance_for_test, materialize
from eth_account import Account
from host_defs import (
    COMMIT_ASSETS,
    COMMIT_CHECKS,
    GATEWAY_ASSETS,
    HOST_RANGES,
    ciphertexts,
    digest_commits,
    host_ingest,
    host_resource,
)

from fhevm_dagster.chain.ciphertext_commits import commit_events
from fhevm_dagster.chain.config import DEFAULT_RPC
from fhevm_dagster.chain.keyfiles import write_private_key_file
from fhevm_dagster.compute.keys import METADATA
from fhevm_dagster.devnet import (
    DevnetInfo,
    anvil_account,
    connect,
    devnet_down,
    devnet_up,
    free_port,
    run_token_traffic,
    send_transaction,
)
from fhevm_dagster.devnet.artifacts import load_abi
from fhevm_dagster.partitions import GATEWAY_RANGES
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.resources.chain import CommitSettings, GatewayChainResource
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.signer import SignerResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Store

pytestmark = pytest.mark.fhe
INPUTS = Path(__file__).parent / "fixtures" / "inputs"
TRANSFERS = int(os.environ.get("FHEVM_DAGSTER_CONSENSUS_TRANSFERS", "1"))
DRIFT_CHECK = "digests_agree_with_other_coprocessors"
HOST: list[AssetsDefinition | AssetChecksDefinition] = [
    host_ingest, ciphertexts, *COMMIT_ASSETS, *COMMIT_CHECKS,
]  # fmt: skip
GATEWAY = GATEWAY_ASSETS


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetInfo]:
    state = tmp_path_factory.mktemp("consensus-devnet")
    info = devnet_up(state, host_port=free_port(), gateway_port=free_port(), coprocessors=2)
    try:
        yield info
    finally:
        devnet_down(state)


def _other_key_dir(root: Path) -> Path:
    """The test keys with another server-key seed: same client key, other ciphertext bytes."""
    keys = root / "other-keys"
    shutil.copytree(DEVNET_TEST_KEYS, keys)
    meta = json.loads((keys / METADATA).read_text())
    meta["server_key_seed"] = str(int(meta["server_key_seed"]) + 1)
    (keys / METADATA).write_text(json.dumps(meta))
    return keys


def _resources(
    info: DevnetInfo, root: Path, keys: tuple[str, str], key_dir: Path
) -> dict[str, Any]:
    signer_file, tx_sender_file = keys
    return {
        "gateway": GatewayChainResource(
            rpc_url=info.gateway_rpc_url,
            input_verification_address=info.input_verification_address,
            ciphertext_commits_address=info.ciphertext_commits_address,
            rpc_backoff_s=0.2,
        ),
        **host_resource(info),
        "store": StoreResource(database_url=f"sqlite:///{root / 'store.sqlite'}"),
        "fhe": FheResource(key_dir=str(key_dir), threads=2),
        "signer": SignerResource(signer_key_file=signer_file, tx_sender_key_file=tx_sender_file),
        "commit_settings": CommitSettings(),
        "parquet_io_manager": ParquetIOManager(base_dir=str(root / "parquet")),
        "objects": ObjectStoreResource(url=f"file://{root / 'objects'}"),
    }


def _coprocessor(
    info: DevnetInfo, root: Path, keys: tuple[str, str], gateway: BlockRange, host: BlockRange,
    *, key_dir: Path = DEVNET_TEST_KEYS, send: bool = True,
) -> Any:  # fmt: skip
    """One coprocessor's runs in its own instance and store; its drift check's evaluation.

    Without `send`, it computes everything and answers nothing (an observer with its own key).
    """
    root.mkdir()
    res = _resources(info, root, keys, key_dir)
    gateway_assets = GATEWAY if send else GATEWAY[:2]
    host_assets = HOST if send else [a for a in HOST if a is not digest_commits]
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(GATEWAY_RANGES, [gateway.key])
        instance.add_dynamic_partitions(HOST_RANGES, [host.key])
        done = materialize(
            gateway_assets, partition_key=gateway.key, instance=instance, resources=res
        )
        assert done.success
        result = materialize(host_assets, partition_key=host.key, instance=instance, resources=res)
        assert result.success
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        return checks[DRIFT_CHECK]


def _input_request(info: DevnetInfo) -> BlockRange:
    """The node-tfhe input of tests/fixtures (for the demo token, anvil account 9)."""
    data = (INPUTS / "transfer_u64.bin").read_bytes()
    meta = json.loads((INPUTS / "transfer_u64.json").read_text())
    assert meta["contract"] == info.demo_token_address
    w3 = connect(info.gateway_rpc_url)
    iv = w3.eth.contract(info.input_verification_address, abi=load_abi("InputVerification"))
    user = anvil_account(9)
    fn = iv.functions.verifyProofRequest(info.host_chain_id, meta["contract"], user.address, data,
                                         b"\x00")  # fmt: skip
    start = w3.eth.block_number + 1
    receipt = send_transaction(w3, user, fn)
    return BlockRange(start, int(receipt["blockNumber"]))


def test_two_coprocessors_reach_consensus_and_drift_is_detected(
    chain: DevnetInfo, tmp_path: Path
) -> None:
    gateway = _input_request(chain)
    records = run_token_traffic(chain, transfers=TRANSFERS)
    host = BlockRange(chain.host_start_block, max(r.block_number for r in records))
    first = (chain.signer_key_file, chain.tx_sender_key_file)
    second = (chain.peer_coprocessors[0][0], chain.peer_coprocessors[0][1])
    assert chain.coprocessor_threshold == 2

    one = _coprocessor(chain, tmp_path / "one", first, gateway, host)
    two = _coprocessor(chain, tmp_path / "two", second, gateway, host)
    assert one.passed and two.passed
    assert two.metadata["peers_seen"].value == 1

    # The gateway's own verdict: consensus on the input and on every allowed handle.
    w3 = connect(chain.gateway_rpc_url)
    iv = w3.eth.contract(chain.input_verification_address, abi=load_abi("InputVerification"))
    responses = iv.events.VerifyProofResponse().get_logs(from_block=gateway.first)
    assert len(responses) == 1 and len(responses[0]["args"]["signatures"]) == 2
    handles = _allowed(tmp_path / "one", host)
    assert handles
    events = commit_events(
        w3,
        chain.ciphertext_commits_address,
        handles,
        chain.gateway_start_block,
        max_span=DEFAULT_RPC.logs_max_span,
    )
    assert {e.material.handle for e in events if e.consensus} == set(handles)

    # An observer fed another server key (same client key, a fresh store, an identity outside
    # the set, nothing sent) computes other bytes: its drift check names every handle.
    observer = tmp_path / "observer-key"
    write_private_key_file(observer, Account.create())
    drifted = _coprocessor(
        chain, tmp_path / "drift", (str(observer), str(observer)), gateway, host,
        key_dir=_other_key_dir(tmp_path), send=False,
    )  # fmt: skip
    assert not drifted.passed
    assert drifted.metadata["peers_seen"].value == 2
    assert drifted.metadata["disagreeing_handles"].value == len(handles)
    table = drifted.metadata["disagreements"]
    assert {r.data["handle"] for r in table.records} == {"0x" + h.hex() for h in handles}


def _allowed(root: Path, host: BlockRange) -> list[bytes]:
    store = Store.open(f"sqlite:///{root / 'store.sqlite'}")
    return list(store.get_digests(store.allowed_handles_of_range(host.key, chain_id=31337)))
