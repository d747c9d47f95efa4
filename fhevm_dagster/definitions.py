"""The Dagster code location: assets, jobs, sensors and resources. Nothing else lives here."""

from dagster import Definitions

from .assets.host import ciphertexts, fhe_computations, host_events
from .jobs import host_range_job
from .resources.chain import HostChainResource, HostIngestSettings
from .resources.fhe import FheResource
from .resources.io import ParquetIOManager
from .resources.store import StoreResource
from .sensors.host_blocks import host_blocks_sensor

defs = Definitions(
    assets=[host_events, fhe_computations, ciphertexts],
    jobs=[host_range_job],
    sensors=[host_blocks_sensor],
    resources={
        "chain": HostChainResource.from_env(),
        "host_settings": HostIngestSettings.from_env(),
        "store": StoreResource(),
        "fhe": FheResource(),
        "parquet_io_manager": ParquetIOManager(),
    },
)
