"""Bringing the whole local devnet up and down: two anvils, host contracts, gateway, demo apps.

Order matters and is fixed, because addresses are derived from deployer nonces and pre-made
encrypted inputs are bound to the demo token's address: gateway InputVerification (gateway
deployer nonce 0), CiphertextCommits (nonce 1); host contracts (canonical addresses, initialised
by a separate host owner account); ConfidentialToken (host deployer nonce 0), OpsExerciser (1).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from web3.utils.address import get_create_address

from .anvil import AnvilStatus, anvil_status, start_anvil, stop_anvil
from .artifacts import host_contracts_version
from .chain import anvil_account, connect, deploy_contract, rpc, set_balance
from .errors import DevnetError
from .gateway_contracts import deploy_gateway_contracts
from .host_contracts import LOCAL_HOST_CHAIN_ID, install_host_contracts
from .state import INFO_FILE, DevnetInfo, ensure_key, load_devnet, resolve_state_dir, save_devnet

HOST = "host"
GATEWAY = "gateway"
DEFAULT_GATEWAY_CHAIN_ID = 10901
#: Anvil test account indexes (public keys of the default mnemonic).
DEPLOYER_INDEX = 0
HOST_OWNER_INDEX = 9
#: Accounts the demo traffic moves tokens between.
TRAFFIC_USER_INDEXES = (1, 2, 3, 4)
#: Files removed by devnet_down (the chains are not persisted, so their addresses die with them).
_EPHEMERAL = (INFO_FILE, "traffic-ledger.json")
_FUNDING_WEI = 1_000 * 10**18


@dataclass(frozen=True)
class DevnetStatus:
    """Whether both nodes run, with the DevnetInfo when one was written."""

    state_dir: str
    host: AnvilStatus
    gateway: AnvilStatus
    info: DevnetInfo | None

    @property
    def running(self) -> bool:
        return self.host.running and self.gateway.running


def devnet_status(state_dir: Path | str | None = None) -> DevnetStatus:
    """PID/RPC status of both nodes of `state_dir` and its devnet.json if present."""
    path = resolve_state_dir(state_dir)
    info: DevnetInfo | None = None
    if (path / INFO_FILE).is_file():
        with contextlib.suppress(DevnetError, ValueError):
            info = load_devnet(path)
    return DevnetStatus(str(path), anvil_status(path, HOST), anvil_status(path, GATEWAY), info)


def devnet_down(state_dir: Path | str | None = None) -> bool:
    """Stops both nodes, forgets their addresses (keys and logs stay); returns whether any ran."""
    path = resolve_state_dir(state_dir)
    stopped = [stop_anvil(path, HOST), stop_anvil(path, GATEWAY)]
    for name in _EPHEMERAL:
        (path / name).unlink(missing_ok=True)
    return any(stopped)


def devnet_up(
    state_dir: Path | str | None = None,
    host_port: int = 8545,
    gateway_port: int = 8546,
    *,
    host_chain_id: int = LOCAL_HOST_CHAIN_ID,
    gateway_chain_id: int = DEFAULT_GATEWAY_CHAIN_ID,
    deploy_demo: bool = True,
    block_time: int | None = None,
    coprocessors: int = 1,
) -> DevnetInfo:
    """Starts host and gateway anvils, installs host contracts, deploys gateway and demo contracts.

    Idempotent: when the devnet of `state_dir` already runs, returns its DevnetInfo unchanged.
    On failure the nodes it started are stopped again. With `block_time`, both chains mine a block
    every `block_time` seconds once set up (like real chains, so block ranges fill up by
    themselves); without, they mine on demand (tests). With `coprocessors` > 1, the gateway and the
    host InputVerifier know that many coprocessors and need a majority of them (2 of 2, 2 of 3…):
    the first is this coprocessor, the others are `peer_coprocessors` (consensus tests).
    """
    path = resolve_state_dir(state_dir)
    status = devnet_status(path)
    if status.running and status.info is not None:
        return status.info
    devnet_down(path)  # leftovers of a half-started or crashed devnet
    if host_chain_id != LOCAL_HOST_CHAIN_ID:
        raise DevnetError(
            f"the host chain id must be {LOCAL_HOST_CHAIN_ID} (ZamaEthereumConfig's local network)"
        )
    path.mkdir(parents=True, exist_ok=True)

    if coprocessors < 1:
        raise DevnetError(f"a devnet needs at least one coprocessor, got {coprocessors}")
    prefixes = ["coprocessor-", *(f"coprocessor-{i}-" for i in range(2, coprocessors + 1))]
    identities = [
        (ensure_key(path, f"{p}signer"), ensure_key(path, f"{p}tx-sender")) for p in prefixes
    ]
    (signer, signer_file), (tx_sender, tx_sender_file) = identities[0]
    signers = [s.address for (s, _), _ in identities]
    senders = [t for _, (t, _) in identities]
    kms_signer, kms_file = ensure_key(path, "kms-signer")
    deployer = anvil_account(DEPLOYER_INDEX)
    host_owner = anvil_account(HOST_OWNER_INDEX)

    try:
        host = start_anvil(path, HOST, port=host_port, chain_id=host_chain_id)
        gateway = start_anvil(path, GATEWAY, port=gateway_port, chain_id=gateway_chain_id)
        gw3 = connect(gateway.rpc_url)
        hw3 = connect(host.rpc_url)
        for sender in senders:
            set_balance(gw3, sender.address, _FUNDING_WEI)
            set_balance(hw3, sender.address, _FUNDING_WEI)

        gateway_start_block = gw3.eth.block_number
        gw = deploy_gateway_contracts(
            gw3,
            deployer,
            coprocessor_signers=signers,
            coprocessor_tx_senders=[t.address for t in senders],
        )
        # KMSVerifier's EIP-712 domain names a gateway Decryption contract; none exists locally, so
        # it names the next address of the gateway deployer, where one would be deployed.
        decryption_address = get_create_address(
            deployer.address, gw3.eth.get_transaction_count(deployer.address)
        )
        contracts = install_host_contracts(
            hw3,
            host_owner,
            input_verification_address=gw.input_verification,
            gateway_chain_id=gateway_chain_id,
            coprocessor_signers=list(gw.coprocessor_signers),
            coprocessor_threshold=gw.threshold,
            kms_signers=[kms_signer.address],
            kms_threshold=1,
            decryption_address=decryption_address,
        )
        host_start_block = hw3.eth.block_number + 1
        token_address = exerciser_address = ""
        if deploy_demo:
            config = contracts.coprocessor_config()
            token, _ = deploy_contract(hw3, deployer, "ConfidentialToken", config)
            exerciser, _ = deploy_contract(hw3, deployer, "OpsExerciser", config)
            token_address, exerciser_address = token.address, exerciser.address

        info = DevnetInfo(
            state_dir=str(path),
            host_rpc_url=host.rpc_url,
            gateway_rpc_url=gateway.rpc_url,
            host_chain_id=host_chain_id,
            gateway_chain_id=gateway_chain_id,
            host_contracts_version=host_contracts_version(),
            acl_address=contracts.acl,
            executor_address=contracts.executor,
            input_verifier_address=contracts.input_verifier,
            kms_verifier_address=contracts.kms_verifier,
            hcu_limit_address=contracts.hcu_limit,
            pauser_set_address=contracts.pauser_set,
            host_owner_address=contracts.owner,
            input_verification_address=gw.input_verification,
            ciphertext_commits_address=gw.ciphertext_commits,
            decryption_address=decryption_address,
            coprocessor_threshold=gw.threshold,
            demo_token_address=token_address,
            ops_exerciser_address=exerciser_address,
            deployer_address=deployer.address,
            coprocessor_signer_address=signer.address,
            coprocessor_tx_sender_address=tx_sender.address,
            kms_signer_address=kms_signer.address,
            signer_key_file=str(signer_file),
            tx_sender_key_file=str(tx_sender_file),
            kms_signer_key_file=str(kms_file),
            host_start_block=host_start_block,
            gateway_start_block=gateway_start_block,
            peer_coprocessors=[[str(sf), str(tf)] for (_, sf), (_, tf) in identities[1:]],
        )
        save_devnet(info)
        if block_time:
            for w3 in (hw3, gw3):
                rpc(w3, "evm_setIntervalMining", [block_time])
        return info
    except BaseException:
        devnet_down(path)
        raise
