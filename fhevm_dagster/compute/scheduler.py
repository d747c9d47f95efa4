"""Schedules a range DAG on a thread pool, with the FHE engine or the plaintext oracle.

Independent operations run at the same time: `tfhe_py` releases the GIL, so the pool's threads
compute in parallel. A failed operation fails what depends on it, with a message naming the
cause; everything else completes. An operation whose input is not stored yet is not a failure:
it waits (with what depends on it) for a later run, as the reference's scheduler leaves such work
pending.

Memory is bounded by a batch size, not by the range: results go to a sink (the store) a batch at
a time and are let go once nothing pending reads them; operands come from a loader (the store)
when their consumer starts (`run_dag`).

The scheduler knows every pending reader of every handle, so it tells a backend that derives
something costly from a value (the FHE backend's decompressed operands, `OperandCache`) how many
times the value will be read, and which announced reads will never come.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

from fhevm_dagster.compute.dag import HandleRef, Node, NodeKey, RangeDag
from fhevm_dagster.compute.evaluate import Backend
from fhevm_dagster.protocol.opcodes import validate_operation

V = TypeVar("V")
V_contra = TypeVar("V_contra", contravariant=True)


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


class Readers(Protocol[V_contra]):
    """Told ahead how many times each value will be read, so that what a backend derives from a
    value (a decompressed ciphertext) is kept exactly as long as a reader is pending."""

    def key(self, value: V_contra) -> bytes: ...

    def expect(self, key: bytes, reads: int) -> None: ...

    def forgo(self, key: bytes, reads: int) -> None: ...


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
    readers: Readers[V] | None = None,
    sink_reads: int = 0,
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
    work of the range (its squashes). `readers` hears, for each value, how many operand slots of
    pending nodes read it, plus `sink_reads` for an allowed result (the sink's own reads: a squash),
    and which of those reads will never come; the backend makes them (the sink, its own)."""
    started = time.perf_counter()
    scheduler = DagScheduler(dag, backend, load, sink, batch, readers, sink_reads)
    scheduler.settle_given(failed_inputs or {}, waiting_inputs or {})
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(
                ThreadPoolExecutor(max_workers=max(1, pool_size), thread_name_prefix="fhe")
            )
        scheduler.run(pool, in_flight=2 * max(1, pool_size))
    scheduler.result.wall_seconds = time.perf_counter() - started
    return scheduler.result


