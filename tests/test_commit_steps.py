"""The commit steps' decisions (`commit_materials`, `recheck_commits`) over in-memory fakes of the
store's commit book and of the gateway: what is sent, what is skipped, what is sent again.

The fake gateway behaves as CiphertextCommits does for one sender: a handle it already holds
reverts with `CoprocessorAlreadyAdded` at simulation (nothing is sent), any other is mined in the
next block. The devnet tests (`test_commits.py`, `test_gateway_range.py`) run the same steps on
a real gateway; these run in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from fhevm_dagster.chain.calls import TxOutcome, TxStatus
from fhevm_dagster.chain.commit_port import GatewayUnreachable, OnChainCommit
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.pipeline.digest_commits import commit_materials, recheck_commits
from fhevm_dagster.pipeline.errors import StepError
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.protocol.digests import Material
from fhevm_dagster.store import CommitState, CommitStatus

pytestmark = pytest.mark.fast


def material(i: int, key_id: int = 0) -> Material:
    return Material(bytes([i]) * 32, key_id, bytes([i, 64]) * 16, bytes([i, 128]) * 16)


class Book:
    """`RecheckBook` in memory, with the store's rule that a status without a block keeps the
    stored one."""

    def __init__(self, digests: Sequence[Material] = ()) -> None:
        self.statuses: dict[bytes, CommitStatus] = {}
        self.digests = {m.handle: m for m in digests}

    def get_commit_statuses(self, handles: Sequence[bytes]) -> dict[bytes, CommitStatus]:
        return {h: self.statuses[h] for h in handles if h in self.statuses}

    def set_commit_status(self, status: CommitStatus) -> None:
        old = self.statuses.get(status.handle)
        if status.gateway_block is None and old is not None:
            status = replace(status, gateway_block=old.gateway_block)
        self.statuses[status.handle] = status

    def commits_in_gateway_blocks(self, first: int, last: int) -> list[CommitStatus]:
        rows = [
            s
            for s in self.statuses.values()
            if s.gateway_block is not None and first <= s.gateway_block <= last
        ]
        return sorted(rows, key=lambda s: (s.gateway_block or 0, s.handle))

    def get_digests(self, handles: Sequence[bytes]) -> dict[bytes, Material]:
        return {h: self.digests[h] for h in handles if h in self.digests}


class Gateway:
    """`CommitGateway` of one sender on an in-memory CiphertextCommits.

    `down` makes every call fail as an unreachable RPC would; `lose_receipts` mines the sends
    but reports them as unreachable (a crash between broadcast and receipt).
    """

    sender = "0x" + "33" * 20

    def __init__(self, head: int = 100) -> None:
        self.head = head
        self.chain: dict[bytes, OnChainCommit] = {}
        self.mined: list[bytes] = []  # handles, once per mined transaction
        self.down = False
        self.lose_receipts = False

    def hold(self, m: Material, block: int) -> OnChainCommit:
        commit = OnChainCommit(m, bytes([m.handle[0], block % 256]) * 16, block)
        self.chain[m.handle] = commit
        return commit

    def committed(
        self, handles: Sequence[bytes], first: int | None = None, last: int | None = None
    ) -> dict[bytes, OnChainCommit]:
        if self.down:
            raise GatewayUnreachable("ConnectionError")
        lo = self.head - 1000 if first is None else first
        hi = self.head if last is None else last
        return {h: c for h in handles if (c := self.chain.get(h)) and lo <= c.block_number <= hi}

    def add_many(self, materials: Sequence[Material]) -> list[TxOutcome]:
        out = []
        for m in materials:
            if self.down:
                out.append(TxOutcome(TxStatus.FAILED, None, "gateway unreachable", retryable=True))
            elif m.handle in self.chain:
                why = "CoprocessorAlreadyAdded"
                out.append(TxOutcome(TxStatus.ALREADY_DONE, None, why, why))
            else:
                self.head += 1
                commit = self.hold(m, self.head)
                self.mined.append(m.handle)
                if self.lose_receipts:
                    lost = "gateway unreachable: no receipt within the batch deadline"
                    out.append(TxOutcome(TxStatus.FAILED, commit.tx_hash, lost, retryable=True))
                else:
                    out.append(TxOutcome(TxStatus.CONFIRMED, commit.tx_hash, None, None, self.head))
        return out


class DownAfter(Gateway):
    """A gateway whose RPC goes down after `batches` batches."""

    def __init__(self, batches: int) -> None:
        super().__init__()
        self.batches = batches

    def add_many(self, materials: Sequence[Material]) -> list[TxOutcome]:
        self.down = self.batches <= 0
        self.batches -= 1
        return super().add_many(materials)


def states(book: Book) -> dict[bytes, CommitState]:
    return {h: s.status for h, s in book.statuses.items()}


def test_confirmed_handles_are_not_sent_again() -> None:
    a, b = material(1), material(2)
    book, gateway = Book(), Gateway()
    book.set_commit_status(CommitStatus(a.handle, CommitState.CONFIRMED, b"\xaa" * 32, None, 90))
    report = commit_materials(book, gateway, [a, b])
    assert gateway.mined == [b.handle]
    assert (report.skipped_confirmed, report.sent, report.already_added) == (1, 1, 0)
    assert report.tx_hashes[a.handle] == b"\xaa" * 32
    assert states(book) == {a.handle: CommitState.CONFIRMED, b.handle: CommitState.CONFIRMED}
    assert book.statuses[b.handle].gateway_block == gateway.head


def test_already_added_at_simulation_counts_as_sent() -> None:
    """A crash after the send, or another machine's run: the store says `sent` (or nothing),
    the contract says it has it. Nothing is sent; the earlier commit's tx and block are kept."""
    a, b = material(1), material(2)
    book, gateway = Book(), Gateway()
    earlier = gateway.hold(a, 95)
    book.set_commit_status(CommitStatus(a.handle, CommitState.SENT, None, None))
    report = commit_materials(book, gateway, [a, b])
    assert gateway.mined == [b.handle]
    assert (report.sent, report.already_added, report.failed) == (1, 1, {})
    got = book.statuses[a.handle]
    assert (got.status, got.tx_hash, got.gateway_block) == (
        CommitState.CONFIRMED,
        earlier.tx_hash,
        95,
    )
    assert got.reason == "CoprocessorAlreadyAdded"


