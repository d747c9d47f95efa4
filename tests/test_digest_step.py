"""`digest_range` over an in-memory fake of its port (`DigestBook`): the step needs of the store
only the port's methods, and its decisions (write once, refuse changed bytes, keep a purged
ct128's digest) run in milliseconds. `test_range_handles.py` runs it on a real store.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fhevm_dagster.chain.config import HostChainConfig
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.pipeline.errors import StepError
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.pipeline.squash import DIGESTS_CHECK, digest_range
from fhevm_dagster.protocol.digests import Material, material
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.store import Ciphertext, StoredComputation

CHAIN = HostChainConfig(7, "http://unused", "0x" + "aa" * 20, "0x" + "bb" * 20, 0)


def handle(i: int) -> bytes:
    return bytes([i]) * 21 + b"\x00" * 8 + b"\xff" + bytes([FheType.Uint8]) + b"\x00"


class Book:
    """`DigestBook` in memory: a range's allowed handles, each with its ct64 and ct128 bytes (a
    purged ct128 keeps its row, as in the store), and the digests written once per handle."""

    def __init__(self, n: int) -> None:
        self.allowed = [handle(i) for i in range(1, n + 1)]
        self.ct64 = {h: Ciphertext(h, b"ct64" + h, h[30], 0, "computed") for h in self.allowed}
        self.ct128 = {h: b"ct128" + h for h in self.allowed}
        self.purged: set[bytes] = set()
        self.digests: dict[bytes, Material] = {}

    def allowed_handles_of_range(self, range_key: str, *, chain_id: int) -> list[bytes]:
        return list(self.allowed)

    def missing_ciphertexts(self, handles: Sequence[bytes]) -> list[bytes]:
        return [h for h in handles if h not in self.ct64]

    def computations_by_output(self, handles: Sequence[bytes]) -> list[StoredComputation]:
        return []

    def get_ciphertexts(self, handles: Sequence[bytes]) -> dict[bytes, Ciphertext]:
        return {h: self.ct64[h] for h in handles if h in self.ct64}

    def get_ciphertexts128(self, handles: Sequence[bytes]) -> dict[bytes, bytes]:
        return {h: self.ct128[h] for h in handles if h in self.ct128 and h not in self.purged}

    def missing_ciphertexts128(self, handles: Sequence[bytes]) -> list[bytes]:
        return [h for h in handles if h not in self.ct128]

    def purged_ciphertexts128(self, handles: Sequence[bytes]) -> set[bytes]:
        return {h for h in handles if h in self.purged}

    def get_digests(self, handles: Sequence[bytes]) -> dict[bytes, Material]:
        return {h: self.digests[h] for h in handles if h in self.digests}

    def put_digests(self, digests: Sequence[Material]) -> int:
        new = {d.handle: d for d in digests if d.handle not in self.digests}
        self.digests |= new
        return len(new)


def job(book: Book) -> RangeJob[Book]:
    return RangeJob(BlockRange(0, 99), book, host=CHAIN)


def test_digests_are_those_of_the_stored_bytes_and_written_once() -> None:
    book = Book(3)
    first = digest_range(job(book))
    assert book.digests == {
        h: material(h, 0, book.ct64[h].ciphertext, book.ct128[h]) for h in book.allowed
    }
    assert (first.figures["digests"], first.figures["inserted"]) == (3, 3)
    assert first.check(DIGESTS_CHECK).passed
    again = digest_range(job(book))
    assert (again.figures["inserted"], again.check(DIGESTS_CHECK).passed) == (0, True)


def test_bytes_changed_under_a_stored_digest_fail_the_step_for_good() -> None:
    book = Book(2)
    digest_range(job(book))
    book.ct128[book.allowed[1]] = b"other bytes"
    with pytest.raises(StepError, match="no longer match the stored bytes") as exc:
        digest_range(job(book))
    assert not exc.value.retryable


def test_a_purged_ct128_keeps_its_stored_digest_unchecked() -> None:
    book = Book(2)
    digest_range(job(book))
    before = dict(book.digests)
    book.purged.add(book.allowed[0])
    report = digest_range(job(book))
    assert book.digests == before and report.figures["ct128_purged"] == 1
    assert report.table is not None and len(report.table) == 2
    check = report.check(DIGESTS_CHECK)
    assert check.passed and check.metadata["not_checked_ct128_purged"] == 1


def test_a_handle_not_squashed_yet_fails_the_step_retryably() -> None:
    book = Book(2)
    del book.ct128[book.allowed[0]]
    with pytest.raises(StepError, match="run `sns_ciphertexts` first") as exc:
        digest_range(job(book))
    assert exc.value.retryable and book.digests == {}
