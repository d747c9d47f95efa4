"""Fixtures of the block-sensor tests: one anvil per module, rewound to block 0 for each test,
and a throwaway Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterInstance, instance_for_test

from fhevm_dagster.devnet.anvil import AnvilNode, free_port, rpc_call, start_anvil, stop_anvil

__all__ = ["anvil", "fresh_chain", "instance"]


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    state = tmp_path_factory.mktemp("anvil")
    node = start_anvil(state, "sensor-host", port=free_port(), chain_id=31337)
    try:
        yield node
    finally:
        stop_anvil(state, "sensor-host")


@pytest.fixture()
def fresh_chain(anvil: AnvilNode) -> Iterator[AnvilNode]:
    """Each test starts from the same chain state (block 0)."""
    snap = rpc_call(anvil.rpc_url, "evm_snapshot")
    yield anvil
    rpc_call(anvil.rpc_url, "evm_revert", [snap])


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst
