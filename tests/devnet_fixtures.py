"""Shared pytest fixtures of the local devnet (real anvil, real @fhevm/host-contracts).

tests/conftest.py registers them as a plugin; test modules just name them as arguments (importing
them into a module would give that module its own session devnet). A test using them is marked
`devnet` (tiers.py).

- `devnet` (session): a complete devnet on free ports in a tmp state dir, with the default two host
  chains (31337, 31338): host contracts installed and ConfidentialToken and OpsExerciser deployed on
  each, gateway InputVerification/CiphertextCommits deployed with this run's coprocessor keys. Torn
  down at the end of the session.
- `host_w3`, `gateway_w3` (session): Web3 clients of the first host chain and of the gateway.
- `devnet_client` (session): contracts of the devnet (first host chain) and helpers to send and
  decode transactions.
- `host_clients` (session): one DevnetClient per host chain, by chain id.

Without `npm ci` (no node_modules/anvil) the fixtures skip with that instruction, or fail when
FHEVM_DAGSTER_REQUIRE_DEVNET=1 (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from fhevm_dagster.devnet import (
    DevnetInfo,
    ToolMissingError,
    anvil_account,
    connect,
    contract_at,
    devnet_down,
    devnet_up,
    free_port,
    load_abi,
    load_artifact,
    send_transaction,
)
from fhevm_dagster.devnet.lifecycle import DEFAULT_HOST_CHAINS
from fhevm_dagster.devnet.tools import anvil_binary

REQUIRE_ENV = "FHEVM_DAGSTER_REQUIRE_DEVNET"


@dataclass(frozen=True)
class DecodedEvent:
    """One decoded log: contract name, event name, arguments, and where it was emitted."""

    contract: str
    name: str
    args: dict[str, Any]
    address: str
    log_index: int


class DevnetClient:
    """The devnet's contracts on one host chain (`chain_id`, default the first) and the gateway,
    plus helpers to send transactions and decode their events."""

    def __init__(
        self, info: DevnetInfo, host_w3: Web3, gateway_w3: Web3, chain_id: int | None = None
    ) -> None:
        self.info, self.host_w3, self.gateway_w3 = info, host_w3, gateway_w3
        self.host = host = info.host(chain_id)
        self.executor = contract_at(host_w3, host.executor_address, load_abi("FHEVMExecutor"))
        self.acl = contract_at(host_w3, host.acl_address, load_abi("ACL"))
        self.input_verifier = contract_at(
            host_w3, host.input_verifier_address, load_abi("InputVerifier")
        )
        self.token = contract_at(
            host_w3, host.demo_token_address, load_artifact("ConfidentialToken").abi
        )
        self.exerciser = contract_at(
            host_w3, host.ops_exerciser_address, load_artifact("OpsExerciser").abi
        )
        self.input_verification = contract_at(
            gateway_w3, info.input_verification_address, load_artifact("InputVerification").abi
        )
        self.ciphertext_commits = contract_at(
            gateway_w3, info.ciphertext_commits_address, load_artifact("CiphertextCommits").abi
        )
        self._by_address: dict[str, tuple[str, Contract]] = {}
        for name, contract in (
            ("FHEVMExecutor", self.executor),
            ("ACL", self.acl),
            ("InputVerifier", self.input_verifier),
            ("ConfidentialToken", self.token),
            ("OpsExerciser", self.exerciser),
        ):
            self._by_address[contract.address.lower()] = (name, contract)
        self._gateway: dict[str, tuple[str, Contract]] = {
            self.input_verification.address.lower(): ("InputVerification", self.input_verification),
            self.ciphertext_commits.address.lower(): ("CiphertextCommits", self.ciphertext_commits),
        }

    def send(
        self, account: LocalAccount, call: ContractFunction, *, gateway: bool = False
    ) -> TxReceipt:
        """Sends `call` from `account` on the host chain (or the gateway); returns the receipt."""
        return send_transaction(self.gateway_w3 if gateway else self.host_w3, account, call)

    def events(
        self,
        receipt: TxReceipt,
        *,
        gateway: bool = False,
        extra: Sequence[tuple[str, Contract]] = (),
    ) -> list[DecodedEvent]:
        """Each log of `receipt` from a devnet contract (or one of `extra`), decoded, in order."""
        known = dict(self._gateway if gateway else self._by_address)
        known.update({c.address.lower(): (name, c) for name, c in extra})
        out: list[DecodedEvent] = []
        for log in receipt["logs"]:
            entry = known.get(str(log["address"]).lower())
            if entry is None:
                continue
            name, contract = entry
            topic0 = bytes(log["topics"][0])
            for item in cast(list[dict[str, Any]], contract.abi):
                if item.get("type") != "event":
                    continue
                types = ",".join(i["type"] for i in item["inputs"])
                if Web3.keccak(text=f"{item['name']}({types})") == topic0:
                    decoded = contract.events[item["name"]]().process_log(log)
                    out.append(
                        DecodedEvent(
                            name,
                            item["name"],
                            dict(decoded["args"]),
                            str(log["address"]),
                            log["logIndex"],
                        )
                    )
                    break
        return out


def _require_tools() -> None:
    try:
        anvil_binary()
    except ToolMissingError as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetInfo]:
    """A complete local devnet (two host chains) on free ports, for the whole test session."""
    _require_tools()
    state_dir = tmp_path_factory.mktemp("devnet")
    host_ports = [free_port() for _ in range(DEFAULT_HOST_CHAINS)]
    info = devnet_up(state_dir, host_ports[0], free_port(), host_ports=host_ports)
    try:
        yield info
    finally:
        devnet_down(state_dir)


@pytest.fixture(scope="session")
def host_w3(devnet: DevnetInfo) -> Web3:
    return connect(devnet.host_rpc_url)


@pytest.fixture(scope="session")
def gateway_w3(devnet: DevnetInfo) -> Web3:
    return connect(devnet.gateway_rpc_url)


@pytest.fixture(scope="session")
def devnet_client(devnet: DevnetInfo, host_w3: Web3, gateway_w3: Web3) -> DevnetClient:
    return DevnetClient(devnet, host_w3, gateway_w3)


@pytest.fixture(scope="session")
def host_clients(
    devnet: DevnetInfo, devnet_client: DevnetClient, gateway_w3: Web3
) -> dict[int, DevnetClient]:
    """A DevnetClient per host chain of the session devnet, by chain id (first: `devnet_client`)."""
    clients = {devnet.host_chain_id: devnet_client}
    for host in devnet.host_chains[1:]:
        clients[host.chain_id] = DevnetClient(
            devnet, connect(host.rpc_url), gateway_w3, host.chain_id
        )
    return clients


__all__ = [
    "DecodedEvent",
    "DevnetClient",
    "anvil_account",
    "devnet",
    "devnet_client",
    "gateway_w3",
    "host_clients",
    "host_w3",
]
