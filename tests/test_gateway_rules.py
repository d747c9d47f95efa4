"""The rules of our gateway contracts on anvil: InputVerification's requests, responses and
rejections, CiphertextCommits' material and consensus, and the threshold of a three-coprocessor
gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from devnet_fixtures import DevnetClient
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractCustomError
from web3.types import TxReceipt

from fhevm_dagster.abi import decode_revert
from fhevm_dagster.devnet import (
    DevnetInfo,
    TransactionReverted,
    anvil_account,
    ciphertext_verification_typed_data,
    contract_at,
    deploy_gateway_contracts,
    load_artifact,
    set_balance,
    sign_ciphertext_verification,
)
from fhevm_dagster.devnet.gateway_contracts import GatewayContracts


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
