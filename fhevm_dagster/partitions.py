"""Host and gateway block ranges as dynamic partitions, keyed by `pipeline.block_ranges`."""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

HOST_RANGES = "host_ranges"
host_ranges = DynamicPartitionsDefinition(name=HOST_RANGES)
# Gateway block ranges: same key format, their own partition set (gateway_blocks_sensor).
GATEWAY_RANGES = "gateway_ranges"
gateway_ranges = DynamicPartitionsDefinition(name=GATEWAY_RANGES)
