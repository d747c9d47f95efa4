"""The plaintext oracle: each operator of SPEC §4 on Python integers.

It is the reference of the tests (decrypted results must equal it) and a debugging tool. It takes
operands in the same shape as `tfhe_py.Engine.execute`: a known plaintext of an encrypted value,
or a big-endian scalar. Random operators cannot be predicted, so they yield `None`, and so does
anything computed from an unknown value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fhevm_dagster.protocol.opcodes import OperationError, Operator, max_values
from fhevm_dagster.protocol.types import FheType


@dataclass(frozen=True, slots=True)
class Plain:
    """The plaintext of an encrypted operand; `value` is None when it cannot be known (Rand)."""

    value: int | None
    fhe_type: FheType


OracleOperand = Plain | bytes


def _mask(t: FheType) -> int:
    return (1 << t.bits) - 1


def scalar_value(raw: bytes, t: FheType) -> int:
    """A scalar operand truncated from the left to the width of `t`; a Bool scalar is true when
    any byte is non-zero (the reference's `arr_non_zero`, SPEC §4)."""
    if t is FheType.Bool:
        return int(any(raw))
    return int.from_bytes(raw, "big") & _mask(t)


def trivial_value(raw: bytes, t: FheType) -> int:
    """TrivialEncrypt's plaintext: truncated like a scalar, but a Bool is "last byte non-zero"."""
    if t is FheType.Bool:
        return int(bool(raw) and raw[-1] != 0)
    return scalar_value(raw, t)


def _rotl(a: int, k: int, bits: int) -> int:
    k %= bits
    return ((a << k) | (a >> (bits - k))) & ((1 << bits) - 1)


def _binary(op: Operator, a: int, b: int, t: FheType) -> tuple[int, FheType]:
    bits, mask = t.bits, _mask(t)
    match op:
        case Operator.Add:
            return (a + b) & mask, t
        case Operator.Sub:
            return (a - b) & mask, t
        case Operator.Mul:
            return (a * b) & mask, t
        case Operator.Div | Operator.Rem:
            if b == 0:
                raise OperationError(f"{op.name}: scalar division by zero")
            return (a // b if op is Operator.Div else a % b), t
        case Operator.BitAnd:
            return a & b, t
        case Operator.BitOr:
            return a | b, t
        case Operator.BitXor:
            return a ^ b, t
        case Operator.Shl:
            return (a << (b % bits)) & mask, t
        case Operator.Shr:
            return a >> (b % bits), t
        case Operator.Rotl:
            return _rotl(a, b, bits), t
        case Operator.Rotr:
            return _rotl(a, bits - (b % bits), bits), t
        case Operator.Min:
            return min(a, b), t
        case Operator.Max:
            return max(a, b), t
    comparisons = {
        Operator.Eq: a == b,
        Operator.Ne: a != b,
        Operator.Ge: a >= b,
        Operator.Gt: a > b,
        Operator.Le: a <= b,
        Operator.Lt: a < b,
    }
    if op in comparisons:
        return int(comparisons[op]), FheType.Bool
    raise OperationError(f"{op.name} is not a binary operator")


def _plain(op: Operator, operand: OracleOperand, what: str) -> Plain:
    if not isinstance(operand, Plain):
        raise OperationError(f"{op.name}: the {what} must be encrypted")
    return operand


def _raw(op: Operator, operand: OracleOperand, what: str) -> bytes:
    if not isinstance(operand, bytes):
        raise OperationError(f"{op.name}: the {what} must be a plaintext")
    return operand


def evaluate(
    op: Operator, operands: Sequence[OracleOperand], result_type: FheType | None = None
) -> Plain:
    """The plaintext result of one operation (operands as in `Engine.execute`)."""
    if op in (Operator.Rand, Operator.RandBounded):
        if result_type is None:
            raise OperationError(f"{op.name}: the result type is required")
        return Plain(None, result_type)
    if op is Operator.TrivialEncrypt:
        if result_type is None:
            raise OperationError("TrivialEncrypt: the result type is required")
        return Plain(trivial_value(_raw(op, operands[0], "plaintext"), result_type), result_type)
    if op is Operator.Sum:
        values = [_plain(op, o, "value") for o in operands]
        t = values[0].fhe_type if values else result_type
        if t is not None and len(values) > max_values(t):
            raise OperationError(f"Sum: at most {max_values(t)} {t.name} values")
        if t is None:
            raise OperationError("Sum: an empty sum needs the result type")
        if any(v.value is None for v in values):
            return Plain(None, t)
        return Plain(sum(v.value or 0 for v in values) & _mask(t), t)
    first = _plain(op, operands[0], "first operand")
    if op is Operator.IsIn:
        members = [_plain(op, o, "set member") for o in operands[1:]]
        if first.value is None or any(m.value is None for m in members):
            return Plain(None, FheType.Bool)
        return Plain(int(any(m.value == first.value for m in members)), FheType.Bool)
    if op is Operator.Cast:
        if result_type is None:
            raise OperationError("Cast: the result type is required")
        value = None if first.value is None else first.value & _mask(result_type)
        return Plain(value, result_type)
    if op is Operator.IfThenElse:
        when_true = _plain(op, operands[1], "true branch")
        when_false = _plain(op, operands[2], "false branch")
        if first.value is None:
            return Plain(None, when_true.fhe_type)
        return when_true if first.value else when_false
    if op in (Operator.Neg, Operator.Not):
        t = first.fhe_type
        if first.value is None:
            return Plain(None, t)
        if op is Operator.Neg:
            return Plain(-first.value & _mask(t), t)
        return Plain(~first.value & _mask(t), t)
    if op is Operator.MulDiv:
        t = first.fhe_type
        factor = operands[1]
        f2 = factor.value if isinstance(factor, Plain) else scalar_value(factor, t)
        divisor = scalar_value(_raw(op, operands[2], "divisor"), t)
        if divisor == 0:
            raise OperationError("MulDiv: scalar division by zero")
        if first.value is None or f2 is None:
            return Plain(None, t)
        return Plain((first.value * f2 // divisor) & _mask(t), t)
    if len(operands) != 2:
        raise OperationError(f"{op.name} takes 2 operands")
    rhs = operands[1]
    t = first.fhe_type
    b = rhs.value if isinstance(rhs, Plain) else scalar_value(rhs, t)
    known = first.value is not None and b is not None
    value, out_type = _binary(op, first.value or 0, 1 if b is None else b, t)
    return Plain(value if known else None, out_type)
