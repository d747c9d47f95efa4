"""Ingesting a range keeps only logs of the chain it checks: an in-memory node, a real store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fhevm_dagster.chain.config import HostChainConfig
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.pipeline.errors import RangeMoved, StepError
from fhevm_dagster.pipeline.host import IngestReport, ingest_range
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.protocol.events import RawLog
from fhevm_dagster.store import Store

CHAIN = HostChainConfig(31337, "http://unused", "0x" + "aa" * 20, "0x" + "bb" * 20, 0)


def block_hash(n: int, branch: int = 0) -> bytes:
    return bytes([branch]) + n.to_bytes(31, "big")


@dataclass
class Node:
    chain: int = 31337
    logs: list[RawLog] = field(default_factory=list)
    branch: dict[int, int] = field(default_factory=dict)  # block -> branch its hash comes from

    def chain_id(self) -> int:
        return self.chain

    def block_hash(self, number: int) -> bytes | None:
        return block_hash(number, self.branch.get(number, 0))

    def get_logs(self, first: int, last: int, addresses: Sequence[str]) -> list[RawLog]:
        return [log for log in self.logs if first <= log.block_number <= last]


def log(block: int, branch: int = 0) -> RawLog:
    return RawLog(
        "0x" + "cc" * 20, (b"\x01" * 32,), b"", block, block_hash(block, branch), b"\x02" * 32, 0, 0
    )


def ingest(node: Node, store: Store, rng: BlockRange) -> IngestReport:
    report = ingest_range(RangeJob(rng, store, host=CHAIN, logs=lambda: node)).detail
    assert report is not None
    return report


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")


def test_a_log_from_another_branch_is_a_moved_range(store: Store) -> None:
    """A load-balanced node can answer eth_getLogs from a stale branch while its head agrees."""
    rng = BlockRange(0, 9)
    node = Node(logs=[log(3), log(5, branch=1)])  # block 5's log is from a reorged-out block
    with pytest.raises(RangeMoved):
        ingest(node, store, rng)
    assert store.get_range(31337, rng.key) is None  # nothing recorded as ingested
    node.branch[5] = 1  # the chain agrees with the log now
    report = ingest(node, store, rng)
    assert len(report.decoded.unknown) == 2
    assert store.get_range(31337, rng.key).processed_hash == block_hash(9)  # type: ignore[union-attr]


def test_the_node_must_serve_the_configured_chain(store: Store) -> None:
    with pytest.raises(StepError, match="host RPC serves chain 1, configured 31337") as exc:
        ingest(Node(chain=1), store, BlockRange(0, 9))
    assert not exc.value.retryable
