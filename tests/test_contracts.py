"""Our contracts with the real @fhevm/host-contracts 0.10.0 on anvil: events, handles, gateway.

Handles are recomputed from SPEC §2; a mismatch names the event and both values (the deployed
contract is the reference where the two disagree).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from devnet_fixtures import DecodedEvent, DevnetClient
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError
from web3.types import TxReceipt

from fhevm_dagster.abi import canonical_type, decode_revert, selector, signature
from fhevm_dagster.chain.calls import tx_status_of
from fhevm_dagster.chain.ciphertext_commits import ADD_TOPIC, CONSENSUS_TOPIC
from fhevm_dagster.devnet import (
    DevnetInfo,
    TransactionReverted,
    TxRecord,
    anvil_account,
    ciphertext_verification_typed_data,
    contract_at,
    deploy_gateway_contracts,
    load_abi,
    load_artifact,
    run_operator_sweep,
    set_balance,
    sign_ciphertext_verification,
)
from fhevm_dagster.devnet import decode_revert as devnet_decode_revert
from fhevm_dagster.devnet.gateway_contracts import GatewayContracts
from fhevm_dagster.protocol.gateway_events import VERIFY_PROOF_REQUEST_TOPIC
from fhevm_dagster.protocol.opcodes import (
    EVENT_OPERATORS,
    HOST_OPERATORS,
    OPERATORS,
    Operator,
    OpKind,
    ResultRule,
    ScalarRule,
    operators_of,
)
from fhevm_dagster.protocol.types import FheType

#: Event name -> opcode of every operator of host-contracts 0.10.0 (from the protocol table).
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


# ---- ConfidentialToken -------------------------------------------------------------------------


def test_token_mint_and_transfer_events(devnet_client: DevnetClient) -> None:
    client, token = devnet_client, devnet_client.token
    owner, alice, bob = anvil_account(0), anvil_account(5), anvil_account(6)

    mint = client.send(owner, token.functions.mint(alice.address, 1_000))
    events = executor_events(client, mint)
    assert [e.name for e in events] == ["TrivialEncrypt", "TrivialEncrypt", "FheAdd"]
    assert [e.args["pt"] for e in events[:2]] == [
        1_000,
        0,
    ]  # amount, then the uninitialised balance
    balance = token.functions.balanceOf(alice.address).call()
    assert events[-1].args["result"] == balance and balance[30] == EUINT64
    assert all(e.args["caller"] == token.address for e in events)
    assert allowed(client, mint) == {
        (token.address, token.address, balance),
        (token.address, alice.address, balance),
    }
    check_handles(client, events)

    transfer = client.send(alice, token.functions.transferAmount(bob.address, 300))
    events = executor_events(client, transfer)
    by_name = {e.name: e for e in events}
    assert {"FheGe", "FheIfThenElse", "FheSub", "FheAdd", "TrivialEncrypt"} <= set(by_name)
    ge, select, sub = by_name["FheGe"], by_name["FheIfThenElse"], by_name["FheSub"]
    amount = next(e for e in events if e.name == "TrivialEncrypt" and e.args["pt"] == 300)
    assert ge.args["lhs"] == balance and ge.args["rhs"] == amount.args["result"]
    assert ge.args["scalarByte"] == b"\x00" and ge.args["result"][30] == EBOOL
    assert (
        select.args["control"] == ge.args["result"]
        and select.args["ifTrue"] == amount.args["result"]
    )
    assert sub.args["lhs"] == balance and sub.args["rhs"] == select.args["result"]
    new_alice = token.functions.balanceOf(alice.address).call()
    new_bob = token.functions.balanceOf(bob.address).call()
    assert sub.args["result"] == new_alice
    add = [e for e in events if e.name == "FheAdd"][-1]
    assert add.args["rhs"] == select.args["result"] and add.args["result"] == new_bob
    assert allowed(client, transfer) == {
        (token.address, token.address, new_alice),
        (token.address, alice.address, new_alice),
        (token.address, token.address, new_bob),
        (token.address, bob.address, new_bob),
    }
    assert [e.name for e in client.events(transfer) if e.contract == "ConfidentialToken"] == [
        "Transfer"
    ]
    check_handles(client, events)

    # Not enough balance: no revert, same logic (moves an encrypted 0).
    failing = client.send(bob, token.functions.transferAmount(alice.address, 10**9))
    names = [e.name for e in executor_events(client, failing)]
    assert {"FheGe", "FheIfThenElse", "FheSub", "FheAdd"} <= set(names)

    with pytest.raises(TransactionReverted) as excinfo:
        client.send(alice, token.functions.mint(alice.address, 1))
    assert excinfo.value.error == "NotOwner"


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


def test_encrypted_transfer_through_gateway(devnet_client: DevnetClient) -> None:
    """verifyProofRequest -> signed verifyProofResponse -> inputProof accepted by the host."""
    client, info, token = devnet_client, devnet_client.info, devnet_client.token
    user, receiver = anvil_account(7), anvil_account(6)
    client.send(anvil_account(0), token.functions.mint(user.address, 500))
    ciphertext = b"not a real ciphertext: the host only checks the coprocessor signatures"
    handle = input_handle(ciphertext, 0, EUINT64, info.acl_address, info.host_chain_id)
    extra = b"\x00"

    request = client.send(
        user,
        client.input_verification.functions.verifyProofRequest(
            info.host_chain_id, token.address, user.address, ciphertext, extra
        ),
        gateway=True,
    )
    (req,) = client.events(request, gateway=True)
    zk_proof_id = req.args["zkProofId"]
    assert req.name == "VerifyProofRequest" and req.args["ciphertextWithZKProof"] == ciphertext
    assert req.args["contractAddress"] == token.address and req.args["contractChainId"] == 31337

    signature = sign_ciphertext_verification(
        info.signer_account().key,
        gateway_chain_id=info.gateway_chain_id,
        input_verification_address=info.input_verification_address,
        ct_handles=[handle],
        user_address=user.address,
        contract_address=token.address,
        contract_chain_id=info.host_chain_id,
        extra_data=extra,
    )
    response = client.send(
        info.tx_sender_account(),
        client.input_verification.functions.verifyProofResponse(
            zk_proof_id, [handle], signature, extra
        ),
        gateway=True,
    )
    consensus = client.events(response, gateway=True)[-1]
    assert consensus.name == "VerifyProofResponse" and consensus.args["signatures"] == [signature]

    proof = bytes([1, 1]) + handle + signature + extra
    transfer = client.send(user, token.functions.transfer(receiver.address, handle, proof))
    events = executor_events(client, transfer)
    verify = next(e for e in events if e.name == "VerifyInput")
    assert verify.args["inputHandle"] == handle and verify.args["result"] == handle
    assert verify.args["userAddress"] == user.address and verify.args["inputType"] == EUINT64
    assert verify.args["inputProof"] == proof
    ge = next(e for e in events if e.name == "FheGe")
    assert ge.args["rhs"] == handle

    # A proof signed by someone else is refused by the real InputVerifier.
    forged = sign_ciphertext_verification(
        Account.create().key,
        gateway_chain_id=info.gateway_chain_id,
        input_verification_address=info.input_verification_address,
        ct_handles=[handle],
        user_address=user.address,
        contract_address=token.address,
        contract_chain_id=info.host_chain_id,
        extra_data=b"\x01",
    )
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(
            user,
            token.functions.transfer(
                receiver.address, handle, bytes([1, 1]) + handle + forged + b"\x01"
            ),
        )
    errors = {e["name"] for e in load_abi("InputVerifier") if e["type"] == "error"}
    assert excinfo.value.error in errors


# ---- OpsExerciser -----------------------------------------------------------------------------


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


# ---- Gateway contracts: the ABI of Zama's gateway ----------------------------------------------

#: The Zama gateway's declarations (zama-ai/fhevm v0.14.0, gateway-contracts/contracts/:
#: interfaces/IInputVerification.sol, interfaces/ICiphertextCommits.sol, shared/Structs.sol,
#: shared/GatewayConfigChecks.sol, interfaces/IGatewayConfig.sol; the ECDSA errors of OpenZeppelin
#: 5, which InputVerification uses), written out here: what a coprocessor or a KMS built on our
#: ABI expects the real gateway to have. Parameter names count too (web3 decodes by name).
REFERENCE_DECLARATIONS: dict[str, list[str]] = {
    "InputVerification": [
        "event VerifyProofRequest(uint256 indexed zkProofId, uint256 indexed contractChainId,"
        " address contractAddress, address userAddress, bytes ciphertextWithZKProof,"
        " bytes extraData)",
        "event VerifyProofResponseCall(uint256 indexed zkProofId, bytes32[] ctHandles,"
        " bytes signature, address coprocessorTxSender, bytes extraData)",
        "event VerifyProofResponse(uint256 indexed zkProofId, bytes32[] ctHandles,"
        " bytes[] signatures)",
        "event RejectProofResponseCall(uint256 indexed zkProofId, bytes extraData)",
        "event RejectProofResponse(uint256 indexed zkProofId)",
        "error CoprocessorAlreadyVerified(uint256 zkProofId, address txSender, address signer)",
        "error CoprocessorAlreadyRejected(uint256 zkProofId, address txSender, address signer)",
        "error VerifyProofNotRequested(uint256 zkProofId)",
        "error NotCoprocessorTxSender(address txSenderAddress)",
        "error NotCoprocessorSigner(address signerAddress)",
        "error CoprocessorSignerDoesNotMatchTxSender(address signerAddress,"
        " address txSenderAddress)",
        "error HostChainNotRegistered(uint256 chainId)",
        "error HostChainDisabled(uint256 chainId)",
        "error ECDSAInvalidSignature()",
        "error ECDSAInvalidSignatureLength(uint256 length)",
        "error ECDSAInvalidSignatureS(bytes32 s)",
        "function verifyProofRequest(uint256 contractChainId, address contractAddress,"
        " address userAddress, bytes ciphertextWithZKProof, bytes extraData)",
        "function verifyProofResponse(uint256 zkProofId, bytes32[] ctHandles, bytes signature,"
        " bytes extraData)",
        "function rejectProofResponse(uint256 zkProofId, bytes extraData)",
        "function isProofVerified(uint256 zkProofId) view returns (bool)",
        "function isProofRejected(uint256 zkProofId) view returns (bool)",
        "function getVerifyProofConsensusTxSenders(uint256 zkProofId) view returns (address[])",
        "function getRejectProofConsensusTxSenders(uint256 zkProofId) view returns (address[])",
        "function getVersion() pure returns (string)",
        "function eip712Domain() view returns (bytes1 fields, string name, string version,"
        " uint256 chainId, address verifyingContract, bytes32 salt, uint256[] extensions)",
    ],
    "CiphertextCommits": [
        "event AddCiphertextMaterial(bytes32 indexed ctHandle, uint256 keyId,"
        " bytes32 ciphertextDigest, bytes32 snsCiphertextDigest, address coprocessorTxSender)",
        "event AddCiphertextMaterialConsensus(bytes32 indexed ctHandle, uint256 keyId,"
        " bytes32 ciphertextDigest, bytes32 snsCiphertextDigest, address[] coprocessorTxSenders)",
        "error CoprocessorAlreadyAdded(bytes32 ctHandle, address txSender)",
        "error EmptyCtHandles()",
        "error CiphertextMaterialNotFound(bytes32 ctHandle)",
        "error NotCoprocessorTxSender(address txSenderAddress)",
        "error HostChainNotRegistered(uint256 chainId)",
        "error HostChainDisabled(uint256 chainId)",
        "function addCiphertextMaterial(bytes32 ctHandle, uint256 keyId, bytes32 ciphertextDigest,"
        " bytes32 snsCiphertextDigest)",
        "function isCiphertextMaterialAdded(bytes32 ctHandle) view returns (bool)",
        "function getCiphertextMaterials(bytes32[] ctHandles) view returns ((bytes32 ctHandle,"
        " uint256 keyId, bytes32 ciphertextDigest, address[] coprocessorTxSenderAddresses)[]"
        " ctMaterials)",
        "function getSnsCiphertextMaterials(bytes32[] ctHandles) view returns ((bytes32 ctHandle,"
        " uint256 keyId, bytes32 snsCiphertextDigest, address[] coprocessorTxSenderAddresses)[]"
        " snsCtMaterials)",
        "function getAddCiphertextMaterialConsensusTxSenders(bytes32 ctHandle) view"
        " returns (address[])",
        "function getVersion() pure returns (string)",
    ],
}


@dataclass(frozen=True)
class Param:
    """One parameter of a declaration: canonical type, name, indexed, tuple components."""

    type: str
    name: str
    indexed: bool = False
    components: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Declaration:
    kind: str  # event | error | function
    name: str
    inputs: tuple[Param, ...]
    outputs: tuple[Param, ...] = ()
    mutability: str = ""

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(p.type for p in self.inputs)})"


def _split_top(text: str) -> list[str]:
    """`text` cut at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at `text[start]`."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced: {text!r}")


