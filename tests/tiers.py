"""Test tiers by what a test needs: `devnet` (anvil), `postgres` (a PostgreSQL cluster), `fhe`
(the FHE test keys); `fast` is every test that needs none of them (nor `install` or `faults`).

Markers are derived at collection so that a test cannot forget them:
- `devnet`: a test using a devnet fixture (devnet_fixtures.py), or whose body or one of whose
  fixtures calls `start_anvil` or `devnet_up`, itself or through a function or class of its own
  module (a test that starts anvil through the CLI is marked `devnet` by hand);
- `postgres`: a test using `postgres_url` or `postgres_database`, or the `postgresql` case of
  `store_url`;
- `fhe`: a test using a key fixture (`keyset`, `engine`, `client_key`: fhe_fixtures.py and
  tfhe-py/tests, or a module's own of those names), or marked so by hand (the tests that load the
  keys through `FheResource` or `load_key_dir` themselves).

`fast` is derived too; a test marked `fast` by hand that needs one of them is a collection error.
At run time a test that starts anvil, initdb or derives or loads the cached server key without
the marker of that need fails with a message naming the marker, so a fast test cannot silently
start a devnet, a cluster, or load a 1.6 GB key.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Generator, Iterable
from types import CodeType, FunctionType
from typing import Any, TypeVar

import pytest

NEEDS = ("devnet", "postgres", "fhe")
#: `make test-full` (`FHEVM_DAGSTER_FULL=1`): the slow modules add their costliest cases.
FULL = os.environ.get("FHEVM_DAGSTER_FULL") == "1"
#: Tiers that are not fast either: a fresh venv from PyPI, the fault suite.
NOT_FAST = ("install", "faults")
DEVNET_FIXTURES = frozenset({"devnet", "host_w3", "gateway_w3", "devnet_client", "host_clients"})
POSTGRES_FIXTURES = frozenset({"postgres_url", "postgres_database"})
FHE_FIXTURES = frozenset({"keyset", "engine", "client_key"})
#: Names whose call in a test's or fixture's body starts anvil.
ANVIL_STARTERS = frozenset({"start_anvil", "devnet_up"})

_running: pytest.Item | None = None
F = TypeVar("F", bound=Callable[..., Any])


def _calls_anvil(functions: Iterable[object]) -> bool:
    """Whether one of `functions`, or a function or class of its own module that it names (or
    one nested in it), calls one of ANVIL_STARTERS."""
    seen: set[CodeType] = set()
    todo = [(fn.__code__, fn.__globals__) for fn in functions if isinstance(fn, FunctionType)]
    while todo:
        code, scope = todo.pop()
        if code in seen:
            continue
        seen.add(code)
        if ANVIL_STARTERS & set(code.co_names):
            return True
        todo += [(c, scope) for c in code.co_consts if isinstance(c, CodeType)]
        for name in code.co_names:
            target = scope.get(name)
            if getattr(target, "__module__", None) != scope.get("__name__"):
                continue
            members = list(vars(target).values()) if isinstance(target, type) else [target]
            todo += [(m.__code__, scope) for m in members if isinstance(m, FunctionType)]
    return False


def needs_of(item: pytest.Item) -> set[str]:
    """The needs of `item` derived from its fixtures, parameters and code."""
    names = set(getattr(item, "fixturenames", ()))
    found: set[str] = set()
    functions: list[object] = [getattr(item, "obj", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        functions += [d.func for defs in info.name2fixturedefs.values() for d in defs]
    if names & DEVNET_FIXTURES or _calls_anvil(functions):
        found.add("devnet")
    callspec = getattr(item, "callspec", None)
    if names & POSTGRES_FIXTURES or (
        callspec is not None and callspec.params.get("store_url") == "postgresql"
    ):
        found.add("postgres")
    if names & FHE_FIXTURES:
        found.add("fhe")
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Adds the derived markers before `-m` selects on them."""
    for item in items:
        marked = {m.name for m in item.iter_markers()}
        needs = needs_of(item) | (marked & set(NEEDS))
        for need in sorted(needs - marked):
            item.add_marker(need)
        if needs and "fast" in marked:
            raise pytest.UsageError(
                f"{item.nodeid} is marked fast but needs {', '.join(sorted(needs))}"
            )
        if not needs and not marked & set(NOT_FAST) and "fast" not in marked:
            item.add_marker("fast")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    global _running
    _running = item
    try:
        yield
    finally:
        _running = None


def require(need: str, what: str) -> None:
    """Fails the running test when it lacks the marker of `need` (outside a test: allowed)."""
    item = _running
    if item is not None and item.get_closest_marker(need) is None:
        pytest.fail(
            f"{item.nodeid} {what} but is not marked `{need}`: mark it "
            f"(`pytest.mark.{need}`) or use the shared fixtures that mark it",
            pytrace=False,
        )


def guarded(fn: F, need: str, what: str) -> F:
    """`fn`, refusing to run in a test without the marker of `need` (guarded once: an inner
    pytest session of tests/test_tiers.py configures this plugin again)."""
    if getattr(fn, "__tier_guard__", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require(need, what)
        return fn(*args, **kwargs)

    wrapper.__tier_guard__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def pytest_configure(config: pytest.Config) -> None:
    """Guards the process-wide entry points of anvil and of the derived server key."""
    from fhevm_dagster.compute import keys
    from fhevm_dagster.devnet import anvil

    anvil.anvil_binary = guarded(anvil.anvil_binary, "devnet", "starts anvil")
    for name in ("cached_server_key", "cached_compressed_server_key", "decompressed_server_key"):
        setattr(keys, name, guarded(getattr(keys, name), "fhe", "loads the FHE server key"))
