"""ARCHITECTURE.md's rules, checked on the import graph (static: every module's imports, and the
packages Python runs to import it).

- `protocol/`, `compute/`, `store/`, `pipeline/` and the plain-data `chain.config`, `chain.calls`,
  `chain.commit_port` and `settings` reach neither Dagster nor web3, however indirectly.
- web3 is imported only by `chain/` and `devnet/`; Dagster only by the Dagster layer; `tfhe_py`
  only by `compute/` and `resources/fhe.py`.
- Command lines are parsed only in `cli/`.
- The rooms are layered (`LAYERS`): a module imports only its own room and the layers below.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "fhevm_dagster"
PURE = (
    "protocol", "compute", "store", "pipeline", "chain.config", "chain.calls", "chain.commit_port",
    "settings",
)  # fmt: skip
WEB3_ROOMS = ("chain", "devnet")
DAGSTER_ROOMS = (
    "assets", "resources", "sensors", "jobs", "partitions", "host_chains", "definitions",
    "launcher", "retention",
)  # fmt: skip
#: The rooms from the bottom up; the Dagster layer, the devnet, the CLIs, metrics and trace sit
#: above them all. Rooms of one layer do not import each other.
LAYERS = (
    ("abi",),
    ("protocol",),
    ("settings", "chain.calls"),
    ("chain.config",),
    ("store", "compute", "objects", "chain.commit_port"),
    ("chain",),
    ("pipeline",),
)
DAGSTER_TOOLS = (
    "cli.metrics",
    "cli.runs",
    "metrics.sources",
)  # commands that read a Dagster instance's runs, and the scrape's reader of materializations


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in ROOT.rglob("*.py")}


@cache
def _imports(module: str) -> tuple[set[str], set[str]]:
    """(our modules, third-party top-level packages) that `module` imports, lazily or not."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name in MODULES:
                ours.add(name)
            elif not name.startswith("fhevm_dagster"):
                others.add(name.split(".")[0])
    for m in list(ours):  # importing a.b.c runs a and a.b first
        parts = m.split(".")
        ours.update(
            ".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in MODULES
        )
    return ours, others


def _closure(module: str) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        ours, others = _imports(m)
        seen[m] = others
        todo.extend(ours)
    return seen


def _in(module: str, rooms: tuple[str, ...]) -> bool:
    rel = module.removeprefix("fhevm_dagster.")
    return any(rel == r or rel.startswith(r + ".") for r in rooms)


@pytest.mark.parametrize("room", PURE)
def test_pure_rooms_reach_neither_dagster_nor_web3(room: str) -> None:
    bad = {
        f"{start} -> {m} imports {pkg}"
        for start in MODULES
        if _in(start, (room,))
        for m, others in _closure(start).items()
        for pkg in others & {"dagster", "web3"}
    }
    assert not bad, sorted(bad)


def test_web3_and_dagster_stay_in_their_rooms() -> None:
    web3 = sorted(m for m in MODULES if "web3" in _imports(m)[1] and not _in(m, WEB3_ROOMS))
    dagster = sorted(
        m
        for m in MODULES
        if "dagster" in _imports(m)[1] and not _in(m, DAGSTER_ROOMS + DAGSTER_TOOLS)
    )
    assert web3 == [] and dagster == []


def test_command_lines_are_parsed_in_cli_only() -> None:
    """Every command group is a module of `cli/`; the rooms hold what the commands call."""
    parsers = sorted(m for m in MODULES if "argparse" in _imports(m)[1] and not _in(m, ("cli",)))
    assert parsers == []


def test_tfhe_py_only_through_compute() -> None:
    """The bindings are used through `compute/` and the engine resource, nowhere else."""
    users = sorted(m for m in MODULES if "tfhe_py" in _imports(m)[1])
    assert all(_in(m, ("compute", "resources.fhe")) for m in users), users


def test_the_dagster_layer_is_thin() -> None:
    """No module of the Dagster layer over 300 lines: logic belongs in `pipeline/`."""
    long = {
        m: n
        for m, p in MODULES.items()
        if _in(m, DAGSTER_ROOMS) and (n := len(p.read_text().splitlines())) > 300
    }
    assert long == {}


def _room(module: str) -> tuple[int, str]:
    """(layer, room) of a module; layer len(LAYERS) for the rooms above them all."""
    rel = module.removeprefix("fhevm_dagster").removeprefix(".")
    found = [
        (len(r), i, r)
        for i, rooms in enumerate(LAYERS)
        for r in rooms
        if rel == r or rel.startswith(r + ".")
    ]
    if not found:
        return len(LAYERS), rel.split(".")[0]
    _, layer, room = max(found)
    return layer, room


def test_rooms_import_only_their_own_and_lower_layers() -> None:
    """e.g. `chain/` never imports `pipeline/`: the port types a step and the chain client share
    live in the lower room. A package `__init__` that imports nothing only names its package."""
    neutral = {m for m, p in MODULES.items() if p.name == "__init__.py" and not _imports(m)[0]}
    bad = sorted(
        f"{m} -> {o}"
        for m in MODULES
        if (mine := _room(m))[0] < len(LAYERS)
        for o in _imports(m)[0] - neutral
        if (theirs := _room(o)) != mine and theirs[0] >= mine[0]
    )
    assert bad == []