def _param(text: str) -> Param:
    if text.startswith("("):
        end = _closing(text, 0)
        components = tuple(_param(c) for c in _split_top(text[1:end]))
        suffix, *rest = text[end + 1 :].split(" ", 1)
        words = rest[0].split() if rest else []
        kind = f"({','.join(c.type for c in components)}){suffix}"
    else:
        kind, *words = text.split()
        components = ()
    indexed = "indexed" in words
    names = [w for w in words if w != "indexed"]
    return Param(kind, names[0] if names else "", indexed, components)


def _parse(declaration: str) -> Declaration:
    kind, rest = declaration.split(" ", 1)
    open_at = rest.index("(")
    name, end = rest[:open_at], _closing(rest, open_at)
    inputs = tuple(_param(p) for p in _split_top(rest[open_at + 1 : end]))
    tail = rest[end + 1 :].strip()
    outputs: tuple[Param, ...] = ()
    if "returns" in tail:
        tail, returns = tail.split("returns", 1)
        outputs = tuple(_param(p) for p in _split_top(returns.strip()[1:-1]))
    return Declaration(kind, name, inputs, outputs, tail.strip() or "nonpayable")


def _abi_param(param: dict[str, Any]) -> Param:
    return Param(
        canonical_type(param),
        str(param.get("name", "")),
        bool(param.get("indexed", False)),
        tuple(_abi_param(c) for c in param.get("components", [])),
    )


