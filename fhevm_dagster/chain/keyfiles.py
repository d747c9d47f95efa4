"""Accounts from 0x-hex private keys: the one reader and writer of key files.

The coprocessor's signer and transaction sender (`resources.signer`) and the devnet's accounts
(`devnet.state`) use the same files: 0x-hex on one line, readable by their owner only. A key
file readable by group or other is refused; no message ever holds key material.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount


class KeyFileError(RuntimeError):
    """A key that cannot be used; the message never contains key material."""


def parse_private_key(text: str, source: str) -> LocalAccount:
    """The account of 0x-hex `text`; `source` names where it came from in the error."""
    try:
        account: LocalAccount = Account.from_key(text.strip())
    except Exception:  # the library's message could echo the value: replace it
        raise KeyFileError(
            f"{source} does not hold a private key (expected 0x followed by 64 hex digits)"
        ) from None
    return account


def read_private_key_file(path: Path) -> LocalAccount:
    """The account of a 0x-hex key file that only its owner can read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible by group or other (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    return parse_private_key(text, f"key file {path}")


def write_private_key_file(path: Path, account: LocalAccount) -> None:
    """Writes `account`'s private key as 0x-hex to `path`, readable by the owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, ("0x" + bytes(account.key).hex() + "\n").encode())
    finally:
        os.close(fd)
