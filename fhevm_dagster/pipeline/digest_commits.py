"""Check-then-send of a range's digest commits, with the per-handle status kept in the store.

A commit is a gateway transaction per handle; a wrong or missing one is a lost result and a
duplicate wastes gas. Decisions come from the store and the contract, never from a scan of the
gateway's history (a provider caps that, and it grows without bound): a handle the store holds as
confirmed is skipped; every other one is simulated before it is sent, and the contract's
`CoprocessorAlreadyAdded` (a crash after sending, a run on another machine) counts as done, as in
the reference's transaction sender; a crash between broadcast and receipt is resumed from the
sender's journal at the same nonce. Only then is the earlier commit looked up, in the last
`lookback` gateway blocks, for its block (a reorg can still drop it) and its digests (other
digests from this sender are an alarm). The gateway side (web3, nonces, receipts, retries) sits
behind `chain.commit_port.CommitGateway`; this module has no web3.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from ..chain.calls import TxStatus
from ..chain.commit_port import CommitGateway, GatewayUnreachable
from ..protocol.digests import Material
from ..store import CommitState, CommitStatus
from .consensus import CommittedBook, committed_problems
from .errors import StepError
from .ports import CommitStatusReader, DigestReader
from .range_handles import HandleBook, RangeHandles, range_handles
from .range_job import RangeJob
from .step_report import CheckResult, Severity, StepReport
from .tables import hex_str
from .uploads import PurgeBook, purge_committed_ct128

COMMITTED_CHECK = "digests_committed_on_gateway"


class CommitBook(CommitStatusReader, Protocol):
    """What committing needs of the store: each handle's commit status."""

    def set_commit_status(self, status: CommitStatus) -> None:
        """Insert or update; a status without a gateway block keeps the stored block."""
        ...


class RecheckBook(CommitBook, DigestReader, Protocol):
    """What a gateway range's recheck needs of the store: the commits it placed in a span of
    gateway blocks, and their digests to send again."""

    def commits_in_gateway_blocks(self, first: int, last: int) -> list[CommitStatus]: ...


class CommitRangeBook(HandleBook, CommitBook, CommittedBook, PurgeBook, Protocol):
    """What `commit_range` needs of the store: the range's handles and digests, their commit
    status, and the purge of committed ct128 bytes."""


@dataclass
class CommitReport:
    """Per-handle outcome of one commit pass, for the asset's metadata and table."""

    skipped_confirmed: int = 0
    sent: int = 0
    already_added: int = 0
    failed: dict[bytes, str] = field(default_factory=dict)
    tx_hashes: dict[bytes, bytes] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def confirmed(self) -> int:
        return self.skipped_confirmed + self.sent + self.already_added


def _same(a: Material, b: Material) -> bool:
    return (a.key_id, a.ciphertext_digest, a.sns_ciphertext_digest) == (
        b.key_id,
        b.ciphertext_digest,
        b.sns_ciphertext_digest,
    )


def _describe(m: Material) -> str:
    return (
        f"keyId={m.key_id} ciphertextDigest=0x{m.ciphertext_digest.hex()} "
        f"snsCiphertextDigest=0x{m.sns_ciphertext_digest.hex()}"
    )


def commit_materials(
    store: CommitBook, gateway: CommitGateway, materials: Sequence[Material], batch_size: int = 32
) -> CommitReport:
    """Commits every material the store does not hold as confirmed; statuses go to the store.

    Sends in batches of `batch_size` pipelined transactions (each simulated first) and stops
    after a batch with an unreachable-gateway failure (the rest are marked failed with that
    reason), so a dead RPC costs one batch of timeouts, not one per handle. Never raises for a
    per-handle failure: the caller decides from `report.failed`.
    """
    started = time.perf_counter()
    report = CommitReport()
    statuses = store.get_commit_statuses([m.handle for m in materials])
    pending: list[Material] = []
    for m in materials:
        st = statuses.get(m.handle)
        if st is not None and st.status is CommitState.CONFIRMED:
            report.skipped_confirmed += 1
            if st.tx_hash:
                report.tx_hashes[m.handle] = st.tx_hash
        else:
            pending.append(m)

    def fail(m: Material, reason: str, tx_hash: bytes | None = None) -> None:
        report.failed[m.handle] = reason
        store.set_commit_status(CommitStatus(m.handle, CommitState.FAILED, tx_hash, reason))

    down: str | None = None
    already: list[Material] = []
    for i in range(0, len(pending), max(1, batch_size)):
        batch = pending[i : i + max(1, batch_size)]
        if down is not None:
            for m in batch:
                fail(m, f"not sent: gateway unreachable ({down})")
            continue
        for m in batch:
            store.set_commit_status(CommitStatus(m.handle, CommitState.SENT, None, None))
        for m, result in zip(batch, gateway.add_many(batch), strict=True):
            if result.status is TxStatus.FAILED:
                reason = result.reason or "addCiphertextMaterial failed"
                fail(m, reason, result.tx_hash)
                if result.retryable:
                    down = reason
                continue
            if result.status is TxStatus.ALREADY_DONE:
                report.already_added += 1
                already.append(m)
                continue
            report.sent += 1
            if result.tx_hash is not None:
                report.tx_hashes[m.handle] = result.tx_hash
            store.set_commit_status(
                CommitStatus(
                    m.handle, CommitState.CONFIRMED, result.tx_hash, None, result.block_number
                )
            )
    _record_already_added(store, gateway, already, report)
    report.seconds = time.perf_counter() - started
    return report


