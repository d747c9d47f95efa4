"""Object keys, metadata and the idempotent upload of one handle's ct64 and ct128.

Facts from the reference (`sns-worker/src/aws_upload.rs`, v0.14.0): keys `ct64/<hex handle>/1` and
`ct128/<hex handle>/1` (no 0x; 1 is the coprocessor context id), and the ct128 also under its
content key `<hex ct128 digest>` for older readers; metadata `Ct-Format` (`ct64_compressed`, or the
ct128 format), `Uploaded-By`, `ct-attestation` (one attestation per handle, on every object),
`Key-Id` (hex of the 32-byte key id), `Transaction-Id` and `Signer`.

Idempotency, stricter than the reference's: an object whose bytes hash to our digest and whose
attestation verifies for our signer is left alone; the same bytes with a missing or stale
attestation are re-attested (rewritten); other bytes under our key are an alarm, never overwritten.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ..protocol.digests import Material
from .attestation import (
    CONTEXT_ID,
    Attestation,
    AttestationError,
    AttestationPayload,
    sign,
)
from .backends import ObjectBackend, StoredObject, meta_get

ATTESTATION_KEY = "ct-attestation"
UPLOADED_BY = "fhevm-dagster"
CT64_FORMAT = "ct64_compressed"


def ct64_key(handle: bytes, context_id: int = CONTEXT_ID) -> str:
    return f"ct64/{handle.hex()}/{context_id}"


def ct128_key(handle: bytes, context_id: int = CONTEXT_ID) -> str:
    return f"ct128/{handle.hex()}/{context_id}"


def ct128_digest_key(ct128_digest: bytes) -> str:
    """The reference's content-addressed copy of a ct128 (backward compatibility)."""
    return ct128_digest.hex()


def object_metadata(
    attestation: Attestation, ct_format: str, transaction_id: bytes = b""
) -> dict[str, str]:
    return {
        "Ct-Format": ct_format,
        "Uploaded-By": UPLOADED_BY,
        ATTESTATION_KEY: attestation.to_json(),
        "Key-Id": attestation.key_id.to_bytes(32, "big").hex(),
        "Transaction-Id": transaction_id.hex(),
        "Signer": attestation.signer,
    }


class Action(enum.StrEnum):
    UPLOAD = "upload"  # absent
    SKIP = "skip"  # same bytes, valid attestation by us
    REATTEST = "reattest"  # same bytes, attestation missing, stale or not ours
    CONFLICT = "conflict"  # other bytes under our key: alarm


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""


def decide(
    existing: StoredObject | None,
    expected_digest: bytes,
    expected: AttestationPayload,
    signer: str,
    *,
    handle_bound: bool = True,
) -> Decision:
    """What to do with one key, given what is there. Pure: no I/O."""
    if existing is None:
        return Decision(Action.UPLOAD)
    actual = bytes(keccak(existing.body))
    if actual != expected_digest:
        return Decision(
            Action.CONFLICT,
            f"stored bytes hash to 0x{actual.hex()}, ours to 0x{expected_digest.hex()}",
        )
    text = meta_get(existing.metadata, ATTESTATION_KEY)
    if text is None:
        return Decision(Action.REATTEST, "no attestation")
    try:
        att = Attestation.from_json(text)
        if att.signer != signer:
            return Decision(Action.REATTEST, f"attested by {att.signer}, not {signer}")
        if att.payload(expected.handle, expected.context_id) != expected:
            return Decision(Action.REATTEST, "attested fields differ")
        if handle_bound:  # content-keyed copies are shared by handles: no handle to bind
            att.verify(expected.handle, expected.context_id)
    except AttestationError as exc:
        return Decision(Action.REATTEST, str(exc))
    return Decision(Action.SKIP)


@dataclass(frozen=True, slots=True)
class HandleObjects:
    """What one handle uploads: its bytes and their committed digests (with its key id)."""

    material: Material
    ct64: bytes
    ct128: bytes
    transaction_id: bytes = b""


class ObjectConflict(RuntimeError):
    """Bytes under our key that are not ours: corruption, tampering or non-determinism."""

    def __init__(self, conflicts: Sequence[tuple[bytes, str, str]]) -> None:
        self.conflicts = list(conflicts)
        shown = "; ".join(f"0x{h.hex()} {key}: {why}" for h, key, why in self.conflicts[:10])
        super().__init__(f"{len(self.conflicts)} object(s) differ from our ciphertexts: {shown}")


