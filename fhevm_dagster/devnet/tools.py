"""Where the pinned JavaScript tools live: the repository's node_modules (anvil, fhEVM artifacts).

The devnet runs only from a checkout where `npm ci` has been run; these functions find that checkout
and fail with a message naming the fix instead of a bare FileNotFoundError.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ToolMissingError

#: Overrides the repository root (the folder holding package.json, node_modules/ and contracts/).
ROOT_ENV = "FHEVM_DAGSTER_ROOT"
#: Overrides the anvil binary.
ANVIL_ENV = "FHEVM_DAGSTER_ANVIL"

_NPM_HINT = "run `npm ci` in the repository root"


def repo_root() -> Path:
    """The checkout with package.json and contracts/: env override, the package's checkout, cwd."""
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override).resolve()
    candidates = [Path(__file__).resolve().parents[2], *Path.cwd().resolve().parents, Path.cwd()]
    for candidate in candidates:
        if (candidate / "package.json").is_file() and (candidate / "contracts").is_dir():
            return candidate
    raise ToolMissingError(
        "cannot find the fhevm-dagster checkout (package.json + contracts/); "
        f"run from the repository or set {ROOT_ENV}"
    )


def node_modules() -> Path:
    """The repository's node_modules folder, which must exist."""
    path = repo_root() / "node_modules"
    if not path.is_dir():
        raise ToolMissingError(f"{path} is missing: {_NPM_HINT}")
    return path


def host_contracts_dir() -> Path:
    """The installed `@fhevm/host-contracts` package."""
    path = node_modules() / "@fhevm" / "host-contracts"
    if not (path / "artifacts").is_dir():
        raise ToolMissingError(f"{path}/artifacts is missing: {_NPM_HINT}")
    return path


def anvil_binary() -> Path:
    """The anvil binary of npm `@foundry-rs/anvil` (package `@foundry-rs/anvil-<os>-<arch>`)."""
    override = os.environ.get(ANVIL_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise ToolMissingError(f"{ANVIL_ENV}={override} does not exist")
        return path
    base = node_modules() / "@foundry-rs"
    found = sorted(base.glob("anvil-*/bin/anvil")) if base.is_dir() else []
    for path in found:
        if os.access(path, os.X_OK):
            return path
    raise ToolMissingError(f"anvil is not installed under {base}: {_NPM_HINT}")
