"""The protocol table against the binding's copy of it: fast, no FHE keys, no devnet.

`protocol.opcodes` and `protocol.types` are the one source of the operator and type tables. The
TFHE-rs binding keeps its own copy, because Rust matches on it (tfhe-py/src/ops.rs `Op`, ct.rs
`FheType`), and exposes it as `tfhe_py.opcode_names()` and `tfhe_py.fhe_type_names()`. Both copies
hold the same 31 opcodes and 12 types; entries that one side could be expected to lack:

- The retired types (Uint4, Uint512, Uint1024, Uint2048) are in both tables: input lists may still
  carry them, so the binding expands, stores, squashes and decrypts them, but no operator takes or
  makes one (checked below on the Python table, and against the binding operator by operator in
  tests/test_tfhe_type_table.py).
- Sum, IsIn and MulDiv (28..30) are in both although host-contracts 0.10.0 has no such events
  (`OpSpec.newer`): newer executors emit them and the binding computes them.

`tfhe-py/tests/support.py` keeps a third copy (the types and the opcodes it calls), because the
binding tests run without this package; it is held to the protocol table here, and so is the name
under which it caches the derived server key (the package's, so both share one derivation).
"""

from __future__ import annotations

import sys
from pathlib import Path

import tfhe_py

from fhevm_dagster.compute.keys import CLIENT_KEY, derived_server_key_path
from fhevm_dagster.protocol.handles import MAX_INPUTS
from fhevm_dagster.protocol.opcodes import (
    HOST_OPERATORS,
    MAX_SUM_VALUES,
    MAX_WIDE_VALUES,
    OPERATORS,
    Operator,
    max_values,
)
from fhevm_dagster.protocol.types import HOST_TYPES, RETIRED_TYPES, FheType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tfhe-py" / "tests"))
import support


def test_opcode_names_are_the_operator_table() -> None:
    assert tfhe_py.opcode_names() == {int(op): spec.event for op, spec in OPERATORS.items()}


def test_fhe_type_names_are_the_type_table() -> None:
    assert tfhe_py.fhe_type_names() == {int(t): t.name for t in FheType}


def test_operators_take_and_make_the_host_types_only() -> None:
    used = frozenset().union(*(s.in_types | s.out_types for s in OPERATORS.values()))
    assert used == HOST_TYPES == frozenset(FheType) - RETIRED_TYPES
    assert {op for op in Operator if op not in HOST_OPERATORS} == {
        Operator.Sum,
        Operator.IsIn,
        Operator.MulDiv,
    }


def test_sum_and_is_in_limits_are_the_bindings() -> None:
    """The binding counts values of 64 bits or more as wide (ops.rs `check_count`)."""
    assert (tfhe_py.MAX_SUM_VALUES, tfhe_py.MAX_WIDE_VALUES) == (MAX_SUM_VALUES, MAX_WIDE_VALUES)
    for op in (Operator.Sum, Operator.IsIn):
        for t in OPERATORS[op].in_types:
            wide = t.bits >= 64
            assert max_values(t) == (MAX_WIDE_VALUES if wide else MAX_SUM_VALUES), (op, t)


def test_input_list_limits_are_the_bindings() -> None:
    assert tfhe_py.MAX_INPUT_ENTRIES == MAX_INPUTS
    # One proof covers a list of up to CRS_MAX_BITS bits: at least one value of the widest type.
    assert max(t.bits for t in FheType) <= tfhe_py.CRS_MAX_BITS


def test_the_binding_tests_copy_is_the_protocol_table() -> None:
    assert {t.name: int(t) for t in support.FheType} == {t.name: int(t) for t in FheType}
    assert {t.bits for t in support.FheType} == {t.bits for t in FheType}
    assert {t.name for t in support.HOST_TYPES} == {t.name for t in HOST_TYPES}
    for op in support.Operator:
        assert int(Operator[op.name]) == int(op), op.name


def test_the_binding_tests_cache_their_server_key_where_the_package_does() -> None:
    expected = derived_server_key_path(support.TEST_KEYS / CLIENT_KEY, support.SEED)
    assert support._cached("decompressed") == expected
