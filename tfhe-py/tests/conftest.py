"""Shared fixtures of the binding tests: the committed test key set and an engine on it (loaded
by `support`, with tfhe_py alone: these tests do not import the fhevm_dagster package)."""

from __future__ import annotations

import pytest
import tfhe_py
from support import KeySet, load_test_keys


@pytest.fixture(scope="session")
def keyset() -> KeySet:
    return load_test_keys()


@pytest.fixture(scope="session")
def engine(keyset: KeySet) -> tfhe_py.Engine:
    return keyset.engine()


@pytest.fixture(scope="session")
def client_key(keyset: KeySet) -> tfhe_py.ClientKey:
    return keyset.client_key
