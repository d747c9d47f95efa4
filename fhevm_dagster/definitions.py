"""The Dagster code location: assets, jobs, sensors and resources. Nothing else lives here."""

from dagster import Definitions

from .assets.commits import COMMIT_ASSETS, COMMIT_CHECKS
from .assets.gateway import proof_requests, proof_responses, verified_inputs
from .assets.host import ciphertexts, fhe_computations, host_events
from .assets.objects import ciphertext_objects
from .jobs import gateway_range_job, host_range_job
from .resources.chain import (
    GatewayChainResource,
    GatewayIngestSettings,
    HostChainResource,
    HostIngestSettings,
)
from .resources.commits import CommitSettings
from .resources.fhe import FheResource
from .resources.io import ParquetIOManager
from .resources.objects import ObjectStoreResource
from .resources.signer import SignerResource
from .resources.store import StoreResource
from .sensors.gateway_blocks import gateway_blocks_sensor
from .sensors.host_blocks import host_blocks_sensor

defs = Definitions(
    assets=[
        host_events,
        fhe_computations,
        ciphertexts,
        *COMMIT_ASSETS,
        ciphertext_objects,
        proof_requests,
        verified_inputs,
        proof_responses,
    ],
    asset_checks=COMMIT_CHECKS,
    jobs=[host_range_job, gateway_range_job],
    sensors=[host_blocks_sensor, gateway_blocks_sensor],
    resources={
        "chain": HostChainResource.from_env(),
        "host_settings": HostIngestSettings.from_env(),
        "store": StoreResource(),
        "fhe": FheResource(),
        "parquet_io_manager": ParquetIOManager(),
        "gateway": GatewayChainResource.from_env(),
        "gateway_settings": GatewayIngestSettings.from_env(),
        "signer": SignerResource(),
        "commit_settings": CommitSettings.from_env(),
        "objects": ObjectStoreResource(),
    },
)
