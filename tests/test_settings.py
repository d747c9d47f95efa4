"""Settings: one typed object, read from the environment, then the devnet's devnet.json, then
defaults; and read nowhere else."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from dagster import EnvVar

from fhevm_dagster import settings
from fhevm_dagster.chain.client import redact
from fhevm_dagster.chain.config import gateway_range_rules
from fhevm_dagster.chain.registry import RegistryError, host_chains_from_settings
from fhevm_dagster.protocol.addresses import ACL_ADDRESS
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.settings import load_settings

README = Path(__file__).resolve().parents[1] / "README.md"
PACKAGE = Path(__file__).resolve().parents[1] / "fhevm_dagster"
#: The modules that may name one of our variables, and why.
NAMES_ALLOWED = {
    "fhevm_dagster/settings.py": "the settings themselves",
    "fhevm_dagster/devnet/tools.py": "FHEVM_DAGSTER_ROOT and FHEVM_DAGSTER_ANVIL point the devnet "
    "tooling and its tests at a checkout and an anvil binary: developer overrides, not settings "
    "of the coprocessor (not in the README's table)",
}
#: The modules that may read the environment, and why.
READERS_ALLOWED = {
    **NAMES_ALLOWED,
    "fhevm_dagster/chain/registry.py": "the variable a registry entry names in `rpc_url_env` "
    "(data of the registry file: the URL's API key stays out of files and the UI)",
}

#: The modules that load the settings: the entry points, and where a value must be read on use.
LOADERS = {
    "fhevm_dagster/definitions.py": "the code location's entry point (`defs`)",
    "fhevm_dagster/cli/ciphertext.py": "a CLI command",
    "fhevm_dagster/cli/metrics.py": "a CLI command",
    "fhevm_dagster/cli/runs.py": "a CLI command",
    "fhevm_dagster/cli/trace.py": "a CLI command",
    "fhevm_dagster/resources/signer.py": "the private keys are read on use, in the run process, "
    "so that they never pass through Dagster's config (which the UI shows)",
    "fhevm_dagster/compute/keys.py": "the cache of server keys derived from a seeded key "
    "directory, wherever a process (a run, a CLI, a test, a benchmark) derives one",
    "fhevm_dagster/devnet/state.py": "the devnet tools' own directory (the devnet is a "
    "developer tool, not a part of the coprocessor)",
}


@pytest.fixture(autouse=True)
def no_devnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(tmp_path / "absent.json"))


def test_environment_then_devnet_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().host_rpc_url == "http://127.0.0.1:8545"
    devnet = tmp_path / "devnet.json"
    devnet.write_text(
        '{"host_rpc_url": "http://127.0.0.1:9999", "acl_address": "0x' + "ab" * 20 + '",'
        ' "executor_address": "0x' + "cd" * 20 + '", "host_start_block": 42, "host_chain_id": 7}'
    )
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(devnet))
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_RANGE_SIZE", "50")
    (chain,) = host_chains_from_settings(load_settings())
    assert chain.rpc_url == "http://127.0.0.1:9999" and chain.acl_address == "0x" + "ab" * 20
    assert chain.chain_id == 7 and chain.ranges.start_block == 42 and chain.ranges.range_size == 50
    assert chain.name == "host_7" and not chain.rpc_url_env
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_RPC_URL", "http://h:1/v3/secret")
    (chain,) = host_chains_from_settings(load_settings())
    assert chain.rpc_url == "http://h:1/v3/secret"
    # Dagster gets the variable, not the URL: the UI shows its name, never the API key in it.
    assert HostChainResource.of(chain).rpc_url == EnvVar("FHEVM_DAGSTER_HOST_RPC_URL")


def test_devnet_host_chains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    devnet = tmp_path / "devnet.json"
    hosts = [
        {"chain_id": 31337 + i, "rpc_url": f"http://127.0.0.1:{8545 + 2 * i}",
         "acl_address": "0x" + "ab" * 20, "executor_address": "0x" + "cd" * 20, "start_block": i}
        for i in range(2)
    ]  # fmt: skip
    devnet.write_text(json.dumps({"host_chains": hosts, "host_rpc_url": "http://ignored"}))
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(devnet))
    chains = host_chains_from_settings(load_settings())
    assert [(c.chain_id, c.rpc_url, c.ranges.start_block) for c in chains] == [
        (31337, "http://127.0.0.1:8545", 0),
        (31338, "http://127.0.0.1:8547", 1),
    ]


def test_registry_file_and_its_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tmp_path / "hosts.json"
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_CHAINS", str(registry))

    def hosts(*entries: object) -> list[object]:
        registry.write_text(json.dumps(list(entries)))
        return list(host_chains_from_settings(load_settings()))

    monkeypatch.setenv("ETH_URL", "https://eth.example/v3/key")
    (chain,) = hosts({"chain_id": 1, "rpc_url_env": "ETH_URL", "key_id": "7", "confirmations": 12})
    assert chain.rpc_url == "https://eth.example/v3/key" and chain.rpc_url_env == "ETH_URL"
    assert chain.key_id == 7 and chain.ranges.confirmations == 12
    assert chain.acl_address == ACL_ADDRESS
    for entries, message in (
        ([{"rpc_url": "http://x"}], "chain_id is required"),
        ([{"chain_id": 1}], "rpc_url or rpc_url_env is required"),
        ([{"chain_id": 1, "rpc_url_env": "UNSET_URL"}], r"\$UNSET_URL is empty"),
        ([{"chain_id": 1, "rpc_url": "http://x", "confirmation": 3}], "unknown field"),
        ([{"chain_id": "one", "rpc_url": "http://x"}], "chain_id must be an integer"),
        ([{"chain_id": 1, "rpc_url": "http://x"}] * 2, "chain ids repeat"),
        ([], "no host chain"),
    ):
        with pytest.raises(RegistryError, match=message):
            hosts(*entries)
    registry.write_text("{not json")
    with pytest.raises(RegistryError, match="cannot read a JSON list"):
        host_chains_from_settings(load_settings())


def test_bad_numbers_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHEVM_DAGSTER_GATEWAY_RANGE_SIZE", "ten")
    with pytest.raises(ValueError, match="FHEVM_DAGSTER_GATEWAY_RANGE_SIZE='ten' is not an int"):
        gateway_range_rules(load_settings())


def test_head_range_sizes_divide_the_range_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset: the range size (no smaller ranges at the head); set: a divisor of the range size,
    else an error naming where each size came from."""
    assert gateway_range_rules(load_settings()).head_size == 100
    monkeypatch.setenv("FHEVM_DAGSTER_GATEWAY_HEAD_RANGE_SIZE", "10")
    rules = gateway_range_rules(load_settings())
    assert (rules.range_size, rules.head_size) == (100, 10)
    monkeypatch.setenv("FHEVM_DAGSTER_GATEWAY_HEAD_RANGE_SIZE", "30")
    message = "GATEWAY_HEAD_RANGE_SIZE=30 must divide FHEVM_DAGSTER_GATEWAY_RANGE_SIZE=100"
    with pytest.raises(ValueError, match=f"FHEVM_DAGSTER_{message}"):
        gateway_range_rules(load_settings())
    monkeypatch.setenv("FHEVM_DAGSTER_GATEWAY_RANGE_SIZE", "0")
    with pytest.raises(ValueError, match="FHEVM_DAGSTER_GATEWAY_RANGE_SIZE=0: a range holds at"):
        gateway_range_rules(load_settings())
    registry = tmp_path / "hosts.json"
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_CHAINS", str(registry))

    def host(entry: dict[str, object]) -> tuple[int, int]:
        registry.write_text(json.dumps([{"chain_id": 1, "rpc_url": "http://x", **entry}]))
        (chain,) = host_chains_from_settings(load_settings())
        return chain.ranges.range_size, chain.ranges.head_size

    assert host({}) == (100, 100) and host({"range_size": 50}) == (50, 50)
    assert host({"range_size": 50, "head_range_size": 5}) == (50, 5)
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_HEAD_RANGE_SIZE", "4")
    assert host({}) == (100, 4) and host({"range_size": 8}) == (8, 4)
    for entry, message in (
        ({"range_size": 50}, "FHEVM_DAGSTER_HOST_HEAD_RANGE_SIZE=4 must divide range_size=50"),
        ({"head_range_size": 3}, "head_range_size=3 must divide FHEVM_DAGSTER_HOST_RANGE_SIZE=100"),
        ({"range_size": 10, "head_range_size": 0}, "head_range_size=0 must divide range_size=10"),
    ):
        with pytest.raises(RegistryError, match=rf"entry 0 \(chain 1\): {message}"):
            host(entry)