def test_already_added_with_other_digests_is_an_alarm() -> None:
    a = material(1)
    book, gateway = Book(), Gateway()
    gateway.hold(replace(a, sns_ciphertext_digest=b"\x00" * 32), 95)
    report = commit_materials(book, gateway, [a])
    assert gateway.mined == [] and report.already_added == 0
    assert "other digests" in report.failed[a.handle]
    assert book.statuses[a.handle].status is CommitState.FAILED


def test_already_added_without_a_lookup_is_confirmed_without_a_block() -> None:
    a = material(1)
    book, gateway = Book(), Gateway(head=5000)
    gateway.hold(a, 10)  # older than the look-back window
    commit_materials(book, gateway, [a])
    got = book.statuses[a.handle]
    assert (got.status, got.tx_hash, got.gateway_block) == (CommitState.CONFIRMED, None, None)
    assert "older than the look-back window" in (got.reason or "")


def test_an_outage_mid_pass_loses_nothing_and_a_retry_sends_only_the_rest() -> None:
    ms = [material(i) for i in range(1, 6)]
    book, gateway = Book(), DownAfter(batches=2)
    first = commit_materials(book, gateway, ms, batch_size=2)
    assert gateway.mined == [m.handle for m in ms[:4]]
    assert set(first.failed) == {ms[4].handle}
    assert first.failed[ms[4].handle].startswith("gateway unreachable")
    gateway.down, gateway.batches = False, 10
    retry = commit_materials(book, gateway, ms, batch_size=2)
    assert (retry.skipped_confirmed, retry.sent, retry.failed) == (4, 1, {})
    assert gateway.mined == [m.handle for m in ms]  # each once
    assert set(states(book).values()) == {CommitState.CONFIRMED}


def test_an_unreachable_gateway_stops_after_one_batch() -> None:
    ms = [material(i) for i in range(1, 6)]
    book, gateway = Book(), DownAfter(batches=0)
    report = commit_materials(book, gateway, ms, batch_size=2)
    assert gateway.mined == [] and set(report.failed) == {m.handle for m in ms}
    assert all(
        r.startswith("not sent: gateway unreachable") for r in list(report.failed.values())[2:]
    )


