"""FHEVMExecutor operators and their type rules (SPEC §4): the single source of truth.

Where SPEC §4 and the `@fhevm/host-contracts` 0.10.0 source disagree, the contract source wins:
IfThenElse branches are Bool, 8-128, 160 or 256 bits (not "any"), and Cast rejects casting a value
to its own type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

from .handles import HandleError, parse_handle
from .types import FheType, UnknownFheTypeError


class Operator(IntEnum):
    """FHEVMExecutor `Operators` index; 28..30 exist only in newer executors."""

    Add = 0
    Sub = 1
    Mul = 2
    Div = 3
    Rem = 4
    BitAnd = 5
    BitOr = 6
    BitXor = 7
    Shl = 8
    Shr = 9
    Rotl = 10
    Rotr = 11
    Eq = 12
    Ne = 13
    Ge = 14
    Gt = 15
    Le = 16
    Lt = 17
    Min = 18
    Max = 19
    Neg = 20
    Not = 21
    VerifyInput = 22
    Cast = 23
    TrivialEncrypt = 24
    IfThenElse = 25
    Rand = 26
    RandBounded = 27
    Sum = 28
    IsIn = 29
    MulDiv = 30


class OpKind(Enum):
    """Shape of an operation's event and dependency list (SPEC §3, §5)."""

    BINARY = "binary"  # [lhs, rhs]
    UNARY = "unary"  # [ct]
    INPUT = "input"  # no computation
    CAST = "cast"  # [ct, toType]
    TRIVIAL = "trivial"  # [pt, toType]
    TERNARY = "ternary"  # [control, ifTrue, ifFalse]
    RAND = "rand"  # [seed, randType]
    RAND_BOUNDED = "rand_bounded"  # [seed, upperBound, randType]
    SUM = "sum"  # [values...]
    IS_IN = "is_in"  # [value, values...]
    MUL_DIV = "mul_div"  # [factor1, factor2, divisor]


class ScalarRule(Enum):
    """Whether the right operand may or must be a plaintext."""

    NEVER = "never"
    OPTIONAL = "optional"
    ONLY = "only"
    ALL = "all"  # every operand is a plaintext (TrivialEncrypt, Rand)
    PARTIAL = "partial"  # MulDiv: factor2 either way, divisor always plaintext


class ResultRule(Enum):
    SAME = "same"  # the operand type
    BOOL = "bool"
    TO_TYPE = "to_type"  # the type named in the event
    NONE = "none"  # no computation


_U = frozenset({FheType.Uint8, FheType.Uint16, FheType.Uint32, FheType.Uint64, FheType.Uint128})
_B = frozenset({FheType.Bool})
_160 = frozenset({FheType.Uint160})
_256 = frozenset({FheType.Uint256})
_ALL = _B | _U | _160 | _256


@dataclass(frozen=True, slots=True)
class OpSpec:
    """Type rules of one operator; `out_types` only matters for TO_TYPE operators."""

    op: Operator
    event: str
    kind: OpKind
    in_types: frozenset[FheType]
    scalar: ScalarRule
    result: ResultRule
    out_types: frozenset[FheType] = frozenset()
    newer: bool = False


def _spec(
    op: Operator,
    event: str,
    kind: OpKind,
    in_types: frozenset[FheType],
    scalar: ScalarRule = ScalarRule.NEVER,
    result: ResultRule = ResultRule.SAME,
    out_types: frozenset[FheType] = frozenset(),
    newer: bool = False,
) -> OpSpec:
    return OpSpec(op, event, kind, in_types, scalar, result, out_types, newer)


