"""Every operator of SPEC §4 on every type it allows, against the plaintext oracle.

Each case encrypts its operands with the test client key, evaluates through the opcode dispatcher
and compares the decryption with Python integer arithmetic. Edge values: 0, max, wrap-around,
shift amounts at or beyond the width, scalars wider than the operand (truncated from the left).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tfhe_py

from fhevm_dagster.compute.oracle import OracleOperand, Plain, evaluate
from fhevm_dagster.protocol.opcodes import OPERATORS, Operator
from fhevm_dagster.protocol.types import FheType

Operand = tuple[int, FheType] | bytes
T = FheType
UINTS = [T.Uint8, T.Uint16, T.Uint32, T.Uint64, T.Uint128]


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


def binary_cases() -> Iterator[object]:
    """(op, type, lhs, rhs): one encrypted and one scalar case per allowed pair."""
    for op in (Operator.Add, Operator.Sub, Operator.Mul):
        for t in UINTS:
            m = maxv(t)
            enc = {Operator.Add: (m, 1), Operator.Sub: (0, 1), Operator.Mul: (m, 2)}[op]
            yield pytest.param(op, t, enc[0], (enc[1], t), id=f"{op.name}-{t.name}-enc")
            # A scalar wider than the operand is truncated from the left.
            yield pytest.param(op, t, m - 1, be((1 << t.bits) + 3), id=f"{op.name}-{t.name}-scalar")
    for op in (Operator.Div, Operator.Rem):
        for t in UINTS:
            yield pytest.param(op, t, maxv(t), be(7), id=f"{op.name}-{t.name}-scalar")
    for op in (Operator.BitAnd, Operator.BitOr, Operator.BitXor):
        yield pytest.param(op, T.Bool, 1, (0, T.Bool), id=f"{op.name}-Bool-enc")
        yield pytest.param(op, T.Bool, 1, be(1), id=f"{op.name}-Bool-scalar")
        for t in [*UINTS, T.Uint256]:
            pattern = int("5a" * (t.bits // 8), 16)
            yield pytest.param(op, t, maxv(t) ^ 0xF0, (pattern, t), id=f"{op.name}-{t.name}-enc")
            yield pytest.param(op, t, pattern, be(0x0F0F), id=f"{op.name}-{t.name}-scalar")
    for op in (Operator.Shl, Operator.Shr, Operator.Rotl, Operator.Rotr):
        for t in [*UINTS, T.Uint256]:
            value = int("c3" * (t.bits // 8), 16) ^ 1
            beyond = (maxv(t) & ~(t.bits - 1)) | 3  # an amount >= the width: taken modulo
            yield pytest.param(op, t, value, (beyond, t), id=f"{op.name}-{t.name}-enc")
            yield pytest.param(op, t, value, be(t.bits + 5), id=f"{op.name}-{t.name}-scalar")
    for op in (Operator.Eq, Operator.Ne):
        yield pytest.param(op, T.Bool, 1, (1, T.Bool), id=f"{op.name}-Bool-enc")
        yield pytest.param(op, T.Bool, 0, be(1), id=f"{op.name}-Bool-scalar")
        for t in [*UINTS, T.Uint160, T.Uint256]:
            yield pytest.param(op, t, maxv(t), (maxv(t), t), id=f"{op.name}-{t.name}-enc")
            yield pytest.param(op, t, maxv(t) - 1, be(maxv(t)), id=f"{op.name}-{t.name}-scalar")
    for op in (Operator.Ge, Operator.Gt, Operator.Le, Operator.Lt, Operator.Min, Operator.Max):
        for t in UINTS:
            yield pytest.param(op, t, maxv(t), (0, t), id=f"{op.name}-{t.name}-enc")
            yield pytest.param(op, t, 3, be(3), id=f"{op.name}-{t.name}-scalar")


@pytest.mark.parametrize(("op", "t", "lhs", "rhs"), list(binary_cases()))
def test_binary_operator(
    engine: tfhe_py.Engine,
    client_key: tfhe_py.ClientKey,
    op: Operator,
    t: FheType,
    lhs: int,
    rhs: Operand,
) -> None:
    expected, ct = run(engine, client_key, op, [(lhs, t), rhs])
    assert client_key.decrypt(ct) == expected.value


@pytest.mark.parametrize(
    "op", [Operator.BitAnd, Operator.BitOr, Operator.BitXor, Operator.Eq, Operator.Ne],
    ids=lambda op: op.name,
)  # fmt: skip
def test_bool_scalar_is_true_when_any_byte_is_nonzero(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, op: Operator
) -> None:
    """SPEC §4: the reference's `arr_non_zero`, not the last byte (0x0100 is true)."""
    expected, ct = run(engine, client_key, op, [(1, T.Bool), be(0x0100)])
    truth = {Operator.BitAnd: 1, Operator.BitOr: 1, Operator.BitXor: 0, Operator.Eq: 1,
             Operator.Ne: 0}  # fmt: skip
    assert client_key.decrypt(ct) == expected.value == truth[op]