@pytest.mark.parametrize("contract", sorted(REFERENCE_DECLARATIONS))
def test_gateway_abi_is_the_reference_abi(contract: str) -> None:
    """Every reference error, event and function is in our ABI under the same selector or topic
    (keccak of the reference signature), with the same parameter names, indexing and outputs;
    the compiled contract dispatches each function and emits each event."""
    abi = load_abi(contract)
    assert abi == load_artifact(contract).abi  # the package copy is the build's
    code = load_artifact(contract).deployed_bytecode.lower()
    by_id: dict[tuple[str, bytes], dict[str, Any]] = {}
    for item in abi:
        if item["type"] in ("error", "function"):
            by_id[item["type"], selector(signature(item))] = item
        elif item["type"] == "event":
            by_id["event", keccak(signature(item).encode())] = item
    for text in REFERENCE_DECLARATIONS[contract]:
        ref = _parse(text)
        if ref.kind == "event":
            key = keccak(ref.signature.encode())  # topic0
        else:
            key = keccak(ref.signature.encode())[:4]  # selector
        found = by_id.get((ref.kind, key))
        assert found is not None, f"{contract} has no {ref.kind} {ref.signature} (0x{key.hex()})"
        item = found
        ours = Declaration(
            ref.kind,
            item["name"],
            tuple(_abi_param(p) for p in item["inputs"]),
            tuple(_abi_param(p) for p in item.get("outputs", [])),
            item.get("stateMutability", "nonpayable") if ref.kind == "function" else "nonpayable",
        )
        assert ours == ref, f"{contract}: {text}"
        if ref.kind == "function":
            assert key.hex() in code, f"{contract} does not dispatch {ref.signature}"
        if ref.kind == "event":
            assert key.hex() in code, f"{contract} never emits {ref.signature}"
    # The old local-only layouts are gone.
    names = {(i["type"], i.get("name")) for i in abi}
    assert ("function", "isCoprocessorVerified") not in names
    assert ("function", "hasCoprocessorAdded") not in names


