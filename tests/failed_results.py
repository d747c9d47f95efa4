"""A host range's allowed results in the store, one of them the output of a failed computation:
what the squash, digest, upload and commit steps meet in a range (the values' bytes are the
caller's)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from fhevm_dagster.protocol.computations import AllowedHandle, ComputationRow
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.store import Store

ERROR = "scalar division by zero"


def allow_with_one_failure(
    store: Store,
    chain_id: int,
    range_key: str,
    handles: Sequence[bytes],
    errored: bytes,
    operand: bytes,
) -> None:
    """`handles` and `errored` allowed in the range, in that order; `errored` the Uint8 output
    of a computation on `operand` that failed with `ERROR`."""
    tx = os.urandom(32)
    row = ComputationRow(
        errored,
        tx,
        5,
        b"\x01" * 32,
        0,
        0,
        0,
        (operand, operand),
        False,
        True,
        FheType.Uint8,
        "0x" + "11" * 20,
    )
    allowed = [
        AllowedHandle(h, "0x" + "22" * 20, "account", "0x" + "11" * 20, tx, 5, i + 1)
        for i, h in enumerate([*handles, errored])
    ]
    store.write_range(chain_id, range_key, [row], allowed)
    store.mark_errors([(errored, tx, ERROR)])
