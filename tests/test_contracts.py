"""Our contracts with the real @fhevm/host-contracts 0.10.0 on anvil: events, handles, gateway.

Handles are recomputed from SPEC §2; a mismatch names the event and both values (the deployed
contract is the reference where the two disagree).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import pytest
from devnet_fixtures import DecodedEvent, DevnetClient
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError
from web3.types import TxReceipt

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
from fhevm_dagster.devnet.gateway_contracts import GatewayContracts
from fhevm_dagster.devnet.traffic import BINARY_OPS_BY_TYPE, CAST_TARGETS, CAST_TYPES, RAND_TYPES

BINARY_EVENTS = [
    "FheAdd", "FheSub", "FheMul", "FheDiv", "FheRem", "FheBitAnd", "FheBitOr", "FheBitXor",
    "FheShl", "FheShr", "FheRotl", "FheRotr", "FheEq", "FheNe", "FheGe", "FheGt", "FheLe", "FheLt",
    "FheMin", "FheMax",
]  # fmt: skip
OPCODE = {name: i for i, name in enumerate(BINARY_EVENTS)} | {
    "FheNeg": 20,
    "FheNot": 21,
    "VerifyInput": 22,
    "Cast": 23,
    "TrivialEncrypt": 24,
    "FheIfThenElse": 25,
    "FheRand": 26,
    "FheRandBounded": 27,
}
BOOL_RESULT = {"FheEq", "FheNe", "FheGe", "FheGt", "FheLe", "FheLt"}
EUINT64, EBOOL = 5, 0


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
    if event.name in OPCODE and OPCODE[event.name] < 20:
        pre = keccak(op + a["lhs"] + a["rhs"] + a["scalarByte"] + tail)
        fhe_type = EBOOL if event.name in BOOL_RESULT else a["lhs"][30]
    elif event.name in ("FheNeg", "FheNot"):
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
        if item["type"] == "event" and item["name"] in OPCODE
    }
    assert executor_event_names == set(OPCODE)  # 0.10.0: opcodes 0..27, nothing newer
    assert {e.name for e in events} == set(OPCODE) - {"VerifyInput"}  # VerifyInput: gateway test

    seen = {
        (OPCODE[e.name], e.args["lhs"][30], e.args["scalarByte"])
        for e in events
        if e.name in BINARY_EVENTS
    }
    for fhe_type, ops in BINARY_OPS_BY_TYPE.items():
        for op in ops:
            assert (op, fhe_type, b"\x01") in seen, (op, fhe_type, "scalar")
            if op not in (3, 4):
                assert (op, fhe_type, b"\x00") in seen, (op, fhe_type, "encrypted")
    unary = {(e.name, e.args["ct"][30]) for e in events if e.name in ("FheNeg", "FheNot")}
    assert unary == {("FheNeg", t) for t in (2, 3, 4, 5, 6, 8)} | {
        ("FheNot", t) for t in (0, 2, 3, 4, 5, 6, 8)
    }
    casts = {(e.args["ct"][30], e.args["toType"]) for e in events if e.name == "Cast"}
    assert casts == {(f, t) for f in CAST_TYPES for t in CAST_TARGETS if f != t}
    assert {e.args["ifTrue"][30] for e in events if e.name == "FheIfThenElse"} == {
        0,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
    }
    assert {e.args["toType"] for e in events if e.name == "TrivialEncrypt"} == {
        0,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
    }
    assert {e.args["randType"] for e in events if e.name == "FheRand"} == set(RAND_TYPES)
    assert {e.args["randType"] for e in events if e.name == "FheRandBounded"} == set(RAND_TYPES) - {
        0
    }


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


# ---- Gateway contracts ------------------------------------------------------------------------


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


def test_input_verification_rules(devnet_client: DevnetClient) -> None:
    client, info = devnet_client, devnet_client.info
    iv = client.input_verification.functions
    user, dapp = anvil_account(3), anvil_account(4).address
    tx_sender = info.tx_sender_account()
    first = _request(client, dapp, user, b"proof-1")
    second = _request(client, dapp, user, b"proof-2")
    assert second == first + 1 and iv.getZkProofIdCounter().call() == second
    handles = [bytes([i]) * 32 for i in range(3)]

    # The contract's digest is the EIP-712 digest of eth_account.
    typed = ciphertext_verification_typed_data(
        gateway_chain_id=info.gateway_chain_id,
        input_verification_address=info.input_verification_address,
        ct_handles=handles,
        user_address=user.address,
        contract_address=dapp,
        contract_chain_id=31337,
        extra_data=b"\x00",
    )
    signable = encode_typed_data(full_message=typed)
    digest = keccak(b"\x19\x01" + signable.header + signable.body)
    assert (
        iv.hashCiphertextVerification((handles, user.address, dapp, 31337, b"\x00")).call()
        == digest
    )

    wrong = _sign(info, Account.create().key, handles, user.address, dapp)
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.verifyProofResponse(first, handles, wrong, b""), gateway=True)
    assert excinfo.value.error == "NotCoprocessorSigner"
    # Signed for other handles than those sent: recovers another address.
    other = _sign(info, info.signer_account().key, handles[:1], user.address, dapp)
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.verifyProofResponse(first, handles, other, b""), gateway=True)
    assert excinfo.value.error == "NotCoprocessorSigner"

    good = _sign(info, info.signer_account().key, handles, user.address, dapp)
    with pytest.raises(
        TransactionReverted
    ) as excinfo:  # a valid signature from a stranger's account
        client.send(
            anvil_account(3), iv.verifyProofResponse(first, handles, good, b""), gateway=True
        )
    assert excinfo.value.error == "NotCoprocessorTxSender"
    receipt = client.send(
        tx_sender, iv.verifyProofResponse(first, handles, good, b""), gateway=True
    )
    call, consensus = client.events(receipt, gateway=True)
    assert (
        call.name == "VerifyProofResponseCall"
        and call.args["coprocessorTxSender"] == tx_sender.address
    )
    assert call.args["ctHandles"] == handles and call.args["signature"] == good
    assert consensus.name == "VerifyProofResponse" and consensus.args["zkProofId"] == first
    assert (
        iv.isProofVerified(first).call()
        and iv.isCoprocessorVerified(first, tx_sender.address).call()
    )
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.verifyProofResponse(first, handles, good, b""), gateway=True)
    assert excinfo.value.error == "CoprocessorAlreadyVerified"
    assert str(first) in str(excinfo.value) and tx_sender.address in str(excinfo.value)
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.rejectProofResponse(first, b""), gateway=True)
    assert excinfo.value.error == "CoprocessorAlreadyVerified"

    receipt = client.send(tx_sender, iv.rejectProofResponse(second, b"\x00"), gateway=True)
    assert [e.name for e in client.events(receipt, gateway=True)] == [
        "RejectProofResponseCall",
        "RejectProofResponse",
    ]
    assert iv.isProofRejected(second).call()
    for call_ in (
        iv.rejectProofResponse(second, b""),
        iv.verifyProofResponse(second, [], good, b""),
    ):
        with pytest.raises(TransactionReverted) as excinfo:
            client.send(tx_sender, call_, gateway=True)
        assert excinfo.value.error == "CoprocessorAlreadyRejected"
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, iv.rejectProofResponse(second + 100, b""), gateway=True)
    assert excinfo.value.error == "VerifyProofNotRequested"

    # An empty input list is valid.
    third = _request(client, dapp, user, b"empty-list")
    empty = _sign(info, info.signer_account().key, [], user.address, dapp)
    client.send(tx_sender, iv.verifyProofResponse(third, [], empty, b""), gateway=True)
    assert iv.isProofVerified(third).call()


def test_ciphertext_commits_rules(devnet_client: DevnetClient) -> None:
    client, info = devnet_client, devnet_client.info
    cc = client.ciphertext_commits.functions
    tx_sender = info.tx_sender_account()
    handle, digest, sns = b"\x11" * 32, b"\x22" * 32, b"\x33" * 32
    assert cc.isCiphertextMaterialAdded(handle).call() is False
    with pytest.raises(ContractCustomError):
        cc.getCiphertextMaterials([handle]).call()

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
    assert consensus.name == "AddCiphertextMaterialConsensus"
    assert consensus.args["coprocessorTxSenders"] == [tx_sender.address]
    assert cc.isCiphertextMaterialAdded(handle).call() is True
    assert cc.getCiphertextMaterials([handle]).call() == [
        (handle, 0, digest, sns, [tx_sender.address])
    ]
    with pytest.raises(TransactionReverted) as excinfo:
        client.send(tx_sender, cc.addCiphertextMaterial(handle, 0, digest, sns), gateway=True)
    assert excinfo.value.error == "CoprocessorAlreadyAdded"


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

    def names(receipt: TxReceipt) -> list[str]:
        return [e.name for e in client.events(receipt, gateway=True, extra=contracts)]

    request = client.send(
        user, iv.verifyProofRequest(31337, dapp, user.address, b"p", b""), gateway=True
    )
    (event,) = client.events(request, gateway=True, extra=contracts)
    zk_id = event.args["zkProofId"]
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
    seen = []
    for i, handles in ((0, agreed), (1, odd), (2, agreed)):
        call = iv.verifyProofResponse(zk_id, handles, sign(signers[i].key, handles), b"")
        seen.append(names(client.send(senders[i], call, gateway=True)))
    assert seen == [
        ["VerifyProofResponseCall"],
        ["VerifyProofResponseCall"],
        ["VerifyProofResponseCall", "VerifyProofResponse"],
    ]

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
    assert cc.getCiphertextMaterials([handle]).call() == [
        (handle, 7, d1, d1, [senders[0].address, senders[2].address])
    ]


def test_transfer_logs_group_by_tx(sweep: list[tuple[TxRecord, TxReceipt]]) -> None:
    per_block: dict[int, int] = defaultdict(int)
    for record, _ in sweep:
        per_block[record.block_number] += 1
    assert all(count == 1 for count in per_block.values())  # automine: one tx per block


def test_executor_reverts_are_decoded(devnet_client: DevnetClient) -> None:
    """Operand types the 0.10.0 executor refuses revert with its named custom errors."""
    ex, sender = devnet_client.exerciser.functions, anvil_account(0)
    cases = [
        (ex.binaryOps(7, 1, 2, 1 << 0, 1), "UnsupportedType"),  # Add on eaddress
        (ex.binaryOps(0, 1, 0, 1 << 0, 2), "UnsupportedType"),  # Add on ebool
        (ex.randOps(5, 3), "NotPowerOfTwo"),
        (ex.randOps(2, 512), "UpperBoundAboveMaxTypeValue"),
        (ex.castOps(5, 1, [5]), "InvalidType"),  # same-type cast
        (ex.castOps(5, 1, [0]), "UnsupportedType"),  # cast to ebool
    ]
    for call, error in cases:
        with pytest.raises(TransactionReverted) as excinfo:
            devnet_client.send(sender, call)
        assert excinfo.value.error == error, str(excinfo.value)
