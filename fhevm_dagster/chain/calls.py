"""What is sent and what became of it: plain records shared by the sender and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: Custom errors meaning "this coprocessor already did that": the goal is reached, not a failure.
#: Names as `fhevm_dagster.abi.decode_revert` gives them, which knows the reference's signatures
#: (`CoprocessorAlreadyVerified/Rejected(uint256,address,address)`, `...Added(bytes32,address)`).
ALREADY_DONE_ERRORS = frozenset(
    {"CoprocessorAlreadyVerified", "CoprocessorAlreadyRejected", "CoprocessorAlreadyAdded"}
)

TxStatus = Literal["confirmed", "already_done", "failed"]


def tx_status_of(error: str) -> TxStatus:
    """`already_done` for an `ALREADY_DONE_ERRORS` revert (decoded name), else `failed`."""
    return "already_done" if error in ALREADY_DONE_ERRORS else "failed"


@dataclass(frozen=True, slots=True)
class ContractCall:
    """One state-changing call: contract ABI name (`fhevm_dagster.abi`), function, arguments."""

    contract: str
    function: str
    args: tuple[Any, ...]
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"{self.contract}.{self.function}"


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """What became of a `ContractCall`.

    `confirmed`: mined with status 1. `already_done`: an `ALREADY_DONE_ERRORS` revert (at
    simulation, so nothing was sent, or in the mined receipt). `failed`: any other revert (`error`
    names the custom error) or an RPC failure after the client's retries (`retryable` is True).
    """

    status: TxStatus
    tx_hash: bytes | None = None
    reason: str | None = None
    error: str | None = None
    block_number: int | None = None
    retryable: bool = False

    @property
    def done(self) -> bool:
        return self.status in ("confirmed", "already_done")
