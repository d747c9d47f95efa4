"""The local gateway chain: our InputVerification and CiphertextCommits, and the EIP-712 answer.

The Zama gateway contracts are not published on npm, so contracts/src/ holds versions with the same
external ABI as the Zama gateway v0.14.0 (SPEC §6, §7; tests/test_gateway_abi.py holds the
selectors, topics and structs to the reference's), with a coprocessor set fixed at deployment. The
EIP-712 signing helpers re-exported here (from `protocol/eip712.py`) are what a coprocessor signs
for `verifyProofResponse` and what the host InputVerifier checks inside an inputProof.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3

# The EIP-712 answer has one definition, in protocol/ (re-exported here for devnet users).
from ..protocol.eip712 import (
    CIPHERTEXT_VERIFICATION_TYPES,
    EIP712_NAME,
    EIP712_VERSION,
    ciphertext_verification_typed_data,
    sign_ciphertext_verification,
)
from .chain import deploy_contract

__all__ = [
    "CIPHERTEXT_VERIFICATION_TYPES",
    "EIP712_NAME",
    "EIP712_VERSION",
    "GatewayContracts",
    "ciphertext_verification_typed_data",
    "deploy_gateway_contracts",
    "majority",
    "sign_ciphertext_verification",
]


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