def test_every_binary_pair_of_the_table_is_covered() -> None:
    """The cases above cover exactly the types SPEC §4 allows (the table lives in protocol/)."""
    covered: dict[Operator, set[FheType]] = {}
    for case in binary_cases():
        op, t = case.values[0], case.values[1]  # type: ignore[attr-defined]
        covered.setdefault(op, set()).add(t)
    for op, types in covered.items():
        assert types == set(OPERATORS[op].in_types), op


@pytest.mark.parametrize(
    ("op", "t", "value"),
    [pytest.param(Operator.Neg, t, v, id=f"Neg-{t.name}-{v}") for t in [*UINTS, T.Uint256]
     for v in (0, 1)]
    + [pytest.param(Operator.Not, t, 1, id=f"Not-{t.name}") for t in [T.Bool, *UINTS, T.Uint256]],
)  # fmt: skip
def test_unary_operator(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, op: Operator, t: FheType, value: int
) -> None:
    expected, ct = run(engine, client_key, op, [(value, t)])
    assert client_key.decrypt(ct) == expected.value


CAST_IN = [T.Bool, *UINTS, T.Uint256]
CAST_OUT = [*UINTS, T.Uint256]


@pytest.mark.parametrize(
    ("src", "dst"),
    [pytest.param(s, d, id=f"{s.name}-to-{d.name}") for s in CAST_IN for d in CAST_OUT if s != d],
)
def test_cast_truncates_and_extends(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, src: FheType, dst: FheType
) -> None:
    value = 1 if src is T.Bool else maxv(src) - 2
    expected, ct = run(engine, client_key, Operator.Cast, [(value, src)], dst)
    assert client_key.decrypt(ct) == expected.value


@pytest.mark.parametrize("t", [T.Bool, *UINTS, T.Uint160, T.Uint256], ids=lambda t: t.name)
def test_trivial_encrypt(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType) -> None:
    pt = be((1 << 255) | (maxv(t) - 1) if t is not T.Bool else 0x0100)  # Bool: last byte is 0
    expected, ct = run(engine, client_key, Operator.TrivialEncrypt, [pt], t)
    assert client_key.decrypt(ct) == expected.value
    if t is T.Bool:
        assert expected.value == 0


@pytest.mark.parametrize("t", [T.Bool, *UINTS, T.Uint160, T.Uint256], ids=lambda t: t.name)
def test_if_then_else(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType) -> None:
    for control in (0, 1):
        expected, ct = run(
            engine, client_key, Operator.IfThenElse, [(control, T.Bool), (1, t), (0, t)]
        )
        assert client_key.decrypt(ct) == expected.value == control


@pytest.mark.parametrize("t", [T.Bool, *UINTS, T.Uint256], ids=lambda t: t.name)
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


@pytest.mark.parametrize("t", [*UINTS, T.Uint256], ids=lambda t: t.name)
def test_rand_bounded_stays_below_the_bound(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType
) -> None:
    bound = be(1 << 5)
    seed = b"\x07" * 16
    a = client_key.decrypt(engine.execute(Operator.RandBounded, [seed, bound], int(t)))
    b = client_key.decrypt(engine.execute(Operator.RandBounded, [seed, bound], int(t)))
    assert a == b
    assert 0 <= a < 32


@pytest.mark.parametrize("t", UINTS, ids=lambda t: t.name)
def test_sum_wraps(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType) -> None:
    expected, ct = run(engine, client_key, Operator.Sum, [(maxv(t), t), (2, t), (5, t)])
    assert client_key.decrypt(ct) == expected.value == 6


def test_empty_sum_is_a_trivial_zero(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey) -> None:
    ct = engine.execute(Operator.Sum, [], int(T.Uint32))
    assert ct.fhe_type == T.Uint32
    assert client_key.decrypt(ct) == 0


@pytest.mark.parametrize("t", [*UINTS, T.Uint160, T.Uint256], ids=lambda t: t.name)
def test_is_in(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType) -> None:
    members: list[Operand] = [(1, t), (maxv(t), t)]
    for value in (maxv(t), 2):
        expected, ct = run(engine, client_key, Operator.IsIn, [(value, t), *members])
        assert client_key.decrypt(ct) == expected.value == int(value == maxv(t))


def test_is_in_empty_set_is_false(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey) -> None:
    ct = engine.execute(Operator.IsIn, [client_key.encrypt(3, T.Uint8)], int(T.Bool))
    assert client_key.decrypt(ct) == 0


@pytest.mark.parametrize("t", [T.Uint8, T.Uint16, T.Uint32, T.Uint64], ids=lambda t: t.name)
def test_mul_div_uses_the_full_product(
    engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey, t: FheType
) -> None:
    m = maxv(t)
    for factor2 in [(m, t), be(m - 1)]:
        expected, ct = run(engine, client_key, Operator.MulDiv, [(m, t), factor2, be(m)])
        assert client_key.decrypt(ct) == expected.value
        assert expected.value == (m if isinstance(factor2, tuple) else m - 1)
