"""Pure protocol facts: types, opcode table, handles (incl. an input-handle vector), decoding."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from fhevm_dagster.protocol.computations import computations_from_events
from fhevm_dagster.protocol.events import RawLog, decode_logs, host_event_abis
from fhevm_dagster.protocol.handles import (
    HandleError,
    binary_op_handle,
    input_handles,
    parse_handle,
    trivial_encrypt_handle,
)
from fhevm_dagster.protocol.opcodes import (
    OPERATORS,
    OperationError,
    Operator,
    operator_for_event,
    validate_operation,
)
from fhevm_dagster.protocol.types import FheType, UnknownFheTypeError, fhe_type

ACL = "0x50157CFfD6bBFA2DECe204a89ec419c23ef5755D"
EXECUTOR = "0xe3a9105a3a932253A70F126eb1E3b589C643dD24"
CHAIN = 31337


def handle_of(t: FheType, seed: int = 1) -> bytes:
    return trivial_encrypt_handle(Operator.TrivialEncrypt, seed, t, ACL, CHAIN)


def test_fhe_type_numbers_and_bits() -> None:
    assert [t.value for t in FheType] == list(range(12))
    assert FheType.Uint160.bits == 160 and FheType.Bool.bits == 1
    assert FheType.Uint4.retired and not FheType.Uint8.retired
    with pytest.raises(UnknownFheTypeError, match="unknown FHE type 12"):
        fhe_type(12)


def test_operator_table_matches_executor_enum_and_events() -> None:
    assert [op.value for op in Operator] == list(range(31))
    assert set(OPERATORS) == set(Operator)
    executor_events = {a.name for a in host_event_abis()["executor"].values()}
    for spec in OPERATORS.values():
        assert spec.event in executor_events, spec.event
        assert operator_for_event(spec.event) is spec.op
    assert operator_for_event("Initialized") is None


# Computed with an independent keccak (npm js-sha3) from the SPEC §2 formula.
INPUT_VECTOR = [
    "0x4ee0216da6ad378aa9299428f159f95e740f489e84000000000000007a690000",
    "0x424754f04ed66f0f065c5c7a068079abd8b364d0fc010000000000007a690500",
    "0x0eca9b9f2434262ae83e9308864f716a97defe1ef3020000000000007a690800",
]


def test_input_handle_vector() -> None:
    blob = b"CLEARTEXTfhevm-dagster test vector"
    got = input_handles(blob, [FheType.Bool, FheType.Uint64, FheType.Uint256], ACL, CHAIN)
    assert ["0x" + h.hex() for h in got] == INPUT_VECTOR
    h = parse_handle(INPUT_VECTOR[1])
    assert (h.index, h.chain_id, h.fhe_type, h.version, h.is_computed) == (
        1,
        CHAIN,
        FheType.Uint64,
        0,
        False,
    )


def test_handle_errors() -> None:
    with pytest.raises(HandleError):
        parse_handle(b"\x00" * 31)
    with pytest.raises(HandleError):
        input_handles(b"x", [0] * 256, ACL, CHAIN)


def test_computed_handle_layout() -> None:
    a, b = handle_of(FheType.Uint8, 1), handle_of(FheType.Uint8, 2)
    r = binary_op_handle(Operator.Eq, a, b, 0, FheType.Bool, ACL, CHAIN)
    parsed = parse_handle(r)
    assert parsed.is_computed and parsed.chain_id == CHAIN and parsed.fhe_type is FheType.Bool


@pytest.mark.parametrize(
    ("op", "types", "scalar", "result"),
    [
        (Operator.Add, [FheType.Uint8, FheType.Uint8], False, FheType.Uint8),
        (Operator.Eq, [FheType.Uint160, FheType.Uint160], False, FheType.Bool),
        (Operator.BitXor, [FheType.Bool, FheType.Bool], False, FheType.Bool),
        (Operator.Shl, [FheType.Uint256, None], True, FheType.Uint256),
        (Operator.Lt, [FheType.Uint128, None], True, FheType.Bool),
    ],
)
def test_binary_ok(
    op: Operator, types: list[FheType | None], scalar: bool, result: FheType
) -> None:
    deps = [handle_of(t) if t is not None else (7).to_bytes(32, "big") for t in types]
    assert validate_operation(op, deps, scalar) is result


@pytest.mark.parametrize(
    ("op", "deps", "scalar", "message"),
    [
        (Operator.Add, [FheType.Bool, FheType.Bool], False, "not supported"),
        (Operator.Add, [FheType.Uint8, FheType.Uint16], False, "differ"),
        (Operator.Div, [FheType.Uint8, FheType.Uint8], False, "must be a scalar"),
        (Operator.Div, [FheType.Uint8, 0], True, "division by a scalar zero"),
        (Operator.Ge, [FheType.Uint256, FheType.Uint256], False, "not supported"),
        (Operator.Neg, [FheType.Bool], False, "not supported"),
        (Operator.Add, [FheType.Uint8], False, "expected 2"),
    ],
)
def test_operation_errors(op: Operator, deps: list[object], scalar: bool, message: str) -> None:
    raw = [
        handle_of(d) if isinstance(d, FheType) else int(d).to_bytes(32, "big")  # type: ignore[call-overload]
        for d in deps
    ]
    with pytest.raises(OperationError, match=message):
        validate_operation(op, raw, scalar)


def test_special_operations() -> None:
    u8, b = handle_of(FheType.Uint8), handle_of(FheType.Bool)
    assert validate_operation(Operator.Cast, [u8, bytes([5])], False) is FheType.Uint64
    with pytest.raises(OperationError, match="to itself"):
        validate_operation(Operator.Cast, [u8, bytes([2])], False)
    with pytest.raises(OperationError, match="output type Bool"):
        validate_operation(Operator.Cast, [u8, bytes([0])], False)
    pt = (300).to_bytes(32, "big")
    assert validate_operation(Operator.TrivialEncrypt, [pt, bytes([7])], True) is FheType.Uint160
    assert validate_operation(Operator.IfThenElse, [b, u8, u8], False) is FheType.Uint8
    with pytest.raises(OperationError, match="control must be Bool"):
        validate_operation(Operator.IfThenElse, [u8, u8, u8], False)
    seed = bytes(16)
    assert validate_operation(Operator.Rand, [seed, bytes([0])], True) is FheType.Bool
    bound = (1 << 8).to_bytes(32, "big")
    assert (
        validate_operation(Operator.RandBounded, [seed, bound, bytes([2])], True) is FheType.Uint8
    )
    with pytest.raises(OperationError, match="power of two"):
        validate_operation(Operator.RandBounded, [seed, (3).to_bytes(32, "big"), bytes([2])], True)
    with pytest.raises(OperationError, match="exceeds"):
        validate_operation(
            Operator.RandBounded, [seed, (1 << 9).to_bytes(32, "big"), bytes([2])], True
        )
    assert validate_operation(Operator.Sum, [], False, FheType.Uint32) is FheType.Uint32
    # The reference makes an empty Sum a trivial zero of types 2..6 only (perform_fhe_operation).
    with pytest.raises(OperationError, match="result type Bool not supported"):
        validate_operation(Operator.Sum, [], False, FheType.Bool)
    assert validate_operation(Operator.IsIn, [u8, u8, u8], False) is FheType.Bool
    with pytest.raises(OperationError, match="result handle has type"):
        validate_operation(Operator.Add, [u8, u8], False, FheType.Uint16)
    with pytest.raises(OperationError, match="not a computation"):
        validate_operation(Operator.VerifyInput, [u8], False)
    with pytest.raises(OperationError, match="unknown opcode"):
        validate_operation(99, [], False)


def test_sum_and_is_in_limits_are_the_references() -> None:
    """100 values of 8-32 bits, 60 of wider types (reference `check_fhe_operand_types`)."""
    u32, u64, u160 = (handle_of(t) for t in (FheType.Uint32, FheType.Uint64, FheType.Uint160))
    assert validate_operation(Operator.Sum, [u32] * 100, False) is FheType.Uint32
    assert validate_operation(Operator.Sum, [u64] * 60, False) is FheType.Uint64
    with pytest.raises(OperationError, match="at most 100 Uint32 values, got 101"):
        validate_operation(Operator.Sum, [u32] * 101, False)
    with pytest.raises(OperationError, match="at most 60 Uint64 values, got 61"):
        validate_operation(Operator.Sum, [u64] * 61, False)
    assert validate_operation(Operator.IsIn, [u160] * 61, False) is FheType.Bool  # 60 members
    with pytest.raises(OperationError, match="at most 60 Uint160 values, got 61"):
        validate_operation(Operator.IsIn, [u160] * 62, False)


def _log(address: str, topics: list[bytes], data: bytes, log_index: int, block: int = 5) -> RawLog:
    return RawLog(address, tuple(topics), data, block, b"\xbb" * 32, b"\xaa" * 32, 0, log_index)


def _topic(sig: str) -> bytes:
    return keccak(text=sig)


def test_decode_logs_sorts_known_unknown_malformed() -> None:
    caller = "0x" + "11" * 20
    caller_topic = bytes(12) + bytes.fromhex(caller[2:])
    lhs, rhs = handle_of(FheType.Uint8, 1), handle_of(FheType.Uint8, 2)
    result = binary_op_handle(Operator.Add, lhs, rhs, 0, FheType.Uint8, ACL, CHAIN)
    add_sig = "FheAdd(address,bytes32,bytes32,bytes1,bytes32)"
    add = _log(
        EXECUTOR,
        [_topic(add_sig), caller_topic],
        abi_encode(["bytes32", "bytes32", "bytes1", "bytes32"], [lhs, rhs, b"\x00", result]),
        0,
    )
    allowed = _log(
        ACL,
        [_topic("Allowed(address,address,bytes32)"), caller_topic, caller_topic],
        abi_encode(["bytes32"], [result]),
        1,
    )
    other = _log("0x" + "22" * 20, [_topic(add_sig)], b"", 2)
    unknown_topic = _log(EXECUTOR, [b"\x01" * 32], b"", 3)
    short = _log(EXECUTOR, [_topic(add_sig), caller_topic], b"\x00" * 40, 4)
    report = decode_logs([add, allowed, other, unknown_topic, short], EXECUTOR, ACL)
    assert [d.event for d in report.decoded] == ["FheAdd", "Allowed"]
    assert len(report.unknown) == 2 and "other contract" in report.unknown[0].reason
    assert len(report.malformed) == 1 and report.malformed[0].event == "FheAdd"
    assert report.counts() == {"FheAdd": 1, "Allowed": 1, "unknown": 2, "malformed": 1}
    add_ev = report.decoded[0]
    assert add_ev.args["caller"].lower() == caller and add_ev.args["lhs"] == lhs
    rows = computations_from_events(report.decoded)
    assert len(rows) == 1
    row = rows[0]
    assert row.dependencies == (lhs, rhs) and not row.is_scalar and row.is_allowed
    assert row.fhe_type == FheType.Uint8 and row.opcode == Operator.Add


def test_repeated_operation_in_one_tx_is_one_row() -> None:
    caller = "0x" + "11" * 20
    caller_topic = bytes(12) + bytes.fromhex(caller[2:])
    sig = _topic("TrivialEncrypt(address,uint256,uint8,bytes32)")
    result = trivial_encrypt_handle(Operator.TrivialEncrypt, 9, FheType.Uint8, ACL, CHAIN)
    data = abi_encode(["uint256", "uint8", "bytes32"], [9, int(FheType.Uint8), result])
    logs = [_log(EXECUTOR, [sig, caller_topic], data, i) for i in range(2)]
    rows = computations_from_events(decode_logs(logs, EXECUTOR, ACL).decoded)
    assert len(rows) == 1 and rows[0].log_index == 0 and rows[0].is_scalar
    assert rows[0].dependencies == ((9).to_bytes(32, "big"), bytes([FheType.Uint8]))
