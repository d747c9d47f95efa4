"""Bringing the whole local devnet up and down: host anvils, host contracts, gateway, demo apps.

A devnet has one gateway chain and `host_chains` host chains (default 2): host chain i (0-based) has
chain id 31337 + i, its anvil node is named "host" (i = 0) or "host-<i>", and each has the real host
contracts at the same addresses and its own demo apps, all pointing at the one gateway.

Order matters and is fixed, because addresses are derived from deployer nonces and pre-made
encrypted inputs are bound to the demo token's address: gateway InputVerification (gateway
deployer nonce 0), CiphertextCommits (nonce 1); then on each host chain the host contracts
(canonical addresses, initialised by a separate host owner account), ConfidentialToken (host
deployer nonce 0), OpsExerciser (1) — the same addresses on every host chain.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.utils.address import get_create_address

from .anvil import AnvilNode, AnvilStatus, anvil_status, start_anvil, stop_anvil
from .artifacts import host_contracts_version
from .chain import anvil_account, connect, deploy_contract, rpc, set_balance
from .errors import DevnetError
from .gateway_contracts import GatewayContracts, deploy_gateway_contracts
from .host_contracts import LOCAL_HOST_CHAIN_ID, HostContracts, install_host_contracts
from .state import (
    INFO_FILE,
    DevnetHost,
    DevnetInfo,
    ensure_key,
    load_devnet,
    resolve_state_dir,
    save_devnet,
)

HOST = "host"
GATEWAY = "gateway"
DEFAULT_HOST_PORT = 8545
DEFAULT_GATEWAY_PORT = 8546
#: Host chains of `fhevm-dagster devnet up` (and so of `make demo`) unless told otherwise.
DEFAULT_HOST_CHAINS = 2
#: Host chain i listens on host_port + HOST_PORT_STEP * i (8545, 8547, …: the gateway keeps 8546).
HOST_PORT_STEP = 2
DEFAULT_GATEWAY_CHAIN_ID = 10901
#: Anvil test account indexes (public keys of the default mnemonic).
DEPLOYER_INDEX = 0
HOST_OWNER_INDEX = 9
#: Accounts the demo traffic moves tokens between.
TRAFFIC_USER_INDEXES = (1, 2, 3, 4)
#: Files removed by devnet_down (the chains are not persisted, so their addresses die with them).
_EPHEMERAL = (INFO_FILE, "traffic-ledger.json", "traffic-ledger-*.json")
_FUNDING_WEI = 1_000 * 10**18
_EXTRA_HOST = re.compile(r"host-(\d+)")


def host_node_name(index: int) -> str:
    """The anvil node name of host chain `index` (0-based): "host", "host-1", "host-2", …"""
    return HOST if index == 0 else f"{HOST}-{index}"


def host_ports_for(host_port: int, host_chains: int) -> list[int]:
    """Default ports of `host_chains` host chains: host_port, host_port + 2, host_port + 4, …"""
    return [host_port + HOST_PORT_STEP * i for i in range(host_chains)]


def _host_names_on_disk(path: Path) -> list[str]:
    """Host node names with a PID file in `path`, the first host first, then by index."""
    extra = sorted(
        (int(m.group(1)), p.stem)
        for p in path.glob(f"{HOST}-*.pid")
        if (m := _EXTRA_HOST.fullmatch(p.stem))
    )
    return [HOST, *(name for _, name in extra)]


@dataclass(frozen=True)
class DevnetStatus:
    """Whether every node runs, with the DevnetInfo when one was written.

    `host` is the first host chain's node (`hosts[0]`); `hosts` has every host node, those of
    devnet.json's host chains when it was read, else those with a PID file.
    """

    state_dir: str
    host: AnvilStatus
    gateway: AnvilStatus
    info: DevnetInfo | None
    hosts: list[AnvilStatus] = field(default_factory=list)

    @property
    def running(self) -> bool:
        hosts = self.hosts or [self.host]
        return all(h.running for h in hosts) and self.gateway.running


def devnet_status(state_dir: Path | str | None = None) -> DevnetStatus:
    """PID/RPC status of every node of `state_dir` and its devnet.json if present."""
    path = resolve_state_dir(state_dir)
    info: DevnetInfo | None = None
    if (path / INFO_FILE).is_file():
        with contextlib.suppress(DevnetError, ValueError):
            info = load_devnet(path)
    if info is not None:
        names = [host_node_name(i) for i in range(len(info.host_chains))]
    else:
        names = _host_names_on_disk(path)
    hosts = [anvil_status(path, name) for name in names]
    return DevnetStatus(str(path), hosts[0], anvil_status(path, GATEWAY), info, hosts)


def devnet_down(state_dir: Path | str | None = None) -> bool:
    """Stops every node, forgets their addresses (keys and logs stay); returns whether any ran."""
    path = resolve_state_dir(state_dir)
    stopped = [stop_anvil(path, name) for name in [*_host_names_on_disk(path), GATEWAY]]
    for pattern in _EPHEMERAL:
        for file in path.glob(pattern):
            file.unlink(missing_ok=True)
    return any(stopped)


def _deploy_host(
    w3: Web3,
    node: AnvilNode,
    *,
    input_verification_address: str,
    gateway_chain_id: int,
    coprocessor_signers: list[str],
    coprocessor_threshold: int,
    kms_signer: str,
    decryption_address: str,
    deploy_demo: bool,
) -> tuple[HostContracts, DevnetHost]:
    """The host contracts, then the demo apps (given the host contracts' addresses), on one host
    chain."""
    deployer = anvil_account(DEPLOYER_INDEX)
    contracts = install_host_contracts(
        w3,
        anvil_account(HOST_OWNER_INDEX),
        input_verification_address=input_verification_address,
        gateway_chain_id=gateway_chain_id,
        coprocessor_signers=coprocessor_signers,
        coprocessor_threshold=coprocessor_threshold,
        kms_signers=[kms_signer],
        kms_threshold=1,
        decryption_address=decryption_address,
    )
    start_block = w3.eth.block_number + 1
    token_address = exerciser_address = ""
    if deploy_demo:
        config = contracts.coprocessor_config()
        token, _ = deploy_contract(w3, deployer, "ConfidentialToken", config)
        exerciser, _ = deploy_contract(w3, deployer, "OpsExerciser", config)
        token_address, exerciser_address = token.address, exerciser.address
    host = DevnetHost(
        chain_id=node.chain_id,
        rpc_url=node.rpc_url,
        acl_address=contracts.acl,
        executor_address=contracts.executor,
        input_verifier_address=contracts.input_verifier,
        kms_verifier_address=contracts.kms_verifier,
        demo_token_address=token_address,
        ops_exerciser_address=exerciser_address,
        start_block=start_block,
    )
    return contracts, host


def devnet_up(
    state_dir: Path | str | None = None,
    host_port: int = DEFAULT_HOST_PORT,
    gateway_port: int = DEFAULT_GATEWAY_PORT,
    *,
    host_chains: int | None = None,
    host_ports: Sequence[int] | None = None,
    host_chain_id: int = LOCAL_HOST_CHAIN_ID,
    gateway_chain_id: int = DEFAULT_GATEWAY_CHAIN_ID,
    deploy_demo: bool = True,
    block_time: int | None = None,
    coprocessors: int = 1,
) -> DevnetInfo:
    """Starts the host anvils and the gateway anvil, installs the host contracts on every host
    chain, deploys the gateway contracts and, on every host chain, the demo apps.

    Host chain i (0-based, `host_chains` of them: by default one per port of `host_ports`, else
    one; `fhevm-dagster devnet up` asks for DEFAULT_HOST_CHAINS) has chain id `host_chain_id` + i
    and listens on `host_ports[i]`, by default `host_port` + 2 * i (8545, 8547, …; the gateway
    keeps 8546). All host chains share the gateway's InputVerification and CiphertextCommits and
    this coprocessor's keys.
    Idempotent: when the devnet of `state_dir` already runs, returns its DevnetInfo unchanged.
    On failure the nodes it started are stopped again. With `block_time`, every chain mines a block
    every `block_time` seconds once set up (like real chains, so block ranges fill up by
    themselves); without, they mine on demand (tests). With `coprocessors` > 1, the gateway and the
    host InputVerifiers know that many coprocessors and need a majority of them (2 of 2, 2 of 3…):
    the first is this coprocessor, the others are `peer_coprocessors` (consensus tests).
    """
    path = resolve_state_dir(state_dir)
    status = devnet_status(path)
    if status.running and status.info is not None:
        return status.info
    devnet_down(path)  # leftovers of a half-started or crashed devnet
    if host_chains is None:
        host_chains = len(host_ports) if host_ports is not None else 1
    ports = list(host_ports) if host_ports is not None else host_ports_for(host_port, host_chains)
    chain_ids = [host_chain_id + i for i in range(host_chains)]
    _check_layout(host_chains, ports, chain_ids, gateway_port, gateway_chain_id, coprocessors)
    path.mkdir(parents=True, exist_ok=True)
    keys = _devnet_keys(path, coprocessors)
    try:
        nodes, gateway = _start_nodes(path, ports, chain_ids, gateway_port, gateway_chain_id)
        gw3, host_w3s = _connect_funded(gateway, nodes, keys)
        gateway_start_block = gw3.eth.block_number
        gw, decryption_address = _deploy_gateway(gw3, keys)
        deployed = [
            _deploy_host(
                w3,
                node,
                input_verification_address=gw.input_verification,
                gateway_chain_id=gateway_chain_id,
                coprocessor_signers=list(gw.coprocessor_signers),
                coprocessor_threshold=gw.threshold,
                kms_signer=keys.kms_signer[0].address,
                decryption_address=decryption_address,
                deploy_demo=deploy_demo,
            )
            for w3, node in zip(host_w3s, nodes, strict=True)
        ]
        info = _devnet_info(
            path,
            keys,
            gateway,
            gateway_chain_id,
            gateway_start_block,
            gw,
            decryption_address,
            deployed,
        )
        save_devnet(info)
        if block_time:
            for w3 in (*host_w3s, gw3):
                rpc(w3, "evm_setIntervalMining", [block_time])
        return info
    except BaseException:
        devnet_down(path)
        raise


def _check_layout(
    host_chains: int,
    ports: list[int],
    chain_ids: list[int],
    gateway_port: int,
    gateway_chain_id: int,
    coprocessors: int,
) -> None:
    """Host chains, ports, chain ids and coprocessors that a devnet can have, or why not."""
    if host_chains < 1:
        raise DevnetError(f"a devnet needs at least one host chain, got {host_chains}")
    if len(ports) != host_chains:
        raise DevnetError(f"{host_chains} host chains need {host_chains} ports, got {ports}")
    if len({*ports, gateway_port}) != host_chains + 1:
        raise DevnetError(f"host ports {ports} and gateway port {gateway_port} must all differ")
    if gateway_chain_id in chain_ids:
        raise DevnetError(
            f"gateway chain id {gateway_chain_id} is also a host chain id ({chain_ids})"
        )
    if coprocessors < 1:
        raise DevnetError(f"a devnet needs at least one coprocessor, got {coprocessors}")


@dataclass(frozen=True)
class _DevnetKeys:
    """The devnet's accounts, kept in its state dir: each coprocessor's (signer, key file) and
    (tx sender, key file), this coprocessor first; the KMS signer's; the gateway deployer."""

    coprocessors: list[tuple[tuple[LocalAccount, Path], tuple[LocalAccount, Path]]]
    kms_signer: tuple[LocalAccount, Path]
    deployer: LocalAccount

    @property
    def signers(self) -> list[LocalAccount]:
        return [signer for (signer, _), _ in self.coprocessors]

    @property
    def tx_senders(self) -> list[LocalAccount]:
        return [sender for _, (sender, _) in self.coprocessors]


def _devnet_keys(path: Path, coprocessors: int) -> _DevnetKeys:
    prefixes = ["coprocessor-", *(f"coprocessor-{i}-" for i in range(2, coprocessors + 1))]
    identities = [
        (ensure_key(path, f"{p}signer"), ensure_key(path, f"{p}tx-sender")) for p in prefixes
    ]
    return _DevnetKeys(identities, ensure_key(path, "kms-signer"), anvil_account(DEPLOYER_INDEX))


def _connect_funded(
    gateway: AnvilNode, nodes: list[AnvilNode], keys: _DevnetKeys
) -> tuple[Web3, list[Web3]]:
    """Clients of the gateway and host nodes, each coprocessor's tx sender funded on every one."""
    gw3 = connect(gateway.rpc_url)
    host_w3s = [connect(node.rpc_url) for node in nodes]
    for sender in keys.tx_senders:
        for w3 in (gw3, *host_w3s):
            set_balance(w3, sender.address, _FUNDING_WEI)
    return gw3, host_w3s


def _deploy_gateway(gw3: Web3, keys: _DevnetKeys) -> tuple[GatewayContracts, str]:
    """The gateway contracts, and the Decryption address that KMSVerifier's EIP-712 domain names:
    none exists locally, so it is the next address of the gateway deployer, where one would be
    deployed."""
    gw = deploy_gateway_contracts(
        gw3,
        keys.deployer,
        coprocessor_signers=[s.address for s in keys.signers],
        coprocessor_tx_senders=[t.address for t in keys.tx_senders],
    )
    decryption_address = get_create_address(
        keys.deployer.address, gw3.eth.get_transaction_count(keys.deployer.address)
    )
    return gw, decryption_address


def _start_nodes(
    path: Path, ports: list[int], chain_ids: list[int], gateway_port: int, gateway_chain_id: int
) -> tuple[list[AnvilNode], AnvilNode]:
    """The host nodes and the gateway node, started side by side (each start mostly waits for
    its node to answer)."""
    zipped = list(zip(ports, chain_ids, strict=True))
    wanted = [
        *((host_node_name(i), port, chain_id) for i, (port, chain_id) in enumerate(zipped)),
        (GATEWAY, gateway_port, gateway_chain_id),
    ]
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        *nodes, gateway = pool.map(
            lambda w: start_anvil(path, w[0], port=w[1], chain_id=w[2]), wanted
        )
    return nodes, gateway


def _devnet_info(
    path: Path,
    keys: _DevnetKeys,
    gateway: AnvilNode,
    gateway_chain_id: int,
    gateway_start_block: int,
    gw: GatewayContracts,
    decryption_address: str,
    deployed: list[tuple[HostContracts, DevnetHost]],
) -> DevnetInfo:
    """What devnet.json holds: the first host chain's figures at the top level (one-host readers),
    every host chain under `host_chains`."""
    contracts, first = deployed[0]
    (signer, signer_file), (tx_sender, tx_sender_file) = keys.coprocessors[0]
    kms_signer, kms_file = keys.kms_signer
    return DevnetInfo(
        state_dir=str(path),
        host_rpc_url=first.rpc_url,
        gateway_rpc_url=gateway.rpc_url,
        host_chain_id=first.chain_id,
        gateway_chain_id=gateway_chain_id,
        host_contracts_version=host_contracts_version(),
        acl_address=first.acl_address,
        executor_address=first.executor_address,
        input_verifier_address=first.input_verifier_address,
        kms_verifier_address=first.kms_verifier_address,
        hcu_limit_address=contracts.hcu_limit,
        pauser_set_address=contracts.pauser_set,
        host_owner_address=contracts.owner,
        input_verification_address=gw.input_verification,
        ciphertext_commits_address=gw.ciphertext_commits,
        decryption_address=decryption_address,
        coprocessor_threshold=gw.threshold,
        demo_token_address=first.demo_token_address,
        ops_exerciser_address=first.ops_exerciser_address,
        deployer_address=keys.deployer.address,
        coprocessor_signer_address=signer.address,
        coprocessor_tx_sender_address=tx_sender.address,
        kms_signer_address=kms_signer.address,
        signer_key_file=str(signer_file),
        tx_sender_key_file=str(tx_sender_file),
        kms_signer_key_file=str(kms_file),
        host_start_block=first.start_block,
        gateway_start_block=gateway_start_block,
        peer_coprocessors=[[str(sf), str(tf)] for (_, sf), (_, tf) in keys.coprocessors[1:]],
        host_chains=[host for _, host in deployed],
    )
