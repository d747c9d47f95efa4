"""The gateway range end to end: real anvil chains, real tfhe_py, inputs made by node-tfhe.

A user's encrypted input goes to the gateway (`verifyProofRequest`), `gateway_range_job`'s assets
verify it and answer on chain, the answer becomes an inputProof the real host InputVerifier
accepts, and the host range evaluates the transfer: the new balances decrypt with the test key.
Bad inputs are rejected on chain with their reason; replaying a range sends nothing twice.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetsDefinition,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    SensorResult,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from dagster._core.utils import make_new_run_id
from devnet_fixtures import DevnetClient
from eth_account import Account
from eth_account.signers.local import LocalAccount
from host_defs import GATEWAY_ASSETS, HOST_RANGES, ciphertexts, host_ingest, host_resource

from fhevm_dagster.chain.calls import ContractCall, MemoryJournal
from fhevm_dagster.chain.client import ChainReader
from fhevm_dagster.chain.config import RangeRules
from fhevm_dagster.chain.sender import gateway_sender
from fhevm_dagster.devnet import DevnetInfo, anvil_account, set_balance
from fhevm_dagster.devnet.anvil import rpc_call
from fhevm_dagster.partitions import GATEWAY_RANGES
from fhevm_dagster.pipeline.block_ranges import BlockRange, parse_range_key
from fhevm_dagster.protocol.eip712 import encode_input_proof
from fhevm_dagster.resources.chain import CommitSettings, GatewayChainResource
from fhevm_dagster.resources.fhe import FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.signer import SignerResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.sensors import gateway_blocks_sensor
from fhevm_dagster.sensors.blocks import SensorConfig
from fhevm_dagster.store import ProofRequest, Store

INPUTS = Path(__file__).parent / "fixtures" / "inputs"
ROOT = Path(__file__).parents[1]
HOST_ASSETS = [host_ingest, ciphertexts]
EXTRA = b"\x00"


def fixture(name: str) -> tuple[bytes, dict[str, Any]]:
    return (INPUTS / f"{name}.bin").read_bytes(), json.loads((INPUTS / f"{name}.json").read_text())


@pytest.fixture()
def fresh(devnet: DevnetInfo) -> Iterator[DevnetInfo]:
    """Both chains back to their state before the test (tests and backends stay independent)."""
    snaps = [
        (url, rpc_call(url, "evm_snapshot"))
        for url in (devnet.host_rpc_url, devnet.gateway_rpc_url)
    ]
    yield devnet
    for url, snap in snaps:
        rpc_call(url, "evm_revert", [snap])


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def resources(info: DevnetInfo, url: str, parquet: Path) -> dict[str, Any]:
    return {
        "gateway": GatewayChainResource(
            rpc_url=info.gateway_rpc_url,
            input_verification_address=info.input_verification_address,
            ciphertext_commits_address=info.ciphertext_commits_address,
            rpc_backoff_s=0.2,
        ),
        **host_resource(info),
        "store": StoreResource(database_url=url),
        "fhe": FheResource(threads=2),
        "signer": SignerResource(
            signer_key_file=info.signer_key_file, tx_sender_key_file=info.tx_sender_key_file
        ),
        "commit_settings": CommitSettings(),
        "parquet_io_manager": ParquetIOManager(base_dir=str(parquet)),
    }


def run(
    instance: DagsterInstance,
    assets: list[AssetsDefinition],
    partitions: str,
    rng: BlockRange,
    res: dict[str, Any],
) -> dict[str, Any]:
    """Materialise `assets` for one range; the metadata of each asset by name."""
    if not instance.has_dynamic_partition(partitions, rng.key):
        instance.add_dynamic_partitions(partitions, [rng.key])
    result = materialize(assets, partition_key=rng.key, instance=instance, resources=res)
    assert result.success
    return {
        m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
        for a in assets
        for m in result.asset_materializations_for_node(a.node_def.name)
    }


def request(
    client: DevnetClient, sender: LocalAccount, data: bytes, *, user: str, contract: str
) -> tuple[int, int]:
    """(zkProofId, block) of a verifyProofRequest sent by `sender`."""
    fn = client.input_verification.functions.verifyProofRequest(
        client.info.host_chain_id, contract, user, data, EXTRA
    )
    receipt = client.send(sender, fn, gateway=True)
    (event,) = client.events(receipt, gateway=True)
    return int(event.args["zkProofId"]), int(receipt["blockNumber"])


def stored_request(store: Store, gateway_chain_id: int, zk_proof_id: int) -> ProofRequest:
    """The one stored request of the gateway with that id."""
    (req,) = store.proof_requests_with_id(gateway_chain_id, zk_proof_id)
    return req


def input_proof(client: DevnetClient, store: Store, zk_proof_id: int) -> tuple[list[bytes], bytes]:
    """The handles and inputProof a user builds from the gateway's consensus event."""
    req = stored_request(store, client.info.gateway_chain_id, zk_proof_id)
    assert req.response_tx_hash is not None
    receipt = client.gateway_w3.eth.get_transaction_receipt(req.response_tx_hash)  # type: ignore[arg-type]
    consensus = next(
        e for e in client.events(receipt, gateway=True) if e.name == "VerifyProofResponse"
    )
    assert consensus.args["zkProofId"] == zk_proof_id
    handles = list(consensus.args["ctHandles"])
    return handles, encode_input_proof(handles, list(consensus.args["signatures"]), EXTRA)


