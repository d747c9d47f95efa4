"""From decoded host events to computation rows and allowed handles (SPEC §5)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .events import DecodedLog
from .handles import parse_handle
from .opcodes import OPERATORS, Operator, OpKind


@dataclass(frozen=True, slots=True)
class ComputationRow:
    """One FHE operation of a host transaction; key (output_handle, tx_hash)."""

    output_handle: bytes
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    tx_index: int
    log_index: int
    opcode: int
    dependencies: tuple[bytes, ...]
    is_scalar: bool
    is_allowed: bool
    fhe_type: int  # byte 30 of the output handle
    caller: str

    @property
    def operator(self) -> Operator:
        return Operator(self.opcode)

    @property
    def key(self) -> tuple[bytes, bytes]:
        return (self.output_handle, self.tx_hash)


@dataclass(frozen=True, slots=True)
class AllowedHandle:
    """A handle that an ACL event made durable (account access or public decryption)."""

    handle: bytes
    account: str  # "" for AllowedForDecryption
    kind: str  # "account" | "decryption"
    caller: str
    tx_hash: bytes
    block_number: int
    log_index: int


def _u8(value: int) -> bytes:
    return bytes([value])


def _u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def dependencies_of(event: DecodedLog) -> tuple[tuple[bytes, ...], bool]:
    """Dependencies (SPEC §5) and scalar flag of one executor event."""
    op = event.operator
    if op is None:
        raise ValueError(f"{event.event} is not an FHE operation")
    a = event.args
    kind = OPERATORS[op].kind
    if kind is OpKind.BINARY:
        return (a["lhs"], a["rhs"]), a["scalarByte"] == b"\x01"
    if kind is OpKind.UNARY:
        return (a["ct"],), False
    if kind is OpKind.CAST:
        return (a["ct"], _u8(a["toType"])), False
    if kind is OpKind.TRIVIAL:
        return (_u256(a["pt"]), _u8(a["toType"])), True
    if kind is OpKind.TERNARY:
        return (a["control"], a["ifTrue"], a["ifFalse"]), False
    if kind is OpKind.RAND:
        return (a["seed"], _u8(a["randType"])), True
    if kind is OpKind.RAND_BOUNDED:
        return (a["seed"], _u256(a["upperBound"]), _u8(a["randType"])), True
    if kind is OpKind.SUM:
        return tuple(a["values"]), False
    if kind is OpKind.IS_IN:
        return (a["value"], *a["values"]), False
    if kind is OpKind.MUL_DIV:
        return (a["factor1"], a["factor2"], a["divisor"]), a["scalarByte"] == b"\x03"
    raise ValueError(f"{event.event} has no computation")  # VerifyInput


def allowed_handles(events: Iterable[DecodedLog]) -> list[AllowedHandle]:
    """Every handle named by `Allowed` / `AllowedForDecryption`, in log order."""
    out: list[AllowedHandle] = []
    for e in events:
        if e.contract != "acl":
            continue
        log = e.log
        if e.event == "Allowed":
            handles, account, kind = [e.args["handle"]], e.args["account"], "account"
        elif e.event == "AllowedForDecryption":
            handles, account, kind = list(e.args["handlesList"]), "", "decryption"
        else:
            continue
        out.extend(
            AllowedHandle(
                h, account, kind, e.args["caller"], log.tx_hash, log.block_number, log.log_index
            )
            for h in handles
        )
    return out


def computations_from_events(events: Sequence[DecodedLog]) -> list[ComputationRow]:
    """Computation rows of decoded logs, in (block, log) order; VerifyInput gives none.

    A result is allowed when an ACL event of the same block names it. An operation repeated inside
    one transaction (e.g. the same `TrivialEncrypt` twice) has the same key (output handle, tx hash)
    and yields one row: the first.
    """
    allowed_by_block: dict[int, set[bytes]] = {}
    for a in allowed_handles(events):
        allowed_by_block.setdefault(a.block_number, set()).add(a.handle)
    rows: list[ComputationRow] = []
    seen: set[tuple[bytes, bytes]] = set()
    ordered = sorted(events, key=lambda e: (e.log.block_number, e.log.log_index))
    for e in ordered:
        op = e.operator
        if op is None or op is Operator.VerifyInput:
            continue
        deps, is_scalar = dependencies_of(e)
        result: bytes = e.args["result"]
        if (result, e.log.tx_hash) in seen:
            continue
        seen.add((result, e.log.tx_hash))
        rows.append(
            ComputationRow(
                output_handle=result,
                tx_hash=e.log.tx_hash,
                block_number=e.log.block_number,
                block_hash=e.log.block_hash,
                tx_index=e.log.tx_index,
                log_index=e.log.log_index,
                opcode=int(op),
                dependencies=deps,
                is_scalar=is_scalar,
                is_allowed=result in allowed_by_block.get(e.log.block_number, set()),
                fhe_type=parse_handle(result).type_byte,
                caller=e.args["caller"],
            )
        )
    return rows
