"""Evaluates a range DAG on a thread pool, with the FHE engine or the plaintext oracle.

Independent operations run at the same time: `tfhe_py` releases the GIL, so the pool's threads
compute in parallel. A failed operation fails what depends on it, with a message naming the
cause; everything else completes. An operation whose input is not stored yet is not a failure:
it waits (with what depends on it) for a later run, as the reference's scheduler leaves such work
pending.

Memory is bounded by a batch size, not by the range: results go to a sink (the store) a batch at
a time and are let go once nothing pending reads them; operands come from a loader (the store)
when their consumer starts (`run_dag`).

On the FHE engine, values travel between operations in the stored format (ct64), exactly as in
the reference scheduler (SPEC §7): each operation decompresses its operands, re-randomizes them,
computes and compresses its result. Decompression is a bootstrap, so this round trip is part of
the bytes every coprocessor must agree on, whatever the cut of blocks into ranges.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

import tfhe_py

from fhevm_dagster.compute.dag import HandleRef, Node, NodeKey, RangeDag
from fhevm_dagster.compute.oracle import OracleOperand, Plain
from fhevm_dagster.compute.oracle import evaluate as oracle_evaluate
from fhevm_dagster.protocol.opcodes import Operator, validate_operation
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
    """Which nodes were evaluated (in completion order), errors of failed ones, the nodes that
    wait for an input not stored yet (with why), where the time went, and the most in-range
    results held at once. The values themselves went to `sink`."""

    done: list[NodeKey] = field(default_factory=list)
    errors: dict[NodeKey, str] = field(default_factory=dict)
    waiting: dict[NodeKey, str] = field(default_factory=dict)
    waited_for: dict[bytes, str] = field(default_factory=dict)  # the inputs they wait for
    op_seconds: dict[NodeKey, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    peak_held: int = 0


#: Reads encrypted operands that are not held: inputs from the store, and results of this range
#: already handed to the sink. Returns those it has; an absent one makes its consumer wait.
Loader = Callable[[Sequence[bytes]], Mapping[bytes, V]]
#: Receives allowed results, a batch at a time, and makes them loadable (stores them).
Sink = Callable[[list[tuple[NodeKey, V]]], None]

_MISSING = object()


def run_dag(
    dag: RangeDag,
    backend: Backend[V],
    load: Loader[V],
    sink: Sink[V],
    pool_size: int,
    failed_inputs: Mapping[bytes, str] | None = None,
    batch: int = 0,
    pool: Executor | None = None,
    waiting_inputs: Mapping[bytes, str] | None = None,
) -> EvalResult[V]:
    """Evaluates every node of `dag` and hands each allowed result to `sink`, `batch` at a time.

    Memory stays bounded by `batch`, not by the range: nodes start in chain order within a
    window of `batch` nodes past the first unfinished one; a result is dropped once no pending
    node reads it and, if allowed, once the sink has it; a sunk result still read by a node past
    the window is dropped too and loaded again. So at most about 2 x `batch` results, the
    intermediates of one transaction and the operands of the running nodes are held at once.
    `batch` 0 means no bound. `failed_inputs` says why some inputs will never come (their
    producers failed): the nodes that read one fail with that reason, and so do their
    descendants. `waiting_inputs` says why some inputs are not stored yet (their producers have
    not run): the nodes that read one wait, and so do their descendants; an operand the loader
    does not have when its consumer starts makes it wait the same way. `pool` (else one of
    `pool_size` threads, for this call) runs the operations; the caller may share it with other
    work of the range (its squashes)."""
    result: EvalResult[V] = EvalResult()
    started = time.perf_counter()
    window = batch if batch > 0 else len(dag.order) or 1
    index = {k: i for i, k in enumerate(dag.order)}
    waiting = {k: len(dag.nodes[k].parents) for k in dag.order}
    held: dict[NodeKey, V] = {}
    unsunk: list[NodeKey] = []
    sunk: set[NodeKey] = set()
    submitted: set[NodeKey] = set()
    frontier = 0  # index of the first node neither evaluated nor failed
    for key, reason in dag.cycles.items():
        result.errors[key] = f"cycle: {reason}"

    def fail_descendants(key: NodeKey, cause: str) -> None:
        stack = list(dag.nodes[key].children)
        while stack:
            child = stack.pop()
            if child in result.errors:
                continue
            result.errors[child] = f"depends on failed computation {key[0].hex()}: {cause}"
            stack.extend(dag.nodes[child].children)

    def fail(key: NodeKey, message: str) -> None:
        result.errors[key] = message
        fail_descendants(key, message)

    def wait_for(key: NodeKey, handle: bytes, why: str) -> None:
        """`key` and its pending descendants wait for `handle`: not evaluated, not failed."""
        result.waited_for.setdefault(handle, why)
        stack = [key]
        while stack:
            node = stack.pop()
            if node in result.errors or node in result.waiting:
                continue
            result.waiting[node] = f"waiting for input {handle.hex()} ({why})"
            stack.extend(dag.nodes[node].children)

    def settled(key: NodeKey) -> bool:
        return key in result.errors or key in result.waiting

    for key in dag.cycles:
        fail_descendants(key, result.errors[key])
    poisoned = failed_inputs or {}
    absent = waiting_inputs or {}
    for key in dag.order:
        refs = [o.handle for o in dag.nodes[key].operands if isinstance(o, HandleRef)]
        cause = next((h for h in refs if h in poisoned), None)
        if cause is not None and key not in result.errors:
            fail(key, f"depends on failed computation {cause.hex()} ({poisoned[cause]})")
        later = next((h for h in refs if h in absent), None)
        if later is not None:
            wait_for(key, later, absent[later])

    def release(key: NodeKey) -> None:
        """Drop a held result that no pending node reads, or that the store holds and only
        nodes past the window read; an unstored allowed result stays until it is sunk."""
        allowed = dag.nodes[key].row.is_allowed
        if key not in held or (allowed and key not in sunk):
            return
        children = dag.nodes[key].children
        pending = any(c not in submitted and not settled(c) for c in children)
        if not pending or (allowed and index[key] < frontier):
            del held[key]

    def flush() -> None:
        batch_items = [(k, held[k]) for k in unsunk]
        unsunk.clear()
        sink(batch_items)
        sunk.update(k for k, _ in batch_items)

    def operand_values(node: Node) -> list[V | bytes | object]:
        """The node's operands, read now: later a parent's result may no longer be held."""
        parents = {p[0]: p for p in node.parents if p in held}
        refs = [o.handle for o in node.operands if isinstance(o, HandleRef)]
        wanted = [h for h in refs if h not in parents]
        loaded = load(wanted) if wanted else {}
        return [
            o
            if not isinstance(o, HandleRef)
            else held[parents[o.handle]]
            if o.handle in parents
            else loaded.get(o.handle, _MISSING)
            for o in node.operands
        ]

    def work(node: Node, operands: list[V | bytes]) -> tuple[V, float]:
        validate_operation(
            node.row.opcode, list(node.row.dependencies), node.row.is_scalar, node.row.fhe_type
        )
        t0 = time.perf_counter()
        value = backend.execute(node.row.operator, operands, node.result_type)
        return value, time.perf_counter() - t0

    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(
                ThreadPoolExecutor(max_workers=max(1, pool_size), thread_name_prefix="fhe")
            )
        running: dict[Future[tuple[V, float]], NodeKey] = {}
        in_flight = 2 * max(1, pool_size)

        def advance() -> None:
            """Move the frontier past finished nodes; drop what is no longer needed."""
            nonlocal frontier
            while frontier < len(dag.order) and (
                settled(dag.order[frontier]) or dag.order[frontier] in result.op_seconds
            ):
                frontier += 1
            for k in list(held):
                release(k)

        def submit_ready() -> None:
            advance()
            for k in dag.order[frontier : frontier + window]:
                if len(running) >= in_flight:
                    return
                if waiting[k] == 0 and not settled(k) and k not in submitted:
                    node = dag.nodes[k]
                    operands = operand_values(node)
                    gone = next(
                        (o.handle for o, v in zip(node.operands, operands, strict=True)
                         if v is _MISSING and isinstance(o, HandleRef)),
                        None,
                    )  # fmt: skip
                    if gone is not None:  # not stored (yet): the node waits, nothing failed
                        wait_for(k, gone, "not in the store when its consumer started")
                        continue
                    submitted.add(k)
                    running[pool.submit(work, node, cast(list[V | bytes], operands))] = k
                    for p in node.parents:
                        release(p)

        submit_ready()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                key = running.pop(future)
                try:
                    value, seconds = future.result()
                except Exception as exc:
                    fail(key, f"{type(exc).__name__}: {exc}")
                    continue
                result.done.append(key)
                result.op_seconds[key] = seconds
                held[key] = value
                result.peak_held = max(result.peak_held, len(held))
                if dag.nodes[key].row.is_allowed:
                    unsunk.append(key)
                for child in dag.nodes[key].children:
                    waiting[child] -= 1
            if len(unsunk) >= window:
                flush()
            submit_ready()
        if unsunk:
            flush()
    result.wall_seconds = time.perf_counter() - started
    return result
