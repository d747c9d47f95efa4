"""Encrypted inputs: the client side, verification with metadata, and the real JS client."""

from __future__ import annotations

import json

import pytest
import tfhe_py
from conftest import FIXTURES

from fhevm_dagster.compute.keys import KeySet
from fhevm_dagster.protocol.types import FheType as T

METADATA = bytes(range(92))
OTHER_METADATA = bytes(range(1, 93))
SEED = b"blob-hash-stand-in"


def test_python_client_list_verifies_and_expands(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    assert keyset.client_key is not None
    values = [(1, T.Bool), (200, T.Uint8), ((1 << 64) - 1, T.Uint64), ((1 << 160) - 1, T.Uint160),
              ((1 << 256) - 1, T.Uint256)]  # fmt: skip
    data = tfhe_py.build_proven_list(
        keyset.public_key, keyset.crs, [(v, int(t)) for v, t in values], METADATA
    )
    cts = engine.verify_and_expand(data, METADATA, SEED)
    assert [(keyset.client_key.decrypt(c), c.fhe_type) for c in cts] == values
    # Expansion is seeded: the same list and seed give the same stored bytes.
    again = engine.verify_and_expand(data, METADATA, SEED)
    assert [engine.compress(c) for c in cts] == [engine.compress(c) for c in again]


def test_other_metadata_is_rejected(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    data = tfhe_py.build_proven_list(keyset.public_key, keyset.crs, [(5, int(T.Uint8))], METADATA)
    with pytest.raises(tfhe_py.TfheError, match="input proof rejected"):
        engine.verify_and_expand(data, OTHER_METADATA, SEED)
    with pytest.raises(tfhe_py.TfheError, match="92 bytes"):
        engine.verify_and_expand(data, METADATA[:91], SEED)


def test_proof_compute_load_is_forbidden(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    data = tfhe_py.build_proven_list(
        keyset.public_key, keyset.crs, [(5, int(T.Uint8))], METADATA, compute_load="proof"
    )
    with pytest.raises(tfhe_py.TfheError, match="non-conformant"):
        engine.verify_and_expand(data, METADATA, SEED)


def test_more_than_255_entries_is_rejected(keyset: KeySet) -> None:
    with pytest.raises(tfhe_py.TfheError, match="at most 255 entries"):
        tfhe_py.build_proven_list(keyset.public_key, keyset.crs, [(1, 0)] * 256, METADATA)


@pytest.mark.parametrize("cut", [0, 10, 1000, -1])
def test_garbage_and_truncated_lists(keyset: KeySet, engine: tfhe_py.Engine, cut: int) -> None:
    data = tfhe_py.build_proven_list(keyset.public_key, keyset.crs, [(5, int(T.Uint8))], METADATA)
    with pytest.raises(tfhe_py.TfheError, match="malformed or non-conformant"):
        engine.verify_and_expand(data[:cut], METADATA, SEED)


def test_list_made_by_the_js_client(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    """node-tfhe built this list against the committed public key and CRS (make_js_inputs.mjs)."""
    assert keyset.client_key is not None
    meta = json.loads((FIXTURES / "js_input_list.json").read_text())
    data = (FIXTURES / "js_input_list.bin").read_bytes()
    metadata = bytes.fromhex(meta["metadata"])
    cts = engine.verify_and_expand(data, metadata, SEED)
    got = [[str(keyset.client_key.decrypt(c)), c.fhe_type] for c in cts]
    assert got == meta["values"]
    with pytest.raises(tfhe_py.TfheError, match="input proof rejected"):
        engine.verify_and_expand(data, OTHER_METADATA, SEED)
