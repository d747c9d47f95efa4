"""Shared fixtures of the binding tests: the committed test key set and an engine on it.

The client key, public key and CRS are committed (small); the 1.6 GB server key is derived from
the client key on first use and cached outside the clone (see `fhevm_dagster.compute.keys`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tfhe_py

from fhevm_dagster.compute.keys import KeySet, load_key_dir

FIXTURES = Path(__file__).parent / "fixtures"
TEST_KEYS = FIXTURES / "keys"


@pytest.fixture(scope="session")
def keyset() -> KeySet:
    return load_key_dir(TEST_KEYS, with_client_key=True)


@pytest.fixture(scope="session")
def engine(keyset: KeySet) -> tfhe_py.Engine:
    return keyset.engine()


@pytest.fixture(scope="session")
def client_key(keyset: KeySet) -> tfhe_py.ClientKey:
    assert keyset.client_key is not None
    return keyset.client_key