def test_python_constants_are_the_reference_topics() -> None:
    """The hand-written topics of the Python side equal the keccak of the reference signatures."""
    ours = {
        "VerifyProofRequest(uint256,uint256,address,address,bytes,bytes)": (
            VERIFY_PROOF_REQUEST_TOPIC
        ),
        "AddCiphertextMaterial(bytes32,uint256,bytes32,bytes32,address)": ADD_TOPIC,
        "AddCiphertextMaterialConsensus(bytes32,uint256,bytes32,bytes32,address[])": (
            CONSENSUS_TOPIC
        ),
    }
    assert ours == {sig: keccak(sig.encode()) for sig in ours}


SIGNER, SENDER = "0x" + "ab" * 20, "0x" + "cd" * 20


@pytest.mark.parametrize(
    ("sig", "args", "status"),
    [
        (
            "CoprocessorAlreadyVerified(uint256,address,address)",
            (7, SENDER, SIGNER),
            "already_done",
        ),
        (
            "CoprocessorAlreadyRejected(uint256,address,address)",
            (7, SENDER, SIGNER),
            "already_done",
        ),
        ("CoprocessorAlreadyAdded(bytes32,address)", (b"\x11" * 32, SENDER), "already_done"),
        ("VerifyProofNotRequested(uint256)", (7,), "failed"),
        ("NotCoprocessorSigner(address)", (SIGNER,), "failed"),
        ("CoprocessorSignerDoesNotMatchTxSender(address,address)", (SIGNER, SENDER), "failed"),
        ("HostChainNotRegistered(uint256)", (12345,), "failed"),
        ("ECDSAInvalidSignatureLength(uint256)", (64,), "failed"),
        ("EmptyCtHandles()", (), "failed"),
        ("CiphertextMaterialNotFound(bytes32)", (b"\x11" * 32,), "failed"),
    ],
)
def test_gateway_reverts_decode(sig: str, args: tuple[Any, ...], status: str) -> None:
    """Reference revert data decodes by name, with arguments, in the gateway client and the devnet
    alike (one decoder); the "already done" ones count as done."""
    types = _split_top(sig[sig.index("(") + 1 : -1])
    data = keccak(sig.encode())[:4] + abi_encode(types, list(args))
    name, shown = decode_revert(data)
    assert name == sig[: sig.index("(")]
    assert tx_status_of(name) == status
    assert devnet_decode_revert(data) == (name, shown)
    for value in args:
        text = value.hex() if isinstance(value, bytes) else str(value)
        assert text.lower() in shown.lower()


