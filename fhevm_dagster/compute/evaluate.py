"""Evaluates a range DAG on a thread pool, with the FHE engine or the plaintext oracle.

Independent operations run at the same time: `tfhe_py` releases the GIL, so the pool's threads
compute in parallel. A failed operation fails what depends on it, with a message naming the
cause; everything else completes.

On the FHE engine, values travel between operations in the stored format (ct64), exactly as in
the reference scheduler (SPEC §7): each operation decompresses its operands, re-randomizes them,
computes and compresses its result. Decompression is a bootstrap, so this round trip is part of
the bytes every coprocessor must agree on, whatever the cut of blocks into ranges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import tfhe_py

from fhevm_dagster.compute.dag import HandleRef, Node, NodeKey, RangeDag
from fhevm_dagster.compute.oracle import OracleOperand, Plain
from fhevm_dagster.compute.oracle import evaluate as oracle_evaluate
from fhevm_dagster.protocol.opcodes import OperationError, Operator, validate_operation
from fhevm_dagster.protocol.types import FheType

V = TypeVar("V")

#: How pipeline steps get the engine: called only when there is work, so an empty range does
#: not pay the key load (the resource caches one engine per process).
EngineFactory = Callable[[], tfhe_py.Engine]


class Backend(Protocol[V]):
    """What evaluates one operation: the FHE engine or the oracle."""

    def execute(self, op: Operator, operands: list[V | bytes], result_type: FheType) -> V: ...


@dataclass(frozen=True, slots=True)
class Ct64:
    """A ciphertext in the stored format (a compressed single-element list, SPEC §7)."""

    data: bytes


class FheBackend:
    """The TFHE-rs engine, one reference scheduler step per operation (SPEC §7)."""

    def __init__(self, engine: tfhe_py.Engine) -> None:
        self.engine = engine

    def execute(self, op: Operator, operands: list[Ct64 | bytes], result_type: FheType) -> Ct64:
        """Decompress the encrypted operands, re-randomize them, compute, compress the result."""
        values = [self.engine.decompress(o.data) if isinstance(o, Ct64) else o for o in operands]
        result = self.engine.execute(int(op), values, int(result_type), rerandomize=True)
        return Ct64(self.engine.compress(result))


class PlainBackend:
    """The plaintext oracle, for tests and tracing."""

    def execute(self, op: Operator, operands: list[Plain | bytes], result_type: FheType) -> Plain:
        plain: list[OracleOperand] = list(operands)
        return oracle_evaluate(op, plain, result_type)


@dataclass
class EvalResult(Generic[V]):
    """Values of evaluated nodes, errors of failed ones, and where the time went."""

    values: dict[NodeKey, V] = field(default_factory=dict)
    errors: dict[NodeKey, str] = field(default_factory=dict)
    op_seconds: dict[NodeKey, float] = field(default_factory=dict)
    wall_seconds: float = 0.0


def run_dag(
    dag: RangeDag,
    backend: Backend[V],
    inputs: Mapping[bytes, V],
    pool_size: int,
    failed_inputs: Mapping[bytes, str] | None = None,
) -> EvalResult[V]:
    """Evaluates every node of `dag`; `inputs` holds the values of its external handles and
    `failed_inputs` why the others will never come (their producers failed): the nodes that read
    one fail with that reason, and so do their descendants."""
    result: EvalResult[V] = EvalResult()
    started = time.perf_counter()
    waiting = {k: len(dag.nodes[k].parents) for k in dag.order}
    for key, reason in dag.cycles.items():
        result.errors[key] = f"cycle: {reason}"

    def operand_values(node: Node) -> list[V | bytes]:
        parent_by_handle = {p[0]: p for p in node.parents}
        out: list[V | bytes] = []
        for operand in node.operands:
            if not isinstance(operand, HandleRef):
                out.append(operand)
            elif operand.handle in parent_by_handle:
                out.append(result.values[parent_by_handle[operand.handle]])
            elif operand.handle in inputs:
                out.append(inputs[operand.handle])
            else:
                raise OperationError(f"missing input {operand.handle.hex()}")
        return out

    def work(node: Node) -> tuple[V, float]:
        validate_operation(
            node.row.opcode, list(node.row.dependencies), node.row.is_scalar, node.row.fhe_type
        )
        operands = operand_values(node)
        t0 = time.perf_counter()
        value = backend.execute(node.row.operator, operands, node.result_type)
        return value, time.perf_counter() - t0

    def fail_descendants(key: NodeKey, cause: str) -> None:
        stack = list(dag.nodes[key].children)
        while stack:
            child = stack.pop()
            if child in result.errors:
                continue
            result.errors[child] = f"depends on failed computation {key[0].hex()}: {cause}"
            stack.extend(dag.nodes[child].children)

    for key in dag.cycles:
        fail_descendants(key, result.errors[key])
    poisoned = failed_inputs or {}
    for key in dag.order:
        refs = [o.handle for o in dag.nodes[key].operands if isinstance(o, HandleRef)]
        cause = next((h for h in refs if h in poisoned), None)
        if cause is not None and key not in result.errors:
            result.errors[key] = f"depends on failed computation {cause.hex()} ({poisoned[cause]})"
            fail_descendants(key, result.errors[key])

    with ThreadPoolExecutor(max_workers=max(1, pool_size), thread_name_prefix="fhe") as pool:
        running: dict[Future[tuple[V, float]], NodeKey] = {}
        submitted: set[NodeKey] = set()

        def submit_ready(keys: list[NodeKey]) -> None:
            for k in keys:
                if waiting[k] == 0 and k not in result.errors and k not in submitted:
                    submitted.add(k)
                    running[pool.submit(work, dag.nodes[k])] = k

        submit_ready(dag.order)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            ready: list[NodeKey] = []
            for future in done:
                key = running.pop(future)
                try:
                    value, seconds = future.result()
                except Exception as exc:
                    result.errors[key] = f"{type(exc).__name__}: {exc}"
                    fail_descendants(key, result.errors[key])
                    continue
                result.values[key] = value
                result.op_seconds[key] = seconds
                for child in dag.nodes[key].children:
                    waiting[child] -= 1
                    ready.append(child)
            submit_ready(ready)
    result.wall_seconds = time.perf_counter() - started
    return result
