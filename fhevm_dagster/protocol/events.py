"""Decoding of FHEVMExecutor and ACL logs (SPEC §3) into typed records.

Pure: no web3. The ABIs come from `fhevm_dagster.abi` (`FHEVMExecutor`, `ACL`, extracted from
the `@fhevm/host-contracts` 0.10.0 artifacts), plus the events of newer executors named in SPEC §3.
Logs of other contracts or with unknown topics are reported, never fatal; a log whose data does not
decode is reported as malformed with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ..abi import canonical_type, load_abi
from .opcodes import Operator, operator_for_event

Contract = Literal["executor", "acl"]


def _ev(name: str, *inputs: tuple[str, str, bool]) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"type": t, "name": n, "indexed": i} for t, n, i in inputs],
    }


_CALLER = ("address", "caller", True)
_RESULT = ("bytes32", "result", False)
# Events of executors newer than host-contracts 0.10.0 (SPEC §3), decoded when they appear.
NEWER_EXECUTOR_EVENTS: list[dict[str, Any]] = [
    _ev("FheSum", _CALLER, ("bytes32[]", "values", False), _RESULT),
    _ev("FheIsIn", _CALLER, ("bytes32", "value", False), ("bytes32[]", "values", False), _RESULT),
    _ev(
        "FheMulDiv",
        _CALLER,
        ("bytes32", "factor1", False),
        ("bytes32", "factor2", False),
        ("bytes32", "divisor", False),
        ("bytes1", "scalarByte", False),
        _RESULT,
    ),
]


@dataclass(frozen=True, slots=True)
class RawLog:
    """A log as any RPC returns it, normalised to bytes and ints."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    log_index: int


@dataclass(frozen=True, slots=True)
class EventAbi:
    name: str
    signature: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, type)
    data: tuple[tuple[str, str], ...]
    order: tuple[str, ...]  # argument names in declaration order


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """A known event: `args` hold Python values (bytes for bytesN, int, checksum address str)."""

    contract: Contract
    event: str
    args: Mapping[str, Any]
    log: RawLog

    @property
    def operator(self) -> Operator | None:
        return operator_for_event(self.event) if self.contract == "executor" else None


@dataclass(frozen=True, slots=True)
class UnknownLog:
    """A log from another contract, or with a topic the ABIs do not name."""

    reason: str
    log: RawLog


@dataclass(frozen=True, slots=True)
class MalformedLog:
    """A log whose topic is known but whose topics/data do not decode."""

    event: str
    error: str
    log: RawLog


@dataclass(slots=True)
class DecodeReport:
    """Everything found in a set of logs, in input order within each list."""

    decoded: list[DecodedLog] = field(default_factory=list)
    unknown: list[UnknownLog] = field(default_factory=list)
    malformed: list[MalformedLog] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Number of logs per event name, plus `unknown` and `malformed` totals."""
        out: dict[str, int] = {}
        for d in self.decoded:
            out[d.event] = out.get(d.event, 0) + 1
        out["unknown"] = len(self.unknown)
        out["malformed"] = len(self.malformed)
        return out


def parse_event_abis(abi: Iterable[Mapping[str, Any]]) -> dict[bytes, EventAbi]:
    """Index the non-anonymous events of an ABI by topic0."""
    out: dict[bytes, EventAbi] = {}
    for item in abi:
        if item.get("type") != "event" or item.get("anonymous"):
            continue
        inputs = list(item["inputs"])
        sig = f"{item['name']}({','.join(canonical_type(i) for i in inputs)})"
        out[keccak(text=sig)] = EventAbi(
            name=str(item["name"]),
            signature=sig,
            topic0=keccak(text=sig),
            indexed=tuple((i["name"], canonical_type(i)) for i in inputs if i.get("indexed")),
            data=tuple((i["name"], canonical_type(i)) for i in inputs if not i.get("indexed")),
            order=tuple(str(i["name"]) for i in inputs),
        )
    return out


@cache
def host_event_abis() -> Mapping[Contract, Mapping[bytes, EventAbi]]:
    """Event tables of the executor (with newer events) and the ACL, by topic0."""
    return {
        "executor": parse_event_abis([*load_abi("FHEVMExecutor"), *NEWER_EXECUTOR_EVENTS]),
        "acl": parse_event_abis(load_abi("ACL")),
    }


def _normalise(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def decode_with(abi: EventAbi, log: RawLog) -> dict[str, Any]:
    """Decode one log with a known ABI; raises ValueError with the reason when it does not fit."""
    if len(log.topics) != 1 + len(abi.indexed):
        raise ValueError(f"expected {1 + len(abi.indexed)} topics, got {len(log.topics)}")
    args: dict[str, Any] = {}
    for (name, typ), topic in zip(abi.indexed, log.topics[1:], strict=True):
        if len(topic) != 32:
            raise ValueError(f"topic for {name} has {len(topic)} bytes")
        if typ in ("string", "bytes") or typ.endswith("]") or typ.startswith("("):
            args[name] = topic  # dynamic indexed values are only their hash
        else:
            args[name] = _normalise(abi_decode([typ], topic)[0])
    try:
        values = abi_decode([t for _, t in abi.data], log.data, strict=True)
    except Exception as exc:  # eth-abi raises several unrelated types
        raise ValueError(f"data does not decode as {abi.signature}: {exc}") from exc
    for (name, _), value in zip(abi.data, values, strict=True):
        args[name] = _normalise(value)
    return {name: args[name] for name in abi.order}


def decode_logs(
    logs: Sequence[RawLog],
    executor_address: str,
    acl_address: str,
    abis: Mapping[Contract, Mapping[bytes, EventAbi]] | None = None,
) -> DecodeReport:
    """Sort logs into decoded, unknown and malformed, preserving order."""
    tables = abis if abis is not None else host_event_abis()
    by_address: dict[str, Contract] = {
        executor_address.lower(): "executor",
        acl_address.lower(): "acl",
    }
    report = DecodeReport()
    for log in logs:
        contract = by_address.get(log.address.lower())
        if contract is None:
            report.unknown.append(UnknownLog(f"log from other contract {log.address}", log))
            continue
        if not log.topics:
            report.unknown.append(UnknownLog(f"anonymous log from {contract}", log))
            continue
        abi = tables[contract].get(log.topics[0])
        if abi is None:
            reason = f"unknown {contract} event topic 0x{log.topics[0].hex()}"
            report.unknown.append(UnknownLog(reason, log))
            continue
        try:
            args = decode_with(abi, log)
        except ValueError as exc:
            report.malformed.append(MalformedLog(abi.name, str(exc), log))
            continue
        report.decoded.append(DecodedLog(contract, abi.name, args, log))
    return report
