"""host_blocks_sensor against a real anvil: a chain restarted under the same chain id (a devnet
reset) is adopted, or stops the sensor off the devnet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance
from sensor_ticker import cursor_block, keys, make_ticker, mine_to, skip_text

from fhevm_dagster.chain.client import ChainReader
from fhevm_dagster.chain.config import HostChainConfig
from fhevm_dagster.devnet.anvil import AnvilNode, free_port, start_anvil, stop_anvil
from fhevm_dagster.objects import FileBackend, ct64_key, ct128_key
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.pipeline.errors import StepError
from fhevm_dagster.pipeline.host import ingest_range
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.protocol.computations import AllowedHandle, ComputationRow
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Ciphertext, CommitState, CommitStatus, Store


def handle(i: int, chain_id: int) -> bytes:
    return i.to_bytes(21, "big") + b"\xff" + chain_id.to_bytes(8, "big") + bytes([2, 0])


def old_chain_rows(store: Store) -> None:
    """What ingesting and evaluating the old chain left: computations, allowed handles, ct64s,
    digests and commits of chain 31337 (and a ciphertext of another chain, which stays)."""
    row = ComputationRow(
        handle(3, 31337), b"\x01" * 32, 4, b"\x02" * 32, 0, 0, 0, (handle(1, 31337),), False,
        True, 2, "0x" + "11" * 20,
    )  # fmt: skip
    allowed = AllowedHandle(
        handle(3, 31337), "", "decryption", "0x" + "11" * 20, b"\x01" * 32, 4, 1
    )
    store.write_range(31337, "000000000000-000000000009", [row], [allowed])
    store.put_ciphertexts(
        [Ciphertext(handle(i, c), b"ct", 2, 0, "computed") for i, c in ((3, 31337), (3, 1))]
    )
    store.set_commit_status(CommitStatus(handle(3, 31337), CommitState.CONFIRMED, None, None))


class RestartableAnvil:
    """One anvil on a fixed port and chain id that can be restarted as a new chain."""

    def __init__(self, state: Path) -> None:
        self.state, self.port, self.starts = state, free_port(), 0

    def start(self) -> AnvilNode:
        self.starts += 1  # another genesis timestamp: another genesis hash
        timestamp = str(1_700_000_000 + 1000 * self.starts)
        return start_anvil(
            self.state, "reset-host", port=self.port, chain_id=31337,
            extra_args=["--timestamp", timestamp],
        )  # fmt: skip

    def restart(self) -> AnvilNode:
        stop_anvil(self.state, "reset-host")
        return self.start()

    def stop(self) -> None:
        stop_anvil(self.state, "reset-host")


@pytest.fixture()
def restartable(tmp_path: Path) -> Iterator[RestartableAnvil]:
    node = RestartableAnvil(tmp_path / "anvil")
    try:
        yield node
    finally:
        node.stop()


def test_reset_chain_is_read_again_from_its_start(
    restartable: RestartableAnvil,
    instance: DagsterInstance,
    store_url: str,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Before: after 9 ranges of the old chain, the new chain's ranges were never requested (the
    sensor waited for the new chain to reach the old cursor), and the old chain's computations
    and commits stayed in the store as if they were the new chain's; its objects stayed under
    the handles the new chain reuses, where other bytes (another server key) failed every range
    that reused one."""
    node = restartable.start()
    old_genesis = ChainReader(node.rpc_url).block_hash(0)
    mine_to(node, 95)
    objects = tmp_path / "objects"
    t = make_ticker(instance, node, store_url, objects, reorg_check_ranges=2, accept_reset=True)
    assert len(keys(t.tick())) == 9 and cursor_block(t) == "90"
    store = StoreResource(database_url=store_url).get()
    old_chain_rows(store)
    backend = FileBackend(objects)
    for h in (handle(3, 31337), handle(3, 1)):
        for key in (ct64_key(h), ct128_key(h)):
            backend.put(key, b"old chain's bytes", {})

    node = restartable.restart()
    mine_to(node, 12)
    # Objects that cannot be removed hold the reset back, whole: the next tick tries again.
    not_a_directory = tmp_path / "not-a-directory"
    not_a_directory.write_text("")
    r = t.tick(objects=ObjectStoreResource(url=f"file://{not_a_directory}"))
    assert "host_31337 chain reset: the old chain's objects stay: cannot delete" in skip_text(r)
    assert store.genesis_of(31337) == old_genesis and cursor_block(t) == "90"
    capfd.readouterr()
    r = t.tick()
    logged = capfd.readouterr().err  # the tick's log: Dagster's console handler
    assert keys(r) == [("000000000000-000000000009", "000000000000-000000000009")]
    new_genesis = store.genesis_of(31337)
    assert new_genesis is not None and new_genesis != old_genesis
    assert r.run_requests[0].tags["fhevm/genesis_hash"] == new_genesis.hex()
    assert t.launched == keys(r) and t.cursor == f"{new_genesis.hex()}:10"  # a new run key
    assert f"host_31337 chain 31337 was reset: genesis 0x{old_genesis.hex()[:12]}" in logged
    assert "starting again from block 0" in logged and "1 object handles" in logged
    old_handle = handle(3, 31337)
    assert backend.get(ct64_key(old_handle)) is None and backend.get(ct128_key(old_handle)) is None
    other_chain = backend.get(ct64_key(handle(3, 1)))
    assert other_chain is not None and other_chain.body == b"old chain's bytes"
    assert store.computations_of_range("000000000000-000000000009", chain_id=31337) == []
    assert store.allowed_handles_of_range("000000000000-000000000009", chain_id=31337) == []
    assert list(store.get_ciphertexts([handle(3, 31337), handle(3, 1)])) == [handle(3, 1)]
    assert store.get_commit_statuses([handle(3, 31337)]) == {}
    assert [x.partition_key for x in store.recent_ranges(31337, 20)] == [
        "000000000000-000000000009"
    ]
    mine_to(node, 20)
    assert [k for k, _ in keys(t.tick())] == ["000000000010-000000000019"]


def test_changed_genesis_off_the_devnet_stops_with_an_error(
    restartable: RestartableAnvil,
    instance: DagsterInstance,
    store_url: str,
) -> None:
    """Not the devnet (resets not accepted): a new genesis under the same chain id is another
    network behind the URL. Before: the tick planned from the other chain's blocks."""
    node = restartable.start()
    mine_to(node, 25)
    t = make_ticker(instance, node, store_url)
    assert len(keys(t.tick())) == 2
    store = StoreResource(database_url=store_url).get()
    old_chain_rows(store)
    before, cursor = store.snapshot(), t.cursor
    node = restartable.restart()
    mine_to(node, 25)
    with pytest.raises(Exception, match="the RPC URL serves another chain with the same id"):
        t.tick()
    assert t.cursor == cursor and store.snapshot() == before  # nothing read, nothing removed
    rng = BlockRange(0, 9)
    chain = HostChainConfig(31337, node.rpc_url, "0x" + "aa" * 20, "0x" + "bb" * 20, 0)
    with pytest.raises(StepError, match="this range is not read") as err:
        ingest_range(RangeJob(rng, store, host=chain, logs=lambda: ChainReader.of(chain)))
    assert not err.value.retryable and store.snapshot() == before