def _record_already_added(
    store: CommitBook, gateway: CommitGateway, materials: Sequence[Material], report: CommitReport
) -> None:
    """Confirm `CoprocessorAlreadyAdded` handles with the transaction and block of the earlier
    commit, found in the look-back window, so a reorg dropping that block is noticed; an earlier
    commit with other digests is an alarm (failed, named). Not found (older than the window, or
    the gateway cannot say now): confirmed without a block, as the reference does."""
    if not materials:
        return
    try:
        on_chain = gateway.committed([m.handle for m in materials])
        unseen = "its earlier commit is older than the look-back window"
    except GatewayUnreachable as exc:
        on_chain, unseen = {}, f"its earlier commit was not looked up: {exc}"
    for m in materials:
        seen = on_chain.get(m.handle)
        if seen is not None and not _same(seen.material, m):
            reason = (
                f"the gateway holds other digests from this sender ({_describe(seen.material)}, "
                f"tx 0x{seen.tx_hash.hex()}) than the stored ones ({_describe(m)})"
            )
            report.already_added -= 1
            report.failed[m.handle] = reason
            store.set_commit_status(
                CommitStatus(m.handle, CommitState.FAILED, seen.tx_hash, reason)
            )
            continue
        tx_hash, block = (seen.tx_hash, seen.block_number) if seen else (None, None)
        if tx_hash is not None:
            report.tx_hashes[m.handle] = tx_hash
        reason = "CoprocessorAlreadyAdded" + ("" if seen else f" ({unseen})")
        store.set_commit_status(
            CommitStatus(m.handle, CommitState.CONFIRMED, tx_hash, reason, block)
        )


COMMIT_COLUMNS = ["handle", "status", "tx_hash", "reason"]


def commit_range(job: RangeJob[CommitRangeBook]) -> StepReport[None]:
    """Commit the stored digests of the range's handles; a table of statuses, figures, and the
    check that this sender's commits are on the gateway. Once committed and in the object store,
    a handle's ct128 bytes leave the store (`job.purge_ct128`).

    Handles without a digest yet fail the step (retryable); any failed commit fails it with its
    reason after every other handle was tried, and a retry sends only what is still missing.
    """
    store, gateway = job.store, job.commit_gateway()
    handles = range_handles(store, job.host_chain.chain_id, job.rng)
    handles.require_ct64()
    digests = store.get_digests(list(handles.stored))
    undigested = [h for h in handles.stored if h not in digests]
    if undigested:
        raise StepError(
            f"{len(undigested)} handle(s) have no stored digest (run `ciphertext_digests` first): "
            + ", ".join(hex_str(h) for h in undigested[:20]),
            retryable=True,
        )
    materials = [digests[h] for h in handles.stored]
    report = commit_materials(store, gateway, materials, job.commit_batch)
    statuses = store.get_commit_statuses([m.handle for m in materials])
    table = pd.DataFrame(
        [
            {
                "handle": hex_str(m.handle),
                "status": str(s.status) if (s := statuses.get(m.handle)) else "",
                "tx_hash": hex_str(s.tx_hash) if s else "",
                "reason": (s.reason or "") if s else "",
            }
            for m in materials
        ],
        columns=COMMIT_COLUMNS,
    )
    figures = {
        "handles": len(table),
        "confirmed": report.confirmed,
        "sent": report.sent,
        "skipped_confirmed_in_store": report.skipped_confirmed,
        "already_added": report.already_added,
        "failed": len(report.failed),
        "failures": {hex_str(h): r for h, r in report.failed.items()},
        "seconds": round(report.seconds, 3),
        # Allowed handles never committed: their computation failed for a deterministic reason.
        **handles.figures(),
    }
    _raise_failures(report, f"of {len(materials)} digest commit(s) failed", figures)
    if job.purge_ct128:
        figures |= purge_committed_ct128(store, job.object_store(), [m.handle for m in materials])
    return StepReport(figures, table, checks=[committed_check(store, gateway, handles)])


def committed_check(
    store: CommittedBook, gateway: CommitGateway, handles: RangeHandles
) -> CheckResult:
    """This sender's AddCiphertextMaterial event exists for each handle with the stored digests.

    A handle whose computation failed for a deterministic reason is never committed: the rest of
    the range is, and the check names what could not be done (a warning).
    """
    try:
        problems = committed_problems(store, gateway, handles)
    except Exception as exc:  # any RPC failure: nothing can be decided now
        return gateway_unreachable(COMMITTED_CHECK, exc)
    figures = {
        "checked": len(handles.stored),
        "sender": gateway.sender,
        "problems": problems,
        "waiting": [hex_str(h) for h in handles.missing],
        **handles.figures(),
    }
    passed = not problems and not handles.missing and not handles.errored
    severity: Severity = "ERROR" if problems or handles.missing else "WARN"
    return CheckResult(COMMITTED_CHECK, passed, figures, severity)


