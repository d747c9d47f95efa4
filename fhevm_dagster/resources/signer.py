"""The coprocessor's two keys: the EIP-712 signer and the gateway transaction sender.

Each key comes from an environment variable holding the 0x-hex key, else from a key file
(`chain.keyfiles`: 0x-hex, one line, owner-only), else from the devnet's key files. Keys are never
config fields (Dagster shows config in its UI), never logged and never in metadata: only the
addresses are shown. The variables are in `fhevm_dagster.settings` (the README's table).
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from eth_account.signers.local import LocalAccount

from .. import settings
from ..chain.keyfiles import KeyFileError, parse_private_key, read_private_key_file

SIGNER_KEY_ENV = "FHEVM_DAGSTER_SIGNER_KEY"
SIGNER_KEY_FILE_ENV = "FHEVM_DAGSTER_SIGNER_KEY_FILE"
TX_SENDER_KEY_ENV = "FHEVM_DAGSTER_TX_SENDER_KEY"
TX_SENDER_KEY_FILE_ENV = "FHEVM_DAGSTER_TX_SENDER_KEY_FILE"


def _load(key_env: str, file_setting: str, file_env: str, what: str) -> LocalAccount:
    value = settings.value(key_env)
    if value:
        return parse_private_key(value, f"${key_env}")
    path = file_setting or settings.value(file_env)
    if not path:
        raise KeyFileError(f"no {what} key: set ${key_env}, ${file_env}, or bring up the devnet")
    return read_private_key_file(Path(str(path)).expanduser())


class SignerResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the coprocessor keys are; file paths only, the keys themselves are read on use."""

    signer_key_file: str = ""
    tx_sender_key_file: str = ""

    def signer_account(self) -> LocalAccount:
        """The EIP-712 signer (gateway answers, signatures inside host inputProofs)."""
        return _load(SIGNER_KEY_ENV, self.signer_key_file, SIGNER_KEY_FILE_ENV, "signer")

    def tx_sender_account(self) -> LocalAccount:
        """The account that sends gateway transactions."""
        return _load(
            TX_SENDER_KEY_ENV,
            self.tx_sender_key_file,
            TX_SENDER_KEY_FILE_ENV,
            "transaction sender",
        )
