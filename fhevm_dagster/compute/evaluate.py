"""What evaluates one operation of a range DAG: the FHE engine or the plaintext oracle (the
DAG's scheduling is `scheduler`'s).

On the FHE engine, values travel between operations in the stored format (ct64), exactly as in
the reference scheduler (SPEC §7): each operation decompresses its operands, re-randomizes them,
computes and compresses its result. Decompression is a bootstrap, so this round trip is part of
the bytes every coprocessor must agree on, whatever the cut of blocks into ranges. It is also
deterministic: with an `OperandCache`, the readers of the same ct64 share one decompression
(issue #29), each operation still re-randomizing its own copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import tfhe_py

from fhevm_dagster.compute.operand_cache import OperandCache, ct64_key
from fhevm_dagster.compute.oracle import OracleOperand, Plain
from fhevm_dagster.compute.oracle import evaluate as oracle_evaluate
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType

V = TypeVar("V")

#: The FHE engine, named for the pipeline (which does not import tfhe_py).
Engine = tfhe_py.Engine
#: How pipeline steps get the engine: called only when there is work, so an empty range does
#: not pay the key load (the resource caches one engine per process).
EngineFactory = Callable[[], Engine]


class Backend(Protocol[V]):
    """What evaluates one operation: the FHE engine or the oracle."""

    def execute(self, op: Operator, operands: list[V | bytes], result_type: FheType) -> V: ...


@dataclass(frozen=True, slots=True)
class Ct64:
    """A ciphertext in the stored format (a compressed single-element list, SPEC §7)."""

    data: bytes


class FheBackend:
    """The TFHE-rs engine, one reference scheduler step per operation (SPEC §7).

    With `cache`, operands are decompressed through it, and the backend takes the scheduler's
    announcements of how often each value will be read (`expect`, `forgo`: see `run_dag`)."""

    def __init__(
        self, engine: tfhe_py.Engine, cache: OperandCache[tfhe_py.Ciphertext] | None = None
    ) -> None:
        self.engine = engine
        self.cache = cache
        self._decompress = cache.read if cache is not None else engine.decompress

    def execute(self, op: Operator, operands: list[Ct64 | bytes], result_type: FheType) -> Ct64:
        """Decompress the encrypted operands, re-randomize them, compute, compress the result."""
        values = [self._decompress(o.data) if isinstance(o, Ct64) else o for o in operands]
        result = self.engine.execute(int(op), values, int(result_type), rerandomize=True)
        return Ct64(self.engine.compress(result))

    def key(self, value: Ct64) -> bytes:
        return ct64_key(value.data)

    def expect(self, key: bytes, reads: int) -> None:
        if self.cache is not None:
            self.cache.expect(key, reads)

    def forgo(self, key: bytes, reads: int) -> None:
        if self.cache is not None:
            self.cache.forgo(key, reads)


class PlainBackend:
    """The plaintext oracle, for tests and tracing."""

    def execute(self, op: Operator, operands: list[Plain | bytes], result_type: FheType) -> Plain:
        plain: list[OracleOperand] = list(operands)
        return oracle_evaluate(op, plain, result_type)
