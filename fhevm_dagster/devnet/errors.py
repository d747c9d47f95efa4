"""Errors of the local devnet, each with a message that says what to do about it."""

from __future__ import annotations


class DevnetError(RuntimeError):
    """Base error of the devnet: a step of bringing up or using the local chains failed."""


class ToolMissingError(DevnetError):
    """A pinned npm tool (anvil, solc output, fhEVM artifacts) is not installed: run `npm ci`."""


class TransactionReverted(DevnetError):
    """A transaction (or its gas estimation) reverted; `error` is the decoded custom error name."""

    def __init__(self, message: str, *, error: str | None = None, tx_hash: str | None = None):
        super().__init__(message)
        self.error = error
        self.tx_hash = tx_hash
