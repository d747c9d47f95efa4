"""Block ranges as dynamic partitions: one partition set per host chain, one for the gateway.

Keys are `pipeline.block_ranges.BlockRange.key` (`000000001000-000000001099`); the set's name says
which chain (`host_31337_ranges`).
"""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

GATEWAY_RANGES = "gateway_ranges"
gateway_ranges = DynamicPartitionsDefinition(name=GATEWAY_RANGES)


def host_ranges(chain: str) -> DynamicPartitionsDefinition:
    """The partition set of the host chain named `chain` (`HostChainConfig.name`)."""
    return DynamicPartitionsDefinition(name=f"{chain}_ranges")