def tx_count(info: DevnetInfo, client: DevnetClient) -> int:
    return int(client.gateway_w3.eth.get_transaction_count(info.tx_sender_account().address))


# --- the real client path, end to end -------------------------------------------------------


@pytest.mark.fhe
def test_encrypted_transfer_end_to_end(
    fresh: DevnetInfo,
    devnet_client: DevnetClient,
    instance: DagsterInstance,
    tmp_path: Path,
    store_url: str,
) -> None:
    client, info = devnet_client, fresh
    data, meta = fixture("transfer_u64")  # node-tfhe: 100 as Uint64, for anvil account 9
    user, receiver = anvil_account(9), Account.create().address
    assert meta["user"] == user.address and meta["contract"] == info.demo_token_address
    res = resources(info, store_url, tmp_path / "parquet")
    token = client.token

    start = client.gateway_w3.eth.block_number + 1
    zk_id, last = request(client, user, data, user=user.address, contract=token.address)
    md = run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, BlockRange(start, last), res)
    assert md["verified_inputs"]["verified"] == 1 and md["proof_responses"]["confirmed"] == 1

    store = StoreResource(database_url=store_url).get()
    handles, proof = input_proof(client, store, zk_id)
    assert ["0x" + h.hex() for h in handles] == meta["handles"]  # the JS SDK's handles
    stored = store.get_ciphertexts(handles)
    assert stored[handles[0]].origin == "input" and stored[handles[0]].fhe_type == 5

    mint = client.send(anvil_account(0), token.functions.mint(user.address, 1_000))
    transfer = client.send(user, token.functions.transfer(receiver, handles[0], proof))
    verify = next(e for e in client.events(transfer) if e.name == "VerifyInput")
    assert verify.args["inputHandle"] == handles[0] == verify.args["result"]
    assert verify.args["userAddress"] == user.address and verify.args["inputProof"] == proof

    host = BlockRange(int(mint["blockNumber"]), int(transfer["blockNumber"]))
    host_md = run(instance, HOST_ASSETS, HOST_RANGES, host, res)
    assert host_md["ciphertexts"]["errors"] == 0
    balances = [token.functions.balanceOf(a).call() for a in (user.address, receiver)]
    keys = FheResource().key_set(with_client_key=True)
    assert keys.client_key is not None
    engine = FheResource().engine()
    cts = store.get_ciphertexts(balances)
    assert [keys.client_key.decrypt(engine.decompress(cts[b].ciphertext)) for b in balances] == [
        900,
        100,
    ]


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "node-tfhe").is_dir():
        if os.environ.get("FHEVM_DAGSTER_REQUIRE_DEVNET") == "1":
            pytest.fail("node and node_modules/node-tfhe are required (npm ci)")
        pytest.skip("node or node_modules/node-tfhe missing: run `npm ci`")
    return node


