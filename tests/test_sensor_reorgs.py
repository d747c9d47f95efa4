"""host_blocks_sensor against a real anvil: a reorg, shorter or of the same length, requests the
changed ranges again as a new generation."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance
from sensor_ticker import cursor_block, keys, make_ticker, mine_to

from fhevm_dagster.devnet.anvil import AnvilNode, rpc_call


def test_reorg_requests_range_again(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    url = fresh_chain.rpc_url
    mine_to(fresh_chain, 15)
    fork_point = rpc_call(url, "evm_snapshot")
    mine_to(fresh_chain, 29)
    t = make_ticker(instance, fresh_chain, store_url)
    assert len(keys(t.tick())) == 3  # 0-9, 10-19, 20-29
    rpc_call(url, "evm_revert", [fork_point])  # head 15: ranges 20-29 and 10-19 are gone
    shrunk = t.tick()
    assert not shrunk.run_requests and cursor_block(t) == "10"
    rpc_call(url, "evm_increaseTime", [1000])  # new timestamps: new block hashes
    mine_to(fresh_chain, 31)
    again = keys(t.tick())
    assert again == [
        ("000000000010-000000000019", "000000000010-000000000019:reorg-1"),
        ("000000000020-000000000029", "000000000020-000000000029:reorg-1"),
    ]
    assert cursor_block(t) == "30"
    assert keys(t.tick()) == []  # nothing changed since


@pytest.mark.parametrize("lost", [False, True], ids=["tick", "lost-tick"])
def test_reorg_below_head_detected_by_hash(
    lost: bool,
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    """Same length, other blocks: the last-block hash says reorg. When the tick that saw it is lost
    with the daemon, the next one still requests the new generation (#11)."""
    url = fresh_chain.rpc_url
    mine_to(fresh_chain, 5)
    fork_point = rpc_call(url, "evm_snapshot")
    mine_to(fresh_chain, 12)
    t = make_ticker(instance, fresh_chain, store_url)
    assert [k for k, _ in keys(t.tick())] == ["000000000000-000000000009"]
    rpc_call(url, "evm_revert", [fork_point])
    rpc_call(url, "evm_increaseTime", [1000])
    mine_to(fresh_chain, 12)  # as long as before, different blocks 6..12
    reorg = [("000000000000-000000000009", "000000000000-000000000009:reorg-1")]
    if lost:
        assert keys(t.tick(lost=True)) == reorg
    assert keys(t.tick()) == reorg and t.launched == reorg