_BIN = OpKind.BINARY
_OPT = ScalarRule.OPTIONAL
_O = Operator
OPERATORS: Mapping[Operator, OpSpec] = {
    s.op: s
    for s in (
        _spec(_O.Add, "FheAdd", _BIN, _U, _OPT),
        _spec(_O.Sub, "FheSub", _BIN, _U, _OPT),
        _spec(_O.Mul, "FheMul", _BIN, _U, _OPT),
        _spec(_O.Div, "FheDiv", _BIN, _U, ScalarRule.ONLY),
        _spec(_O.Rem, "FheRem", _BIN, _U, ScalarRule.ONLY),
        _spec(_O.BitAnd, "FheBitAnd", _BIN, _B | _U | _256, _OPT),
        _spec(_O.BitOr, "FheBitOr", _BIN, _B | _U | _256, _OPT),
        _spec(_O.BitXor, "FheBitXor", _BIN, _B | _U | _256, _OPT),
        _spec(_O.Shl, "FheShl", _BIN, _U | _256, _OPT),
        _spec(_O.Shr, "FheShr", _BIN, _U | _256, _OPT),
        _spec(_O.Rotl, "FheRotl", _BIN, _U | _256, _OPT),
        _spec(_O.Rotr, "FheRotr", _BIN, _U | _256, _OPT),
        _spec(_O.Eq, "FheEq", _BIN, _ALL, _OPT, ResultRule.BOOL),
        _spec(_O.Ne, "FheNe", _BIN, _ALL, _OPT, ResultRule.BOOL),
        _spec(_O.Ge, "FheGe", _BIN, _U, _OPT, ResultRule.BOOL),
        _spec(_O.Gt, "FheGt", _BIN, _U, _OPT, ResultRule.BOOL),
        _spec(_O.Le, "FheLe", _BIN, _U, _OPT, ResultRule.BOOL),
        _spec(_O.Lt, "FheLt", _BIN, _U, _OPT, ResultRule.BOOL),
        _spec(_O.Min, "FheMin", _BIN, _U, _OPT),
        _spec(_O.Max, "FheMax", _BIN, _U, _OPT),
        _spec(_O.Neg, "FheNeg", OpKind.UNARY, _U | _256),
        _spec(_O.Not, "FheNot", OpKind.UNARY, _B | _U | _256),
        _spec(_O.VerifyInput, "VerifyInput", OpKind.INPUT, _ALL, result=ResultRule.NONE),
        _spec(_O.Cast, "Cast", OpKind.CAST, _B | _U | _256, result=ResultRule.TO_TYPE,
              out_types=_U | _256),
        _spec(_O.TrivialEncrypt, "TrivialEncrypt", OpKind.TRIVIAL, frozenset(), ScalarRule.ALL,
              ResultRule.TO_TYPE, _ALL),
        _spec(_O.IfThenElse, "FheIfThenElse", OpKind.TERNARY, _ALL),
        _spec(_O.Rand, "FheRand", OpKind.RAND, frozenset(), ScalarRule.ALL, ResultRule.TO_TYPE,
              _B | _U | _256),
        _spec(_O.RandBounded, "FheRandBounded", OpKind.RAND_BOUNDED, frozenset(), ScalarRule.ALL,
              ResultRule.TO_TYPE, _U | _256),
        _spec(_O.Sum, "FheSum", OpKind.SUM, _U, newer=True),
        _spec(_O.IsIn, "FheIsIn", OpKind.IS_IN, _U | _160 | _256, result=ResultRule.BOOL,
              newer=True),
        _spec(_O.MulDiv, "FheMulDiv", OpKind.MUL_DIV,
              frozenset({FheType.Uint8, FheType.Uint16, FheType.Uint32, FheType.Uint64}),
              ScalarRule.PARTIAL, newer=True),
    )
}  # fmt: skip
del _O

EVENT_OPERATORS: Mapping[str, Operator] = {s.event: s.op for s in OPERATORS.values()}
#: The operators of host-contracts 0.10.0 (opcodes 0..27), in opcode order: all but the newer.
HOST_OPERATORS: tuple[Operator, ...] = tuple(op for op, s in OPERATORS.items() if not s.newer)


def operators_of(kind: OpKind) -> tuple[Operator, ...]:
    """The operators whose events have the shape `kind`, in opcode order."""
    return tuple(op for op, s in OPERATORS.items() if s.kind is kind)


#: Most values of a Sum / set members of an IsIn, as the reference enforces them
#: (`check_fhe_operand_types`, v0.14.0): 100 for 8-32-bit values, 60 for wider ones.
MAX_SUM_VALUES = 100
MAX_WIDE_VALUES = 60
_WIDE = frozenset({FheType.Uint64, FheType.Uint128, FheType.Uint160, FheType.Uint256})


