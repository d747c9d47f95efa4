"""Where each chain is and what to read there: plain data (no web3), from settings or resources."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from .. import settings as cfg

#: The gateway contracts this coprocessor sends to, by ABI name.
GATEWAY_CONTRACTS = ("InputVerification", "CiphertextCommits")


class ChainKind(Enum):
    """What a chain is to the coprocessor: a host chain whose computations it evaluates, or the
    gateway it answers on (whose ranges may hold transactions of ours)."""

    HOST = "host"
    GATEWAY = "gateway"


@dataclass(frozen=True, slots=True)
class RpcSettings:
    """How to talk to one node: timeout per request, web3's retries (backoff doubles), and
    whether its blocks carry a proof-of-authority `extraData` (Polygon, BSC: 97 bytes)."""

    timeout_s: float = 10.0
    retries: int = 5
    backoff_s: float = 0.5
    poa: bool = False


DEFAULT_RPC = RpcSettings()


@dataclass(frozen=True, slots=True)
class RangeRules:
    """How a chain is cut into block ranges (`pipeline.planner`)."""

    range_size: int = 100
    confirmations: int = 0
    max_ranges_per_tick: int = 10
    start_block: int = 0
    reorg_check_ranges: int = 8
    #: A changed genesis is adopted as a reset (`pipeline.identity`) rather than an error.
    accept_reset: bool = False
    #: A range without a log of the chain's contracts gets a run too (else it is recorded as
    #: processed without one: `pipeline.planner.without_empty`).
    run_empty: bool = False


@dataclass(frozen=True, slots=True)
class HostChainConfig:
    """One host chain: its node, the ACL and executor whose logs are ingested, its FHE key id."""

    chain_id: int
    rpc_url: str
    acl_address: str
    executor_address: str
    key_id: int
    rpc: RpcSettings = DEFAULT_RPC
    ranges: RangeRules = RangeRules()
    #: The environment variable the URL came from, if any: shown instead of the URL (API keys).
    rpc_url_env: str = ""

    @property
    def name(self) -> str:
        """The chain's name in Dagster: its asset group, key prefix, resource and partition set."""
        return f"host_{self.chain_id}"

    @property
    def log_addresses(self) -> tuple[str, str]:
        """The contracts whose logs a range is made of."""
        return (self.executor_address, self.acl_address)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The gateway chain: its node, InputVerification and CiphertextCommits."""

    chain_id: int
    rpc_url: str
    input_verification_address: str
    ciphertext_commits_address: str
    rpc: RpcSettings = DEFAULT_RPC
    #: Receipts of one batch are awaited together until this deadline (`chain.sender`) ...
    batch_deadline_s: float = 180.0
    #: ... and a transaction unmined this long after its latest attempt is fee-bumped.
    fee_bump_s: float = 30.0
    #: How long one process may hold the sender's lease without renewing it (`chain.sender`).
    sender_lease_s: float = 30.0
    #: The environment variable the URL came from, if any: shown instead of the URL (API keys).
    rpc_url_env: str = ""

    @property
    def log_addresses(self) -> tuple[str, str]:
        """The contracts whose logs a range is made of: proof requests, and commits (ours may
        need a recheck after a reorg)."""
        return (self.input_verification_address, self.ciphertext_commits_address)

    def require_input_verification(self) -> str:
        if not self.input_verification_address:
            raise ValueError(
                "gateway input_verification_address is not configured "
                "(FHEVM_DAGSTER_GATEWAY_INPUT_VERIFICATION_ADDRESS or a devnet)"
            )
        return self.input_verification_address


def rpc_settings(timeout_env: str, poa: bool = False) -> RpcSettings:
    """A chain's RPC settings: its timeout variable, the shared retry settings."""
    return RpcSettings(
        cfg.number(timeout_env),
        cfg.integer("FHEVM_DAGSTER_RPC_RETRIES"),
        cfg.number("FHEVM_DAGSTER_RPC_BACKOFF"),
        poa,
    )


def sensor_rpc(rpc: RpcSettings) -> RpcSettings:
    """A chain's RPC settings for a sensor tick: `FHEVM_DAGSTER_SENSOR_RPC_TIMEOUT` per request
    and `FHEVM_DAGSTER_SENSOR_RPC_RETRIES`, so that a tick ends within Dagster's 60-s deadline."""
    return replace(
        rpc,
        timeout_s=cfg.number("FHEVM_DAGSTER_SENSOR_RPC_TIMEOUT"),
        retries=cfg.integer("FHEVM_DAGSTER_SENSOR_RPC_RETRIES"),
    )


