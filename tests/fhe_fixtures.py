"""The committed FHE test keys as session fixtures, through the package's own loading
(`FheResource`, one key set per process): `keyset`, `engine`, `client_key`.

tests/conftest.py registers them as a plugin; a test using them is marked `fhe` (tiers.py).
"""

from __future__ import annotations

import pytest
import tfhe_py

from fhevm_dagster.compute.keys import KeySet
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource


@pytest.fixture(scope="session")
def keyset() -> KeySet:
    return FheResource(key_dir=str(DEVNET_TEST_KEYS)).key_set(with_client_key=True)


@pytest.fixture(scope="session")
def engine(keyset: KeySet) -> tfhe_py.Engine:
    return keyset.engine()


@pytest.fixture(scope="session")
def client_key(keyset: KeySet) -> tfhe_py.ClientKey:
    assert keyset.client_key is not None
    return keyset.client_key
