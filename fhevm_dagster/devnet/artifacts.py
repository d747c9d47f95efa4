"""Contract artifacts: ours (contracts/build/, committed) and the real @fhevm/host-contracts ones.

ABIs and revert decoding come from `fhevm_dagster.abi` (one table of every custom error we know,
so a revert reads as `HCUTransactionLimitExceeded()` instead of four opaque bytes); they are
re-exported here for devnet users.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..abi import decode_revert, load_abi
from .errors import ToolMissingError
from .tools import host_contracts_dir, repo_root

__all__ = [
    "HOST_ARTIFACT_PATHS",
    "Artifact",
    "decode_revert",
    "host_contracts_version",
    "load_abi",
    "load_artifact",
    "load_host_artifact",
]

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