def host_poa() -> bool:
    """`FHEVM_DAGSTER_HOST_POA`: `1` host chains' blocks carry a proof-of-authority extraData."""
    setting = cfg.value("FHEVM_DAGSTER_HOST_POA")
    if setting not in ("0", "1"):
        raise ValueError(f"FHEVM_DAGSTER_HOST_POA={setting!r}: expected 1 or 0")
    return setting == "1"


def run_empty_ranges() -> bool:
    """`FHEVM_DAGSTER_RUN_EMPTY_RANGES`: `1` a run for every range, `0` none for empty ones."""
    setting = cfg.value("FHEVM_DAGSTER_RUN_EMPTY_RANGES")
    if setting not in ("0", "1"):
        raise ValueError(f"FHEVM_DAGSTER_RUN_EMPTY_RANGES={setting!r}: expected 1 or 0")
    return setting == "1"


def is_devnet_chain(chain_id: int, rpc_url: str) -> bool:
    """Whether the chain is one of the running devnet's: its chain id at its URL (devnet.json)."""
    devnet = cfg.devnet_info()
    chains = [(h.get("chain_id"), h.get("rpc_url")) for h in devnet.get("host_chains") or []]
    chains.append((devnet.get("gateway_chain_id"), devnet.get("gateway_rpc_url")))
    return (chain_id, rpc_url) in chains


def accept_chain_reset(chain_id: int, rpc_url: str) -> bool:
    """`FHEVM_DAGSTER_ACCEPT_CHAIN_RESET`: `1` yes, `0` no; unset: only for a chain of the running
    devnet (its chain id at its URL), where restarts are routine; elsewhere a new genesis under
    the same id means a wrong URL."""
    setting = cfg.value("FHEVM_DAGSTER_ACCEPT_CHAIN_RESET")
    if setting in ("0", "1"):
        return setting == "1"
    if setting:
        raise ValueError(f"FHEVM_DAGSTER_ACCEPT_CHAIN_RESET={setting!r}: expected 1, 0 or unset")
    return is_devnet_chain(chain_id, rpc_url)


#: The depth at which Zama's host-listener takes a host block as final (zama-ai/fhevm v0.14.0,
#: coprocessor/fhevm-engine/host-listener/src/cmd/mod.rs:161-166 `catchup_finalization_in_blocks`,
#: default 20, applied in `consume_catchup_blocks` at lines 503-508).
HOST_FINALIZATION_BLOCKS = 20


def host_confirmations(chain_id: int, rpc_url: str) -> int:
    """`FHEVM_DAGSTER_HOST_CONFIRMATIONS`; unset: 0 for a chain of the running devnet (one node,
    no reorg but ours), else the reference's finalization depth."""
    env = "FHEVM_DAGSTER_HOST_CONFIRMATIONS"
    if cfg.value(env):
        return cfg.integer(env)
    return 0 if is_devnet_chain(chain_id, rpc_url) else HOST_FINALIZATION_BLOCKS


def gateway_from_settings() -> GatewayConfig:
    """The gateway of the settings table."""
    url_env = "FHEVM_DAGSTER_GATEWAY_RPC_URL"
    return GatewayConfig(
        cfg.integer("FHEVM_DAGSTER_GATEWAY_CHAIN_ID"),
        cfg.value(url_env),
        cfg.value("FHEVM_DAGSTER_GATEWAY_INPUT_VERIFICATION_ADDRESS"),
        cfg.value("FHEVM_DAGSTER_GATEWAY_CIPHERTEXT_COMMITS_ADDRESS"),
        rpc_settings("FHEVM_DAGSTER_GATEWAY_RPC_TIMEOUT"),
        cfg.number("FHEVM_DAGSTER_GATEWAY_BATCH_DEADLINE"),
        cfg.number("FHEVM_DAGSTER_GATEWAY_FEE_BUMP"),
        cfg.number("FHEVM_DAGSTER_SENDER_LEASE"),
        url_env if cfg.is_set(url_env) else "",
    )