class DagScheduler(Generic[V]):
    """One evaluation of a DAG (`run_dag`): what is held, sunk, running and settled, from the
    first submission to the last completion. Used from one thread; only `_work` runs on the
    pool."""

    def __init__(
        self,
        dag: RangeDag,
        backend: Backend[V],
        load: Loader[V],
        sink: Sink[V],
        batch: int,
        readers: Readers[V] | None = None,
        sink_reads: int = 0,
    ) -> None:
        self.dag, self.backend, self.load, self.sink = dag, backend, load, sink
        self.readers, self.sink_reads = readers, sink_reads
        self.result: EvalResult[V] = EvalResult()
        self.window = batch if batch > 0 else len(dag.order) or 1
        self.index = {k: i for i, k in enumerate(dag.order)}
        self.unfinished_parents = {k: len(dag.nodes[k].parents) for k in dag.order}
        self.held: dict[NodeKey, V] = {}
        self.unsunk: list[NodeKey] = []
        self.sunk: set[NodeKey] = set()
        self.submitted: set[NodeKey] = set()
        self.running: dict[Future[tuple[V, float]], NodeKey] = {}
        self.frontier = 0  # index of the first node neither evaluated nor failed
        # Operand slots of nodes neither submitted nor settled, by handle; and the key of each
        # handle's value announced to `readers`, while such slots remain.
        self.reads: Counter[bytes] = Counter(
            o.handle for k in dag.order for o in dag.nodes[k].operands if isinstance(o, HandleRef)
        )
        self.announced: dict[bytes, bytes] = {}
        self.unread: set[NodeKey] = set()  # settled before reading: their reads given up

    # -- settling: failed or waiting nodes, and what depends on them

    def settle_given(self, failed: Mapping[bytes, str], absent: Mapping[bytes, str]) -> None:
        """Before any work: cycles fail, readers of failed inputs fail, readers of inputs not
        stored yet wait, each with its descendants."""
        errors = self.result.errors
        for key, reason in self.dag.cycles.items():
            errors[key] = f"cycle: {reason}"
            self._give_up_reads(key)
        for key in self.dag.cycles:
            self._fail_descendants(key, errors[key])
        for key in self.dag.order:
            refs = [o.handle for o in self.dag.nodes[key].operands if isinstance(o, HandleRef)]
            cause = next((h for h in refs if h in failed), None)
            if cause is not None and key not in errors:
                self._fail(key, f"depends on failed computation {cause.hex()} ({failed[cause]})")
            later = next((h for h in refs if h in absent), None)
            if later is not None:
                self._wait_for(key, later, absent[later])

    def _fail_descendants(self, key: NodeKey, cause: str) -> None:
        stack = list(self.dag.nodes[key].children)
        while stack:
            child = stack.pop()
            if child in self.result.errors:
                continue
            self.result.errors[child] = f"depends on failed computation {key[0].hex()}: {cause}"
            self._give_up_reads(child)
            stack.extend(self.dag.nodes[child].children)

    def _fail(self, key: NodeKey, message: str) -> None:
        self.result.errors[key] = message
        self._give_up_reads(key)
        self._fail_descendants(key, message)

    def _wait_for(self, key: NodeKey, handle: bytes, why: str) -> None:
        """`key` and its pending descendants wait for `handle`: not evaluated, not failed."""
        self.result.waited_for.setdefault(handle, why)
        stack = [key]
        while stack:
            node = stack.pop()
            if node in self.result.errors or node in self.result.waiting:
                continue
            self.result.waiting[node] = f"waiting for input {handle.hex()} ({why})"
            self._give_up_reads(node)
            stack.extend(self.dag.nodes[node].children)

    def _settled(self, key: NodeKey) -> bool:
        return key in self.result.errors or key in self.result.waiting

    # -- readers: how often each value will still be read

    def _announce(self, handle: bytes, value: V, extra: int = 0) -> None:
        """Tell `readers` how often `handle`'s value will be read: once per pending slot."""
        if self.readers is None or self.reads[handle] + extra <= 0:
            return
        key = self.readers.key(value)
        self.readers.expect(key, self.reads[handle] + extra)
        if self.reads[handle] > 0:
            self.announced[handle] = key

    def _read(self, node: NodeKey, give_up: bool) -> None:
        """`node`'s operand slots are read now (it was submitted) or never (`give_up`)."""
        for o in self.dag.nodes[node].operands:
            if not isinstance(o, HandleRef):
                continue
            h = o.handle
            self.reads[h] -= 1
            key = self.announced.get(h)
            if give_up and key is not None and self.readers is not None:
                self.readers.forgo(key, 1)
            if self.reads[h] <= 0:
                self.announced.pop(h, None)
                del self.reads[h]

    def _give_up_reads(self, key: NodeKey) -> None:
        if key not in self.submitted and key not in self.unread:
            self.unread.add(key)
            self._read(key, give_up=True)

    # -- memory: what is held, sunk and let go

    def _release(self, key: NodeKey) -> None:
        """Drop a held result that no pending node reads, or that the store holds and only
        nodes past the window read; an unstored allowed result stays until it is sunk."""
        allowed = self.dag.nodes[key].row.is_allowed
        if key not in self.held or (allowed and key not in self.sunk):
            return
        children = self.dag.nodes[key].children
        pending = any(c not in self.submitted and not self._settled(c) for c in children)
        if not pending or (allowed and self.index[key] < self.frontier):
            del self.held[key]

    def _flush(self) -> None:
        batch_items = [(k, self.held[k]) for k in self.unsunk]
        self.unsunk.clear()
        self.sink(batch_items)
        self.sunk.update(k for k, _ in batch_items)

    def _advance(self) -> None:
        """Move the frontier past finished nodes; drop what is no longer needed."""
        order = self.dag.order
        while self.frontier < len(order) and (
            self._settled(order[self.frontier]) or order[self.frontier] in self.result.op_seconds
        ):
            self.frontier += 1
        for k in list(self.held):
            self._release(k)

    # -- running: submissions and completions

    def run(self, pool: Executor, in_flight: int) -> None:
        """Submit ready nodes, at most `in_flight` at once, until nothing runs; sink the rest."""
        self._submit_ready(pool, in_flight)
        while self.running:
            done, _ = wait(self.running, return_when=FIRST_COMPLETED)
            for future in done:
                self._complete(future)
            if len(self.unsunk) >= self.window:
                self._flush()
            self._submit_ready(pool, in_flight)
        if self.unsunk:
            self._flush()

    def _submit_ready(self, pool: Executor, in_flight: int) -> None:
        self._advance()
        for k in self.dag.order[self.frontier : self.frontier + self.window]:
            if len(self.running) >= in_flight:
                return
            if self.unfinished_parents[k] == 0 and not self._settled(k) and k not in self.submitted:
                self._submit(pool, k)

    def _submit(self, pool: Executor, key: NodeKey) -> None:
        """Start `key` with its operands read now, or make it wait for one not stored yet."""
        node = self.dag.nodes[key]
        operands = self._operand_values(node)
        gone = next(
            (o.handle for o, v in zip(node.operands, operands, strict=True)
             if v is _MISSING and isinstance(o, HandleRef)),
            None,
        )  # fmt: skip
        if gone is not None:  # not stored (yet): the node waits, nothing failed
            self._wait_for(key, gone, "not in the store when its consumer started")
            return
        self.submitted.add(key)
        self._read(key, give_up=False)  # the backend takes each announced read as it runs
        self.running[pool.submit(self._work, node, cast(list[V | bytes], operands))] = key
        for p in node.parents:
            self._release(p)

    def _operand_values(self, node: Node) -> list[V | bytes | object]:
        """The node's operands, read now: later a parent's result may no longer be held."""
        parents = {p[0]: p for p in node.parents if p in self.held}
        refs = [o.handle for o in node.operands if isinstance(o, HandleRef)]
        wanted = [h for h in refs if h not in parents]
        loaded = self.load(wanted) if wanted else {}
        for h, value in loaded.items():
            if h not in self.announced:  # an input: every pending slot reads the same bytes
                self._announce(h, value)
        return [
            o
            if not isinstance(o, HandleRef)
            else self.held[parents[o.handle]]
            if o.handle in parents
            else loaded.get(o.handle, _MISSING)
            for o in node.operands
        ]

    def _work(self, node: Node, operands: list[V | bytes]) -> tuple[V, float]:
        """On a pool thread: the operation, checked, and its time."""
        row = node.row
        validate_operation(row.opcode, list(row.dependencies), row.is_scalar, row.fhe_type)
        t0 = time.perf_counter()
        value = self.backend.execute(row.operator, operands, node.result_type)
        return value, time.perf_counter() - t0

    def _complete(self, future: Future[tuple[V, float]]) -> None:
        """A finished operation: its failure spreads to its descendants; its result is held
        (and queued for the sink if allowed) and its children have one parent fewer to wait."""
        key = self.running.pop(future)
        try:
            value, seconds = future.result()
        except Exception as exc:
            self._fail(key, f"{type(exc).__name__}: {exc}")
            return
        self.result.done.append(key)
        self.result.op_seconds[key] = seconds
        self.held[key] = value
        self._announce(key[0], value, self.sink_reads if self.dag.nodes[key].row.is_allowed else 0)
        self.result.peak_held = max(self.result.peak_held, len(self.held))
        if self.dag.nodes[key].row.is_allowed:
            self.unsunk.append(key)
        for child in self.dag.nodes[key].children:
            self.unfinished_parents[child] -= 1