def test_nothing_is_sent_twice_on_retry_after_lost_receipts() -> None:
    """Mined but unconfirmed (receipts lost): the retry's simulation finds them on chain."""
    ms = [material(i) for i in range(1, 4)]
    book, gateway = Book(), Gateway()
    gateway.lose_receipts = True
    first = commit_materials(book, gateway, ms)
    assert set(first.failed) == {m.handle for m in ms}
    gateway.lose_receipts = False
    retry = commit_materials(book, gateway, ms)
    assert (retry.sent, retry.already_added, retry.failed) == (0, 3, {})
    assert gateway.mined == [m.handle for m in ms]  # each once
    assert {h: s.gateway_block for h, s in book.statuses.items()} == {
        m.handle: gateway.chain[m.handle].block_number for m in ms
    }


def recheck(book: Book, gateway: Gateway, first: int, last: int) -> tuple[Any, dict[str, Any]]:
    """`recheck_commits` of gateway blocks `first..last` (8 commits sent at once)."""
    job = RangeJob(BlockRange(first, last), book, commits=lambda: gateway, commit_batch=8)
    report = recheck_commits(job)
    return report.table, report.figures


def confirmed_on(book: Book, gateway: Gateway, m: Material, block: int) -> OnChainCommit:
    commit = gateway.hold(m, block)
    book.set_commit_status(
        CommitStatus(m.handle, CommitState.CONFIRMED, commit.tx_hash, None, block)
    )
    return commit


def test_a_commit_lost_to_a_reorg_is_sent_again() -> None:
    a, b, c = material(1), material(2), material(3)
    book, gateway = Book([a, b, c]), Gateway()
    confirmed_on(book, gateway, a, 10)
    confirmed_on(book, gateway, b, 11)
    confirmed_on(book, gateway, c, 12)
    del gateway.chain[b.handle]  # the reorg dropped b's block
    gateway.hold(c, 14)  # and moved c's commit
    table, figures = recheck(book, gateway, 10, 19)
    assert dict(zip(table["handle"], table["outcome"], strict=True)) == {
        "0x" + a.handle.hex(): "kept",
        "0x" + b.handle.hex(): "recommitted",
        "0x" + c.handle.hex(): "moved",
    }
    assert gateway.mined == [b.handle]
    assert (figures["kept"], figures["moved"], figures["lost"], figures["sent"]) == (1, 1, 1, 1)
    assert book.statuses[b.handle].gateway_block == gateway.head
    assert book.statuses[c.handle].gateway_block == 14
    assert set(states(book).values()) == {CommitState.CONFIRMED}


def test_a_commit_lost_to_a_reorg_and_mined_again_later_is_not_sent_twice() -> None:
    """The reorg moved the commit past the rechecked blocks: the contract still has it."""
    a = material(1)
    book, gateway = Book([a]), Gateway()
    confirmed_on(book, gateway, a, 10)
    gateway.hold(a, 25)
    _, figures = recheck(book, gateway, 10, 19)
    assert gateway.mined == [] and (figures["lost"], figures["already_added"]) == (1, 1)
    assert book.statuses[a.handle].gateway_block == 25


def test_a_failed_resend_keeps_the_commit_in_its_range_for_the_next_run() -> None:
    a = material(1)
    book, gateway = Book([a]), DownAfter(batches=0)  # reads work, sends fail
    confirmed_on(book, gateway, a, 10)
    del gateway.chain[a.handle]
    with pytest.raises(StepError, match="lost to a gateway reorg") as exc:
        recheck(book, gateway, 10, 19)
    assert exc.value.retryable and gateway.mined == []
    assert (book.statuses[a.handle].status, book.statuses[a.handle].gateway_block) == (
        CommitState.FAILED,
        10,
    )
    gateway.down, gateway.batches = False, 10
    _, figures = recheck(book, gateway, 10, 19)
    assert gateway.mined == [a.handle] and figures["sent"] == 1
    assert book.statuses[a.handle].status is CommitState.CONFIRMED


def test_an_unreachable_gateway_fails_the_recheck_retryably_and_changes_nothing() -> None:
    a = material(1)
    book, gateway = Book([a]), Gateway()
    confirmed_on(book, gateway, a, 10)
    before = dict(book.statuses)
    gateway.down = True
    with pytest.raises(StepError, match="gateway unreachable") as exc:
        recheck(book, gateway, 10, 19)
    assert exc.value.retryable and book.statuses == before and gateway.mined == []
