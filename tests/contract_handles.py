"""Host events of our contracts on the real @fhevm/host-contracts 0.10.0, and their handles
recomputed from SPEC §2 (shared by the contract test modules)."""

from __future__ import annotations

from devnet_fixtures import DecodedEvent, DevnetClient
from web3 import Web3
from web3.types import TxReceipt

from fhevm_dagster.protocol.opcodes import (
    HOST_OPERATORS,
    OPERATORS,
    OpKind,
    ResultRule,
    operators_of,
)
from fhevm_dagster.protocol.types import FheType

OPCODE = {OPERATORS[op].event: int(op) for op in HOST_OPERATORS}
BINARY = [op for op in operators_of(OpKind.BINARY) if op in HOST_OPERATORS]
BINARY_EVENTS = {OPERATORS[op].event for op in BINARY}
BOOL_RESULT = {OPERATORS[op].event for op in BINARY if OPERATORS[op].result is ResultRule.BOOL}
UNARY_EVENTS = {OPERATORS[op].event for op in operators_of(OpKind.UNARY)}
EUINT64, EBOOL = FheType.Uint64, FheType.Bool


def keccak(data: bytes) -> bytes:
    return bytes(Web3.keccak(data))


def with_metadata(prehandle: bytes, fhe_type: int, chain_id: int, index: int = 0xFF) -> bytes:
    """SPEC §2: bytes 0..20 of the pre-handle, index, chain id (u64 BE), type, version 0."""
    return prehandle[:21] + bytes([index]) + chain_id.to_bytes(8, "big") + bytes([fhe_type, 0])


def expected_handle(event: DecodedEvent, acl: str, chain_id: int) -> bytes:
    """The result handle of a host event recomputed from SPEC §2."""
    a = event.args
    op = bytes([OPCODE[event.name]])
    tail = bytes.fromhex(acl[2:]) + chain_id.to_bytes(32, "big")
    if event.name in BINARY_EVENTS:
        pre = keccak(op + a["lhs"] + a["rhs"] + a["scalarByte"] + tail)
        fhe_type = EBOOL if event.name in BOOL_RESULT else a["lhs"][30]
    elif event.name in UNARY_EVENTS:
        pre, fhe_type = keccak(op + a["ct"] + tail), a["ct"][30]
    elif event.name == "FheIfThenElse":
        pre = keccak(op + a["control"] + a["ifTrue"] + a["ifFalse"] + tail)
        fhe_type = a["ifTrue"][30]
    elif event.name == "Cast":
        pre, fhe_type = keccak(op + a["ct"] + bytes([a["toType"]]) + tail), a["toType"]
    elif event.name == "TrivialEncrypt":
        pre = keccak(op + a["pt"].to_bytes(32, "big") + bytes([a["toType"]]) + tail)
        fhe_type = a["toType"]
    elif event.name == "FheRand":
        pre, fhe_type = keccak(op + bytes([a["randType"]]) + a["seed"]), a["randType"]
    elif event.name == "FheRandBounded":
        pre = keccak(op + a["upperBound"].to_bytes(32, "big") + bytes([a["randType"]]) + a["seed"])
        fhe_type = a["randType"]
    else:
        raise AssertionError(f"no handle rule for {event.name}")
    return with_metadata(pre, fhe_type, chain_id)


def executor_events(client: DevnetClient, receipt: TxReceipt) -> list[DecodedEvent]:
    return [e for e in client.events(receipt) if e.contract == "FHEVMExecutor"]


def allowed(client: DevnetClient, receipt: TxReceipt) -> set[tuple[str, str, bytes]]:
    """(caller, account, handle) of every ACL Allowed event of the receipt."""
    return {
        (e.args["caller"], e.args["account"], e.args["handle"])
        for e in client.events(receipt)
        if e.contract == "ACL" and e.name == "Allowed"
    }


def check_handles(client: DevnetClient, events: list[DecodedEvent]) -> None:
    info = client.info
    mismatches = [
        f"{e.name}: event result 0x{e.args['result'].hex()} != SPEC 0x{want.hex()}"
        for e in events
        if e.name != "VerifyInput"
        and (want := expected_handle(e, info.acl_address, info.host_chain_id)) != e.args["result"]
    ]
    assert not mismatches, "\n".join(mismatches)


def input_handle(ciphertext: bytes, index: int, fhe_type: int, acl: str, chain_id: int) -> bytes:
    """SPEC §2 input handle of entry `index` of a ciphertext list."""
    blob_hash = keccak(b"ZK-w_rct" + ciphertext)
    h = keccak(
        b"ZK-w_hdl"
        + blob_hash
        + bytes([index])
        + bytes.fromhex(acl[2:])
        + chain_id.to_bytes(32, "big")
    )
    return with_metadata(h, fhe_type, chain_id, index)
