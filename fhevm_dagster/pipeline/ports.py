"""The store's reads and writes that several steps need, one small `Protocol` each.

A step declares what it needs of the store as a port in its own module (`SquashBook`,
`CommitBook`, …): these shared parts and the methods only it calls, so its dependencies on the
store are visible, and a test runs it over an in-memory fake of just those methods. The Dagster
layer builds every step's `RangeJob` from the real `Store`, so mypy proves the store fits each
port. Signatures are the store's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..protocol.digests import Material
from ..store import Ciphertext, CommitStatus, StoredComputation


class Ct64Reader(Protocol):
    def get_ciphertexts(self, handles: Sequence[bytes]) -> dict[bytes, Ciphertext]: ...


class Ct64Absence(Protocol):
    def missing_ciphertexts(self, handles: Sequence[bytes]) -> list[bytes]: ...


class ProducerBook(Protocol):
    """The computation that produces each handle, with its status."""

    def computations_by_output(self, handles: Sequence[bytes]) -> list[StoredComputation]: ...


class Ct128Writer(Protocol):
    def put_ciphertexts128(self, items: Sequence[tuple[bytes, bytes]]) -> int: ...


class Ct128Absence(Protocol):
    def missing_ciphertexts128(self, handles: Sequence[bytes]) -> list[bytes]: ...


class BytesReader(Ct64Reader, Protocol):
    """Both ciphertexts of a handle: what its digests and objects are made of."""

    def get_ciphertexts128(self, handles: Sequence[bytes]) -> dict[bytes, bytes]: ...


class PurgedCt128(Protocol):
    """The handles whose ct128 bytes left the store once committed and uploaded."""

    def purged_ciphertexts128(self, handles: Sequence[bytes]) -> set[bytes]: ...


class DigestReader(Protocol):
    def get_digests(self, handles: Sequence[bytes]) -> dict[bytes, Material]: ...


class CommitStatusReader(Protocol):
    def get_commit_statuses(self, handles: Sequence[bytes]) -> dict[bytes, CommitStatus]: ...
