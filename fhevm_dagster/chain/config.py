"""Where each chain is and what to read there: plain data (no web3), from settings or resources."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from ..settings import Settings, default, variable

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

    timeout_s: float = default("host_rpc_timeout")
    retries: int = default("rpc_retries")
    backoff_s: float = default("rpc_backoff")
    poa: bool = default("host_poa")
    #: Blocks per eth_getLogs at most (`chain.logs` learns a provider's lower cap).
    logs_max_span: int = default("logs_max_span")


DEFAULT_RPC = RpcSettings()


@dataclass(frozen=True, slots=True)
class RangeRules:
    """How a chain is cut into block ranges (`pipeline.planner`, `pipeline.block_ranges`)."""

    range_size: int = 100
    #: Blocks per range at the chain's head (a divisor of `range_size`); None: `range_size`.
    head_range_size: int | None = None
    confirmations: int = 0
    max_ranges_per_tick: int = 10
    start_block: int = 0
    reorg_check_ranges: int = 8
    #: A changed genesis is adopted as a reset (`pipeline.identity`) rather than an error.
    accept_reset: bool = False
    #: A range without a log of the chain's contracts gets a run too (else it is recorded as
    #: processed without one: `pipeline.planner.without_empty`).
    run_empty: bool = False

    def __post_init__(self) -> None:
        check_range_sizes(self.range_size, self.head_size, "range_size", "head_range_size")

    @property
    def head_size(self) -> int:
        return self.range_size if self.head_range_size is None else self.head_range_size


def check_range_sizes(size: int, head_size: int, size_name: str, head_name: str) -> None:
    """A range size of at least 1 and a head size that divides it (a head range never crosses
    a range-size boundary); the error names where each came from."""
    if size < 1:
        raise ValueError(f"{size_name}={size}: a range holds at least 1 block")
    if head_size < 1 or size % head_size:
        raise ValueError(f"{head_name}={head_size} must divide {size_name}={size}")


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
                f"({variable('gateway_input_verification_address')} or a devnet)"
            )
        return self.input_verification_address


def rpc_settings(settings: Settings, timeout_s: float, poa: bool = False) -> RpcSettings:
    """A chain's RPC settings: its timeout, the shared retry and eth_getLogs settings."""
    return RpcSettings(
        timeout_s, settings.rpc_retries, settings.rpc_backoff, poa, settings.logs_max_span
    )


@dataclass(frozen=True, slots=True)
class SensorRpc:
    """How a sensor tick talks to a chain's node: a short timeout per request and few retries
    (`Settings.sensor_rpc_*`), so that a tick ends within Dagster's 60-s deadline."""

    timeout_s: float = default("sensor_rpc_timeout")
    retries: int = default("sensor_rpc_retries")

    @classmethod
    def of(cls, settings: Settings) -> SensorRpc:
        return cls(settings.sensor_rpc_timeout, settings.sensor_rpc_retries)

    def apply(self, rpc: RpcSettings) -> RpcSettings:
        """The chain's RPC settings with the sensor's timeout and retries."""
        return replace(rpc, timeout_s=self.timeout_s, retries=self.retries)


def gateway_range_rules(settings: Settings) -> RangeRules:
    """How the gateway is cut into ranges (a host chain's rules are its registry entry's)."""
    gateway = gateway_from_settings(settings)
    head = settings.gateway_head_range_size
    check_range_sizes(
        settings.gateway_range_size,
        settings.gateway_range_size if head is None else head,
        variable("gateway_range_size"),
        variable("gateway_head_range_size"),
    )
    return RangeRules(
        range_size=settings.gateway_range_size,
        head_range_size=head,
        # Default 0 on every chain, as Zama's gw-listener reads gateway logs up to the head
        # (zama-ai/fhevm v0.14.0, coprocessor/fhevm-engine/gw-listener/src/gw_listener.rs:
        # 188-210: `to_block` is at most `get_block_number()`).
        confirmations=settings.gateway_confirmations,
        max_ranges_per_tick=settings.gateway_max_ranges_per_tick,
        start_block=settings.gateway_start_block,
        reorg_check_ranges=settings.gateway_reorg_check_ranges,
        accept_reset=accept_chain_reset(settings, gateway.chain_id, gateway.rpc_url),
        run_empty=settings.run_empty_ranges,
    )


def accept_chain_reset(settings: Settings, chain_id: int, rpc_url: str) -> bool:
    """`Settings.accept_chain_reset`; unset: only for a chain of the running devnet (its chain id
    at its URL), where restarts are routine; elsewhere a new genesis under the same id means a
    wrong URL."""
    if settings.accept_chain_reset is not None:
        return settings.accept_chain_reset
    return settings.is_devnet_chain(chain_id, rpc_url)


#: The depth at which Zama's host-listener takes a host block as final (zama-ai/fhevm v0.14.0,
#: coprocessor/fhevm-engine/host-listener/src/cmd/mod.rs:161-166 `catchup_finalization_in_blocks`,
#: default 20, applied in `consume_catchup_blocks` at lines 503-508).
HOST_FINALIZATION_BLOCKS = 20


def host_confirmations(settings: Settings, chain_id: int, rpc_url: str) -> int:
    """`Settings.host_confirmations`; unset: 0 for a chain of the running devnet (one node, no
    reorg but ours), else the reference's finalization depth."""
    if settings.host_confirmations is not None:
        return settings.host_confirmations
    return 0 if settings.is_devnet_chain(chain_id, rpc_url) else HOST_FINALIZATION_BLOCKS


def gateway_from_settings(settings: Settings) -> GatewayConfig:
    """The gateway of the settings."""
    return GatewayConfig(
        settings.gateway_chain_id,
        settings.gateway_rpc_url,
        settings.gateway_input_verification_address,
        settings.gateway_ciphertext_commits_address,
        rpc_settings(settings, settings.gateway_rpc_timeout),
        settings.gateway_batch_deadline,
        settings.gateway_fee_bump,
        settings.sender_lease,
        settings.variable_if_set("gateway_rpc_url"),
    )
