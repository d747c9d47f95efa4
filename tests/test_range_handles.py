"""A host range's handles are classified once per step that needs them (`range_handles`), and
every step and check of that step takes that one classification: counted here over a range's
squash, digest, upload and commit steps on a real store (the bytes are stand-ins: no FHE)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from failed_results import allow_with_one_failure
from range_jobs import host_job
from test_commit_steps import Gateway

from fhevm_dagster.objects.backends import FileBackend
from fhevm_dagster.pipeline.digest_commits import COMMITTED_CHECK, commit_range
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.pipeline.squash import DIGESTS_CHECK, SQUASHED_CHECK, digest_range, squash_range
from fhevm_dagster.pipeline.step_report import StepReport
from fhevm_dagster.pipeline.uploads import upload_range
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.store import Ciphertext, Store

pytestmark = pytest.mark.fast
CHAIN = 31337
RANGE = "000000000000-000000000009"


class CountingStore:
    """The store, counting the classifications of a range's handles (each reads the range's
    allowed handles once, and nothing else reads them)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.classified = 0

    def allowed_handles_of_range(self, range_key: str, *, chain_id: int) -> list[bytes]:
        self.classified += 1
        return self.store.allowed_handles_of_range(range_key, chain_id=chain_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _handle(i: int) -> bytes:
    return bytes([i]) * 21 + b"\x00" * 8 + b"\xff" + bytes([FheType.Uint8]) + b"\x00"


def _seed(store: Store, handles: Sequence[bytes], errored: bytes) -> None:
    """Allowed results of RANGE with stand-in ct64 and ct128 bytes, and one failed computation."""
    store.put_ciphertexts(
        [Ciphertext(h, b"ct64" + h, FheType.Uint8, 0, "computed") for h in handles]
    )
    store.put_ciphertexts128([(h, b"ct128" + h) for h in handles])
    allow_with_one_failure(store, CHAIN, RANGE, handles, errored, operand=handles[0])


def test_each_step_classifies_the_range_once(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    handles = [_handle(i) for i in range(1, 4)]
    _seed(store, handles, errored=_handle(9))
    counting = CountingStore(store)
    gateway = Gateway()
    gateway.sender = "0x" + "33" * 20  # type: ignore[attr-defined]
    backend, signer = FileBackend(tmp_path / "objects"), Account.create()
    job = host_job(
        counting,  # type: ignore[arg-type]
        RANGE,
        CHAIN,
        commits=lambda: gateway,
        objects=lambda: backend,
        signer=lambda: signer,
        purge_ct128=True,
    )

    def run(step: Any, job: RangeJob[Store] = job) -> StepReport[Any]:
        before = counting.classified
        report: StepReport[Any] = step(job)
        counts[step.__name__] = counting.classified - before
        return report

    counts: dict[str, int] = {}
    squashed = run(squash_range)
    digests = run(digest_range)
    run(upload_range)
    committed = run(commit_range)
    assert counts == {
        "squash_range": 1,
        "digest_range": 1,
        "upload_range": 1,
        "commit_range": 1,
    }
    # The checks of each step come from its one classification: the errored handle is named.
    assert squashed.check(SQUASHED_CHECK).passed
    assert digests.check(DIGESTS_CHECK).passed
    check = committed.check(COMMITTED_CHECK)
    assert not check.passed and check.severity == "WARN"
    assert check.metadata["errored_handles"] == {"0x" + _handle(9).hex(): "scalar division by zero"}
    assert committed.figures["sent"] == 3 and committed.figures["ct128_purged"] == 3
