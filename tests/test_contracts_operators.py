"""Every operator of the real @fhevm/host-contracts 0.10.0 (anvil), exercised by OpsExerciser:
emitted, its result allowed, its handle the one of SPEC §2, results stored across transactions,
and the executor's reverts decoded by name."""

from __future__ import annotations

from collections import defaultdict

import pytest
from contract_handles import BINARY, BINARY_EVENTS, OPCODE, allowed, check_handles, executor_events
from devnet_fixtures import DevnetClient
from web3.types import TxReceipt

from fhevm_dagster.devnet import (
    DevnetInfo,
    TransactionReverted,
    TxRecord,
    anvil_account,
    load_abi,
    run_operator_sweep,
)
from fhevm_dagster.protocol.opcodes import (
    EVENT_OPERATORS,
    OPERATORS,
    Operator,
    OpKind,
    ScalarRule,
    operators_of,
)
from fhevm_dagster.protocol.types import FheType


@pytest.fixture(scope="module")
def sweep(devnet: DevnetInfo, devnet_client: DevnetClient) -> list[tuple[TxRecord, TxReceipt]]:
    records = run_operator_sweep(devnet)
    w3 = devnet_client.host_w3
    return [(r, w3.eth.get_transaction_receipt(r.tx_hash)) for r in records]  # type: ignore[arg-type]


def test_every_operator_is_emitted(
    devnet_client: DevnetClient, sweep: list[tuple[TxRecord, TxReceipt]]
) -> None:
    events = [e for _, receipt in sweep for e in executor_events(devnet_client, receipt)]
    executor_event_names = {
        item["name"]
        for item in load_abi("FHEVMExecutor")
        if item["type"] == "event" and item["name"] in EVENT_OPERATORS
    }
    assert executor_event_names == set(OPCODE)  # 0.10.0: opcodes 0..27, nothing newer
    assert {e.name for e in events} == set(OPCODE) - {"VerifyInput"}  # VerifyInput: gateway test

    seen = {
        (OPCODE[e.name], e.args["lhs"][30], e.args["scalarByte"])
        for e in events
        if e.name in BINARY_EVENTS
    }
    expected = {
        (op, fhe_type, scalar_byte)
        for op in BINARY
        for fhe_type in OPERATORS[op].in_types
        for scalar_byte in (b"\x01", b"\x00")
        if scalar_byte == b"\x01" or OPERATORS[op].scalar is not ScalarRule.ONLY
    }
    assert seen == expected, (expected - seen, seen - expected)

    def types_of(event: str, field: str) -> set[int]:
        """The FHE types in `field` (a handle or a type byte) of the sweep's `event`s."""
        values = (e.args[field] for e in events if e.name == event)
        return {v[30] if isinstance(v, bytes) else v for v in values}

    for op in operators_of(OpKind.UNARY):
        assert types_of(OPERATORS[op].event, "ct") == OPERATORS[op].in_types, op.name
    select = OPERATORS[Operator.IfThenElse]
    assert types_of(select.event, "ifTrue") == select.in_types
    cast = OPERATORS[Operator.Cast]
    casts = {(e.args["ct"][30], e.args["toType"]) for e in events if e.name == cast.event}
    assert casts == {(f, t) for f in cast.in_types for t in cast.out_types if f != t}
    for op, field in (
        (Operator.TrivialEncrypt, "toType"),
        (Operator.Rand, "randType"),
        (Operator.RandBounded, "randType"),
    ):
        assert types_of(OPERATORS[op].event, field) == OPERATORS[op].out_types, op.name


def test_every_exercised_result_is_allowed(
    devnet_client: DevnetClient, sweep: list[tuple[TxRecord, TxReceipt]]
) -> None:
    exerciser = devnet_client.exerciser.address
    total = 0
    for record, receipt in sweep:
        results = [
            h
            for e in devnet_client.events(receipt)
            if e.contract == "OpsExerciser" and e.name == "Exercised"
            for h in e.args["results"]
        ]
        assert results, record
        produced = {e.args["result"] for e in executor_events(devnet_client, receipt)}
        grants = allowed(devnet_client, receipt)
        for handle in results:
            assert handle in produced
            assert (exerciser, exerciser, handle) in grants, (record.detail, handle.hex())
        total += len(results)
    assert total > 250


def test_handles_match_spec(
    devnet_client: DevnetClient, sweep: list[tuple[TxRecord, TxReceipt]]
) -> None:
    events = [e for _, receipt in sweep for e in executor_events(devnet_client, receipt)]
    check_handles(devnet_client, events)
    for e in events:
        assert e.args["result"][21] == 0xFF and e.args["result"][22:30] == (31337).to_bytes(
            8, "big"
        )


def test_cross_transaction_dependency(
    devnet_client: DevnetClient, sweep: list[tuple[TxRecord, TxReceipt]]
) -> None:
    stored = [receipt for record, receipt in sweep if record.kind == "stored"]
    assert len(stored) == 3
    first, second, third = ([e for e in executor_events(devnet_client, r)] for r in stored)
    r1 = next(e for e in first if e.name == "FheAdd").args["result"]
    add2 = next(e for e in second if e.name == "FheAdd")
    assert add2.args["lhs"] == r1  # the stored result of the earlier transaction
    mul = next(e for e in third if e.name == "FheMul")
    assert mul.args["lhs"] == add2.args["result"] and mul.args["scalarByte"] == b"\x01"
    final = next(e for e in third if e.name == "FheIfThenElse").args["result"]
    assert devnet_client.exerciser.functions.storedHandle().call() == final


def test_transfer_logs_group_by_tx(sweep: list[tuple[TxRecord, TxReceipt]]) -> None:
    per_block: dict[int, int] = defaultdict(int)
    for record, _ in sweep:
        per_block[record.block_number] += 1
    assert all(count == 1 for count in per_block.values())  # automine: one tx per block


def test_executor_reverts_are_decoded(devnet_client: DevnetClient) -> None:
    """Operand types the 0.10.0 executor refuses revert with its named custom errors."""
    ex, sender = devnet_client.exerciser.functions, anvil_account(0)
    ebool, euint8, euint64, eaddress = (
        int(t) for t in (FheType.Bool, FheType.Uint8, FheType.Uint64, FheType.Uint160)
    )
    cases = [
        (ex.binaryOps(eaddress, 1, 2, 1 << Operator.Add, 1), "UnsupportedType"),
        (ex.binaryOps(ebool, 1, 0, 1 << Operator.Add, 2), "UnsupportedType"),
        (ex.randOps(euint64, 3), "NotPowerOfTwo"),
        (ex.randOps(euint8, 512), "UpperBoundAboveMaxTypeValue"),
        (ex.castOps(euint64, 1, [euint64]), "InvalidType"),  # same-type cast
        (ex.castOps(euint64, 1, [ebool]), "UnsupportedType"),  # cast to ebool
    ]
    for call, error in cases:
        with pytest.raises(TransactionReverted) as excinfo:
            devnet_client.send(sender, call)
        assert excinfo.value.error == error, str(excinfo.value)
