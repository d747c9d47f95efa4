"""The gateway's CiphertextCommits as a commit step sees it: a web3-free port and what it returns.

`chain.ciphertext_commits.GatewayCommits` implements `CommitGateway` on a real gateway; the steps
(`pipeline.digest_commits`, `pipeline.consensus`) and their tests see only this module, so neither
side imports the other's room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..protocol.digests import Material
from .calls import TxOutcome


@dataclass(frozen=True, slots=True)
class OnChainCommit:
    """An `AddCiphertextMaterial` event of this coprocessor's sender."""

    material: Material
    tx_hash: bytes
    block_number: int


class GatewayUnreachable(RuntimeError):
    """The gateway RPC could not be reached: the commit step should be retried later."""


class CommitGateway(Protocol):
    """The gateway's CiphertextCommits as seen by one transaction sender."""

    sender: str  # the sender's address, checksummed

    def committed(
        self, handles: Sequence[bytes], first: int | None = None, last: int | None = None
    ) -> dict[bytes, OnChainCommit]:
        """This sender's `AddCiphertextMaterial` events for `handles` (latest per handle) in
        gateway blocks `first..last` (defaults: the sender's look-back window up to the head)."""
        ...

    def add_many(self, materials: Sequence[Material]) -> list[TxOutcome]:
        """Sends `addCiphertextMaterial` for each (pipelined nonces), waits for every receipt;
        `retryable` marks a gateway that could not be reached, `block_number` is set only for a
        confirmed one."""
        ...
