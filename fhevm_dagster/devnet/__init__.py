"""The local fhEVM devnet: anvil host chains (default two: 31337, 31338) with the real host
contracts, an anvil gateway chain with our InputVerification/CiphertextCommits, demo apps on every
host chain and demo traffic (tests, CLI, demos)."""

from .anvil import AnvilNode, AnvilStatus, anvil_status, free_port, start_anvil, stop_anvil
from .artifacts import Artifact, decode_revert, load_abi, load_artifact, load_host_artifact
from .chain import (
    anvil_account,
    connect,
    contract_at,
    deploy_artifact,
    deploy_contract,
    send_transaction,
    set_balance,
)
from .errors import DevnetError, ToolMissingError, TransactionReverted
from .gateway_contracts import (
    GatewayContracts,
    ciphertext_verification_typed_data,
    deploy_gateway_contracts,
    sign_ciphertext_verification,
)
from .host_contracts import HostContracts, install_host_contracts
from .lifecycle import DevnetStatus, devnet_down, devnet_status, devnet_up
from .state import DevnetHost, DevnetInfo, default_state_dir, load_devnet
from .traffic import TxRecord, read_ledger, run_operator_sweep, run_token_traffic

__all__ = [
    "AnvilNode",
    "AnvilStatus",
    "Artifact",
    "DevnetError",
    "DevnetHost",
    "DevnetInfo",
    "DevnetStatus",
    "GatewayContracts",
    "HostContracts",
    "ToolMissingError",
    "TransactionReverted",
    "TxRecord",
    "anvil_account",
    "anvil_status",
    "ciphertext_verification_typed_data",
    "connect",
    "contract_at",
    "decode_revert",
    "default_state_dir",
    "deploy_artifact",
    "deploy_contract",
    "deploy_gateway_contracts",
    "devnet_down",
    "devnet_status",
    "devnet_up",
    "free_port",
    "install_host_contracts",
    "load_abi",
    "load_artifact",
    "load_devnet",
    "load_host_artifact",
    "read_ledger",
    "run_operator_sweep",
    "run_token_traffic",
    "send_transaction",
    "set_balance",
    "sign_ciphertext_verification",
    "start_anvil",
    "stop_anvil",
]
