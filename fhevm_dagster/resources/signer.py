"""The coprocessor's two keys: the EIP-712 signer and the gateway transaction sender.

Each key comes from an environment variable holding the 0x-hex key, else from a key file
(`chain.keyfiles`: 0x-hex, one line, owner-only), else from the devnet's key files. Keys are never
config fields (Dagster shows config in its UI), never logged and never in metadata: only the
addresses are shown. The settings are in `fhevm_dagster.settings` (the README's table).
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from eth_account.signers.local import LocalAccount

from ..chain.keyfiles import KeyFileError, parse_private_key, read_private_key_file
from ..settings import load_settings, variable


def _load(key: str, file_setting: str, file: str, what: str) -> LocalAccount:
    """The key of setting `key`, else the resource's file, else the file of setting `file`
    (the settings are read on use: the keys never pass through Dagster's config)."""
    settings = load_settings()
    value: str = getattr(settings, key)
    if value:
        return parse_private_key(value, f"${variable(key)}")
    path: Path | None = Path(file_setting) if file_setting else getattr(settings, file)
    if path is None:
        raise KeyFileError(
            f"no {what} key: set ${variable(key)}, ${variable(file)}, or bring up the devnet"
        )
    return read_private_key_file(path.expanduser())


class SignerResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the coprocessor keys are; file paths only, the keys themselves are read on use."""

    signer_key_file: str = ""
    tx_sender_key_file: str = ""

    def signer_account(self) -> LocalAccount:
        """The EIP-712 signer (gateway answers, signatures inside host inputProofs)."""
        return _load("signer_key", self.signer_key_file, "signer_key_file", "signer")

    def tx_sender_account(self) -> LocalAccount:
        """The account that sends gateway transactions."""
        return _load(
            "tx_sender_key", self.tx_sender_key_file, "tx_sender_key_file", "transaction sender"
        )
