"""ConfidentialToken on the real @fhevm/host-contracts 0.10.0 (anvil): its mint and transfer
events and their handles (SPEC §2), and an encrypted transfer whose input proof went through our
gateway's InputVerification."""

from __future__ import annotations

import pytest
from contract_handles import EBOOL, EUINT64, allowed, check_handles, executor_events, input_handle
from devnet_fixtures import DevnetClient
from eth_account import Account

from fhevm_dagster.devnet import (
    TransactionReverted,
    anvil_account,
    load_abi,
    sign_ciphertext_verification,
)


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