def test_superseded_local_errors_do_not_count_as_done() -> None:
    """The two-argument `CoprocessorAlreadyVerified` of the old local gateway is not the
    reference's error: it decodes as unknown, which is a failure, never silently done."""
    data = keccak(b"CoprocessorAlreadyVerified(uint256,address)")[:4] + abi_encode(
        ["uint256", "address"], [7, SENDER]
    )
    name, _ = decode_revert(data)
    assert name == "UnknownError" and tx_status_of(name) == "failed"


def _request(client: DevnetClient, contract_address: str, user: LocalAccount, proof: bytes) -> int:
    receipt = client.send(
        user,
        client.input_verification.functions.verifyProofRequest(
            31337, contract_address, user.address, proof, b""
        ),
        gateway=True,
    )
    (event,) = client.events(receipt, gateway=True)
    return int(event.args["zkProofId"])


def _sign(
    info: DevnetInfo, key: bytes, handles: list[bytes], user: str, contract: str, extra: bytes = b""
) -> bytes:
    return sign_ciphertext_verification(
        key,
        gateway_chain_id=info.gateway_chain_id,
        input_verification_address=info.input_verification_address,
        ct_handles=handles,
        user_address=user,
        contract_address=contract,
        contract_chain_id=31337,
        extra_data=extra,
    )


SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_input_verification_rules(devnet_client: DevnetClient) -> None:
    client, info = devnet_client, devnet_client.info
    iv = client.input_verification.functions
    user, dapp = anvil_account(3), anvil_account(4).address
    tx_sender, signer = info.tx_sender_account(), info.signer_account()
    first = _request(client, dapp, user, b"proof-1")
    second = _request(client, dapp, user, b"proof-2")
    assert second == first + 1
    handles = [bytes([i]) * 32 for i in range(3)]

    # ERC-5267: the domain coprocessors sign under is the one of protocol/eip712.py.
    typed = ciphertext_verification_typed_data(
        gateway_chain_id=info.gateway_chain_id,
        input_verification_address=info.input_verification_address,
        ct_handles=handles,
        user_address=user.address,
        contract_address=dapp,
        contract_chain_id=31337,
    )
    fields, name, version, chain_id, verifying, salt, extensions = iv.eip712Domain().call()
    assert (fields, salt, extensions) == (b"\x0f", bytes(32), [])
    assert (name, version, chain_id, verifying) == (
        typed["domain"]["name"],
        typed["domain"]["version"],
        info.gateway_chain_id,
        info.input_verification_address,
    )
    assert iv.getVersion().call() == "InputVerification v0.5.0"

    wrong = _sign(info, Account.create().key, handles, user.address, dapp)
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.verifyProofResponse(first, handles, wrong, b""), gateway=True)
    assert excinfo.value.error == "NotCoprocessorSigner"
    # Signed for other handles than those sent: recovers another address.
    other = _sign(info, signer.key, handles[:1], user.address, dapp)
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.verifyProofResponse(first, handles, other, b""), gateway=True)
    assert excinfo.value.error == "NotCoprocessorSigner"

    good = _sign(info, signer.key, handles, user.address, dapp)
    # Malformed signatures fail as OpenZeppelin's ECDSA fails on the reference.
    s = int.from_bytes(good[32:64], "big")
    high_s = good[:32] + (SECP256K1_ORDER - s).to_bytes(32, "big") + bytes([good[64] ^ 1])
    for bad, error in (
        (good[:64], "ECDSAInvalidSignatureLength"),
        (high_s, "ECDSAInvalidSignatureS"),
        (good[:64] + b"\x00", "ECDSAInvalidSignature"),
    ):
        with pytest.raises(TransactionReverted) as excinfo:
            client.send(tx_sender, iv.verifyProofResponse(first, handles, bad, b""), gateway=True)
        assert excinfo.value.error == error
    with pytest.raises(
        TransactionReverted
    ) as excinfo:  # a valid signature from a stranger's account
        client.send(
            anvil_account(3), iv.verifyProofResponse(first, handles, good, b""), gateway=True
        )
    assert excinfo.value.error == "NotCoprocessorTxSender"
    assert iv.getVerifyProofConsensusTxSenders(first).call() == []
    receipt = client.send(
        tx_sender, iv.verifyProofResponse(first, handles, good, b""), gateway=True
    )
    call, consensus = client.events(receipt, gateway=True)
    assert call.name == "VerifyProofResponseCall" and call.args == {
        "zkProofId": first,
        "ctHandles": handles,
        "signature": good,
        "coprocessorTxSender": tx_sender.address,
        "extraData": b"",
    }
    assert consensus.name == "VerifyProofResponse" and consensus.args == {
        "zkProofId": first,
        "ctHandles": handles,
        "signatures": [good],
    }
    assert iv.isProofVerified(first).call() and not iv.isProofRejected(first).call()
    assert iv.getVerifyProofConsensusTxSenders(first).call() == [tx_sender.address]
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.verifyProofResponse(first, handles, good, b""), gateway=True)
    assert excinfo.value.error == "CoprocessorAlreadyVerified"
    assert f"CoprocessorAlreadyVerified({first}, {tx_sender.address}, {signer.address})" in str(
        excinfo.value
    )
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.rejectProofResponse(first, b""), gateway=True)
    assert excinfo.value.error == "CoprocessorAlreadyVerified"

    receipt = client.send(tx_sender, iv.rejectProofResponse(second, b"\x00"), gateway=True)
    call, consensus = client.events(receipt, gateway=True)
    assert call.name == "RejectProofResponseCall"
    assert call.args == {"zkProofId": second, "extraData": b"\x00"}
    assert consensus.name == "RejectProofResponse" and consensus.args == {"zkProofId": second}
    assert iv.isProofRejected(second).call() and not iv.isProofVerified(second).call()
    assert iv.getRejectProofConsensusTxSenders(second).call() == [tx_sender.address]
    empty_answer = _sign(info, signer.key, [], user.address, dapp)
    for call_ in (
        iv.rejectProofResponse(second, b""),
        iv.verifyProofResponse(second, [], empty_answer, b""),
    ):
        with pytest.raises(TransactionReverted) as excinfo:
            client.send(tx_sender, call_, gateway=True)
        assert excinfo.value.error == "CoprocessorAlreadyRejected"
        assert (
            f"CoprocessorAlreadyRejected({second}, {tx_sender.address}, {signer.address})"
            in str(excinfo.value)
        )
    for zk_id in (second + 100, 0):
        with pytest.raises(TransactionReverted) as excinfo:
            client.send(tx_sender, iv.rejectProofResponse(zk_id, b""), gateway=True)
        assert excinfo.value.error == "VerifyProofNotRequested"

    # An empty input list is valid.
    third = _request(client, dapp, user, b"empty-list")
    empty = _sign(info, signer.key, [], user.address, dapp)
    client.send(tx_sender, iv.verifyProofResponse(third, [], empty, b""), gateway=True)
    assert iv.isProofVerified(third).call()


