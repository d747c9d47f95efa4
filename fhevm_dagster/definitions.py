"""The Dagster code location: assets, jobs, sensors and resources. Nothing else lives here.

`defs` is built when Dagster loads the code location (not at import), from the one `Settings`
object it loads (`fhevm_dagster.settings`, the README's settings table): the host chains of the
registry (`chain.registry`) and every resource. Each host chain gets its own partition set, assets,
job and sensor; one gateway job serves them all.
"""

from dagster import Definitions, definitions

from .assets.gateway import gateway_assets
from .chain.config import SensorRpc, gateway_from_settings, gateway_range_rules
from .chain.registry import host_chains_from_settings
from .host_chains import host_chain_defs
from .jobs import gateway_range_job
from .pipeline.redrive import RedrivePolicy
from .resources.chain import CommitSettings, GatewayChainResource, HostChainResource
from .resources.fhe import FheResource, check_test_keys, fhe_pool
from .resources.io import ParquetIOManager
from .resources.objects import ObjectStoreResource
from .resources.signer import SignerResource
from .resources.store import StoreResource
from .retention import run_retention_sensor
from .sensors import gateway_blocks_sensor
from .sensors.blocks import SensorConfig
from .settings import load_settings


@definitions
def defs() -> Definitions:
    settings = load_settings()
    chains = host_chains_from_settings(settings)
    fhe = FheResource.of(settings)
    check_test_keys(settings, fhe.resolved_key_dir, [c.chain_id for c in chains])
    max_runtime_s = settings.run_max_runtime
    pool = fhe_pool(settings)
    redrive, rpc = RedrivePolicy.of(settings), SensorRpc.of(settings)
    hosts = [
        host_chain_defs(
            c.name,
            max_runtime_s=max_runtime_s,
            sensor=SensorConfig(c.ranges, redrive, rpc),
            pool=pool,
        )
        for c in chains
    ]
    gateway_sensor = gateway_blocks_sensor(
        SensorConfig(gateway_range_rules(settings), redrive, rpc)
    )
    return Definitions(
        assets=[
            *(a for h in hosts for a in h.assets),
            *gateway_assets([c.name for c in chains], pool),
        ],
        asset_checks=[c for h in hosts for c in h.checks],
        jobs=[*(h.job for h in hosts), gateway_range_job(max_runtime_s)],
        sensors=[
            *(h.sensor for h in hosts),
            gateway_sensor,
            run_retention_sensor(settings.run_retention_days),
        ],
        resources={
            **{c.name: HostChainResource.of(c) for c in chains},
            "store": StoreResource.of(settings),
            "fhe": fhe,
            "parquet_io_manager": ParquetIOManager(base_dir=str(settings.parquet_dir)),
            "gateway": GatewayChainResource.of(gateway_from_settings(settings)),
            "signer": SignerResource(),
            "commit_settings": CommitSettings.of(settings),
            "objects": ObjectStoreResource(
                url=settings.object_store, s3_endpoint_url=settings.s3_endpoint
            ),
        },
    )