@pytest.mark.fhe
def test_live_js_client_input_is_accepted_by_the_host(
    fresh: DevnetInfo, devnet_client: DevnetClient, instance: DagsterInstance, tmp_path: Path
) -> None:
    """node-tfhe encrypts now (tens of seconds), for a brand-new user: no pre-made bytes."""
    node = _node()
    client, info = devnet_client, fresh
    user: LocalAccount = Account.create()
    set_balance(client.host_w3, user.address, 10**18)
    set_balance(client.gateway_w3, user.address, 10**18)
    out = tmp_path / "live"
    subprocess.run(
        [node, str(INPUTS / "encrypt.mjs"), str(out), client.token.address, user.address,
         info.acl_address, str(info.host_chain_id), "5:77"],
        check=True, cwd=ROOT, capture_output=True, timeout=300,
    )  # fmt: skip
    data = out.with_suffix(".bin").read_bytes()
    js_handles = json.loads(out.with_suffix(".json").read_text())["handles"]
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    res = resources(info, url, tmp_path / "parquet")

    start = client.gateway_w3.eth.block_number + 1
    zk_id, last = request(client, user, data, user=user.address, contract=client.token.address)
    run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, BlockRange(start, last), res)
    handles, proof = input_proof(client, StoreResource(database_url=url).get(), zk_id)
    assert ["0x" + h.hex() for h in handles] == js_handles
    transfer = client.send(
        user, client.token.functions.transfer(anvil_account(9).address, handles[0], proof)
    )
    verify = next(e for e in client.events(transfer) if e.name == "VerifyInput")
    assert verify.args["result"] == handles[0] and verify.args["inputType"] == 5


# --- bad inputs and replays -----------------------------------------------------------------


@pytest.mark.fhe
def test_bad_inputs_are_rejected_and_replays_send_nothing(
    fresh: DevnetInfo,
    devnet_client: DevnetClient,
    instance: DagsterInstance,
    tmp_path: Path,
    store_url: str,
) -> None:
    client, info = devnet_client, fresh
    iv = client.input_verification.functions
    good, meta = fixture("pair_bool_u8")  # anvil account 1, demo token
    user, stranger = anvil_account(1), anvil_account(2)
    token, other_contract = client.token.address, client.exerciser.address
    cases: list[tuple[str, bytes, str, str, str]] = [
        ("good", good, user.address, token, ""),
        ("garbage", b"\x01garbage bytes", user.address, token, "malformed"),
        ("truncated", good[: len(good) // 2], user.address, token, "malformed"),
        ("proof_load", fixture("proof_load_u8")[0], user.address, token, "malformed"),
        ("too_many", fixture("too_many_256")[0], user.address, token, "too_many_entries"),
        ("other_user", good, stranger.address, token, "proof_rejected"),
        ("other_contract", good, user.address, other_contract, "proof_rejected"),
    ]
    start = client.gateway_w3.eth.block_number + 1
    ids: dict[str, int] = {}
    for name, data, who, contract, _ in cases:
        ids[name], last = request(client, user, data, user=who, contract=contract)
    rng = BlockRange(start, last)
    res = resources(info, store_url, tmp_path / "parquet")
    sent_before = tx_count(info, client)

    md = run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, rng, res)
    assert md["proof_requests"]["requests"] == len(cases)
    assert md["verified_inputs"]["verified"] == 1
    assert md["verified_inputs"]["rejected"] == len(cases) - 1
    shown = md["verified_inputs"]["rejections"]
    responses = md["proof_responses"]
    assert responses["confirmed"] == len(cases) and responses["failed"] == 0
    assert responses["transactions_sent"] == len(cases) == tx_count(info, client) - sent_before
    assert responses["rejections"] == shown

    store = StoreResource(database_url=store_url).get()
    for name, _, _, _, code in cases:
        req = stored_request(store, info.gateway_chain_id, ids[name])
        assert req.response_status == "confirmed", name
        if code:
            assert req.status == "rejected" and req.reason and req.reason.startswith(code), name
            assert shown[str(req.key)] == req.reason
            assert iv.isProofRejected(ids[name]).call(), name
        else:
            assert req.status == "verified" and iv.isProofVerified(ids[name]).call()
            assert ["0x" + h.hex() for h in req.handles or ()] == meta["handles"]
            stored = store.get_ciphertexts(list(req.handles or ()))
            assert {c.origin for c in stored.values()} == {"input"} and len(stored) == 2
    too_many = stored_request(store, info.gateway_chain_id, ids["too_many"])
    assert "at most 255 entries, got 256" in (too_many.reason or "")

    # Replay: the store knows every answer; nothing is verified or sent again.
    again = run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, rng, res)
    assert again["verified_inputs"]["newly_checked"] == 0
    assert again["proof_responses"]["transactions_sent"] == 0
    assert again["proof_responses"]["skipped_already_answered"] == len(cases)
    # The store lost the answers (say, a crash before the write): the chain says they are done.
    for i in ids.values():
        store.set_proof_response(
            stored_request(store, info.gateway_chain_id, i).key, "failed", None, "lost"
        )
    lost = run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, rng, res)
    assert lost["proof_responses"]["already_done"] == len(cases)
    assert lost["proof_responses"]["transactions_sent"] == 0
    assert tx_count(info, client) - sent_before == len(cases)


