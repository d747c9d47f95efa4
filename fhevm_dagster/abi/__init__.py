"""JSON ABIs (package data) of @fhevm/host-contracts and of our contracts, and the revert decoder.

Written by `node contracts/build.mjs`; each file is {"contractName", "source", "abi"}. This
module is the one place that reads them (`load_abi`) and holds the one table of custom errors:
`decode_revert` names the error of any revert data whose selector one of these ABIs declares,
with its arguments, e.g. `CoprocessorAlreadyVerified(7, 0xAb.., 0xCd..)`. Both the gateway client
(`resources/chain.py`) and the devnet use it. Pure: eth_abi and eth_utils, no web3, no Dagster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

#: Built-in Solidity reverts, besides the custom errors of the ABIs.
BUILTIN_ERRORS = ("Error(string)", "Panic(uint256)")


@cache
def abi_names() -> tuple[str, ...]:
    """Names of the ABIs shipped here (file stems), sorted."""
    files = resources.files(__name__).iterdir()
    return tuple(sorted(f.name[: -len(".json")] for f in files if f.name.endswith(".json")))


@cache
def load_abi(name: str) -> list[dict[str, Any]]:
    """The ABI list of fhevm_dagster/abi/<name>.json."""
    doc = json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())
    abi: list[dict[str, Any]] = doc["abi"] if isinstance(doc, dict) else doc
    return abi


def canonical_type(param: Mapping[str, Any]) -> str:
    """The type of an ABI parameter as it appears in a signature: tuples spelled out."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def signature(item: Mapping[str, Any]) -> str:
    """`Name(type,...)` of an ABI function, event or error: what its selector or topic hashes."""
    return f"{item['name']}({','.join(canonical_type(p) for p in item.get('inputs', []))})"


def selector(sig: str) -> bytes:
    """The 4-byte selector of a function or error signature."""
    return keccak(text=sig)[:4]


@dataclass(frozen=True, slots=True)
class ErrorAbi:
    """One error: name, signature and argument types."""

    name: str
    signature: str
    types: tuple[str, ...]


def _builtin(sig: str) -> ErrorAbi:
    name, _, rest = sig.partition("(")
    return ErrorAbi(name, sig, (rest[:-1],))


@cache
def error_table() -> Mapping[bytes, ErrorAbi]:
    """Every error of every ABI here (and Error/Panic), by selector."""
    table = {selector(sig): _builtin(sig) for sig in BUILTIN_ERRORS}
    for name in abi_names():
        for item in load_abi(name):
            if item.get("type") != "error":
                continue
            sig = signature(item)
            types = tuple(canonical_type(p) for p in item.get("inputs", []))
            table.setdefault(selector(sig), ErrorAbi(str(item["name"]), sig, types))
    return table


def _show(kind: str, value: object) -> str:
    if kind == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


def decode_revert(data: bytes) -> tuple[str, str]:
    """(error name, readable form) of revert data, e.g. ("NotOwner", "NotOwner(0x..)").

    Data shorter than a selector gives ("EmptyRevert", ...), an undeclared selector
    ("UnknownError", ...), arguments that do not decode the name with the raw bytes.
    """
    if len(data) < 4:
        return "EmptyRevert", "reverted without data"
    entry = error_table().get(bytes(data[:4]))
    if entry is None:
        return "UnknownError", f"unknown error 0x{bytes(data).hex()}"
    try:
        values = abi_decode(list(entry.types), bytes(data[4:]))
    except Exception:  # malformed arguments: still name the error
        return entry.name, f"{entry.name}(<undecodable 0x{bytes(data[4:]).hex()}>)"
    shown = ", ".join(_show(t, v) for t, v in zip(entry.types, values, strict=True))
    return entry.name, f"{entry.name}({shown})"
