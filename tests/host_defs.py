"""The Dagster definitions of the devnet's first host chain, as tests materialise them.

Each host chain has its own assets (keys under `host_<chain id>/`), partition set and resource;
tests of one chain take them from here instead of building them again.
"""

from __future__ import annotations

from dagster import AssetKey, AssetsDefinition, RetryPolicy

from fhevm_dagster.assets.gateway import gateway_assets
from fhevm_dagster.devnet import DevnetInfo
from fhevm_dagster.host_chains import host_chain_defs
from fhevm_dagster.resources.chain import HostChainResource

CHAIN_ID = 31337
HOST = f"host_{CHAIN_ID}"
DEFS = host_chain_defs(HOST)
HOST_RANGES = str(DEFS.partitions.name)


def asset(name: str, defs_assets: list[AssetsDefinition] = DEFS.assets) -> AssetsDefinition:
    """The definition that materialises the asset `name` of the chain."""
    key = AssetKey([HOST, name])
    return next(a for a in defs_assets if key in a.keys)


def node(name: str) -> str:
    """The op of asset `name` (`host_ingest` for host_events and fhe_computations)."""
    return asset(name).node_def.name


host_ingest = asset("host_events")
ciphertexts = asset("ciphertexts")
sns_ciphertexts = asset("sns_ciphertexts")
ciphertext_digests = asset("ciphertext_digests")
digest_commits = asset("digest_commits")
ciphertext_objects = asset("ciphertext_objects")
COMMIT_ASSETS = [sns_ciphertexts, ciphertext_digests, digest_commits]
COMMIT_CHECKS = DEFS.checks
#: digest_commits without retries: a test sees the first failure.
NO_RETRY = asset(
    "digest_commits", host_chain_defs(HOST, commit_retry=RetryPolicy(max_retries=0)).assets
)


def host_resource(info: DevnetInfo, key_id: int = 0) -> dict[str, HostChainResource]:
    """The chain's resource for the devnet `info`, under the chain's resource key."""
    return {
        HOST: HostChainResource(
            chain_id=info.host_chain_id,
            rpc_url=info.host_rpc_url,
            acl_address=info.acl_address,
            executor_address=info.executor_address,
            key_id=str(key_id),
        )
    }


#: The gateway's assets, serving this one host chain.
GATEWAY_ASSETS = gateway_assets([HOST])
