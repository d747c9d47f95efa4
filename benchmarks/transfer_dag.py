"""A range of confidential transfers as host ingestion writes it, without a chain: stored input
amounts and balances, and per transfer Ge, Sub, IfThenElse, Add, IfThenElse on Uint64 with both
new balances allowed, so each transfer reads earlier ones' balances. For the benchmarks and the
tests that need a range's real DAG shape; `encode` makes an input's ct64 bytes (a real encryption
or a stand-in)."""

from __future__ import annotations

from collections.abc import Callable

from fhevm_dagster.protocol.computations import AllowedHandle, ComputationRow
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.store import Ciphertext, Store

CHAIN = 31337
RANGE = "000000000001-000000001000"
U64 = FheType.Uint64


def handle(n: int, fhe_type: FheType, computed: bool) -> bytes:
    index = b"\xff" if computed else b"\x00"
    return n.to_bytes(21, "big") + index + CHAIN.to_bytes(8, "big") + bytes([fhe_type, 0])


def write_transfers(
    store: Store, n: int, accounts: int, encode: Callable[[int], bytes]
) -> tuple[list[bytes], dict[bytes, int]]:
    """`n` transfers between `accounts` accounts, each moving its amount when the sender's
    balance covers it, written to RANGE: the allowed handles and every handle's plaintext."""
    counter = iter(range(1, 1 << 30))
    plain: dict[bytes, int] = {}
    inputs: list[Ciphertext] = []
    rows: list[ComputationRow] = []
    allowed: list[AllowedHandle] = []

    def stored_input(value: int) -> bytes:
        h = handle(next(counter), U64, computed=False)
        inputs.append(Ciphertext(h, encode(value), U64, 0, "input"))
        plain[h] = value
        return h

    def row(tx: int, op: Operator, deps: tuple[bytes, ...], t: FheType, ok: bool) -> bytes:
        h, tx_hash = handle(next(counter), t, computed=True), tx.to_bytes(32)
        caller = "0x" + "0" * 40
        rows.append(
            ComputationRow(
                h, tx_hash, tx + 1, b"\x02" * 32, 0, len(rows), int(op), deps, False, ok, int(t),
                caller,
            )
        )  # fmt: skip
        if ok:
            allowed.append(AllowedHandle(h, caller, "account", caller, tx_hash, tx + 1, len(rows)))
        return h

    balance = {a: stored_input(1000) for a in range(accounts)}
    for i in range(n):
        src, dst, amount = i % accounts, (3 * i + 1) % accounts, stored_input(37 * i % 300)
        src_bal, dst_bal = balance[src], balance[dst]
        moved = plain[amount] if plain[src_bal] >= plain[amount] else 0
        ge = row(i, Operator.Ge, (src_bal, amount), FheType.Bool, False)
        debited = row(i, Operator.Sub, (src_bal, amount), U64, False)
        balance[src] = row(i, Operator.IfThenElse, (ge, debited, src_bal), U64, True)
        credited = row(i, Operator.Add, (dst_bal, amount), U64, False)
        balance[dst] = row(i, Operator.IfThenElse, (ge, credited, dst_bal), U64, True)
        plain[balance[src]], plain[balance[dst]] = plain[src_bal] - moved, plain[dst_bal] + moved
    store.put_ciphertexts(inputs)
    store.write_range(CHAIN, RANGE, rows, allowed)
    return [a.handle for a in allowed], plain
