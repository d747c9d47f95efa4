"""The DAG of a block range: computations as nodes, handles as edges.

A computation's encrypted operands come from an earlier computation of its own transaction, from
an allowed result of an earlier transaction (of this range or of an earlier one), or from a
verified input. Only what an allowed result needs is evaluated (SPEC §5); the rest is pruned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fhevm_dagster.protocol.computations import ComputationRow
from fhevm_dagster.protocol.opcodes import OPERATORS, Operator, OpKind
from fhevm_dagster.protocol.types import FheType

NodeKey = tuple[bytes, bytes]  # (output handle, tx hash)


@dataclass(frozen=True, slots=True)
class HandleRef:
    """An encrypted operand, named by its handle."""

    handle: bytes


Operand = HandleRef | bytes  # a handle, or a big-endian plaintext


def operands_of(row: ComputationRow) -> list[Operand]:
    """The operands `Engine.execute` takes, from a row's dependencies (SPEC §5).

    Type bytes (Cast, TrivialEncrypt, Rand) are not operands: the result type is byte 30 of the
    result handle.
    """
    op = Operator(row.opcode)
    deps = row.dependencies
    kind = OPERATORS[op].kind
    if kind is OpKind.BINARY:
        return [HandleRef(deps[0]), deps[1] if row.is_scalar else HandleRef(deps[1])]
    if kind in (OpKind.UNARY, OpKind.CAST):
        return [HandleRef(deps[0])]
    if kind is OpKind.TRIVIAL:
        return [deps[0]]
    if kind is OpKind.RAND:
        return [deps[0]]
    if kind is OpKind.RAND_BOUNDED:
        return [deps[0], deps[1]]
    if kind in (OpKind.TERNARY, OpKind.SUM, OpKind.IS_IN):
        return [HandleRef(d) for d in deps]
    if kind is OpKind.MUL_DIV:
        factor2: Operand = deps[1] if row.is_scalar else HandleRef(deps[1])
        return [HandleRef(deps[0]), factor2, deps[2]]
    raise ValueError(f"{op.name} has no computation")


@dataclass(slots=True)
class Node:
    row: ComputationRow
    operands: list[Operand]
    parents: list[NodeKey] = field(default_factory=list)  # nodes of this range it reads
    external: list[bytes] = field(default_factory=list)  # handles read from the store
    children: list[NodeKey] = field(default_factory=list)

    @property
    def key(self) -> NodeKey:
        return self.row.key

    @property
    def result_type(self) -> FheType:
        return FheType(self.row.fhe_type)


@dataclass(slots=True)
class RangeDag:
    """Needed nodes in chain order, their edges, and what they read from outside the range."""

    nodes: dict[NodeKey, Node]
    order: list[NodeKey]
    pruned: list[NodeKey]
    external: set[bytes]
    cycles: dict[NodeKey, str]

    def longest_chain(self) -> int:
        """Operations on the longest dependency path: the floor of the range's latency."""
        depth: dict[NodeKey, int] = {}
        for key in self.order:
            node = self.nodes[key]
            depth[key] = 1 + max((depth.get(p, 0) for p in node.parents), default=0)
        return max(depth.values(), default=0)


def build_dag(rows: Sequence[ComputationRow]) -> RangeDag:
    """Links the rows of a range (given in block, transaction, log order) into a DAG.

    Inside a transaction an operand resolves to the latest earlier row with that output handle;
    across transactions only through allowed results; anything else is read from the store.
    A dependency on a later row of the same transaction is a cycle: that row fails.
    """
    nodes: dict[NodeKey, Node] = {}
    order: list[NodeKey] = []
    allowed_producer: dict[bytes, NodeKey] = {}
    cycles: dict[NodeKey, str] = {}
    by_tx: dict[bytes, dict[bytes, NodeKey]] = {}
    later_in_tx: dict[bytes, set[bytes]] = {}
    for row in rows:
        later_in_tx.setdefault(row.tx_hash, set()).add(row.output_handle)
    for row in rows:
        own = by_tx.setdefault(row.tx_hash, {})
        node = Node(row, operands_of(row))
        for operand in node.operands:
            if not isinstance(operand, HandleRef):
                continue
            h = operand.handle
            if h in own:
                node.parents.append(own[h])
            elif h in allowed_producer:
                node.parents.append(allowed_producer[h])
            elif h in later_in_tx[row.tx_hash] or h == row.output_handle:
                cycles[node.key] = f"operand {h.hex()} is produced later in its own transaction"
            else:
                node.external.append(h)
        own[row.output_handle] = node.key
        if row.is_allowed:
            allowed_producer[row.output_handle] = node.key
        nodes[node.key] = node
        order.append(node.key)
    needed = _needed(nodes, order)
    for key in order:
        if key in needed:
            for parent in nodes[key].parents:
                nodes[parent].children.append(key)
    kept = [k for k in order if k in needed]
    return RangeDag(
        nodes={k: nodes[k] for k in kept},
        order=kept,
        pruned=[k for k in order if k not in needed],
        external={h for k in kept for h in nodes[k].external},
        cycles={k: v for k, v in cycles.items() if k in needed},
    )


def _needed(nodes: dict[NodeKey, Node], order: list[NodeKey]) -> set[NodeKey]:
    """Allowed results and everything they transitively read."""
    needed: set[NodeKey] = set()
    stack = [k for k in order if nodes[k].row.is_allowed]
    while stack:
        key = stack.pop()
        if key in needed:
            continue
        needed.add(key)
        stack.extend(nodes[key].parents)
    return needed


def without_stored(dag: RangeDag, stored: set[bytes]) -> tuple[RangeDag, list[NodeKey]]:
    """The part of `dag` still to evaluate when the allowed results `stored` are in the store.

    A stored result is final (its bytes were committed), so it is read from the store like an
    input instead of being computed again; a node is kept only if an allowed result that is not
    stored needs it. Returns the kept DAG and the skipped nodes (chain order)."""
    keep: set[NodeKey] = set()
    stack = [k for k in dag.order if dag.nodes[k].row.is_allowed and k[0] not in stored]
    while stack:
        key = stack.pop()
        if key in keep:
            continue
        keep.add(key)
        stack.extend(p for p in dag.nodes[key].parents if not _is_stored(dag, p, stored))
    nodes: dict[NodeKey, Node] = {}
    for key in (k for k in dag.order if k in keep):
        old = dag.nodes[key]
        nodes[key] = Node(
            old.row,
            old.operands,
            parents=[p for p in old.parents if p in keep],
            external=old.external + [p[0] for p in old.parents if p not in keep],
            children=[c for c in old.children if c in keep],
        )
    order = [k for k in dag.order if k in keep]
    return (
        RangeDag(
            nodes=nodes,
            order=order,
            pruned=dag.pruned,
            external={h for k in order for h in nodes[k].external},
            cycles={k: v for k, v in dag.cycles.items() if k in keep},
        ),
        [k for k in dag.order if k not in keep],
    )


def _is_stored(dag: RangeDag, key: NodeKey, stored: set[bytes]) -> bool:
    return dag.nodes[key].row.is_allowed and key[0] in stored
