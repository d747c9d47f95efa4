"""Squash, digest and commit a range's allowed ciphertexts (real tfhe_py, real gateway anvil).

The store is seeded directly: test-key encryptions of small values, compressed like `ciphertexts`
stores them, marked allowed in the range. Every handle is random per test, so tests sharing the
session devnet (and the SQLite / PostgreSQL parameters) never see each other's commits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, DagsterInstance, instance_for_test, materialize
from eth_account import Account
from failed_results import allow_with_one_failure
from fault_proxy import RpcProxy
from host_defs import (
    COMMIT_ASSETS,
    COMMIT_CHECKS,
    GATEWAY_ASSETS,
    HOST,
    HOST_RANGES,
    NO_RETRY,
    ciphertext_digests,
    ciphertext_objects,
    ciphertexts,
    host_ingest,
    host_resource,
    node,
    sns_ciphertexts,
)
from web3 import Web3

from fhevm_dagster.chain.calls import MemoryJournal, TxOutcome, TxStatus
from fhevm_dagster.chain.ciphertext_commits import GatewayCommits, commit_events
from fhevm_dagster.chain.commit_port import CommitGateway, OnChainCommit
from fhevm_dagster.chain.config import DEFAULT_RPC
from fhevm_dagster.chain.keyfiles import read_private_key_file, write_private_key_file
from fhevm_dagster.cli import main
from fhevm_dagster.compute.keys import KeySet
from fhevm_dagster.devnet import DevnetInfo, free_port, run_token_traffic
from fhevm_dagster.devnet.anvil import rpc_call
from fhevm_dagster.objects import FileBackend, ObjectBackend, S3Backend, fetch_verified
from fhevm_dagster.partitions import GATEWAY_RANGES
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.pipeline.digest_commits import commit_materials
from fhevm_dagster.protocol.digests import Material, material
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.chain import CommitSettings, GatewayChainResource
from fhevm_dagster.resources.fhe import FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.signer import SignerResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import CommitState, CommitStatus, Store
from fhevm_dagster.store.records import Ciphertext

pytestmark = pytest.mark.fhe
RANGE = "000000000000-000000000099"
CHAIN_ID = 31337
#: Anvil accounts that only `test_real_host_range_end_to_end` trades between (the demo traffic
#: users, `TRAFFIC_USER_INDEXES`, are funded by whichever test sends traffic first; 5-8 by
#: test_contracts_token and the gateway tests): `devnet.anvil.ACCOUNTS`.
OWN_USERS = (10, 11)
KEY_ID = 0


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return FheResource().key_set(with_client_key=True)


@dataclass
class Seeded:
    values: dict[bytes, tuple[int, int]]  # handle -> (value, fhe type)
    errored: bytes


def handle(fhe_type: int, index: int = 0xFF) -> bytes:
    return os.urandom(21) + bytes([index]) + CHAIN_ID.to_bytes(8, "big") + bytes([fhe_type, 0])


def seed(store: Store, keys: KeySet, plain: Sequence[tuple[int, int]]) -> Seeded:
    """Stores ct64s of `plain` (value, type) as allowed results of RANGE, plus one failed one."""
    assert keys.client_key is not None
    engine = keys.engine()
    values = {handle(t): (v, t) for v, t in plain}
    store.put_ciphertexts(
        [
            Ciphertext(h, engine.compress(keys.client_key.encrypt(v, t)), t, KEY_ID, "computed")
            for h, (v, t) in values.items()
        ]
    )
    errored = handle(FheType.Uint8)
    allow_with_one_failure(store, CHAIN_ID, RANGE, list(values), errored, operand=handle(2))
    return Seeded(values, errored)


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        inst.add_dynamic_partitions(HOST_RANGES, [RANGE])
        yield inst


def gateway_resource(info: DevnetInfo, rpc_url: str | None = None) -> GatewayChainResource:
    return GatewayChainResource(
        rpc_url=rpc_url or info.gateway_rpc_url,
        input_verification_address=info.input_verification_address,
        ciphertext_commits_address=info.ciphertext_commits_address,
        request_timeout_s=3.0,
        rpc_retries=1,
        rpc_backoff_s=0.1,
        batch_deadline_s=30.0,
    )


def resources(
    info: DevnetInfo,
    url: str,
    parquet: Path,
    *,
    rpc_url: str | None = None,
    key_file: str | None = None,
) -> dict[str, Any]:
    return {
        **host_resource(info, KEY_ID),
        "store": StoreResource(database_url=url),
        "fhe": FheResource(),
        "gateway": gateway_resource(info, rpc_url),
        "signer": SignerResource(
            tx_sender_key_file=key_file or info.tx_sender_key_file,
            signer_key_file=info.signer_key_file,
        ),
        "commit_settings": CommitSettings(),
        "parquet_io_manager": ParquetIOManager(base_dir=str(parquet)),
        "objects": ObjectStoreResource(url=f"file://{parquet / 'objects'}"),
    }


def sender_events(info: DevnetInfo, handles: Sequence[bytes]) -> list[Any]:
    w3 = Web3(Web3.HTTPProvider(info.gateway_rpc_url))
    sender = Web3.to_checksum_address(info.coprocessor_tx_sender_address)
    return [
        e
        for e in commit_events(
            w3, info.ciphertext_commits_address, handles, 0, max_span=DEFAULT_RPC.logs_max_span
        )
        if not e.consensus and e.sender == sender
    ]


def sender_nonce(info: DevnetInfo) -> int:
    w3 = Web3(Web3.HTTPProvider(info.gateway_rpc_url))
    return int(
        w3.eth.get_transaction_count(Web3.to_checksum_address(info.coprocessor_tx_sender_address))
    )


def test_range_squashed_digested_committed_once(
    devnet: DevnetInfo,
    keys: KeySet,
    instance: DagsterInstance,
    store_url: str,
    tmp_path: Path,
) -> None:
    store = Store.open(store_url)
    try:
        seeded = seed(store, keys, [(7, FheType.Uint8), (200, FheType.Uint8), (1, FheType.Bool)])
        handles = list(seeded.values)
        assets = [sns_ciphertexts, ciphertext_digests, NO_RETRY, *COMMIT_CHECKS]
        result = materialize(
            assets,
            partition_key=RANGE,
            instance=instance,
            resources=resources(devnet, store_url, tmp_path),
        )
        assert result.success
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert set(checks) == {  # the steps' own checks, and the peer check
            "every_allowed_handle_squashed",
            "digests_match_bytes",
            "digests_committed_on_gateway",
            "digests_agree_with_other_coprocessors",
        }
        # The errored handle is never committed: everything else is, and the check names it.
        named = checks.pop("digests_committed_on_gateway")
        assert not named.passed and named.severity is AssetCheckSeverity.WARN
        errored = named.metadata["errored_handles"].value
        assert errored == {"0x" + seeded.errored.hex(): "scalar division by zero"}
        assert all(c.passed for c in checks.values()), checks

        ct64 = store.get_ciphertexts(handles)
        ct128 = store.get_ciphertexts128(handles)
        assert keys.client_key is not None
        for h, (value, fhe_type) in seeded.values.items():
            assert keys.client_key.decrypt_squashed(ct128[h], fhe_type) == value
        expected = {h: material(h, KEY_ID, ct64[h].ciphertext, ct128[h]) for h in handles}
        events = sender_events(devnet, handles)
        assert sorted(e.material.handle for e in events) == sorted(handles)
        for e in events:
            assert e.material == expected[e.material.handle]
        statuses = store.get_commit_statuses(handles)
        assert all(statuses[h].status is CommitState.CONFIRMED for h in handles)
        assert seeded.errored not in store.get_digests([seeded.errored])
        table = pd.read_parquet(tmp_path / HOST / "digest_commits" / f"{RANGE}.parquet")
        assert set(table["status"]) == {"confirmed"}
        digests = pd.read_parquet(tmp_path / HOST / "ciphertext_digests" / f"{RANGE}.parquet")
        mats = {
            m.asset_key.path[-1]: m.metadata
            for name in ("sns_ciphertexts", "digest_commits")
            for m in result.asset_materializations_for_node(node(name))
        }
        assert mats["sns_ciphertexts"]["squashed"].value == 3
        assert mats["sns_ciphertexts"]["errored"].value == 1
        assert mats["digest_commits"]["sent"].value == 3
        link = f"/assets/{HOST}/ciphertext_objects?view=partitions&partition={RANGE}"
        assert mats["digest_commits"]["objects"].value == link  # the range's uploaded objects

        nonce = sender_nonce(devnet)
        again = materialize(
            assets,
            partition_key=RANGE,
            instance=instance,
            resources=resources(devnet, store_url, tmp_path),
        )
        assert again.success
        assert sender_nonce(devnet) == nonce  # not one transaction
        assert len(sender_events(devnet, handles)) == 3
        meta = again.asset_materializations_for_node(node("digest_commits"))[0].metadata
        assert meta["sent"].value == 0 and meta["skipped_confirmed_in_store"].value == 3
        pd.testing.assert_frame_equal(
            digests, pd.read_parquet(tmp_path / HOST / "ciphertext_digests" / f"{RANGE}.parquet")
        )
        assert store.get_ciphertexts128(handles) == ct128
        assert meta["ct128_purged"].value == 0 and meta["ct128_kept_no_object"].value == 3

        # Once the objects are stored, the committed ct128 bytes leave the store (as the
        # reference deletes its ct128 rows): a re-run squashes nothing, keeps its digests.
        uploaded = materialize(
            [ciphertext_objects, NO_RETRY],
            partition_key=RANGE,
            instance=instance,
            resources=resources(devnet, store_url, tmp_path),
        )
        assert uploaded.success
        meta = uploaded.asset_materializations_for_node(node("digest_commits"))[0].metadata
        assert meta["ct128_purged"].value == 3
        assert store.get_ciphertexts128(handles) == {}
        assert store.purged_ciphertexts128(handles) == set(handles)
        rerun = materialize(
            [*assets, ciphertext_objects],
            partition_key=RANGE,
            instance=instance,
            resources=resources(devnet, store_url, tmp_path),
        )
        assert rerun.success and sender_nonce(devnet) == nonce
        sns = rerun.asset_materializations_for_node(node("sns_ciphertexts"))[0].metadata
        assert sns["squashed"].value == 0
        digests = rerun.asset_materializations_for_node(node("ciphertext_digests"))[0].metadata
        assert digests["ct128_purged"].value == 3
        assert store.get_digests(handles) == expected
    finally:
        store.dispose()


def test_failed_commits_fail_the_range_and_a_retry_completes_it(
    devnet: DevnetInfo,
    keys: KeySet,
    instance: DagsterInstance,
    store_url: str,
    tmp_path: Path,
) -> None:
    store = Store.open(store_url)
    try:
        seeded = seed(store, keys, [(3, FheType.Uint8), (0, FheType.Bool)])
        handles = list(seeded.values)
        upstream = materialize(
            [sns_ciphertexts, ciphertext_digests],
            partition_key=RANGE,
            instance=instance,
            resources=resources(devnet, store_url, tmp_path),
        )
        assert upstream.success
        both = [sns_ciphertexts, ciphertext_digests, NO_RETRY]

        def commit(**kw: Any) -> Any:
            return materialize(
                both,
                selection=[NO_RETRY],
                partition_key=RANGE,
                instance=instance,
                resources=resources(devnet, store_url, tmp_path, **kw),
                raise_on_error=False,
            )

        # 1. The gateway RPC is down (closed port): failed with the reason, nothing sent.
        down = commit(rpc_url=f"http://127.0.0.1:{free_port()}")
        assert not down.success
        failure = down.failure_data_for_node(node("digest_commits"))
        assert failure is not None and "gateway unreachable" in str(failure.error)
        statuses = store.get_commit_statuses(handles)
        assert all(statuses[h].status is CommitState.FAILED for h in handles)
        assert all("unreachable" in (statuses[h].reason or "") for h in handles)
        assert sender_events(devnet, handles) == []

        # 2. The gateway reverts (a sender that is not a registered coprocessor).
        stranger = tmp_path / "stranger.key"
        write_private_key_file(stranger, Account.create())
        reverted = commit(key_file=str(stranger))
        assert not reverted.success
        statuses = store.get_commit_statuses(handles)
        assert all("NotCoprocessorTxSender" in (statuses[h].reason or "") for h in handles)
        assert sender_events(devnet, handles) == []

        # 3. The retry commits everything, once.
        ok = commit()
        assert ok.success
        assert sorted(e.material.handle for e in sender_events(devnet, handles)) == sorted(handles)
        statuses = store.get_commit_statuses(handles)
        assert all(statuses[h].status is CommitState.CONFIRMED for h in handles)
    finally:
        store.dispose()


class _OutageAfter(CommitGateway):
    """A real gateway client whose RPC 'goes down' after `ok_batches` batches were sent."""

    def __init__(self, inner: CommitGateway, ok_batches: int) -> None:
        self.inner, self.ok_batches = inner, ok_batches
        self.batches = 0

    def committed(
        self, handles: Sequence[bytes], first: int | None = None, last: int | None = None
    ) -> dict[bytes, OnChainCommit]:
        return self.inner.committed(handles, first, last)

    def add_many(self, materials: Sequence[Material]) -> list[TxOutcome]:
        self.batches += 1
        if self.batches > self.ok_batches:
            return [
                TxOutcome(TxStatus.FAILED, reason="RPC: ConnectionError", retryable=True)
                for _ in materials
            ]
        return self.inner.add_many(materials)


class _Blind(CommitGateway):
    """Does not see events (e.g. a pruned node): the revert must still count as done."""

    def __init__(self, inner: CommitGateway) -> None:
        self.inner = inner

    def committed(
        self, handles: Sequence[bytes], first: int | None = None, last: int | None = None
    ) -> dict[bytes, OnChainCommit]:
        return {}

    def add_many(self, materials: Sequence[Material]) -> list[TxOutcome]:
        return self.inner.add_many(materials)


def test_outage_mid_range_loses_nothing_and_duplicates_nothing(
    devnet: DevnetInfo, tmp_path: Path
) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        materials = [Material(handle(2), KEY_ID, os.urandom(32), os.urandom(32)) for _ in range(5)]
        handles = [m.handle for m in materials]
        account = SignerResource(tx_sender_key_file=devnet.tx_sender_key_file).tx_sender_account()
        settings = CommitSettings()
        config = gateway_resource(devnet).config()
        real = GatewayCommits.of(config, account, settings.lookback_blocks, store)
        flaky = _OutageAfter(real, ok_batches=1)
        report = commit_materials(store, flaky, materials, batch_size=2)
        assert report.sent == 2 and len(report.failed) == 3
        assert flaky.batches == 2  # stopped sending after the first unreachable batch
        statuses = store.get_commit_statuses(handles)
        assert [statuses[h].status for h in handles] == [CommitState.CONFIRMED] * 2 + [
            CommitState.FAILED
        ] * 3
        assert "not sent: gateway unreachable" in (statuses[handles[4]].reason or "")

        # A crash after sending: the store forgot, the chain did not. Nothing scans the gateway
        # before sending: the contract's CoprocessorAlreadyAdded at simulation says it is done,
        # and the earlier commit is then found in the look-back window for its block.
        for h in handles[:2]:
            store.set_commit_status(
                store.get_commit_statuses([h])[h].__class__(h, CommitState.SENT, None, None)
            )
        retry = commit_materials(store, real, materials, batch_size=2)
        assert retry.already_added == 2 and retry.sent == 3 and not retry.failed
        again = store.get_commit_statuses(handles[:2])
        assert all(again[h].gateway_block is not None for h in handles[:2])
        events = sender_events(devnet, handles)
        assert sorted(e.material.handle for e in events) == sorted(handles)
        assert {e.material.handle: e.material for e in events} == {m.handle: m for m in materials}

        # Without the event lookup, CoprocessorAlreadyAdded still counts as done.
        blank = Store.open(f"sqlite:///{tmp_path / 'blank.sqlite'}")
        try:
            blind = commit_materials(blank, _Blind(real), materials[:2])
            assert blind.already_added == 2 and not blind.failed
            assert len(sender_events(devnet, handles)) == 5
        finally:
            blank.dispose()
    finally:
        store.dispose()


def test_commits_through_a_provider_capping_log_spans(devnet: DevnetInfo, tmp_path: Path) -> None:
    """The gateway behind a provider that refuses eth_getLogs over more than 10 blocks (the
    devnet's gateway has many more): commits are decided without scanning the gateway's history,
    and the earlier commit of a handle the store forgot is found in the look-back window, in
    spans the provider accepts. (Before: every commit decision read from the gateway's start
    block to latest in one request, so every commit failed as 'gateway unreachable'.)"""
    proxy = RpcProxy(int(devnet.gateway_rpc_url.rsplit(":", 1)[1]))
    proxy.span_cap = 10
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        assert Web3(Web3.HTTPProvider(proxy.url)).eth.block_number > 10
        account = SignerResource(tx_sender_key_file=devnet.tx_sender_key_file).tx_sender_account()
        config = gateway_resource(devnet, proxy.url).config()
        client = GatewayCommits.of(config, account, CommitSettings().lookback_blocks, store)
        materials = [Material(handle(2), KEY_ID, os.urandom(32), os.urandom(32)) for _ in range(3)]
        report = commit_materials(store, client, materials)
        assert report.sent == 3 and not report.failed, report.failed
        forgot = materials[0].handle
        store.set_commit_status(CommitStatus(forgot, CommitState.SENT, None, None))
        again = commit_materials(store, client, materials)
        assert again.already_added == 1 and again.skipped_confirmed == 2 and not again.failed
        status = store.get_commit_statuses([forgot])[forgot]
        assert status.status is CommitState.CONFIRMED and status.gateway_block is not None
        assert proxy.requests["eth_getLogs"] > 1  # the look-back read in accepted spans
    finally:
        store.dispose()
        proxy.close()


def test_ciphertext_get_checks_the_gateway(
    devnet: DevnetInfo, keys: KeySet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = Store.open(url)
    assert keys.client_key is not None
    engine = keys.engine()
    ct64 = engine.compress(keys.client_key.encrypt(5, FheType.Uint8))
    ct128 = engine.squash(engine.decompress(ct64))
    good, forged, uncommitted = handle(2), handle(2), handle(2)
    try:
        for h in (good, forged, uncommitted):
            store.put_ciphertexts([Ciphertext(h, ct64, 2, KEY_ID, "computed")])
            store.put_ciphertexts128([(h, ct128)])
        account = SignerResource(tx_sender_key_file=devnet.tx_sender_key_file).tx_sender_account()
        client = GatewayCommits.of(gateway_resource(devnet).config(), account, 0, MemoryJournal())
        wrong = Material(forged, KEY_ID, os.urandom(32), os.urandom(32))
        sent = client.add_many([material(good, KEY_ID, ct64, ct128), wrong])
        assert [r.status for r in sent] == [TxStatus.CONFIRMED] * 2
    finally:
        store.dispose()

    def get(h: bytes, *extra: str) -> int:
        return main(
            ["ciphertext", "get", "0x" + h.hex(), "--database-url", url,
             "--gateway-rpc-url", devnet.gateway_rpc_url,
             "--commits-address", devnet.ciphertext_commits_address, *extra]
        )  # fmt: skip

    out = tmp_path / "out"
    assert get(good, "--out", str(out), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gateway"]["consensus"] and report["gateway"]["matches"]
    assert (out / f"0x{good.hex()}.ct64").read_bytes() == ct64
    assert (out / f"0x{good.hex()}.ct128").read_bytes() == ct128
    assert keys.client_key.decrypt_squashed((out / f"0x{good.hex()}.ct128").read_bytes(), 2) == 5

    assert get(forged) == 4
    assert "differ" in capsys.readouterr().err
    assert get(uncommitted) == 3
    assert "not committed on the gateway" in capsys.readouterr().err
    assert get(handle(2)) == 3
    assert "no ct64 in the store" in capsys.readouterr().err
    assert get(good, "--gateway-rpc-url", f"http://127.0.0.1:{free_port()}") == 1
    assert "cannot read the gateway" in capsys.readouterr().err


def test_real_host_range_end_to_end(
    devnet: DevnetInfo,
    keys: KeySet,
    instance: DagsterInstance,
    tmp_path: Path,
    s3: S3Backend,
    s3_endpoint: str,
) -> None:
    """Demo token traffic through the whole host range: events to commits on the gateway, and
    every allowed handle's objects, attested, in both object-store backends."""
    # Users no other test funds on the session devnet: their mints fall in this range, so the
    # transfer reads no balance that a range outside the test produced.
    records = run_token_traffic(devnet, transfers=1, users=OWN_USERS)
    assert [r.kind for r in records] == ["mint", "mint", "transfer"]
    rng = BlockRange(min(r.block_number for r in records), max(r.block_number for r in records))
    instance.add_dynamic_partitions(HOST_RANGES, [rng.key])
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    files = FileBackend(tmp_path / "objects")
    objects = {"objects": ObjectStoreResource(url=files.url)}
    res = resources(devnet, url, tmp_path) | objects
    # Kept after the commit: the same range is uploaded to a second backend below.
    res["commit_settings"] = CommitSettings(purge_ct128=False)
    everything = [host_ingest, ciphertexts, *COMMIT_ASSETS, *COMMIT_CHECKS, ciphertext_objects]
    result = materialize(everything, partition_key=rng.key, instance=instance, resources=res)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())

    def upload(backend: ObjectBackend, endpoint: str | None = None) -> dict[str, Any]:
        """`ciphertext_objects` of the range into `backend`; its figures."""
        store = ObjectStoreResource(url=backend.url, s3_endpoint_url=endpoint or "")
        done = materialize(
            [ciphertext_objects], partition_key=rng.key, instance=instance,
            resources=res | {"objects": store},
        )  # fmt: skip
        assert done.success
        mat = done.asset_materializations_for_node(node("ciphertext_objects"))[0]
        return {k: v.value for k, v in mat.metadata.items()}

    # The same range into the S3 server; a second pass over each backend rewrites nothing.
    assert upload(s3, s3_endpoint)["uploaded"] > 0
    assert upload(files)["uploaded"] == upload(s3, s3_endpoint)["uploaded"] == 0
    store = Store.open(url)
    try:
        allowed = store.allowed_handles_of_range(rng.key, chain_id=devnet.host_chain_id)
        assert allowed
        ct64 = store.get_ciphertexts(allowed)
        ct128 = store.get_ciphertexts128(allowed)
        assert set(ct64) == set(ct128) == set(allowed)
        events = {e.material.handle: e.material for e in sender_events(devnet, allowed)}
        assert events == {h: material(h, KEY_ID, ct64[h].ciphertext, ct128[h]) for h in allowed}
        assert keys.client_key is not None
        engine = keys.engine()
        signer = read_private_key_file(Path(devnet.signer_key_file)).address
        for h in allowed:
            plain = keys.client_key.decrypt(engine.decompress(ct64[h].ciphertext))
            assert keys.client_key.decrypt_squashed(ct128[h], ct64[h].fhe_type) == plain
            for backend in (files, s3):  # what a KMS fetches: both objects, attested by us
                got = fetch_verified(backend, h, [signer])
                assert (got.ct64, got.ct128) == (ct64[h].ciphertext, ct128[h])
    finally:
        store.dispose()