def _revert_name(exc: ContractCustomError) -> str:
    data = exc.data if isinstance(exc.data, str) else ""
    return decode_revert(bytes.fromhex(data.removeprefix("0x")))[0]


def test_ciphertext_commits_rules(devnet_client: DevnetClient) -> None:
    client, info = devnet_client, devnet_client.info
    cc = client.ciphertext_commits.functions
    tx_sender = info.tx_sender_account()
    handle, digest, sns = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32
    assert cc.isCiphertextMaterialAdded(handle).call() is False
    assert cc.getAddCiphertextMaterialConsensusTxSenders(handle).call() == []
    for view in (cc.getCiphertextMaterials, cc.getSnsCiphertextMaterials):
        with pytest.raises(ContractCustomError) as raised:
            view([handle]).call()
        assert _revert_name(raised.value) == "CiphertextMaterialNotFound"
        with pytest.raises(ContractCustomError) as raised:
            view([]).call()
        assert _revert_name(raised.value) == "EmptyCtHandles"
    assert cc.getVersion().call() == "CiphertextCommits v0.5.0"

    with pytest.raises(TransactionReverted) as excinfo:
        client.send(
            anvil_account(3), cc.addCiphertextMaterial(handle, 0, digest, sns), gateway=True
        )
    assert excinfo.value.error == "NotCoprocessorTxSender"
    receipt = client.send(tx_sender, cc.addCiphertextMaterial(handle, 0, digest, sns), gateway=True)
    added, consensus = client.events(receipt, gateway=True)
    assert added.name == "AddCiphertextMaterial" and added.args == {
        "ctHandle": handle,
        "keyId": 0,
        "ciphertextDigest": digest,
        "snsCiphertextDigest": sns,
        "coprocessorTxSender": tx_sender.address,
    }
    assert consensus.name == "AddCiphertextMaterialConsensus" and consensus.args == {
        "ctHandle": handle,
        "keyId": 0,
        "ciphertextDigest": digest,
        "snsCiphertextDigest": sns,
        "coprocessorTxSenders": [tx_sender.address],
    }
    assert cc.isCiphertextMaterialAdded(handle).call() is True
    assert cc.getCiphertextMaterials([handle]).call() == [(handle, 0, digest, [tx_sender.address])]
    assert cc.getSnsCiphertextMaterials([handle]).call() == [(handle, 0, sns, [tx_sender.address])]
    assert cc.getAddCiphertextMaterialConsensusTxSenders(handle).call() == [tx_sender.address]
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, cc.addCiphertextMaterial(handle, 0, digest, sns), gateway=True)
    assert excinfo.value.error == "CoprocessorAlreadyAdded"
    assert f"CoprocessorAlreadyAdded(0x{handle.hex()}, {tx_sender.address})" in str(excinfo.value)


@pytest.fixture(scope="module")
def three_coprocessors(
    devnet_client: DevnetClient,
) -> Iterator[tuple[GatewayContracts, list[LocalAccount], list[LocalAccount]]]:
    w3 = devnet_client.gateway_w3
    signers = [Account.create() for _ in range(3)]
    senders = [Account.create() for _ in range(3)]
    for sender in senders:
        set_balance(w3, sender.address, 10**20)
    gw = deploy_gateway_contracts(
        w3,
        anvil_account(8),
        coprocessor_signers=[s.address for s in signers],
        coprocessor_tx_senders=[s.address for s in senders],
    )
    assert gw.threshold == 2
    yield gw, signers, senders


