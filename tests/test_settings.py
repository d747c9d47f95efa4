"""Settings: one table, read from the environment, then the devnet's devnet.json, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import EnvVar

from fhevm_dagster import settings
from fhevm_dagster.chain.client import redact
from fhevm_dagster.chain.config import host_chain_from_settings
from fhevm_dagster.resources.chain import HostChainResource, RangeSettings

pytestmark = pytest.mark.fast
README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def no_devnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(tmp_path / "absent.json"))


def test_environment_then_devnet_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.value("FHEVM_DAGSTER_HOST_RPC_URL") == "http://127.0.0.1:8545"
    devnet = tmp_path / "devnet.json"
    devnet.write_text(
        '{"host_rpc_url": "http://127.0.0.1:9999", "acl_address": "0x' + "ab" * 20 + '",'
        ' "executor_address": "0x' + "cd" * 20 + '", "host_start_block": 42, "host_chain_id": 7}'
    )
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(devnet))
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_RANGE_SIZE", "50")
    chain, ranges = HostChainResource.from_env(), RangeSettings.from_env("HOST")
    assert chain.rpc_url == "http://127.0.0.1:9999" and chain.acl_address == "0x" + "ab" * 20
    assert chain.chain_id == 7 and ranges.start_block == 42 and ranges.range_size == 50
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_RPC_URL", "http://h:1/v3/secret")
    # Dagster gets the variable, not the URL: the UI shows its name, never the API key in it.
    assert HostChainResource.from_env().rpc_url == EnvVar("FHEVM_DAGSTER_HOST_RPC_URL")
    assert host_chain_from_settings().rpc_url == "http://h:1/v3/secret"


def test_bad_numbers_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_RANGE_SIZE", "ten")
    with pytest.raises(ValueError, match="FHEVM_DAGSTER_HOST_RANGE_SIZE='ten' is not an integer"):
        RangeSettings.from_env("HOST")


def test_rpc_urls_are_redacted() -> None:
    url = "https://eth.example.org/v3/0123456789abcdef"
    text = redact(f"host RPC {url} failed: 401 for url: {url}?x=1", url)
    assert "0123456789abcdef" not in text and "https://eth.example.org/…" in text
    assert redact("http://127.0.0.1:8545 down", "http://127.0.0.1:8545") == (
        "http://127.0.0.1:8545 down"
    )


def test_readme_has_the_settings_table() -> None:
    assert settings.markdown_table() in README.read_text()
