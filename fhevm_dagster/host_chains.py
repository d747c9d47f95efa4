"""The Dagster definitions of one host chain, from its registry entry: a partition set, the range
assets and checks under the chain's name, a range job and a block-range sensor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagster import (
    AssetChecksDefinition,
    AssetsDefinition,
    DynamicPartitionsDefinition,
    RetryPolicy,
    SensorDefinition,
)

from .assets.commits import (
    CIPHERTEXT_DIGESTS,
    COMMIT_RETRY,
    SNS_CIPHERTEXTS,
    digest_commits_spec,
    peer_check,
)
from .assets.host import CIPHERTEXTS, HOST_INGEST
from .assets.objects import CIPHERTEXT_OBJECTS
from .assets.range_asset import RangeGroup, range_asset
from .chain.config import ChainKind
from .jobs import host_range_job
from .partitions import host_ranges
from .sensors.blocks import DEFAULT_SENSOR, SensorConfig, block_range_sensor

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


@dataclass(frozen=True)
class HostChainDefs:
    """Everything Dagster knows of one host chain; the resource `<name>` (HostChainResource)
    configures its node and contracts, its sensor's `SensorConfig` its ranges."""

    name: str
    partitions: DynamicPartitionsDefinition
    assets: list[AssetsDefinition]
    checks: list[AssetChecksDefinition]
    job: UnresolvedAssetJobDefinition
    sensor: SensorDefinition


def host_chain_defs(
    name: str,
    commit_retry: RetryPolicy | None = COMMIT_RETRY,
    max_runtime_s: int = 0,
    sensor: SensorConfig = DEFAULT_SENSOR,
    pool: str | None = None,
) -> HostChainDefs:
    """The definitions of the host chain `name` (`HostChainConfig.name`, e.g. `host_31337`);
    its range job's runs may take `max_runtime_s` seconds (0: no limit, `jobs.py`); its sensor
    cuts and re-drives ranges as `sensor` says; its FHE steps run in `pool`
    (`resources.fhe.fhe_pool`)."""
    partitions = host_ranges(name)
    job = host_range_job(name, max_runtime_s)
    where = RangeGroup((name,), name, partitions, chain=name, pool=pool)
    specs = [
        HOST_INGEST,
        CIPHERTEXTS,
        SNS_CIPHERTEXTS,
        CIPHERTEXT_DIGESTS,
        digest_commits_spec(commit_retry),
        CIPHERTEXT_OBJECTS,
    ]
    return HostChainDefs(
        name=name,
        partitions=partitions,
        assets=[range_asset(spec, where) for spec in specs],
        checks=[peer_check(name, partitions)],
        job=job,
        sensor=block_range_sensor(
            f"{name}_blocks_sensor",
            job_name=job.name,
            partitions=partitions,
            chain_resource=name,
            kind=ChainKind.HOST,
            config=sensor,
        ),
    )
