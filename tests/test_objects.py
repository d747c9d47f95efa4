"""Object storage for the KMS: keys, attested metadata, idempotent uploads, a KMS's checks.

S3 runs against a real S3-compatible HTTP server on 127.0.0.1 (moto's ThreadedMotoServer, from
s3_fixtures), through boto3, as in production. The Dagster asset runs on real ciphertexts: test-key
encryptions compressed and squashed by the engine, stored as `ciphertexts` / `sns_ciphertexts` do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, instance_for_test, materialize
from eth_account import Account
from host_defs import HOST, HOST_RANGES, ciphertext_objects, node

from fhevm_dagster.cli import main
from fhevm_dagster.compute.keys import KeySet
from fhevm_dagster.compute.sns import squash_one
from fhevm_dagster.objects import (
    Action,
    Attestation,
    AttestationError,
    AttestationPayload,
    CiphertextFormat,
    FetchError,
    FileBackend,
    HandleObjects,
    ObjectBackend,
    ObjectConflict,
    S3Backend,
    StoredObject,
    ct64_key,
    ct128_digest_key,
    ct128_key,
    decide,
    fetch_verified,
    forget_handles,
    sign,
    upload_handles,
)
from fhevm_dagster.protocol.computations import AllowedHandle
from fhevm_dagster.protocol.digests import ciphertext_digest, material, sns_ciphertext_digest
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.resources.fhe import FheResource
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.signer import SignerResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Store
from fhevm_dagster.store.records import Ciphertext

RANGE = "000000000000-000000000099"
CHAIN_ID = 31337
SIGNER = Account.from_key("0x" + "11" * 32)
OTHER = Account.from_key("0x" + "22" * 32)


def handle(fhe_type: int) -> bytes:
    return os.urandom(21) + b"\xff" + CHAIN_ID.to_bytes(8, "big") + bytes([fhe_type, 0])


def item(size: int = 3000) -> HandleObjects:
    """A handle with random bytes: the object layer never looks inside a ciphertext."""
    ct64, ct128 = os.urandom(size), os.urandom(2 * size)
    return HandleObjects(material(handle(FheType.Uint8), 0, ct64, ct128), ct64, ct128)


def test_attestation_is_the_reference_encoding() -> None:
    # The reference crate's pinned vector (ciphertext-attestation sign.rs, v0.14.0).
    payload = AttestationPayload(
        bytes.fromhex("aa" * 32),
        7,
        bytes.fromhex("11" * 32),
        bytes.fromhex("22" * 32),
        CiphertextFormat.UNCOMPRESSED_ON_CPU,
        context_id=0,
    )
    assert payload.canonical_bytes().hex() == (
        "464845564d43544101" + "aa" * 32 + "00" * 31 + "07" + "00" * 32 + "11" * 32 + "22" * 32
        + "0a"
    )  # fmt: skip
    assert payload.canonical_digest().hex() == (
        "97f99a874a16f680d5c6b60b4cca7356877a78ce59f49872ad21030ebe6e0dd8"
    )
    att = sign(payload, SIGNER)
    wire = json.loads(att.to_json())
    assert list(wire) == [
        "version", "key_id", "ciphertext_digest", "sns_ciphertext_digest", "format", "signer",
        "signature",
    ]  # fmt: skip
    assert (wire["key_id"], wire["format"], wire["signer"]) == (
        "0x7",
        "uncompressed_on_cpu",
        SIGNER.address,
    )
    back = Attestation.from_json(att.to_json())
    back.verify(payload.handle, 0)
    # Every bound field flips recovery: another handle, context, digest or a swapped signer.
    with pytest.raises(AttestationError, match="signature does not match"):
        back.verify(bytes.fromhex("ff" * 32), 0)
    with pytest.raises(AttestationError, match="signature does not match"):
        back.verify(payload.handle, 1)
    forged = json.loads(att.to_json()) | {"ciphertext_digest": "0x" + "33" * 32}
    with pytest.raises(AttestationError, match="signature does not match"):
        Attestation.from_json(json.dumps(forged)).verify(payload.handle, 0)
    swapped = json.loads(att.to_json()) | {"signer": OTHER.address}
    with pytest.raises(AttestationError, match="signature does not match"):
        Attestation.from_json(json.dumps(swapped)).verify(payload.handle, 0)
    with pytest.raises(AttestationError, match="malformed"):
        Attestation.from_json('{"version": 1}')


def test_decide() -> None:
    it = item(100)
    payload = AttestationPayload(
        it.material.handle, 0, it.material.ciphertext_digest, it.material.sns_ciphertext_digest
    )
    att = sign(payload, SIGNER)
    meta = {"ct-attestation": att.to_json()}

    def run(obj: StoredObject | None) -> Action:
        return decide(obj, it.material.ciphertext_digest, payload, SIGNER.address).action

    assert run(None) is Action.UPLOAD
    assert run(StoredObject(it.ct64, meta)) is Action.SKIP
    assert run(StoredObject(it.ct64, {})) is Action.REATTEST
    other = sign(payload, OTHER)
    assert run(StoredObject(it.ct64, {"ct-attestation": other.to_json()})) is Action.REATTEST
    assert run(StoredObject(it.ct64 + b"\x00", meta)) is Action.CONFLICT


def _upload_twice_then_tamper(backend: ObjectBackend, raw_put: Any) -> None:
    items = [item(), item()]
    first = upload_handles(backend, items, SIGNER)
    assert (first.uploaded, first.skipped, first.reattested) == (6, 0, 0)
    for it in items:
        got = fetch_verified(backend, it.material.handle, [SIGNER.address])
        assert (got.ct64, got.ct128) == (it.ct64, it.ct128)
        assert got.attestation.ciphertext_digest == it.material.ciphertext_digest
        copy = backend.get(ct128_digest_key(it.material.sns_ciphertext_digest))
        assert copy is not None and copy.body == it.ct128
        obj = backend.get(ct64_key(it.material.handle))
        assert obj is not None
        meta = {k.lower(): v for k, v in obj.metadata.items()}
        assert meta["ct-format"] == "ct64_compressed"
        assert meta["key-id"] == "00" * 32 and meta["signer"] == SIGNER.address
        assert ct64_key(it.material.handle) == f"ct64/{it.material.handle.hex()}/1"
    # A re-run uploads nothing.
    again = upload_handles(backend, items, SIGNER)
    assert (again.uploaded, again.reattested, again.skipped, again.bytes_uploaded) == (0, 0, 6, 0)
    with pytest.raises(FetchError, match="not an allowed signer"):
        fetch_verified(backend, items[0].material.handle, [OTHER.address])

    # Tampered bytes under our key: the KMS refuses them, the uploader raises and keeps them.
    victim = items[0]
    good = backend.get(ct64_key(victim.material.handle))
    assert good is not None
    raw_put(
        ct64_key(victim.material.handle),
        good.body[:-1] + bytes([good.body[-1] ^ 0xFF]),
        good.metadata,
    )
    with pytest.raises(FetchError, match="bytes hash to"):
        fetch_verified(backend, victim.material.handle)
    with pytest.raises(ObjectConflict, match=victim.material.handle.hex()) as exc:
        upload_handles(backend, items, SIGNER)
    assert [(h, k) for h, k, _ in exc.value.conflicts] == [
        (victim.material.handle, ct64_key(victim.material.handle))
    ]
    kept = backend.get(ct64_key(victim.material.handle))
    assert kept is not None and kept.body != victim.ct64

    # A forged attestation (other bytes, attestation re-pointed at them, by another key naming us)
    # fails signature recovery.
    forged_body = os.urandom(len(victim.ct128))
    payload = AttestationPayload(
        victim.material.handle,
        0,
        victim.material.ciphertext_digest,
        sns_ciphertext_digest(forged_body),
    )
    fake = sign(payload, OTHER)
    fake_json = json.loads(fake.to_json()) | {"signer": SIGNER.address}
    raw_put(
        ct64_key(victim.material.handle), victim.ct64, {"ct-attestation": json.dumps(fake_json)}
    )
    raw_put(
        ct128_key(victim.material.handle), forged_body, {"ct-attestation": json.dumps(fake_json)}
    )
    with pytest.raises(FetchError, match="attestation rejected: signature does not match"):
        fetch_verified(backend, victim.material.handle)
    # Our ct64 with a stale attestation is re-attested; the foreign ct128 stays an alarm.
    with pytest.raises(ObjectConflict, match=ct128_key(victim.material.handle)):
        upload_handles(backend, items, SIGNER)
    assert fetch_verified(backend, items[1].material.handle).ct64 == items[1].ct64
    with pytest.raises(FetchError, match="no object") as absent:
        fetch_verified(backend, handle(FheType.Bool))
    assert absent.value.absent

    # A reset chain reuses its handles: forgetting one (twice is harmless) removes its
    # handle-keyed objects and nothing else; the upload then succeeds where it was an alarm.
    assert forget_handles(backend, [victim.material.handle, victim.material.handle]) == 2
    assert backend.get(ct64_key(victim.material.handle)) is None
    assert backend.get(ct128_key(victim.material.handle)) is None
    assert backend.get(ct128_digest_key(victim.material.sns_ciphertext_digest)) is not None
    assert fetch_verified(backend, items[1].material.handle).ct64 == items[1].ct64
    assert upload_handles(backend, items, SIGNER).uploaded == 2
    assert fetch_verified(backend, victim.material.handle).ct64 == victim.ct64


def test_file_backend(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "objects")
    _upload_twice_then_tamper(backend, backend.put)


def test_s3_backend(s3: S3Backend) -> None:
    def raw_put(key: str, body: bytes, metadata: dict[str, str]) -> None:
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body, Metadata=metadata)

    _upload_twice_then_tamper(s3, raw_put)


# --- the asset and the CLI on real ciphertexts ------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return FheResource().key_set(with_client_key=True)


def seed(store: Store, keys: KeySet) -> dict[bytes, tuple[int, int]]:
    """Two allowed results of RANGE as the pipeline leaves them: ct64, ct128 and digests."""
    assert keys.client_key is not None
    engine = keys.engine()
    values = {handle(FheType.Uint8): (42, FheType.Uint8), handle(FheType.Bool): (1, FheType.Bool)}
    cts = {h: engine.compress(keys.client_key.encrypt(v, t)) for h, (v, t) in values.items()}
    store.put_ciphertexts([Ciphertext(h, cts[h], values[h][1], 0, "computed") for h in values])
    ct128 = {h: squash_one(engine, ct) for h, ct in cts.items()}
    store.put_ciphertexts128(list(ct128.items()))
    store.put_digests([material(h, 0, cts[h], ct128[h]) for h in values])
    tx = os.urandom(32)
    allowed = [
        AllowedHandle(h, "0x" + "22" * 20, "account", "0x" + "11" * 20, tx, 5, i)
        for i, h in enumerate(values)
    ]
    store.write_range(CHAIN_ID, RANGE, [], allowed)
    return values


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        inst.add_dynamic_partitions(HOST_RANGES, [RANGE])
        yield inst


@pytest.mark.fhe
def test_asset_uploads_range_once_and_cli_reads_it(
    keys: KeySet,
    instance: DagsterInstance,
    s3: S3Backend,
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path}/store.sqlite"
    store = Store.open(url)
    values = seed(store, keys)
    key_file = tmp_path / "signer.key"
    key_file.write_text("0x" + "11" * 32)
    key_file.chmod(0o600)
    resources = {
        HOST: HostChainResource(chain_id=CHAIN_ID, rpc_url="http://127.0.0.1:1"),  # no RPC
        "store": StoreResource(database_url=url),
        "signer": SignerResource(signer_key_file=str(key_file)),
        "objects": ObjectStoreResource(url=s3.url, s3_endpoint_url=s3_endpoint),
    }

    def run() -> dict[str, Any]:
        result = materialize(
            [ciphertext_objects], partition_key=RANGE, instance=instance, resources=resources
        )
        assert result.success
        mat = result.asset_materializations_for_node(node("ciphertext_objects"))[0]
        return {k: v.value for k, v in mat.metadata.items()}

    first = run()
    assert (first["uploaded"], first["skipped"], first["dagster/row_count"]) == (6, 0, 2)
    assert first["signer"] == SIGNER.address
    assert first["digest_commits"] == (
        f"/assets/{HOST}/digest_commits?view=partitions&partition={RANGE}"
    )
    ct64 = store.get_ciphertexts(list(values))
    ct128 = store.get_ciphertexts128(list(values))
    for h, (value, fhe_type) in values.items():
        got = fetch_verified(s3, h, [SIGNER.address])
        assert (got.ct64, got.ct128) == (ct64[h].ciphertext, ct128[h])  # bytes in = bytes out
        assert keys.client_key is not None
        assert keys.client_key.decrypt_squashed(got.ct128, fhe_type) == value
    second = run()
    assert (second["uploaded"], second["skipped"], second["bytes_uploaded"]) == (0, 6, 0)

    # The KMS's view through the CLI (offline: no gateway in this test).
    h = next(iter(values))
    args = ["ciphertext", "get", "0x" + h.hex(), "--source", "objects", "--object-store", s3.url]
    args += ["--s3-endpoint", s3_endpoint, "--signer", SIGNER.address, "--no-gateway", "--json"]
    capsys.readouterr()
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ciphertext_digest"] == "0x" + ciphertext_digest(ct64[h].ciphertext).hex()
    assert report["attestation"]["verified"] is True

    # Tampering: the CLI exits 4 naming the object, the asset fails naming the handle.
    s3.client.put_object(Bucket=s3.bucket, Key=ct128_key(h), Body=b"\x00" + ct128[h][1:])
    assert main(args) == 4
    assert ct128_key(h) in capsys.readouterr().err
    result = materialize(
        [ciphertext_objects],
        partition_key=RANGE,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node(node("ciphertext_objects"))
    assert failure is not None and h.hex() in str(failure.user_failure_data or failure.error)
    store.dispose()
