"""The chains as Dagster resources: configuration only; reading and sending is `chain/`.

`definitions.defs` builds them from the plain configs of `chain.config`, themselves from the
`Settings` object (the README's settings table). The RPC URLs are
handed to Dagster as `EnvVar`s when their variables are set, so the UI shows the variable's name
and never a URL that carries an API key.
"""

from __future__ import annotations

from dataclasses import replace

from dagster import ConfigurableResource, EnvVar

from ..chain.config import (
    GatewayConfig,
    HostChainConfig,
    RpcSettings,
)
from ..protocol.addresses import ACL_ADDRESS, EXECUTOR_ADDRESS
from ..settings import Settings, default

#: The plain configs' defaults, which the resources' fields take rather than writing them again.
_RPC = RpcSettings()


class _RpcResource(ConfigurableResource):  # type: ignore[type-arg]
    rpc_url: str
    request_timeout_s: float = _RPC.timeout_s
    rpc_retries: int = _RPC.retries
    rpc_backoff_s: float = _RPC.backoff_s
    logs_max_span: int = _RPC.logs_max_span

    @property
    def rpc(self) -> RpcSettings:
        return RpcSettings(
            self.request_timeout_s,
            self.rpc_retries,
            self.rpc_backoff_s,
            logs_max_span=self.logs_max_span,
        )


class HostChainResource(_RpcResource):
    """One host chain of the registry: its node, the contracts whose logs are ingested, its FHE
    key id. One resource per chain, keyed by the chain's name (`host_<chain id>`)."""

    chain_id: int = 31337
    acl_address: str = ACL_ADDRESS
    executor_address: str = EXECUTOR_ADDRESS
    key_id: str = "0"  # uint256 as decimal text
    poa: bool = _RPC.poa  # blocks carry a proof-of-authority extraData (Polygon, BSC)

    @property
    def rpc(self) -> RpcSettings:
        return replace(super().rpc, poa=self.poa)

    @classmethod
    def of(cls, chain: HostChainConfig) -> HostChainResource:
        """The resource of a registry entry; its URL as an `EnvVar` when it came from one."""
        return cls(
            chain_id=chain.chain_id,
            rpc_url=EnvVar(chain.rpc_url_env) if chain.rpc_url_env else chain.rpc_url,
            acl_address=chain.acl_address,
            executor_address=chain.executor_address,
            key_id=str(chain.key_id),
            request_timeout_s=chain.rpc.timeout_s,
            rpc_retries=chain.rpc.retries,
            rpc_backoff_s=chain.rpc.backoff_s,
            logs_max_span=chain.rpc.logs_max_span,
            poa=chain.rpc.poa,
        )

    def config(self) -> HostChainConfig:
        return HostChainConfig(
            self.chain_id,
            self.rpc_url,
            self.acl_address,
            self.executor_address,
            int(self.key_id),
            self.rpc,
        )


class GatewayChainResource(_RpcResource):
    """The gateway's node and the two contracts this coprocessor answers and commits to."""

    chain_id: int = 10901
    input_verification_address: str = ""
    ciphertext_commits_address: str = ""
    batch_deadline_s: float = 180.0
    fee_bump_s: float = 30.0
    sender_lease_s: float = 30.0

    @classmethod
    def of(cls, gateway: GatewayConfig) -> GatewayChainResource:
        """The resource of the configured gateway; its URL as an `EnvVar` when it came from one."""
        return cls(
            chain_id=gateway.chain_id,
            rpc_url=EnvVar(gateway.rpc_url_env) if gateway.rpc_url_env else gateway.rpc_url,
            input_verification_address=gateway.input_verification_address,
            ciphertext_commits_address=gateway.ciphertext_commits_address,
            batch_deadline_s=gateway.batch_deadline_s,
            fee_bump_s=gateway.fee_bump_s,
            sender_lease_s=gateway.sender_lease_s,
            request_timeout_s=gateway.rpc.timeout_s,
            rpc_retries=gateway.rpc.retries,
            rpc_backoff_s=gateway.rpc.backoff_s,
            logs_max_span=gateway.rpc.logs_max_span,
        )

    def config(self) -> GatewayConfig:
        return GatewayConfig(
            self.chain_id,
            self.rpc_url,
            self.input_verification_address,
            self.ciphertext_commits_address,
            self.rpc,
            self.batch_deadline_s,
            self.fee_bump_s,
            self.sender_lease_s,
        )


class CommitSettings(ConfigurableResource):  # type: ignore[type-arg]
    """How many gateway blocks back an earlier commit is looked for (never a scan of the whole
    gateway: providers cap it), how many commits to send at once, and whether committed ct128
    bytes leave the store."""

    lookback_blocks: int = default("gateway_commit_lookback")
    batch_size: int = default("commit_batch")
    #: Drop committed ct128 bytes from the store once they are in the object store.
    purge_ct128: bool = default("purge_ct128")

    @classmethod
    def of(cls, settings: Settings) -> CommitSettings:
        return cls(
            lookback_blocks=settings.gateway_commit_lookback,
            batch_size=settings.commit_batch,
            purge_ct128=settings.purge_ct128,
        )