def test_gateway_threshold_consensus(
    devnet_client: DevnetClient,
    three_coprocessors: tuple[GatewayContracts, list[LocalAccount], list[LocalAccount]],
) -> None:
    gw, signers, senders = three_coprocessors
    client, w3, info = devnet_client, devnet_client.gateway_w3, devnet_client.info
    iv_contract = contract_at(w3, gw.input_verification, load_artifact("InputVerification").abi)
    cc_contract = contract_at(w3, gw.ciphertext_commits, load_artifact("CiphertextCommits").abi)
    contracts = [("InputVerification", iv_contract), ("CiphertextCommits", cc_contract)]
    iv, cc = iv_contract.functions, cc_contract.functions
    user, dapp = anvil_account(2), anvil_account(4).address
    assert iv.getCoprocessorMajorityThreshold().call() == 2
    assert cc.getCoprocessorTxSenders().call() == [s.address for s in senders]

    def names(receipt: TxReceipt) -> list[str]:
        return [e.name for e in client.events(receipt, gateway=True, extra=contracts)]

    def request() -> int:
        receipt = client.send(
            user, iv.verifyProofRequest(31337, dapp, user.address, b"p", b""), gateway=True
        )
        (event,) = client.events(receipt, gateway=True, extra=contracts)
        return int(event.args["zkProofId"])

    zk_id = request()
    assert zk_id == 1  # a fresh contract counts from 1

    def sign(key: bytes, handles: list[bytes]) -> bytes:
        return sign_ciphertext_verification(
            key,
            gateway_chain_id=info.gateway_chain_id,
            input_verification_address=gw.input_verification,
            ct_handles=handles,
            user_address=user.address,
            contract_address=dapp,
            contract_chain_id=31337,
            extra_data=b"",
        )

    agreed, odd = [b"\xaa" * 32], [b"\xbb" * 32]
    with pytest.raises(
        TransactionReverted
    ) as excinfo:  # a registered signer, but not this sender's
        client.send(
            senders[1],
            iv.verifyProofResponse(zk_id, agreed, sign(signers[0].key, agreed), b""),
            gateway=True,
        )
    assert excinfo.value.error == "CoprocessorSignerDoesNotMatchTxSender"
    assert (
        f"CoprocessorSignerDoesNotMatchTxSender({signers[0].address}, {senders[1].address})"
        in str(excinfo.value)
    )
    seen = []
    for i, handles in ((0, agreed), (1, odd), (2, agreed)):
        call = iv.verifyProofResponse(zk_id, handles, sign(signers[i].key, handles), b"")
        seen.append(names(client.send(senders[i], call, gateway=True)))
    assert seen == [
        ["VerifyProofResponseCall"],
        ["VerifyProofResponseCall"],
        ["VerifyProofResponseCall", "VerifyProofResponse"],
    ]
    assert iv.getVerifyProofConsensusTxSenders(zk_id).call() == [
        senders[0].address,
        senders[2].address,
    ]

    # A proof is decided once: after a rejection consensus, late verifications announce nothing.
    rejected = request()
    seen = [
        names(client.send(s, iv.rejectProofResponse(rejected, b""), gateway=True))
        for s in senders[:2]
    ]
    call = iv.verifyProofResponse(rejected, agreed, sign(signers[2].key, agreed), b"")
    seen.append(names(client.send(senders[2], call, gateway=True)))
    assert seen == [
        ["RejectProofResponseCall"],
        ["RejectProofResponseCall", "RejectProofResponse"],
        ["VerifyProofResponseCall"],
    ]
    assert iv.isProofRejected(rejected).call() and not iv.isProofVerified(rejected).call()
    assert iv.getVerifyProofConsensusTxSenders(rejected).call() == []

    handle, d1, d2 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    seen = []
    for sender, digest in zip(senders, (d1, d2, d1), strict=True):
        seen.append(
            names(
                client.send(
                    sender, cc.addCiphertextMaterial(handle, 7, digest, digest), gateway=True
                )
            )
        )
    assert seen == [
        ["AddCiphertextMaterial"],
        ["AddCiphertextMaterial"],
        ["AddCiphertextMaterial", "AddCiphertextMaterialConsensus"],
    ]
    agreeing = [senders[0].address, senders[2].address]
    assert cc.getCiphertextMaterials([handle]).call() == [(handle, 7, d1, agreeing)]
    assert cc.getSnsCiphertextMaterials([handle]).call() == [(handle, 7, d1, agreeing)]

    # A coprocessor that agrees after consensus is listed with it, without a second announcement.
    late = b"\x04" * 32
    seen = [
        names(client.send(s, cc.addCiphertextMaterial(late, 7, d1, d2), gateway=True))
        for s in senders
    ]
    assert seen == [
        ["AddCiphertextMaterial"],
        ["AddCiphertextMaterial", "AddCiphertextMaterialConsensus"],
        ["AddCiphertextMaterial"],
    ]
    assert cc.getAddCiphertextMaterialConsensusTxSenders(late).call() == [
        s.address for s in senders
    ]
    assert cc.getSnsCiphertextMaterials([late, handle]).call() == [
        (late, 7, d2, [s.address for s in senders]),
        (handle, 7, d1, agreeing),
    ]


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
