"""The binding's operators against our plaintext oracle and opcode table, where the golden vectors
do not pin their behaviour down.

Every operator of SPEC §4 on every type it allows (edge values: 0, max, wrap-around, shift amounts
at or beyond the width, scalars wider than the operand) is checked in
tests/test_reference_vectors.py: the same cases, through the range pipeline's scheduler step,
against the plaintext oracle, the reference coprocessor's plaintext and its ct64 bytes. Here:
Bool scalars, Rand's determinism per seed, and the empty Sum and IsIn.
"""

from __future__ import annotations

import pytest
import tfhe_py

from fhevm_dagster.compute.oracle import OracleOperand, Plain, evaluate
from fhevm_dagster.protocol.opcodes import OPERATORS, Operator, OpKind, operators_of
from fhevm_dagster.protocol.types import FheType

Operand = tuple[int, FheType] | bytes
T = FheType
RAND_TYPES = sorted(OPERATORS[Operator.Rand].out_types)
RAND_BOUNDED_TYPES = sorted(OPERATORS[Operator.RandBounded].out_types)
BOOL_BINARY = [op for op in operators_of(OpKind.BINARY) if T.Bool in OPERATORS[op].in_types]


def maxv(t: FheType) -> int:
    return (1 << t.bits) - 1


def be(value: int) -> bytes:
    return value.to_bytes(32, "big")


def run(
    engine: tfhe_py.Engine,
    client_key: tfhe_py.ClientKey,
    op: Operator,
    operands: list[Operand],
    result_type: FheType | None = None,
) -> tuple[Plain, tfhe_py.Ciphertext]:
    fhe: list[tfhe_py.Ciphertext | bytes] = []
    plain: list[OracleOperand] = []
    for o in operands:
        if isinstance(o, bytes):
            fhe.append(o)
            plain.append(o)
        else:
            value, t = o
            fhe.append(client_key.encrypt(value, t))
            plain.append(Plain(value, t))
    expected = evaluate(op, plain, result_type)
    ct = engine.execute(op, fhe, None if result_type is None else int(result_type))
    assert ct.fhe_type == expected.fhe_type
    return expected, ct


@pytest.mark.parametrize("op", BOOL_BINARY, ids=lambda op: op.name)
def test_bool_scalar_is_true_when_any_byte_is_nonzero(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, op: Operator
) -> None:
    """SPEC §4: the reference's `arr_non_zero`, not the last byte (0x0100 is true)."""
    expected, ct = run(engine, client_key, op, [(1, T.Bool), be(0x0100)])
    truth = {Operator.BitAnd: 1, Operator.BitOr: 1, Operator.BitXor: 0, Operator.Eq: 1,
             Operator.Ne: 0}  # fmt: skip
    assert client_key.decrypt(ct) == expected.value == truth[op]


@pytest.mark.parametrize("t", RAND_TYPES, ids=lambda t: t.name)
def test_rand_is_deterministic_per_seed(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType
) -> None:
    seed = bytes(range(16))
    a = client_key.decrypt(engine.execute(Operator.Rand, [seed], int(t)))
    b = client_key.decrypt(engine.execute(Operator.Rand, [seed], int(t)))
    assert a == b
    assert 0 <= a <= maxv(t)


def test_rand_differs_between_seeds(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey) -> None:
    values = {
        client_key.decrypt(engine.execute(Operator.Rand, [bytes([i]) * 16], int(T.Uint64)))
        for i in range(3)
    }
    assert len(values) == 3


@pytest.mark.parametrize("t", RAND_BOUNDED_TYPES, ids=lambda t: t.name)
def test_rand_bounded_stays_below_the_bound(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType
) -> None:
    bound = be(1 << 5)
    seed = b"\x07" * 16
    a = client_key.decrypt(engine.execute(Operator.RandBounded, [seed, bound], int(t)))
    b = client_key.decrypt(engine.execute(Operator.RandBounded, [seed, bound], int(t)))
    assert a == b
    assert 0 <= a < 32


def test_empty_sum_is_a_trivial_zero(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey) -> None:
    ct = engine.execute(Operator.Sum, [], int(T.Uint32))
    assert ct.fhe_type == T.Uint32
    assert client_key.decrypt(ct) == 0


def test_is_in_empty_set_is_false(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey) -> None:
    ct = engine.execute(Operator.IsIn, [client_key.encrypt(3, T.Uint8)], int(T.Bool))
    assert client_key.decrypt(ct) == 0
