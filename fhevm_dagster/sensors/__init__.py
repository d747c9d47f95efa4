"""Block-range sensors: one per host chain (`host_chains.host_chain_defs`) and the gateway's, all
from `blocks.block_range_sensor`."""

from ..chain.config import ChainKind
from ..jobs import GATEWAY_RANGE_JOB
from ..partitions import gateway_ranges
from .blocks import block_range_sensor

gateway_blocks_sensor = block_range_sensor(
    "gateway_blocks_sensor",
    job_name=GATEWAY_RANGE_JOB,
    partitions=gateway_ranges,
    chain_resource="gateway",
    settings_resource="gateway_settings",
    kind=ChainKind.GATEWAY,
)
