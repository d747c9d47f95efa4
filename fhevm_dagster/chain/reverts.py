"""What a web3 revert says: the raw revert data, and its decoded custom error.

The one decoder is `fhevm_dagster.abi.decode_revert` (every error of the shipped ABIs); this module
only digs the data out of web3's exceptions, for the gateway sender and the devnet alike.
"""

from __future__ import annotations

from typing import Any

from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from ..abi import decode_revert

#: web3's exceptions for "the call reverted" (as opposed to "the node could not be asked").
REVERTS = (ContractCustomError, ContractLogicError, ContractPanicError)


def revert_data(exc: Exception) -> bytes:
    """The revert data web3 attached to `exc`, or b"" when it has none."""
    data: Any = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


def revert_of(exc: Exception) -> tuple[str, str]:
    """(error name, readable reason) of a revert, e.g. ("CoprocessorAlreadyAdded", "...(0x..)")."""
    data = revert_data(exc)
    return decode_revert(data) if data else (type(exc).__name__, str(exc))
