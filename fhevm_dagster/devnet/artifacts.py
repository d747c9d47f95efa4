"""Contract artifacts: ours (contracts/build/, committed) and the real @fhevm/host-contracts ones.

Also a table of every custom error selector we know, so a revert reads as
`HCUTransactionLimitExceeded()` instead of four opaque bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import decode as abi_decode
from web3 import Web3

from .errors import ToolMissingError
from .tools import host_contracts_dir, repo_root

#: Paths of the host artifacts inside the npm package.
HOST_ARTIFACT_PATHS: dict[str, str] = {
    "ACL": "artifacts/contracts/ACL.sol/ACL.json",
    "FHEVMExecutor": "artifacts/contracts/FHEVMExecutor.sol/FHEVMExecutor.json",
    "KMSVerifier": "artifacts/contracts/KMSVerifier.sol/KMSVerifier.json",
    "InputVerifier": "artifacts/contracts/InputVerifier.sol/InputVerifier.json",
    "HCULimit": "artifacts/contracts/HCULimit.sol/HCULimit.json",
    "PauserSet": "artifacts/contracts/immutable/PauserSet.sol/PauserSet.json",
}


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load_artifact(name: str) -> Artifact:
    """One of our compiled contracts: contracts/build/<name>.json (`node contracts/build.mjs`)."""
    path = repo_root() / "contracts" / "build" / f"{name}.json"
    if not path.is_file():
        raise ToolMissingError(f"{path} is missing: run `node contracts/build.mjs`")
    doc = json.loads(path.read_text())
    return Artifact(name, doc["abi"], doc["bytecode"], doc.get("deployedBytecode", ""))


@cache
def load_host_artifact(name: str) -> Artifact:
    """A real host contract from the installed @fhevm/host-contracts package."""
    if name not in HOST_ARTIFACT_PATHS:
        raise KeyError(f"unknown host contract {name!r}; known: {sorted(HOST_ARTIFACT_PATHS)}")
    path = host_contracts_dir() / HOST_ARTIFACT_PATHS[name]
    doc = json.loads(path.read_text())
    return Artifact(name, doc["abi"], doc["bytecode"], doc["deployedBytecode"])


@cache
def host_contracts_version() -> str:
    doc = json.loads((host_contracts_dir() / "package.json").read_text())
    return str(doc["version"])


@cache
def load_abi(name: str) -> list[dict[str, Any]]:
    """An ABI shipped as package data in fhevm_dagster/abi/<name>.json."""
    text = resources.files("fhevm_dagster.abi").joinpath(f"{name}.json").read_text()
    doc = json.loads(text)
    abi: list[dict[str, Any]] = doc["abi"] if isinstance(doc, dict) else doc
    return abi


def _canonical_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@cache
def _error_table() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {
        bytes(Web3.keccak(text="Error(string)")[:4]): ("Error", ["string"]),
        bytes(Web3.keccak(text="Panic(uint256)")[:4]): ("Panic", ["uint256"]),
    }
    abis: list[list[dict[str, Any]]] = []
    build = repo_root() / "contracts" / "build"
    if build.is_dir():
        abis += [json.loads(p.read_text())["abi"] for p in sorted(build.glob("*.json"))]
    for name in ("FHEVMExecutor", "ACL", "InputVerifier", "KMSVerifier", "HCULimit"):
        abis.append(load_abi(name))
    for abi in abis:
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_canonical_type(p) for p in item.get("inputs", [])]
            table[bytes(Web3.keccak(text=f"{item['name']}({','.join(types)})")[:4])] = (
                item["name"],
                types,
            )
    return table


def _show(kind: str, value: object) -> str:
    if kind == "address" and isinstance(value, str):
        return Web3.to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


def decode_revert(data: bytes) -> tuple[str, str]:
    """(error name, readable call) of revert data, e.g. ("NotOwner", "NotOwner(0x..)")."""
    if len(data) < 4:
        return "EmptyRevert", "reverted without data"
    entry = _error_table().get(data[:4])
    if entry is None:
        return "UnknownError", f"unknown error 0x{data.hex()}"
    name, types = entry
    try:
        values = abi_decode(types, data[4:])
    except Exception:  # malformed arguments: still name the error
        return name, f"{name}(<undecodable 0x{data[4:].hex()}>)"
    shown = ", ".join(_show(t, v) for t, v in zip(types, values, strict=True))
    return name, f"{name}({shown})"
