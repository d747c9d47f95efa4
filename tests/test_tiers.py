"""The tiers (tests/tiers.py) in an inner pytest session: markers follow what a test uses, and a
test that loads the server key without the `fhe` marker fails instead of running."""

from __future__ import annotations

import pytest

INNER_CONFTEST = """
import pytest

pytest_plugins = ["tiers"]


@pytest.fixture
def postgres_url() -> str:
    return "postgresql://"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine() -> None:
    return None
"""

INNER_TESTS = """
import pytest

from fhevm_dagster.compute import keys


def start_anvil() -> None:
    raise AssertionError("never called: naming it is enough")


def _helper() -> object:
    return start_anvil


def test_plain() -> None:
    pass


def test_pg(postgres_url: str) -> None:
    pass


def test_store(store_url: str) -> None:
    pass


def test_keys(engine: None) -> None:
    pass


def test_anvil_through_a_helper() -> None:
    _helper()


def test_loads_keys_unmarked(tmp_path) -> None:
    keys.cached_server_key(tmp_path / "client_key.bin", 1)


@pytest.mark.fhe
def test_loads_keys_marked(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):  # past the guard: no such client key
        keys.cached_server_key(tmp_path / "client_key.bin", 1)
"""


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester


def selected(pytester: pytest.Pytester, expression: str) -> set[str]:
    result = pytester.runpytest("--collect-only", "-q", "-m", expression)
    return {line.split("::", 1)[1] for line in result.outlines if "::" in line}


def test_markers_follow_the_fixtures_and_code(inner: pytest.Pytester) -> None:
    assert selected(inner, "fast") == {
        "test_plain",
        "test_store[sqlite]",
        "test_loads_keys_unmarked",
    }
    assert selected(inner, "postgres") == {"test_pg", "test_store[postgresql]"}
    assert selected(inner, "fhe") == {"test_keys", "test_loads_keys_marked"}
    assert selected(inner, "devnet") == {"test_anvil_through_a_helper"}


def test_a_test_without_the_marker_cannot_load_the_server_key(inner: pytest.Pytester) -> None:
    result = inner.runpytest("-k", "loads_keys")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_loads_keys_unmarked loads the FHE server key but is not*"])


def test_fast_by_hand_on_a_test_with_a_need_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(
        test_inner="""
import pytest


@pytest.mark.fast
def test_pg(postgres_url: str) -> None:
    pass
"""
    )
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_pg is marked fast but needs postgres*"])