def gateway_unreachable(name: str, exc: Exception) -> CheckResult:
    """A check that cannot decide now: the gateway did not answer (a warning)."""
    message = f"gateway unreachable: {type(exc).__name__}: {exc}"
    return CheckResult(name, False, {"error": message}, "WARN")


RECHECK_COLUMNS = ["handle", "outcome", "status", "tx_hash", "gateway_block", "reason"]


def recheck_commits(job: RangeJob[RecheckBook]) -> StepReport[None]:
    """Check the commits recorded in gateway blocks `first..last` against the canonical gateway
    chain; send again those a reorg dropped. A table per commit and figures.

    A commit stands when this sender's `AddCiphertextMaterial` event for the handle, with the
    stored digests, is in these blocks of the canonical chain (its transaction is updated when
    the reorg moved it within them). Any other is marked failed and goes through
    `commit_materials` (check-then-send: one the reorg moved to a later block is found there by
    the contract's `CoprocessorAlreadyAdded`), so each handle ends with one confirmed commit. A
    commit whose resend failed keeps its old block, so the next run of this range (a retry, a
    re-drive) tries it again.
    """
    started = time.perf_counter()
    store = job.store
    gateway, first, last = job.commit_gateway(), job.rng.first, job.rng.last
    rows = store.commits_in_gateway_blocks(first, last)
    handles = [r.handle for r in rows]
    digests = store.get_digests(handles)
    undigested = [h for h in handles if h not in digests]
    if undigested:
        raise StepError(
            f"{len(undigested)} committed handle(s) have no stored digest to commit again: "
            + ", ".join(hex_str(h) for h in undigested[:20]),
            retryable=False,
        )
    materials = {h: digests[h] for h in handles}
    try:
        on_chain = gateway.committed(handles, first, last) if handles else {}
    except GatewayUnreachable as exc:
        raise StepError(
            f"gateway unreachable while rechecking commits: {exc}", retryable=True
        ) from exc
    outcome: dict[bytes, str] = {}
    lost: list[Material] = []
    for r in rows:
        m, seen = materials[r.handle], on_chain.get(r.handle)
        if r.status is CommitState.CONFIRMED and seen is not None and _same(seen.material, m):
            if (seen.block_number, seen.tx_hash) == (r.gateway_block, r.tx_hash):
                outcome[r.handle] = "kept"
                continue
            outcome[r.handle] = "moved"
            store.set_commit_status(
                CommitStatus(r.handle, r.status, seen.tx_hash, r.reason, seen.block_number)
            )
            continue
        lost.append(m)
        if r.status is CommitState.CONFIRMED:
            tx = hex_str(r.tx_hash) if r.tx_hash else "?"
            reason = f"gateway reorg: commit {tx} of block {r.gateway_block} is not on the chain"
            store.set_commit_status(CommitStatus(r.handle, CommitState.FAILED, r.tx_hash, reason))
    report = commit_materials(store, gateway, lost, job.commit_batch)
    for m in lost:
        outcome[m.handle] = "failed" if m.handle in report.failed else "recommitted"
    table = _recheck_table(handles, outcome, store.get_commit_statuses(handles))
    figures = {
        "first_block": first,
        "last_block": last,
        "commits_in_range": len(rows),
        "kept": sum(1 for o in outcome.values() if o == "kept"),
        "moved": sum(1 for o in outcome.values() if o == "moved"),
        "lost": len(lost),
        "sent": report.sent,
        "already_added": report.already_added,
        "failed": len(report.failed),
        "failures": {hex_str(h): r for h, r in report.failed.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }
    what = f"of {len(lost)} commit(s) lost to a gateway reorg could not be sent again"
    _raise_failures(report, what, figures)
    return StepReport(figures, table)


def _recheck_table(
    handles: Sequence[bytes], outcome: dict[bytes, str], statuses: dict[bytes, CommitStatus]
) -> pd.DataFrame:
    """One row per rechecked commit: what the recheck did, and its status now."""
    return pd.DataFrame(
        [
            {
                "handle": hex_str(h),
                "outcome": outcome[h],
                "status": str(statuses[h].status),
                "tx_hash": hex_str(statuses[h].tx_hash) if statuses[h].tx_hash else "",
                "gateway_block": statuses[h].gateway_block,
                "reason": statuses[h].reason or "",
            }
            for h in handles
        ],
        columns=RECHECK_COLUMNS,
    )


def _raise_failures(report: CommitReport, what: str, figures: dict[str, Any]) -> None:
    """A step with failed commits fails retryably, naming the first few: the retry sends only
    those (the others are confirmed in the store)."""
    if report.failed:
        first = "; ".join(f"{hex_str(h)}: {r}" for h, r in list(report.failed.items())[:5])
        raise StepError(
            f"{len(report.failed)} {what} (a retry sends only those): {first}",
            retryable=True,
            figures=figures,
        )