def gateway_asset(name: str) -> AssetsDefinition:
    return next(a for a in GATEWAY_ASSETS if a.key.path[-1] == name)


def mine(info: DevnetInfo, to_block: int) -> None:
    """Mines the gateway (other timestamps: other hashes) up to `to_block`."""
    rpc_call(info.gateway_rpc_url, "evm_increaseTime", [100])
    head = int(str(rpc_call(info.gateway_rpc_url, "eth_blockNumber")), 16)
    if to_block > head:
        rpc_call(info.gateway_rpc_url, "anvil_mine", [hex(to_block - head)])


@pytest.mark.fhe
def test_gateway_reorgs_drop_requests_and_answers_and_both_are_repaired(
    fresh: DevnetInfo,
    devnet_client: DevnetClient,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    """A reorg drops an answer whose request survives: the gateway range holding the answer's
    block sends it again (before: CONFIRMED was trusted, answers were never rechecked). A reorg
    drops a request: its range's run removes it and answers nothing for it (before: its answer
    reverted VerifyProofNotRequested, failing the range and every re-drive)."""
    client, info = devnet_client, fresh
    iv = client.input_verification.functions
    data, meta = fixture("pair_bool_u8")
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    res = resources(info, url, tmp_path / "parquet")
    store = Store.open(url)
    gateway = info.gateway_chain_id

    start = client.gateway_w3.eth.block_number + 1
    zk, last = request(client, anvil_account(1), data, user=meta["user"], contract=meta["contract"])
    kept_request = rpc_call(info.gateway_rpc_url, "evm_snapshot")
    run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, BlockRange(start, last), res)
    answered = stored_request(store, gateway, zk)
    assert answered.response_status == "confirmed" and answered.response_block is not None
    block = answered.response_block
    rpc_call(info.gateway_rpc_url, "evm_revert", [kept_request])  # the answer is gone
    mine(info, block)
    assert not iv.isProofVerified(zk).call()
    assert store.holds_gateway_sends(block, block)  # its range runs, even with no log now
    md = run(
        instance,
        [gateway_asset("answers_rechecked")],
        GATEWAY_RANGES,
        BlockRange(block, block),
        res,
    )
    assert md["answers_rechecked"]["lost"] == 1
    again = stored_request(store, gateway, zk)
    # Sent again at the same nonce: the same bytes may give the same hash, mined in a new block.
    assert again.response_status == "confirmed" and again.response_block is not None
    assert iv.isProofVerified(zk).call()

    start = client.gateway_w3.eth.block_number + 1
    before_request = rpc_call(info.gateway_rpc_url, "evm_snapshot")
    orphan, last = request(
        client, anvil_account(1), data, user=meta["user"], contract=meta["contract"]
    )
    rng = BlockRange(start, last)
    collected = [gateway_asset("proof_requests"), gateway_asset("verified_inputs")]
    run(instance, collected, GATEWAY_RANGES, rng, res)
    assert stored_request(store, gateway, orphan).status == "verified"
    rpc_call(info.gateway_rpc_url, "evm_revert", [before_request])  # the request is gone
    mine(info, last)
    new_hash = ChainReader(info.gateway_rpc_url).block_hash(last)
    assert new_hash is not None
    store.record_range_request(gateway, rng.key, rng.first, rng.last, new_hash, reorg=True)
    sent = tx_count(info, client)
    md = run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, rng, res)
    assert md["proof_requests"]["removed_by_reorg"] == 1 and md["proof_requests"]["requests"] == 0
    assert md["proof_responses"]["transactions_sent"] == 0 and tx_count(info, client) == sent
    assert store.proof_requests_with_id(gateway, orphan) == []
    store.dispose()