def max_values(t: FheType) -> int:
    """The longest Sum or IsIn set of values of type `t`."""
    return MAX_WIDE_VALUES if t in _WIDE else MAX_SUM_VALUES


class OperationError(ValueError):
    """An operation whose operands do not fit SPEC §4: an error for that computation only."""


def operator_for_event(event_name: str) -> Operator | None:
    """The operator an FHEVMExecutor event reports, or None for non-FHE events."""
    return EVENT_OPERATORS.get(event_name)


def _operand_type(op: Operator, position: str, handle: bytes) -> FheType:
    try:
        return parse_handle(handle).fhe_type
    except (HandleError, UnknownFheTypeError) as exc:
        raise OperationError(f"{op.name}: {position} operand: {exc}") from None


def _type_byte(op: Operator, raw: bytes) -> FheType:
    if len(raw) != 1:
        raise OperationError(f"{op.name}: type dependency must be 1 byte, got {len(raw)}")
    try:
        return FheType(raw[0])
    except ValueError:
        raise OperationError(f"{op.name}: unknown FHE type {raw[0]}") from None


def _check(op: Operator, allowed: frozenset[FheType], t: FheType, what: str) -> None:
    if t not in allowed:
        names = ", ".join(x.name for x in sorted(allowed))
        raise OperationError(f"{op.name}: {what} type {t.name} not supported (allowed: {names})")


def _arity(op: Operator, deps: Sequence[bytes], n: int) -> None:
    if len(deps) != n:
        raise OperationError(f"{op.name}: expected {n} dependencies, got {len(deps)}")


def _binary(spec: OpSpec, deps: Sequence[bytes], is_scalar: bool) -> FheType:
    op = spec.op
    _arity(op, deps, 2)
    lhs = _operand_type(op, "lhs", deps[0])
    _check(op, spec.in_types, lhs, "operand")
    if is_scalar:
        if spec.scalar is ScalarRule.NEVER:
            raise OperationError(f"{op.name}: a scalar operand is not allowed")
        if op in (Operator.Div, Operator.Rem) and int.from_bytes(deps[1], "big") == 0:
            raise OperationError(f"{op.name}: division by a scalar zero")
    else:
        if spec.scalar is ScalarRule.ONLY:
            raise OperationError(f"{op.name}: the right operand must be a scalar")
        rhs = _operand_type(op, "rhs", deps[1])
        if rhs != lhs:
            raise OperationError(f"{op.name}: operand types differ ({lhs.name} vs {rhs.name})")
    return FheType.Bool if spec.result is ResultRule.BOOL else lhs


def _rand_bounded(spec: OpSpec, deps: Sequence[bytes]) -> FheType:
    _arity(spec.op, deps, 3)
    t = _type_byte(spec.op, deps[2])
    _check(spec.op, spec.out_types, t, "random")
    bound = int.from_bytes(deps[1], "big")
    if bound <= 0 or bound & (bound - 1):
        raise OperationError(f"RandBounded: upper bound {bound} is not a power of two")
    if t.bits < 256 and bound > 1 << t.bits:
        raise OperationError(f"RandBounded: upper bound {bound} exceeds {t.name}")
    return t


def _variadic(spec: OpSpec, values: Sequence[bytes], declared: FheType | None) -> FheType | None:
    types = {_operand_type(spec.op, "value", v) for v in values}
    if len(types) > 1:
        raise OperationError(f"{spec.op.name}: values have different types")
    if not types:
        if declared is not None:  # an empty Sum is a trivial zero of the result handle's type
            _check(spec.op, spec.in_types, declared, "result")
        return declared
    (t,) = types
    _check(spec.op, spec.in_types, t, "operand")
    if len(values) > max_values(t):
        raise OperationError(
            f"{spec.op.name}: at most {max_values(t)} {t.name} values, got {len(values)}"
        )
    return t


