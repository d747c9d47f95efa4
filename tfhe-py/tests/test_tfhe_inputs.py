"""Encrypted inputs: the client side, verification with metadata, and the real JS client."""

from __future__ import annotations

import json

import pytest
import tfhe_py
from support import FIXTURES, KeySet
from support import FheType as T

METADATA = bytes(range(92))
OTHER_METADATA = bytes(range(1, 93))
BLOB_HASH = bytes(range(100, 132))


def handle_hashes(n: int) -> list[bytes]:
    return [bytes([i]) * 32 for i in range(n)]


def test_python_client_list_verifies_and_expands(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    assert keyset.client_key is not None
    values = [(1, T.Bool), (200, T.Uint8), ((1 << 64) - 1, T.Uint64), ((1 << 160) - 1, T.Uint160),
              ((1 << 256) - 1, T.Uint256)]  # fmt: skip
    data = tfhe_py.build_proven_list(
        keyset.public_key, keyset.crs, [(v, int(t)) for v, t in values], METADATA
    )
    cts = engine.verify_and_expand(data, METADATA)
    assert [(keyset.client_key.decrypt(c), c.fhe_type) for c in cts] == values
    # Re-randomization is seeded by the blob hash and the handle hashes: same inputs, same bytes;
    # another handle hash changes the bytes but not the plaintexts.
    fresh = engine.rerandomize_inputs(cts, BLOB_HASH, handle_hashes(len(cts)))
    again = engine.rerandomize_inputs(
        engine.verify_and_expand(data, METADATA), BLOB_HASH, handle_hashes(len(cts))
    )
    assert [engine.compress(c) for c in fresh] == [engine.compress(c) for c in again]
    other = engine.rerandomize_inputs(cts, BLOB_HASH, [b"\xee" * 32] * len(cts))
    assert [engine.compress(c) for c in other] != [engine.compress(c) for c in fresh]
    assert [keyset.client_key.decrypt(c) for c in other] == [v for v, _ in values]
    with pytest.raises(tfhe_py.TfheError, match="handle hashes"):
        engine.rerandomize_inputs(cts, BLOB_HASH, handle_hashes(1))


def test_retired_types_in_a_list_are_expanded(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    """The reference accepts Uint4 and Uint512/1024/2048 entries (extract_ct_list): so do we."""
    assert keyset.client_key is not None
    values = [(9, T.Uint4), ((1 << 512) - 3, T.Uint512)]
    data = tfhe_py.build_proven_list(
        keyset.public_key, keyset.crs, [(v, int(t)) for v, t in values], METADATA
    )
    cts = engine.rerandomize_inputs(
        engine.verify_and_expand(data, METADATA), BLOB_HASH, handle_hashes(2)
    )
    assert [(keyset.client_key.decrypt(c), c.fhe_type) for c in cts] == values
    stored = [engine.decompress(engine.compress(c)) for c in cts]
    assert [keyset.client_key.decrypt(c) for c in stored] == [v for v, _ in values]


def test_empty_list_verifies_to_no_entries(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    data = tfhe_py.build_proven_list(keyset.public_key, keyset.crs, [], METADATA)
    assert engine.verify_and_expand(data, METADATA) == []


def test_other_metadata_is_rejected(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    data = tfhe_py.build_proven_list(keyset.public_key, keyset.crs, [(5, int(T.Uint8))], METADATA)
    with pytest.raises(tfhe_py.TfheError, match="input proof rejected"):
        engine.verify_and_expand(data, OTHER_METADATA)
    with pytest.raises(tfhe_py.TfheError, match="92 bytes"):
        engine.verify_and_expand(data, METADATA[:91])


def test_proof_compute_load_is_forbidden(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    data = tfhe_py.build_proven_list(
        keyset.public_key, keyset.crs, [(5, int(T.Uint8))], METADATA, compute_load="proof"
    )
    with pytest.raises(tfhe_py.TfheError, match="non-conformant"):
        engine.verify_and_expand(data, METADATA)


def test_more_than_255_entries_is_rejected(keyset: KeySet) -> None:
    with pytest.raises(tfhe_py.TfheError, match="at most 255 entries"):
        tfhe_py.build_proven_list(keyset.public_key, keyset.crs, [(1, 0)] * 256, METADATA)


@pytest.mark.parametrize("cut", [0, 10, 1000, -1])
def test_garbage_and_truncated_lists(keyset: KeySet, engine: tfhe_py.Engine, cut: int) -> None:
    data = tfhe_py.build_proven_list(keyset.public_key, keyset.crs, [(5, int(T.Uint8))], METADATA)
    with pytest.raises(tfhe_py.TfheError, match="malformed or non-conformant"):
        engine.verify_and_expand(data[:cut], METADATA)


def test_list_made_by_the_js_client(keyset: KeySet, engine: tfhe_py.Engine) -> None:
    """node-tfhe built this list against the committed public key and CRS (make_js_inputs.mjs)."""
    assert keyset.client_key is not None
    meta = json.loads((FIXTURES / "js_input_list.json").read_text())
    data = (FIXTURES / "js_input_list.bin").read_bytes()
    metadata = bytes.fromhex(meta["metadata"])
    cts = engine.verify_and_expand(data, metadata)
    got = [[str(keyset.client_key.decrypt(c)), c.fhe_type] for c in cts]
    assert got == meta["values"]
    with pytest.raises(tfhe_py.TfheError, match="input proof rejected"):
        engine.verify_and_expand(data, OTHER_METADATA)
