"""The compressed server key: the form a GPU engine expands (`Engine.cuda`).

Seeded, it is the same on every machine, and its decompression is the seeded server key of the CPU
engine: the CPU and GPU coprocessors of a devnet compute with one key, as those of a key set made by
`fhevm-dagster keys generate` do.
"""

from __future__ import annotations

import hashlib

import pytest
import tfhe_py
from support import SEED, KeySet

U64 = 5


def test_the_seed_derives_the_same_compressed_key_every_time(
    client_key: tfhe_py.ClientKey, compressed: tfhe_py.CompressedServerKey
) -> None:
    """`compressed` is the cached key: derived by an earlier run, or earlier in this session."""
    again = client_key.compressed_server_key(SEED)
    assert again.to_bytes() == compressed.to_bytes()


def test_the_cached_server_key_is_the_decompressed_compressed_key(
    keyset: KeySet, decompressed: tfhe_py.ServerKey
) -> None:
    """The key every CPU test computes with (cached, maybe by an earlier run) and the GPU's key
    decompressed in this session: one key, or CPU and GPU coprocessors disagree on every byte."""
    expected = hashlib.sha256(decompressed.to_bytes()).digest()
    assert hashlib.sha256(keyset.server_key.to_bytes()).digest() == expected


def test_a_cpu_engine_computes_with_the_decompressed_key(
    keyset: KeySet, client_key: tfhe_py.ClientKey, decompressed: tfhe_py.ServerKey
) -> None:
    engine = tfhe_py.Engine(decompressed, keyset.public_key, keyset.crs)
    assert engine.device == "cpu"
    a = engine.compress(client_key.encrypt(1000, U64))
    b = engine.compress(client_key.encrypt(234, U64))
    add = engine.execute(0, [engine.decompress(a), engine.decompress(b)], U64, rerandomize=True)
    assert client_key.decrypt(engine.decompress(engine.compress(add))) == 1234
    assert client_key.decrypt_squashed(engine.squash(add), U64) == 1234


def test_cuda_is_refused_with_its_reason(
    keyset: KeySet, compressed: tfhe_py.CompressedServerKey
) -> None:
    """A CPU build names the missing feature; a CUDA build without a GPU says none is visible."""
    if tfhe_py.CUDA and tfhe_py.cuda_device_count() > 0:
        engine = tfhe_py.Engine.cuda(compressed, keyset.public_key, keyset.crs)
        assert engine.device.startswith("cuda:")
        return
    reason = "no CUDA device is visible" if tfhe_py.CUDA else "no CUDA backend"
    with pytest.raises(tfhe_py.TfheError, match=reason):
        tfhe_py.Engine.cuda(compressed, keyset.public_key, keyset.crs)
