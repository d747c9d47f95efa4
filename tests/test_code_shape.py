"""No function or method of `fhevm_dagster/` longer than `MAX_LINES`: a long one holds several
steps that want names. The few not split yet are listed with the reason, and the list only
shrinks: an entry whose function got short (or went) fails too, so it is removed."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast
ROOT = Path(__file__).resolve().parents[1] / "fhevm_dagster"
MAX_LINES = 80
#: "module:qualname" -> why it is still long.
ALLOWED: dict[str, str] = {}


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines from `def` to its last line) of every function, nested ones too."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + node.name
            yield name, (node.end_lineno or node.lineno) - node.lineno + 1
            yield from _functions(node, f"{name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def _lengths() -> dict[str, int]:
    out: dict[str, int] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for name, lines in _functions(ast.parse(path.read_text())):
            out[f"{module}:{name}"] = lines
    return out


def test_no_function_over_max_lines() -> None:
    lengths = _lengths()
    long = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in ALLOWED}
    assert long == {}, f"split these (or list them in ALLOWED with why): {long}"


def test_allowed_functions_are_still_long() -> None:
    lengths = _lengths()
    stale = sorted(name for name in ALLOWED if lengths.get(name, 0) <= MAX_LINES)
    assert stale == [], f"no longer long: remove from ALLOWED {stale}"
