"""The block-range sensors of the code location: one per chain, from `blocks.block_range_sensor`."""

from ..partitions import gateway_ranges, host_ranges
from .blocks import block_range_sensor

host_blocks_sensor = block_range_sensor(
    "host_blocks_sensor",
    job_name="host_range_job",
    partitions=host_ranges,
    chain_resource="chain",
    settings_resource="host_settings",
    tag="host",
)
gateway_blocks_sensor = block_range_sensor(
    "gateway_blocks_sensor",
    job_name="gateway_range_job",
    partitions=gateway_ranges,
    chain_resource="gateway",
    settings_resource="gateway_settings",
    tag="gateway",
)
