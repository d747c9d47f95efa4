"""Block-range sensors: one per host chain (`host_chains.host_chain_defs`) and the gateway's, all
from `blocks.block_range_sensor`."""

from dagster import SensorDefinition

from ..chain.config import ChainKind
from ..jobs import GATEWAY_RANGE_JOB
from ..partitions import gateway_ranges
from .blocks import SensorConfig, block_range_sensor

GATEWAY_SENSOR = "gateway_blocks_sensor"


def gateway_blocks_sensor(config: SensorConfig) -> SensorDefinition:
    """The gateway's block sensor, cut into ranges as `config` says."""
    return block_range_sensor(
        GATEWAY_SENSOR,
        job_name=GATEWAY_RANGE_JOB,
        partitions=gateway_ranges,
        chain_resource="gateway",
        kind=ChainKind.GATEWAY,
        config=config,
    )