def _cast(spec: OpSpec, deps: Sequence[bytes]) -> FheType:
    _arity(spec.op, deps, 2)
    src = _operand_type(spec.op, "operand", deps[0])
    _check(spec.op, spec.in_types, src, "input")
    result = _type_byte(spec.op, deps[1])
    _check(spec.op, spec.out_types, result, "output")
    if src == result:
        raise OperationError(f"Cast: cannot cast {src.name} to itself")
    return result


def _ternary(spec: OpSpec, deps: Sequence[bytes]) -> FheType:
    _arity(spec.op, deps, 3)
    control = _operand_type(spec.op, "control", deps[0])
    if control is not FheType.Bool:
        raise OperationError(f"IfThenElse: control must be Bool, got {control.name}")
    result = _operand_type(spec.op, "ifTrue", deps[1])
    other = _operand_type(spec.op, "ifFalse", deps[2])
    _check(spec.op, spec.in_types, result, "branch")
    if other != result:
        raise OperationError(f"IfThenElse: branch types differ ({result.name} vs {other.name})")
    return result


def _is_in(spec: OpSpec, deps: Sequence[bytes]) -> FheType:
    if not deps:
        raise OperationError("IsIn: missing the searched value")
    value = _operand_type(spec.op, "value", deps[0])
    _check(spec.op, spec.in_types, value, "operand")
    if _variadic(spec, deps[1:], value) != value:
        raise OperationError("IsIn: value and set types differ")
    return FheType.Bool


def _mul_div(spec: OpSpec, deps: Sequence[bytes], is_scalar: bool) -> FheType:
    _arity(spec.op, deps, 3)
    result = _operand_type(spec.op, "factor1", deps[0])
    _check(spec.op, spec.in_types, result, "operand")
    if not is_scalar and _operand_type(spec.op, "factor2", deps[1]) != result:
        raise OperationError("MulDiv: factor types differ")
    if int.from_bytes(deps[2], "big") == 0:
        raise OperationError("MulDiv: division by a scalar zero")
    return result


def validate_operation(
    op: Operator | int,
    dependencies: Sequence[bytes],
    is_scalar: bool,
    declared_type: FheType | int | None = None,
) -> FheType:
    """Check one computation's operands (dependencies as in SPEC §5) and return its result type.

    `declared_type` is the type byte of the event's result handle: when given it must agree with the
    inferred type (empty `Sum`/`IsIn` lists take it as their type). Raises `OperationError`.
    """
    try:
        op = Operator(op)
    except ValueError:
        raise OperationError(f"unknown opcode {op}") from None
    spec = OPERATORS[op]
    declared = None if declared_type is None else FheType(declared_type)
    result: FheType | None
    if spec.kind is OpKind.BINARY:
        result = _binary(spec, dependencies, is_scalar)
    elif spec.kind is OpKind.UNARY:
        _arity(op, dependencies, 1)
        result = _operand_type(op, "operand", dependencies[0])
        _check(op, spec.in_types, result, "operand")
    elif spec.kind is OpKind.INPUT:
        raise OperationError(
            "VerifyInput is not a computation: its ciphertext comes from the gateway"
        )
    elif spec.kind is OpKind.CAST:
        result = _cast(spec, dependencies)
    elif spec.kind is OpKind.TRIVIAL:
        _arity(op, dependencies, 2)
        result = _type_byte(op, dependencies[1])
        _check(op, spec.out_types, result, "output")
    elif spec.kind is OpKind.TERNARY:
        result = _ternary(spec, dependencies)
    elif spec.kind is OpKind.RAND:
        _arity(op, dependencies, 2)
        result = _type_byte(op, dependencies[1])
        _check(op, spec.out_types, result, "random")
    elif spec.kind is OpKind.RAND_BOUNDED:
        result = _rand_bounded(spec, dependencies)
    elif spec.kind is OpKind.SUM:
        result = _variadic(spec, dependencies, declared)
    elif spec.kind is OpKind.IS_IN:
        result = _is_in(spec, dependencies)
    else:  # MUL_DIV
        result = _mul_div(spec, dependencies, is_scalar)
    if result is None:
        raise OperationError(f"{op.name}: empty value list needs the result handle's type")
    if declared is not None and declared != result:
        raise OperationError(
            f"{op.name}: result handle has type {declared.name}, operands give {result.name}"
        )
    return result
