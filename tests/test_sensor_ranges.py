"""host_blocks_sensor against a real anvil: ranges under the safe head, confirmations, the cap per
tick, ranges without logs, an RPC outage, a lost tick and the cursor."""

from __future__ import annotations

import socket

from dagster import DagsterInstance
from host_defs import HOST, HOST_RANGES
from sensor_ticker import cursor_block, emit_executor_log, keys, make_ticker, mine_to, skip_text

from fhevm_dagster.devnet.anvil import AnvilNode, rpc_call
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.resources.store import StoreResource


def test_confirmations_and_partitions(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    mine_to(fresh_chain, 25)
    t = make_ticker(instance, fresh_chain, store_url, confirmations=3, start_block=5)
    r = t.tick()
    assert keys(r) == [
        ("000000000005-000000000009", "000000000005-000000000009"),
        ("000000000010-000000000019", "000000000010-000000000019"),
    ]
    assert cursor_block(t) == "20"
    assert instance.get_dynamic_partitions(HOST_RANGES) == [k for k, _ in keys(r)]
    r = t.tick()
    assert not r.run_requests and "needs safe head >= 29" in skip_text(r)
    mine_to(fresh_chain, 31)
    assert keys(t.tick()) == []  # safe head 28 < 29
    mine_to(fresh_chain, 32)
    assert [k for k, _ in keys(t.tick())] == ["000000000020-000000000029"]


def test_ranges_without_logs_get_no_run(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    """By default a range without an executor or ACL log is recorded as processed without a run;
    one the executor logged in is requested; an empty range a reorg fills is requested again."""
    url = fresh_chain.rpc_url
    mine_to(fresh_chain, 14)
    assert emit_executor_log(fresh_chain) == 15
    fork_point = rpc_call(url, "evm_snapshot")
    mine_to(fresh_chain, 29)
    t = make_ticker(instance, fresh_chain, store_url, run_empty=False)
    r = t.tick()
    assert [k for k, _ in keys(r)] == ["000000000010-000000000019"]
    assert cursor_block(t) == "30"
    assert instance.get_dynamic_partitions(HOST_RANGES) == ["000000000010-000000000019"]
    store = StoreResource(database_url=store_url).get()
    for key in ("000000000000-000000000009", "000000000020-000000000029"):
        seen = store.get_range(31337, key)
        assert seen is not None and seen.processed_hash == seen.known_hash is not None
    r = t.tick()
    assert not r.run_requests and "needs safe head >= 39" in skip_text(r)

    rpc_call(url, "evm_revert", [fork_point])  # block 15 stays; 16-29 are mined again
    rpc_call(url, "evm_increaseTime", [1000])
    mine_to(fresh_chain, 24)
    assert emit_executor_log(fresh_chain) == 25
    mine_to(fresh_chain, 31)
    assert keys(t.tick()) == [
        ("000000000010-000000000019", "000000000010-000000000019:reorg-1"),
        ("000000000020-000000000029", "000000000020-000000000029:reorg-1"),
    ]


def test_cap_per_tick(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    mine_to(fresh_chain, 55)
    t = make_ticker(instance, fresh_chain, store_url, max_ranges_per_tick=2)
    assert len(keys(t.tick())) == 2 and cursor_block(t) == "20"
    assert len(keys(t.tick())) == 2 and cursor_block(t) == "40"
    assert [k for k, _ in keys(t.tick())] == ["000000000040-000000000049"]


def test_rpc_outage_is_a_skip_then_recovers(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    mine_to(fresh_chain, 12)
    t = make_ticker(instance, fresh_chain, store_url)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = t.tick(**{HOST: HostChainResource(rpc_url=dead, request_timeout_s=1)})
    assert not down.run_requests and f"{HOST} RPC {dead} failed" in skip_text(down)
    assert t.cursor is None
    assert [k for k, _ in keys(t.tick())] == ["000000000000-000000000009"]


def test_a_lost_tick_loses_no_range(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    """The daemon dies after a tick was evaluated and before Dagster stored it: the next tick
    requests the same ranges under the same run keys (#11: before, the store said 'requested' and
    the next tick moved the cursor past them for good)."""
    mine_to(fresh_chain, 25)
    t = make_ticker(instance, fresh_chain, store_url)
    first = keys(t.tick(lost=True))
    assert first == [(k, k) for k in ("000000000000-000000000009", "000000000010-000000000019")]
    assert t.cursor is None
    again = t.tick(runs=False)  # launched, still queued: not ingested
    assert keys(again) == first and t.launched == first and cursor_block(t) == "20"
    # The first run ingests its range; the second is still queued: asked again, and Dagster
    # skips its run key, so no second run.
    store = StoreResource(database_url=store_url).get()
    tags = again.run_requests[0].tags
    store.mark_range_processed(
        31337, first[0][0], 0, 9, bytes.fromhex(tags["fhevm/last_block_hash"])
    )
    r = t.tick(runs=False)
    assert keys(r) == first[1:] and t.launched == []


def test_plain_cursor_of_before_is_read_as_this_chains(
    fresh_chain: AnvilNode,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    mine_to(fresh_chain, 25)
    t = make_ticker(instance, fresh_chain, store_url)
    t.cursor = "10"  # a cursor written before genesis hashes were kept
    assert [k for k, _ in keys(t.tick())] == ["000000000010-000000000019"]
    assert t.cursor is not None and t.cursor.endswith(":20")
