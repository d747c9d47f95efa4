"""The binding against the protocol table, operator by operator, on operands of all 12 FHE types.

For every operator, each call shape of its kind (SPEC §5 dependencies) is tried with operands of
every FHE type: both operands of a binary operator (encrypted and scalar right side), every Cast
from and to, every IfThenElse control and branch pair, every Rand/TrivialEncrypt result type, Sum
and IsIn of mixed types, empty and at and past `max_values`. `validate_operation` judges each one on
handles of those types; where it refuses, the binding must raise a `TfheError` naming the operator
or a type (never a `TfhePanic`, never a result); where it allows, the binding must compute a
ciphertext of the type it predicts.

Operands are built once: trivial encryptions (`Engine.trivial_encrypt`), which TFHE-rs computes on
without bootstrapping, so the 344 allowed calls take milliseconds each (Rand of wide types up to a
second); the retired types, which trivial_encrypt refuses, are encrypted with the client key. The
binding refuses before computing, so the other ~5,200 calls cost microseconds. About 8 s in all on
2 cores once the test key is cached (fhe_fixtures.py), 3 of them loading the key.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import tfhe_py

from fhevm_dagster.protocol.handles import COMPUTED_INDEX, finish_handle
from fhevm_dagster.protocol.opcodes import (
    OPERATORS,
    OperationError,
    Operator,
    OpKind,
    max_values,
    validate_operation,
)
from fhevm_dagster.protocol.types import RETIRED_TYPES, FheType

T = FheType
SCALAR = (3).to_bytes(32, "big")  # a non-zero divisor, a shift amount, a plaintext
SEED = bytes(16)
BOUND = (2).to_bytes(32, "big")  # a power of two within every type's range
#: Operators whose result type is a dependency (a type byte) in the event, not an operand.
TYPE_BYTE_KINDS = (OpKind.CAST, OpKind.TRIVIAL, OpKind.RAND, OpKind.RAND_BOUNDED)


@dataclass(frozen=True)
class Shape:
    """One call: operands are FHE types (a ciphertext of that type) or plaintext bytes."""

    operands: tuple[FheType | bytes, ...]
    scalar: bool = False
    to_type: FheType | None = None  # Cast, TrivialEncrypt, Rand, RandBounded
    declared: FheType | None = None  # the result handle's type, for an empty Sum

    def label(self, op: Operator) -> str:
        args = ", ".join(o.name if isinstance(o, FheType) else "pt" for o in self.operands)
        to = f" -> {self.to_type.name}" if self.to_type is not None else ""
        declared = f" : {self.declared.name}" if self.declared is not None else ""
        return f"{op.name}({args}){to}{declared}"


def shapes(op: Operator) -> Iterator[Shape]:
    """Every call shape of `op`'s kind over all FHE types."""
    kind, types = OPERATORS[op].kind, list(FheType)
    pairs = list(itertools.product(types, repeat=2))
    if kind is OpKind.BINARY:
        yield from (Shape((t, u)) for t, u in pairs)
        yield from (Shape((t, SCALAR), scalar=True) for t in types)
    elif kind in (OpKind.UNARY, OpKind.INPUT):
        yield from (Shape((t,)) for t in types)
    elif kind is OpKind.CAST:
        yield from (Shape((t,), to_type=u) for t, u in pairs)
    elif kind is OpKind.TRIVIAL:
        yield from (Shape((SCALAR,), scalar=True, to_type=t) for t in types)
    elif kind is OpKind.TERNARY:
        yield from (Shape(ops) for ops in itertools.product(types, repeat=3))
    elif kind is OpKind.RAND:
        yield from (Shape((SEED,), scalar=True, to_type=t) for t in types)
    elif kind is OpKind.RAND_BOUNDED:
        yield from (Shape((SEED, BOUND), scalar=True, to_type=t) for t in types)
    elif kind is OpKind.SUM:
        yield from (Shape((t, u)) for t, u in pairs)
        yield from (Shape((), declared=t) for t in types)
        for t in types:
            yield from (Shape((t,) * n) for n in (max_values(t), max_values(t) + 1))
    elif kind is OpKind.IS_IN:  # the searched value, then the set
        yield from (Shape((t,)) for t in types)
        yield from (Shape((t, u)) for t, u in pairs)
        for t in types:
            yield from (Shape((t,) * (1 + n)) for n in (max_values(t), max_values(t) + 1))
    else:  # MUL_DIV: factor1, factor2, plaintext divisor
        yield from (Shape((t, u, SCALAR)) for t, u in pairs)
        yield from (Shape((t, SCALAR, SCALAR), scalar=True) for t in types)


def handle(t: FheType) -> bytes:
    return finish_handle(bytes(32), COMPUTED_INDEX, 31337, t)


def table_verdict(op: Operator, shape: Shape) -> FheType | OperationError:
    """The result type `validate_operation` gives the call, or its refusal."""
    deps = [handle(o) if isinstance(o, FheType) else o for o in shape.operands]
    if OPERATORS[op].kind in TYPE_BYTE_KINDS:
        assert shape.to_type is not None
        deps.append(bytes([shape.to_type]))
    try:
        return validate_operation(op, deps, shape.scalar, shape.declared)
    except OperationError as exc:
        return exc


def binding_verdict(
    engine: tfhe_py.Engine, operands: dict[FheType, tfhe_py.Ciphertext], op: Operator, shape: Shape
) -> tfhe_py.Ciphertext | tfhe_py.TfheError:
    args = [operands[o] if isinstance(o, FheType) else o for o in shape.operands]
    result_type = shape.to_type if shape.to_type is not None else shape.declared
    try:
        return engine.execute(op, args, None if result_type is None else int(result_type))
    except tfhe_py.TfheError as exc:
        return exc


def named(error: tfhe_py.TfheError, op: Operator, shape: Shape) -> bool:
    """The message names the operator's event or one of the types involved."""
    message = str(error)
    types = [o for o in (*shape.operands, shape.to_type, shape.declared) if isinstance(o, FheType)]
    return OPERATORS[op].event in message or any(t.name in message for t in types)


@pytest.fixture(scope="module")
def operands(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey) -> dict[T, tfhe_py.Ciphertext]:
    """One ciphertext of 1 per type: trivial where TrivialEncrypt allows the type."""
    return {
        t: client_key.encrypt(1, t) if t in RETIRED_TYPES else engine.trivial_encrypt(1, t)
        for t in FheType
    }


@pytest.mark.parametrize("op", list(Operator), ids=lambda op: op.name)
def test_binding_follows_the_table(
    engine: tfhe_py.Engine, operands: dict[T, tfhe_py.Ciphertext], op: Operator
) -> None:
    problems: list[str] = []
    allowed = 0
    for shape in shapes(op):
        want = table_verdict(op, shape)
        got = binding_verdict(engine, operands, op, shape)
        label = shape.label(op)
        if isinstance(got, tfhe_py.TfhePanic):
            problems.append(f"{label}: the binding panicked: {got}")
        elif isinstance(want, OperationError):
            if not isinstance(got, tfhe_py.TfheError):
                problems.append(f"{label}: refused by the table ({want}), the binding computes")
            elif not named(got, op, shape):
                problems.append(
                    f"{label}: the binding's error names neither operator nor type: {got}"
                )
        elif isinstance(got, tfhe_py.TfheError):
            problems.append(
                f"{label}: allowed by the table ({want.name}), the binding refuses: {got}"
            )
        else:
            allowed += 1
            if got.fhe_type != want:
                problems.append(f"{label}: the table says {want.name}, the binding made {got!r}")
    assert not problems, "\n".join(problems)
    if op is not Operator.VerifyInput:
        assert allowed > 0  # the shapes do reach the computing path