def test_gateway_reorg_dropping_commits_is_repaired_by_the_gateway_range(
    devnet: DevnetInfo,
    keys: KeySet,
    instance: DagsterInstance,
    store_url: str,
    tmp_path: Path,
) -> None:
    """#11: a gateway reorg replaces the blocks holding our commits by empty ones. The store
    still says confirmed; the gateway range run of those blocks (what the sensor requests as
    `…:reorg-<n>`) finds them gone and commits them again, once; a second run sends nothing."""
    store = Store.open(store_url)
    gw = devnet.gateway_rpc_url
    try:
        seeded = seed(store, keys, [(5, FheType.Uint8), (1, FheType.Bool)])
        handles = list(seeded.values)
        res = {**resources(devnet, store_url, tmp_path), "fhe": FheResource(threads=2)}
        snap = rpc_call(gw, "evm_snapshot")
        committed = materialize(
            [sns_ciphertexts, ciphertext_digests, NO_RETRY],
            partition_key=RANGE,
            instance=instance,
            resources=res,
        )
        assert committed.success
        blocks = [e.block_number for e in sender_events(devnet, handles)]
        assert len(blocks) == 2
        w3 = Web3(Web3.HTTPProvider(gw))
        head = w3.eth.block_number
        rpc_call(gw, "evm_revert", [snap])
        rpc_call(gw, "anvil_mine", [hex(head - w3.eth.block_number + 1)])
        assert sender_events(devnet, handles) == []  # the commit blocks are gone

        first = min(blocks) // 10 * 10
        key = f"{first:012d}-{first + 99:012d}"
        instance.add_dynamic_partitions(GATEWAY_RANGES, [key])

        def gateway_range() -> dict[str, Any]:
            result = materialize(
                GATEWAY_ASSETS, partition_key=key, instance=instance, resources=res
            )
            assert result.success
            mats = result.asset_materializations_for_node("commits_rechecked")
            return {k: v.value for m in mats for k, v in m.metadata.items()}

        rpc_call(gw, "anvil_mine", ["0x64"])  # the range complete
        meta = gateway_range()
        events = sender_events(devnet, handles)
        assert sorted(e.material.handle for e in events) == sorted(handles)  # one each
        assert (meta["commits_in_range"], meta["lost"], meta["sent"]) == (2, 2, 2)
        after = store.get_commit_statuses(handles)
        for e in events:
            st = after[e.material.handle]
            assert st.status is CommitState.CONFIRMED
            assert (st.tx_hash, st.gateway_block) == (e.tx_hash, e.block_number)

        nonce = sender_nonce(devnet)
        meta = gateway_range()
        assert sender_nonce(devnet) == nonce  # not one transaction
        assert (meta["lost"], meta["sent"]) == (0, 0)
        assert len(sender_events(devnet, handles)) == 2
    finally:
        store.dispose()