@dataclass
class UploadReport:
    uploaded: int = 0
    reattested: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    actions: dict[str, dict[str, str]] = field(default_factory=dict)  # hex handle -> key -> action
    conflicts: list[tuple[bytes, str, str]] = field(default_factory=list)


def _bytes_ok(item: HandleObjects) -> None:
    m = item.material
    if bytes(keccak(item.ct64)) != m.ciphertext_digest:
        raise ObjectConflict([(m.handle, "store", "ct64 bytes do not match its digest")])
    if bytes(keccak(item.ct128)) != m.sns_ciphertext_digest:
        raise ObjectConflict([(m.handle, "store", "ct128 bytes do not match its digest")])


def upload_handles(
    backend: ObjectBackend, items: Iterable[HandleObjects], account: LocalAccount
) -> UploadReport:
    """Uploads what is missing or stale; collects conflicts (never overwritten), then raises."""
    report = UploadReport()
    for item in items:
        _bytes_ok(item)
        m = item.material
        payload = AttestationPayload(
            m.handle, m.key_id, m.ciphertext_digest, m.sns_ciphertext_digest
        )
        att = sign(payload, account)
        plan = [
            (ct128_key(m.handle), item.ct128, m.sns_ciphertext_digest, str(att.format.wire)),
            (ct128_digest_key(m.sns_ciphertext_digest), item.ct128,
             m.sns_ciphertext_digest, str(att.format.wire)),
            (ct64_key(m.handle), item.ct64, m.ciphertext_digest, CT64_FORMAT),
        ]  # fmt: skip
        done: dict[str, str] = {}
        for i, (key, body, digest, ct_format) in enumerate(plan):
            decision = decide(backend.get(key), digest, payload, att.signer, handle_bound=i != 1)
            done[key] = decision.action.value
            if decision.action is Action.CONFLICT:
                report.conflicts.append((m.handle, key, decision.reason))
                continue
            if decision.action is Action.SKIP:
                report.skipped += 1
                continue
            backend.put(key, body, object_metadata(att, ct_format, item.transaction_id))
            report.bytes_uploaded += len(body)
            if decision.action is Action.UPLOAD:
                report.uploaded += 1
            else:
                report.reattested += 1
        report.actions["0x" + m.handle.hex()] = done
    if report.conflicts:
        raise ObjectConflict(report.conflicts)
    return report


def forget_handles(backend: ObjectBackend, handles: Iterable[bytes]) -> int:
    """Removes the handle-keyed objects of handles that no longer name these ciphertexts (a reset
    chain reuses its handles); content-keyed ct128 copies stay, as no other bytes can claim them.
    Returns how many handles were forgotten."""
    count = 0
    for handle in handles:
        backend.delete(ct64_key(handle))
        backend.delete(ct128_key(handle))
        count += 1
    return count


class FetchError(RuntimeError):
    """A fetched object that a KMS would refuse; `absent` when there is nothing to fetch."""

    def __init__(self, message: str, *, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


@dataclass(frozen=True, slots=True)
class Fetched:
    ct64: bytes
    ct128: bytes
    attestation: Attestation


def fetch_verified(
    backend: ObjectBackend, handle: bytes, allowed_signers: Iterable[str] | None = None
) -> Fetched:
    """A KMS's read: both objects, each attestation verified and bound to the bytes fetched."""
    out: dict[str, tuple[bytes, Attestation]] = {}
    for name, key in (("ct64", ct64_key(handle)), ("ct128", ct128_key(handle))):
        obj = backend.get(key)
        if obj is None:
            raise FetchError(f"{backend.url}: no object {key}", absent=True)
        text = meta_get(obj.metadata, ATTESTATION_KEY)
        if text is None:
            raise FetchError(f"{key} has no {ATTESTATION_KEY} metadata")
        try:
            att = Attestation.from_json(text)
            att.verify(handle)
        except AttestationError as exc:
            raise FetchError(f"{key}: attestation rejected: {exc}") from None
        if allowed_signers is not None and att.signer not in set(allowed_signers):
            raise FetchError(f"{key}: attested by {att.signer}, not an allowed signer")
        want = att.ciphertext_digest if name == "ct64" else att.sns_ciphertext_digest
        got = bytes(keccak(obj.body))
        if got != want:
            raise FetchError(
                f"{key}: bytes hash to 0x{got.hex()}, the attestation says 0x{want.hex()}"
            )
        out[name] = (obj.body, att)
    if out["ct64"][1] != out["ct128"][1]:
        raise FetchError("the ct64 and ct128 objects carry different attestations")
    return Fetched(out["ct64"][0], out["ct128"][0], out["ct64"][1])
