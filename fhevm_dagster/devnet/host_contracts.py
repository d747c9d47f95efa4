"""Installs the real @fhevm/host-contracts on a local anvil at their canonical addresses.

The 0.10.0 artifacts are UUPS implementations whose sibling addresses (ACL, FHEVMExecutor,
InputVerifier, HCULimit, PauserSet) are compile-time constants. So instead of deploying proxies we
put each implementation's runtime code at its canonical address (`anvil_setCode`), write the
OpenZeppelin storage an EmptyUUPSProxy deployment would have left (Initializable version 1; Ownable
owner of the ACL), and call each `initializeFromEmptyProxy`. This works on any chain id, so every
host chain of the devnet has the host contracts at the same addresses; our demo apps take those
addresses as a constructor argument (contracts/src/CustomChainConfig.sol) rather than from
`@fhevm/solidity`'s ZamaConfig, which knows them on chain 31337 only.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from ..protocol.addresses import (
    ACL_ADDRESS,
    EXECUTOR_ADDRESS,
    INPUT_VERIFIER_ADDRESS,
    KMS_VERIFIER_ADDRESS,
)
from .artifacts import load_host_artifact
from .chain import contract_at, rpc, send_transaction
from .errors import DevnetError

#: Chain id of the devnet's first host chain (also where `@fhevm/solidity`'s ZamaConfig expects
#: the canonical addresses of `protocol.addresses`); host chain i has LOCAL_HOST_CHAIN_ID + i.
LOCAL_HOST_CHAIN_ID = 31337

#: ERC-7201 slot of OpenZeppelin OwnableUpgradeable (`openzeppelin.storage.Ownable`).
OWNABLE_SLOT = "0x9016d09d72d40fdae2fd8ceac6b6234c7706214fd39c1cd1e609a0528c199300"
#: ERC-7201 slot of OpenZeppelin Initializable (`openzeppelin.storage.Initializable`).
INITIALIZABLE_SLOT = "0xf0c57e16840df040f15088dc2f81fe391c3923bec73e23a9662efc9c229c6a00"


@dataclass(frozen=True)
class HostContracts:
    """Addresses of the installed host contracts."""

    acl: str
    executor: str
    kms_verifier: str
    input_verifier: str
    hcu_limit: str
    pauser_set: str
    owner: str

    def coprocessor_config(self) -> tuple[str, str, str]:
        """`CoprocessorConfig(ACLAddress, CoprocessorAddress, KMSVerifierAddress)` for a dApp
        constructor (contracts/src/CustomChainConfig.sol)."""
        return (self.acl, self.executor, self.kms_verifier)


def _word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _set_code(w3: Web3, address: str, name: str) -> None:
    code = load_host_artifact(name).deployed_bytecode
    rpc(w3, "anvil_setCode", [address, code])
    if w3.eth.get_code(Web3.to_checksum_address(address)).to_0x_hex() != code.lower():
        raise DevnetError(f"anvil_setCode of {name} at {address} did not stick")


def _place_code(w3: Web3) -> tuple[Contract, Contract, str, str]:
    """The host contracts' code at their addresses: (ACL, FHEVMExecutor, HCULimit address,
    PauserSet address), checked to be wired to each other."""
    for address, name in (
        (ACL_ADDRESS, "ACL"),
        (EXECUTOR_ADDRESS, "FHEVMExecutor"),
        (KMS_VERIFIER_ADDRESS, "KMSVerifier"),
        (INPUT_VERIFIER_ADDRESS, "InputVerifier"),
    ):
        _set_code(w3, address, name)

    # The addresses of HCULimit and PauserSet are constants of the executor and ACL bytecode.
    acl = contract_at(w3, ACL_ADDRESS, load_host_artifact("ACL").abi)
    executor = contract_at(w3, EXECUTOR_ADDRESS, load_host_artifact("FHEVMExecutor").abi)
    hcu_limit_address = str(executor.functions.getHCULimitAddress().call())
    pauser_set_address = str(acl.functions.getPauserSetAddress().call())
    wired = {
        "executor.getACLAddress": (executor.functions.getACLAddress().call(), ACL_ADDRESS),
        "executor.getInputVerifierAddress": (
            executor.functions.getInputVerifierAddress().call(),
            INPUT_VERIFIER_ADDRESS,
        ),
        "acl.getFHEVMExecutorAddress": (
            acl.functions.getFHEVMExecutorAddress().call(),
            EXECUTOR_ADDRESS,
        ),
    }
    for what, (got, expected) in wired.items():
        if str(got).lower() != expected.lower():
            raise DevnetError(
                f"host artifacts are built for other addresses: {what} = {got}, expected {expected}"
            )
    _set_code(w3, hcu_limit_address, "HCULimit")
    _set_code(w3, pauser_set_address, "PauserSet")
    return acl, executor, hcu_limit_address, pauser_set_address


def install_host_contracts(
    w3: Web3,
    owner: LocalAccount,
    *,
    input_verification_address: str,
    gateway_chain_id: int,
    coprocessor_signers: list[str],
    coprocessor_threshold: int,
    kms_signers: list[str],
    kms_threshold: int,
    decryption_address: str,
) -> HostContracts:
    """Puts ACL, FHEVMExecutor, HCULimit, PauserSet, InputVerifier and KMSVerifier on `w3`'s chain
    (any chain id: the addresses are the same everywhere, handles carry the chain id).

    `owner` becomes the ACL owner (the host-contracts owner) and sends the initialisation
    transactions; InputVerifier trusts `coprocessor_signers` under the EIP-712 domain of the gateway
    `InputVerification` at `input_verification_address` on `gateway_chain_id`.
    """
    acl, executor, hcu_limit_address, pauser_set_address = _place_code(w3)
    # State an EmptyUUPSProxy deployment leaves: initialized version 1; the ACL owned by `owner`.
    for address in (
        ACL_ADDRESS,
        EXECUTOR_ADDRESS,
        hcu_limit_address,
        INPUT_VERIFIER_ADDRESS,
        KMS_VERIFIER_ADDRESS,
    ):
        rpc(w3, "anvil_setStorageAt", [address, INITIALIZABLE_SLOT, _word(1)])
    rpc(w3, "anvil_setStorageAt", [ACL_ADDRESS, OWNABLE_SLOT, _word(int(owner.address, 16))])

    hcu_limit = contract_at(w3, hcu_limit_address, load_host_artifact("HCULimit").abi)
    input_verifier = contract_at(
        w3, INPUT_VERIFIER_ADDRESS, load_host_artifact("InputVerifier").abi
    )
    kms_verifier = contract_at(w3, KMS_VERIFIER_ADDRESS, load_host_artifact("KMSVerifier").abi)
    signers = [Web3.to_checksum_address(a) for a in coprocessor_signers]
    kms = [Web3.to_checksum_address(a) for a in kms_signers]
    initializations = {
        "ACL": acl.functions.initializeFromEmptyProxy(),
        "FHEVMExecutor": executor.functions.initializeFromEmptyProxy(),
        "HCULimit": hcu_limit.functions.initializeFromEmptyProxy(),
        "InputVerifier": input_verifier.functions.initializeFromEmptyProxy(
            Web3.to_checksum_address(input_verification_address),
            gateway_chain_id,
            signers,
            coprocessor_threshold,
        ),
        "KMSVerifier": kms_verifier.functions.initializeFromEmptyProxy(
            Web3.to_checksum_address(decryption_address), gateway_chain_id, kms, kms_threshold
        ),
    }
    for name, call in initializations.items():
        send_transaction(w3, owner, call, label=f"{name}.initializeFromEmptyProxy")

    got_signers = [str(a).lower() for a in input_verifier.functions.getCoprocessorSigners().call()]
    if got_signers != [a.lower() for a in signers]:
        raise DevnetError(f"InputVerifier signers are {got_signers}, expected {signers}")
    if str(acl.functions.owner().call()).lower() != owner.address.lower():
        raise DevnetError("ACL owner was not set")
    return HostContracts(
        acl=ACL_ADDRESS,
        executor=EXECUTOR_ADDRESS,
        kms_verifier=KMS_VERIFIER_ADDRESS,
        input_verifier=INPUT_VERIFIER_ADDRESS,
        hcu_limit=Web3.to_checksum_address(hcu_limit_address),
        pauser_set=Web3.to_checksum_address(pauser_set_address),
        owner=owner.address,
    )
