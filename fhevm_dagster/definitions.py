"""The Dagster code location: assets, jobs, sensors and resources. Nothing else lives here.

`defs` is built when Dagster loads the code location (not at import): resources take their
settings from the environment then (`fhevm_dagster.settings`, the README's settings table).
"""

from dagster import Definitions, definitions

from .assets.commits import COMMIT_ASSETS, COMMIT_CHECKS
from .assets.gateway import proof_requests, proof_responses, verified_inputs
from .assets.host import ciphertexts, host_ingest
from .assets.objects import ciphertext_objects
from .jobs import gateway_range_job, host_range_job
from .resources.chain import CommitSettings, GatewayChainResource, HostChainResource, RangeSettings
from .resources.fhe import FheResource
from .resources.io import ParquetIOManager
from .resources.objects import ObjectStoreResource
from .resources.signer import SignerResource
from .resources.store import StoreResource
from .sensors import gateway_blocks_sensor, host_blocks_sensor


@definitions
def defs() -> Definitions:
    return Definitions(
        assets=[
            host_ingest,
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
            "host_settings": RangeSettings.from_env("HOST"),
            "store": StoreResource(),
            "fhe": FheResource(),
            "parquet_io_manager": ParquetIOManager(),
            "gateway": GatewayChainResource.from_env(),
            "gateway_settings": RangeSettings.from_env("GATEWAY"),
            "signer": SignerResource(),
            "commit_settings": CommitSettings.from_env(),
            "objects": ObjectStoreResource(),
        },
    )
