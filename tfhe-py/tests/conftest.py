"""Shared fixtures of the binding tests: the committed test key set and an engine on it (loaded
by `support`, with tfhe_py alone: these tests do not import the fhevm_dagster package).

The compressed server key and its decompression are made once per session: deriving a server key
takes about 40 s, decompressing one 7 s and serializing the 1.6 GB result 20 s, and the tests that
need them live in two modules (test_tfhe_compressed_key, test_tfhe_serialization).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tfhe_py
from support import KeySet, compressed_server_key, load_test_keys


@pytest.fixture(scope="session")
def keyset() -> KeySet:
    return load_test_keys()


@pytest.fixture(scope="session")
def engine(keyset: KeySet) -> tfhe_py.Engine:
    return keyset.engine()


@pytest.fixture(scope="session")
def client_key(keyset: KeySet) -> tfhe_py.ClientKey:
    return keyset.client_key


@pytest.fixture(scope="session")
def compressed() -> tfhe_py.CompressedServerKey:
    """The compressed server key the seed derives (cached by `support`)."""
    return compressed_server_key()


@pytest.fixture(scope="session")
def compressed_file(
    compressed: tfhe_py.CompressedServerKey, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`compressed`, saved to a file (test_tfhe_serialization reads it back)."""
    path = tmp_path_factory.mktemp("compressed") / "compressed_server_key.bin"
    compressed.save(path)
    return path


@pytest.fixture(scope="session")
def decompressed(compressed_file: Path) -> tfhe_py.ServerKey:
    """The session's one decompression: of `compressed` as read back from its file. That it is
    the seeded server key is test_tfhe_compressed_key's to prove; that the file holds the same
    bytes as `compressed`, test_tfhe_serialization's."""
    return tfhe_py.CompressedServerKey.load(compressed_file).decompress()