def test_typed_values(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent.json")
    s = load_settings(
        {
            settings.DEVNET_JSON_ENV: absent,
            "FHEVM_DAGSTER_HOST_RPC_TIMEOUT": "2.5",
            "FHEVM_DAGSTER_PURGE_CT128": "0",
            "FHEVM_DAGSTER_HOST_CHAINS": "  ",  # blank is unset
            "FHEVM_DAGSTER_GATEWAY_RPC_URL": " http://g:1 ",
        }
    )
    assert s.host_rpc_timeout == 2.5 and s.purge_ct128 is False and s.host_chains is None
    assert s.gateway_rpc_url == "http://g:1" and s.host_confirmations is None
    assert s.accept_chain_reset is None and s.run_empty_ranges is False
    assert s.database_url == f"sqlite:///{Path.home()}/.cache/fhevm-dagster/store.sqlite"
    assert s.object_store == f"file://{Path.home()}/.cache/fhevm-dagster/objects"
    assert s.cache == Path.home() / ".cache" / "fhevm-dagster"
    assert s.variable_if_set("gateway_rpc_url") == "FHEVM_DAGSTER_GATEWAY_RPC_URL"
    assert s.variable_if_set("host_rpc_url") == "" and s.variable_if_set("host_chains") == ""
    for env, text, message in (
        ("FHEVM_DAGSTER_PURGE_CT128", "yes", "FHEVM_DAGSTER_PURGE_CT128='yes': expected 1 or 0"),
        ("FHEVM_DAGSTER_ACCEPT_CHAIN_RESET", "2", "expected 1, 0 or unset"),
        ("FHEVM_DAGSTER_RPC_BACKOFF", "x", "FHEVM_DAGSTER_RPC_BACKOFF='x' is not a number"),
        ("FHEVM_DAGSTER_FHE_THREADS", "all", "FHEVM_DAGSTER_FHE_THREADS='all' is not an integer"),
    ):
        with pytest.raises(ValueError, match=message):
            load_settings({settings.DEVNET_JSON_ENV: absent, env: text})


def test_rpc_urls_are_redacted() -> None:
    url = "https://eth.example.org/v3/0123456789abcdef"
    text = redact(f"host RPC {url} failed: 401 for url: {url}?x=1", url)
    assert "0123456789abcdef" not in text and "https://eth.example.org/…" in text
    assert redact("http://127.0.0.1:8545 down", "http://127.0.0.1:8545") == (
        "http://127.0.0.1:8545 down"
    )


def test_readme_has_the_settings_table() -> None:
    assert settings.markdown_table() in README.read_text()


def _docstrings(tree: ast.AST) -> set[int]:
    bodies = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, bodies)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def test_no_module_but_settings_reads_a_setting() -> None:
    """A setting is a typed field of the `Settings` passed down: no module names a variable
    (`FHEVM_DAGSTER_…` in a string that is not a docstring) or reads the environment."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE.parent).as_posix()
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "FHEVM_DAGSTER_" in node.value
                and id(node) not in docstrings
                and where not in NAMES_ALLOWED
            ):
                found.append(f"{where}:{node.lineno} names {node.value!r}")
            reads = (
                isinstance(node, ast.Attribute)
                and node.attr in ("environ", "environb", "getenv")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and {a.name for a in node.names} & {"environ", "environb", "getenv"}
            )
            if reads and where not in READERS_ALLOWED:
                found.append(f"{where}:{node.lineno} reads the environment")
    assert not found, "settings read outside fhevm_dagster.settings:\n" + "\n".join(found)


def test_the_settings_are_loaded_by_the_entry_points() -> None:
    """`defs()` and each CLI load the `Settings` once and pass down what each part needs (as
    plain configs and resource fields); the few modules that load them for a value read on use
    are named, with their reason, in `LOADERS`."""
    loaders = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "load_settings"
            ):
                loaders.add(path.relative_to(PACKAGE.parent).as_posix())
    assert loaders == set(LOADERS)