@pytest.mark.fhe
def test_a_deferred_request_is_answered_around(
    fresh: DevnetInfo,
    devnet_client: DevnetClient,
    instance: DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request whose verification fails internally (a TFHE-rs panic) is deferred: every other
    request of its range is answered in the same run, the run fails without step retries (the
    range's re-drive is its back-off), and the next run verifies and answers it. (Before: the
    verification step failed after deciding the others, and none of them was answered.)"""
    from fhevm_dagster.compute.inputs import Deferred
    from fhevm_dagster.pipeline import gateway as pipeline_gateway

    client, info = devnet_client, fresh
    data, meta = fixture("pair_bool_u8")
    start = client.gateway_w3.eth.block_number + 1
    panics, _ = request(
        client, anvil_account(1), data, user=meta["user"], contract=meta["contract"]
    )
    other, last = request(
        client, anvil_account(1), data, user=anvil_account(2).address, contract=meta["contract"]
    )
    rng = BlockRange(start, last)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    res = resources(info, url, tmp_path / "parquet")
    real = pipeline_gateway.verify_input

    def flaky(engine: Any, blob: bytes, **kw: Any) -> Any:
        if kw["user"] == meta["user"]:
            return Deferred("TfhePanic: TFHE-rs panicked: out of memory")
        return real(engine, blob, **kw)

    monkeypatch.setattr(pipeline_gateway, "verify_input", flaky)
    instance.add_dynamic_partitions(GATEWAY_RANGES, [rng.key])
    first = materialize(
        GATEWAY_ASSETS, partition_key=rng.key, instance=instance, resources=res,
        raise_on_error=False,
    )  # fmt: skip
    assert not first.success
    failure = first.failure_data_for_node(gateway_asset("proof_responses").node_def.name)
    assert failure is not None and "1 request(s) deferred" in str(failure.error)
    store = Store.open(url)
    deferred, answered = (stored_request(store, info.gateway_chain_id, i) for i in (panics, other))
    assert deferred.status == "pending" and deferred.deferrals == 1
    assert deferred.reason is not None and "panicked" in deferred.reason
    assert answered.status == "rejected" and answered.response_status == "confirmed"
    assert client.input_verification.functions.isProofRejected(other).call()

    monkeypatch.setattr(pipeline_gateway, "verify_input", real)
    md = run(instance, GATEWAY_ASSETS, GATEWAY_RANGES, rng, res)
    assert (
        md["verified_inputs"]["verified"] == 1 and md["proof_responses"]["transactions_sent"] == 1
    )
    assert client.input_verification.functions.isProofVerified(panics).call()
    store.dispose()


# --- the transaction sender -----------------------------------------------------------------


def test_gateway_transactions_outcomes(fresh: DevnetInfo, devnet_client: DevnetClient) -> None:
    client, info = devnet_client, fresh
    gateway = GatewayChainResource(
        rpc_url=info.gateway_rpc_url,
        input_verification_address=info.input_verification_address,
        ciphertext_commits_address=info.ciphertext_commits_address,
    )
    journal = MemoryJournal()
    txs = gateway_sender(gateway.config(), info.tx_sender_account(), journal)
    assert gateway_sender(gateway.config(), info.tx_sender_account(), journal) is txs
    zk_id, _ = request(
        client, anvil_account(1), b"x", user=anvil_account(1).address, contract=client.token.address
    )
    reject = ContractCall("InputVerification", "rejectProofResponse", (zk_id, b""))
    unknown = ContractCall("InputVerification", "rejectProofResponse", (10**9, b""))
    first, second, missing = txs.send_many([reject, reject, unknown])
    assert first.status == "confirmed" and first.tx_hash is not None and first.block_number
    # Simulated after the first was mined: already done, nothing sent.
    assert second.status == "already_done" and second.tx_hash is None
    assert second.error == "CoprocessorAlreadyRejected" and str(zk_id) in (second.reason or "")
    assert missing.status == "failed" and missing.error == "VerifyProofNotRequested"
    assert not missing.retryable and missing.tx_hash is None
    assert txs.view("InputVerification", "isProofRejected", zk_id) is True

    stranger = gateway_sender(gateway.config(), anvil_account(3), journal)
    outcome = stranger.send(ContractCall("InputVerification", "rejectProofResponse", (zk_id, b"")))
    assert outcome.status == "failed" and outcome.error == "NotCoprocessorTxSender"
    with pytest.raises(ValueError, match="no address configured"):
        bare = GatewayChainResource(rpc_url=info.gateway_rpc_url).config()
        gateway_sender(bare, anvil_account(3), journal).send(reject)
    # The sender keeps working after the chain forgot its transactions (reverted devnet).
    snap = rpc_call(info.gateway_rpc_url, "evm_snapshot")
    zk2, _ = request(
        client, anvil_account(1), b"y", user=anvil_account(1).address, contract=client.token.address
    )
    assert txs.send(ContractCall("InputVerification", "rejectProofResponse", (zk2, b""))).done
    rpc_call(info.gateway_rpc_url, "evm_revert", [snap])
    zk3, _ = request(
        client, anvil_account(1), b"z", user=anvil_account(1).address, contract=client.token.address
    )
    after = txs.send(ContractCall("InputVerification", "rejectProofResponse", (zk3, b"")))
    assert after.status == "confirmed", after


@pytest.mark.fhe
def test_a_misconfigured_signer_fails_the_run(
    fresh: DevnetInfo,
    devnet_client: DevnetClient,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    """A signer key the gateway does not know: every answer fails with the decoded reason."""
    client, info = devnet_client, fresh
    key = tmp_path / "wrong.key"
    key.write_text("0x" + bytes(Account.create().key).hex())
    key.chmod(0o600)
    data, meta = fixture("pair_bool_u8")
    start = client.gateway_w3.eth.block_number + 1
    zk_id, last = request(
        client, anvil_account(1), data, user=meta["user"], contract=meta["contract"]
    )
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    res = resources(info, url, tmp_path / "parquet")
    res["signer"] = SignerResource(
        signer_key_file=str(key), tx_sender_key_file=info.tx_sender_key_file
    )
    rng = BlockRange(start, last)
    instance.add_dynamic_partitions(GATEWAY_RANGES, [rng.key])
    result = materialize(
        GATEWAY_ASSETS,
        partition_key=rng.key,
        instance=instance,
        resources=res,
        raise_on_error=False,
    )
    assert not result.success
    req = stored_request(StoreResource(database_url=url).get(), info.gateway_chain_id, zk_id)
    assert req.status == "verified" and req.response_status == "failed"
    assert "NotCoprocessorSigner" in (req.response_reason or "")


# --- the sensor -----------------------------------------------------------------------------


@pytest.mark.fhe
def test_gateway_sensor(
    fresh: DevnetInfo,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    info = fresh
    gateway = GatewayChainResource(
        rpc_url=info.gateway_rpc_url, input_verification_address=info.input_verification_address
    )
    head = ChainReader.of(gateway.config()).head()
    rpc_call(info.gateway_rpc_url, "anvil_mine", [hex(45)])  # >= 4 complete ranges
    rules = RangeRules(range_size=10, max_ranges_per_tick=2, start_block=head + 1, run_empty=True)
    sensor = gateway_blocks_sensor(SensorConfig(rules))
    res: dict[str, Any] = {
        "gateway": gateway,
        "store": StoreResource(database_url=store_url),
    }
    cursor = None
    launched: set[str] = set()

    def tick(**over: Any) -> SensorResult:
        """A daemon's tick: each new run key becomes a run that ingests its range (as
        proof_requests does) and succeeds; a run key Dagster has seen is skipped."""
        nonlocal cursor
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources={**res, **over})
        result = sensor(ctx)
        assert isinstance(result, SensorResult)
        for req in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(GATEWAY_RANGES, list(req.partition_keys or []))
        if result.cursor is not None:
            cursor = result.cursor
        store = res["store"].get()
        new = [r for r in result.run_requests or [] if str(r.run_key) not in launched]
        for run in new:
            launched.add(str(run.run_key))
            rng = parse_range_key(str(run.partition_key))
            last_hash = bytes.fromhex(run.tags["fhevm/last_block_hash"])
            store.mark_range_processed(
                info.gateway_chain_id, rng.key, rng.first, rng.last, last_hash
            )
            tags = {**run.tags, "dagster/partition": rng.key, "dagster/run_key": str(run.run_key)}
            instance.add_run(
                DagsterRun(job_name="gateway_range_job", run_id=make_new_run_id(), tags=tags,
                           status=DagsterRunStatus.SUCCESS)
            )  # fmt: skip
        return result

    first = tick()
    keys = [r.partition_key for r in first.run_requests or []]
    assert len(keys) == 2 and keys[0] == BlockRange(head + 1, (head + 1) // 10 * 10 + 9).key
    assert instance.get_dynamic_partitions(GATEWAY_RANGES) == keys
    assert all(
        r.tags["fhevm/gateway_chain_id"] == str(info.gateway_chain_id)
        for r in first.run_requests or []
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    before = cursor
    down = tick(gateway=GatewayChainResource(rpc_url=dead, request_timeout_s=1))
    assert not down.run_requests and down.skip_reason is not None
    assert f"gateway RPC {dead} failed" in (down.skip_reason.skip_message or "")
    assert cursor == before
    more = tick()
    assert more.run_requests, "the sensor goes on after the outage"
    for _ in range(10):
        if not (r := tick()).run_requests:
            break
    assert not r.run_requests, "every range was requested once"
    assert "no complete gateway range" in (r.skip_reason.skip_message or "")  # type: ignore[union-attr]


# --- keys -----------------------------------------------------------------------------------


def test_signer_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhevm_dagster.chain.keyfiles import KeyFileError

    account = Account.create()
    secret = bytes(account.key).hex()
    path = tmp_path / "signer.key"
    path.write_text("0x" + secret + "\n")
    path.chmod(0o644)
    for name in ("FHEVM_DAGSTER_SIGNER_KEY", "FHEVM_DAGSTER_TX_SENDER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FHEVM_DAGSTER_DEVNET_JSON", str(tmp_path / "none.json"))
    res = SignerResource(signer_key_file=str(path))
    with pytest.raises(KeyFileError, match="accessible by group or other") as exc:
        res.signer_account()
    assert secret not in str(exc.value)
    path.chmod(0o600)
    assert res.signer_account().address == account.address
    with pytest.raises(KeyFileError, match="no transaction sender key"):
        res.tx_sender_account()
    monkeypatch.setenv("FHEVM_DAGSTER_TX_SENDER_KEY", "0x" + secret)
    assert res.tx_sender_account().address == account.address
    monkeypatch.setenv("FHEVM_DAGSTER_TX_SENDER_KEY", "not-a-key-" + secret[:20])
    with pytest.raises(KeyFileError, match="does not hold a private key") as exc:
        res.tx_sender_account()
    assert secret[:20] not in str(exc.value)
    assert "signer_key_file" in SignerResource.model_fields and all(
        "key_file" in f for f in SignerResource.model_fields
    )  # only paths are config: keys never reach the Dagster UI
