"""The local gateway chain: our InputVerification and CiphertextCommits, and the EIP-712 answer.

The Zama gateway contracts are not published on npm, so contracts/src/ holds versions with the same
external ABI (SPEC §6, §7). The EIP-712 signing helper here is what a coprocessor signs for
`verifyProofResponse` and what the host InputVerifier checks inside an inputProof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3 import Web3

from .chain import deploy_contract

EIP712_NAME = "InputVerification"
EIP712_VERSION = "1"
CIPHERTEXT_VERIFICATION_TYPES = {
    "CiphertextVerification": [
        {"name": "ctHandles", "type": "bytes32[]"},
        {"name": "userAddress", "type": "address"},
        {"name": "contractAddress", "type": "address"},
        {"name": "contractChainId", "type": "uint256"},
        {"name": "extraData", "type": "bytes"},
    ]
}


@dataclass(frozen=True)
class GatewayContracts:
    """Addresses of the deployed gateway contracts and their coprocessor set."""

    input_verification: str
    ciphertext_commits: str
    coprocessor_signers: tuple[str, ...]
    coprocessor_tx_senders: tuple[str, ...]
    threshold: int


def majority(count: int) -> int:
    """The smallest strict majority of `count` coprocessors."""
    return count // 2 + 1


def deploy_gateway_contracts(
    w3: Web3,
    deployer: LocalAccount,
    *,
    coprocessor_signers: Sequence[str],
    coprocessor_tx_senders: Sequence[str],
    threshold: int | None = None,
) -> GatewayContracts:
    """Deploys InputVerification then CiphertextCommits (fixed order: deterministic addresses)."""
    signers = [Web3.to_checksum_address(a) for a in coprocessor_signers]
    senders = [Web3.to_checksum_address(a) for a in coprocessor_tx_senders]
    threshold = majority(len(signers)) if threshold is None else threshold
    input_verification, _ = deploy_contract(
        w3, deployer, "InputVerification", signers, senders, threshold
    )
    commits, _ = deploy_contract(w3, deployer, "CiphertextCommits", signers, senders, threshold)
    return GatewayContracts(
        input_verification=input_verification.address,
        ciphertext_commits=commits.address,
        coprocessor_signers=tuple(signers),
        coprocessor_tx_senders=tuple(senders),
        threshold=threshold,
    )


def ciphertext_verification_typed_data(
    *,
    gateway_chain_id: int,
    input_verification_address: str,
    ct_handles: Sequence[bytes],
    user_address: str,
    contract_address: str,
    contract_chain_id: int,
    extra_data: bytes = b"",
) -> dict[str, object]:
    """The EIP-712 message a coprocessor signs for one verified input list."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **CIPHERTEXT_VERIFICATION_TYPES,
        },
        "primaryType": "CiphertextVerification",
        "domain": {
            "name": EIP712_NAME,
            "version": EIP712_VERSION,
            "chainId": gateway_chain_id,
            "verifyingContract": Web3.to_checksum_address(input_verification_address),
        },
        "message": {
            "ctHandles": [bytes(h) for h in ct_handles],
            "userAddress": Web3.to_checksum_address(user_address),
            "contractAddress": Web3.to_checksum_address(contract_address),
            "contractChainId": contract_chain_id,
            "extraData": bytes(extra_data),
        },
    }


def sign_ciphertext_verification(
    private_key: bytes | str,
    *,
    gateway_chain_id: int,
    input_verification_address: str,
    ct_handles: Sequence[bytes],
    user_address: str,
    contract_address: str,
    contract_chain_id: int,
    extra_data: bytes = b"",
) -> bytes:
    """65-byte r||s||v signature (v = 27/28) of a coprocessor over CiphertextVerification."""
    typed = ciphertext_verification_typed_data(
        gateway_chain_id=gateway_chain_id,
        input_verification_address=input_verification_address,
        ct_handles=ct_handles,
        user_address=user_address,
        contract_address=contract_address,
        contract_chain_id=contract_chain_id,
        extra_data=extra_data,
    )
    signable = encode_typed_data(full_message=typed)
    signed = Account.sign_message(signable, private_key=private_key)
    return bytes(signed.signature)
