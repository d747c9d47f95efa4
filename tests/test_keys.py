"""Key directories: what loads, from which form of the server key, and what is refused by name.

A key set may ship `server_key.bin`, only `compressed_server_key.bin` (decompressed on the CPU,
expanded on a GPU), or a client key and a seed (the devnet); all three must give one server key,
or the coprocessors of a network disagree on every byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import tfhe_py

from fhevm_dagster.compute.keys import (
    CLIENT_KEY,
    COMPRESSED_SERVER_KEY,
    CRS,
    METADATA,
    PUBLIC_KEY,
    KeySetError,
    cached_compressed_server_key,
    decompression_path,
    generate_key_dir,
    load_cuda_engine,
    load_key_dir,
)
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS

U64 = 5


def public_parts(directory: Path) -> None:
    """Empty public key and CRS files (read only after the checks), this build's metadata."""
    (directory / PUBLIC_KEY).write_bytes(b"")
    (directory / CRS).write_bytes(b"")
    (directory / METADATA).write_text(json.dumps({"parameter_set": tfhe_py.PARAMETER_SET}))


def test_a_missing_public_part_is_named(tmp_path: Path) -> None:
    (tmp_path / PUBLIC_KEY).write_bytes(b"")
    with pytest.raises(KeySetError, match=r"crs\.bin is missing .*keys generate"):
        load_key_dir(tmp_path)


def test_keys_of_another_parameter_set_are_refused(tmp_path: Path) -> None:
    public_parts(tmp_path)
    (tmp_path / METADATA).write_text(json.dumps({"parameter_set": "PARAM_MESSAGE_2_CARRY_2"}))
    with pytest.raises(KeySetError, match="holds keys of PARAM_MESSAGE_2_CARRY_2, this build uses"):
        load_key_dir(tmp_path)


def test_a_client_key_without_a_seed_is_not_a_server_key(tmp_path: Path) -> None:
    public_parts(tmp_path)
    (tmp_path / CLIENT_KEY).write_bytes(b"")
    with pytest.raises(KeySetError, match="names no server_key_seed: a server key derived at"):
        load_key_dir(tmp_path)
    with pytest.raises(KeySetError, match=r"has no compressed_server_key\.bin: a GPU engine"):
        load_cuda_engine(tmp_path)


def test_a_directory_without_any_server_key_is_refused(tmp_path: Path) -> None:
    public_parts(tmp_path)
    with pytest.raises(KeySetError, match=r"neither server_key\.bin, compressed_server_key"):
        load_key_dir(tmp_path)


def test_generation_never_overwrites_a_key_set(tmp_path: Path) -> None:
    (tmp_path / CLIENT_KEY).write_bytes(b"existing")
    with pytest.raises(KeySetError, match="already holds keys"):
        generate_key_dir(tmp_path)
    assert (tmp_path / CLIENT_KEY).read_bytes() == b"existing"


def _digest(key: tfhe_py.ServerKey) -> bytes:
    return hashlib.sha256(key.to_bytes()).digest()


@pytest.mark.fhe
def test_a_key_set_shipped_compressed_computes_with_the_same_key(tmp_path: Path) -> None:
    """Only the compressed server key (444 MB, no seed): the CPU engine computes with its
    decompression, the devnet's own server key, so its bytes agree with every other coprocessor.
    The decompression is cached by the compressed key's digest; a machine that derived the
    seeded key holds it already (one file, hard-linked), so this load decompresses nothing."""
    meta = json.loads((DEVNET_TEST_KEYS / METADATA).read_text())
    seed = int(meta.pop("server_key_seed"))
    for name in (CLIENT_KEY, PUBLIC_KEY, CRS):
        shutil.copy(DEVNET_TEST_KEYS / name, tmp_path / name)
    (tmp_path / METADATA).write_text(json.dumps(meta))
    cached_compressed_server_key(DEVNET_TEST_KEYS / CLIENT_KEY, seed).save(
        tmp_path / COMPRESSED_SERVER_KEY
    )

    shipped = load_key_dir(tmp_path, with_client_key=True)
    assert _digest(shipped.server_key) == _digest(load_key_dir(DEVNET_TEST_KEYS).server_key)
    assert decompression_path(tmp_path / COMPRESSED_SERVER_KEY).exists()
    client, engine = shipped.client_key, shipped.engine()
    assert client is not None
    a = engine.compress(client.encrypt(1000, U64))
    b = engine.compress(client.encrypt(234, U64))
    add = engine.execute(0, [engine.decompress(a), engine.decompress(b)], U64, rerandomize=True)
    assert client.decrypt(add) == 1234
