"""`fhevm-dagster ciphertext get <handle>`: a consumer's view of one committed ciphertext.

Reads the ct64 and ct128 from the store (or, `--source objects`, from the object store as a KMS
does: both objects, each `ct-attestation` verified against the handle of its key and bound to the
bytes fetched, optionally to allowed `--signer`s), recomputes both digests (SPEC §7) and checks
them against what coprocessors committed on the gateway's CiphertextCommits: the consensus event
when there is one, else any coprocessor's `AddCiphertextMaterial`. Optionally writes the bytes
to files.

Exit status: 0 the digests match the gateway; 3 the handle is absent (store or gateway);
4 a digest mismatch (store vs bytes, or bytes vs gateway) or, from the object store, tampered bytes
or an attestation that does not verify; 1 a configuration or RPC error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..chain.ciphertext_commits import CommitConfigError, CommitEvent, commit_events
from ..chain.client import ChainReader
from ..chain.config import gateway_from_settings
from ..objects import FetchError, ObjectStoreError, fetch_verified, open_backend
from ..protocol.digests import ciphertext_digest, sns_ciphertext_digest
from ..protocol.types import FheType
from ..settings import Settings, load_settings
from ..store import Store, StoreTimeouts

ERRORS: tuple[type[BaseException], ...] = (
    CommitConfigError,
    ValueError,
    ConnectionError,
    ObjectStoreError,
)
EXIT_ABSENT = 3
EXIT_MISMATCH = 4


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _type_name(value: int) -> str:
    try:
        return FheType(value).name
    except ValueError:
        return str(value)


def parse_handle(text: str) -> bytes:
    raw = text.strip().removeprefix("0x")
    try:
        handle = bytes.fromhex(raw)
    except ValueError:
        raise ValueError(f"{text!r} is not a hex handle") from None
    if len(handle) != 32:
        raise ValueError(f"a handle is 32 bytes, {text!r} has {len(handle)}")
    return handle


def _fail(code: int, message: str, report: dict[str, Any], as_json: bool) -> int:
    report["error"] = message
    if as_json:
        print(json.dumps(report, indent=2))
    print(f"error: {message}", file=sys.stderr)
    return code


def _from_store(
    args: argparse.Namespace, settings: Settings, handle: bytes, report: dict[str, Any]
) -> tuple[bytes, bytes, int, int] | str:
    """(ct64, ct128, key id, fhe type) from the store, or why not (absent)."""
    url = args.database_url or settings.database_url
    store = Store.open(url, timeouts=StoreTimeouts.of(settings))
    try:
        ct64 = store.get_ciphertexts([handle]).get(handle)
        ct128 = store.get_ciphertexts128([handle]).get(handle)
        stored = store.get_digests([handle]).get(handle)
    finally:
        store.dispose()
    if ct64 is None or ct128 is None:
        return f"{_hex(handle)} has no {'ct64' if ct64 is None else 'ct128'} in the store"
    if stored is not None:
        report["_stored_digests"] = (stored.ciphertext_digest, stored.sns_ciphertext_digest)
    return ct64.ciphertext, ct128, ct64.key_id, ct64.fhe_type


def _from_objects(
    args: argparse.Namespace, settings: Settings, handle: bytes, report: dict[str, Any]
) -> tuple[bytes, bytes, int, int]:
    """A KMS's fetch: both objects, attestation verified, bytes bound to its digests."""
    backend = open_backend(
        args.object_store or settings.object_store, args.s3_endpoint or settings.s3_endpoint
    )
    report["object_store"] = backend.url
    fetched = fetch_verified(backend, handle, args.signer or None)
    report["attestation"] = {
        "signer": fetched.attestation.signer,
        "format": fetched.attestation.format.wire,
        "verified": True,
    }
    return fetched.ct64, fetched.ct128, fetched.attestation.key_id, handle[30]


def _get(args: argparse.Namespace) -> int:
    handle = parse_handle(args.handle)
    report: dict[str, Any] = {"handle": _hex(handle), "source": args.source}
    settings = load_settings()
    if args.source == "objects":
        try:
            got = _from_objects(args, settings, handle, report)
        except FetchError as exc:
            code = EXIT_ABSENT if exc.absent else EXIT_MISMATCH
            return _fail(code, str(exc), report, args.json)
    else:
        found = _from_store(args, settings, handle, report)
        if isinstance(found, str):
            return _fail(EXIT_ABSENT, found, report, args.json)
        got = found
    ct64_bytes, ct128_bytes, key_id, fhe_type = got
    stored_digests = report.pop("_stored_digests", None)
    d64, d128 = ciphertext_digest(ct64_bytes), sns_ciphertext_digest(ct128_bytes)
    report |= {
        "fhe_type": _type_name(fhe_type),
        "key_id": str(key_id),
        "ct64_bytes": len(ct64_bytes),
        "ct128_bytes": len(ct128_bytes),
        "ciphertext_digest": _hex(d64),
        "sns_ciphertext_digest": _hex(d128),
    }
    if args.out:
        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{_hex(handle)}.ct64").write_bytes(ct64_bytes)
        (out / f"{_hex(handle)}.ct128").write_bytes(ct128_bytes)
        report["written_to"] = str(out)
    if stored_digests is not None and stored_digests != (d64, d128):
        return _fail(EXIT_MISMATCH, "the store's digests do not match its bytes", report, args.json)
    if args.no_gateway:
        return _print(report, args.json)

    base = gateway_from_settings(settings)
    url = args.gateway_rpc_url or base.rpc_url
    try:
        events = commit_events(
            ChainReader(url, base.rpc).web3,
            args.commits_address or base.ciphertext_commits_address,
            [handle],
            args.from_block,
            max_span=base.rpc.logs_max_span,
        )
    except CommitConfigError:
        raise
    except Exception as exc:  # RPC: say which gateway could not be read
        raise ConnectionError(f"cannot read the gateway at {url}: {exc}") from exc
    report["gateway"] = _gateway_view(events, key_id=key_id, d64=d64, d128=d128)
    view = report["gateway"]
    if not events:
        return _fail(
            EXIT_ABSENT, f"{_hex(handle)} is not committed on the gateway", report, args.json
        )
    if not view["matches"]:
        return _fail(
            EXIT_MISMATCH,
            "the gateway's committed digests differ from the stored bytes' digests",
            report,
            args.json,
        )
    return _print(report, args.json)


def _print(report: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            print(f"{key}: {shown}")
    return 0


def _gateway_view(
    events: list[CommitEvent], *, key_id: int, d64: bytes, d128: bytes
) -> dict[str, Any]:
    def same(e: CommitEvent) -> bool:
        m = e.material
        return (m.key_id, m.ciphertext_digest, m.sns_ciphertext_digest) == (key_id, d64, d128)

    consensus = [e for e in events if e.consensus]
    adds = [e for e in events if not e.consensus]
    # Consensus decides when there is one; before it, any coprocessor's agreeing commit counts.
    matches = same(consensus[-1]) if consensus else any(same(e) for e in adds)
    return {
        "consensus": bool(consensus),
        "matches": matches,
        "commits": [
            {
                "sender": e.sender,
                "matches": same(e),
                "tx_hash": _hex(e.tx_hash),
                "block": e.block_number,
            }
            for e in adds
        ],
    }


def register(subparsers: Any) -> None:
    ct = subparsers.add_parser("ciphertext", help="read committed ciphertexts (ct64 and ct128)")
    sub = ct.add_subparsers(dest="ciphertext_command", metavar="ACTION", required=True)
    get = sub.add_parser(
        "get", help="fetch a handle's ct64/ct128 from the store and check them on the gateway"
    )
    get.add_argument("handle", help="0x-prefixed 32-byte handle")
    get.add_argument("--out", help="directory to write <handle>.ct64 and <handle>.ct128 into")
    get.add_argument("--database-url", default="", help="store URL (default: the configured one)")
    get.add_argument("--gateway-rpc-url", default="", help="default: the configured gateway")
    get.add_argument("--commits-address", default="", help="CiphertextCommits address")
    get.add_argument("--from-block", type=int, default=0, help="first gateway block searched")
    get.add_argument("--json", action="store_true", help="print the report as JSON")
    get.add_argument(
        "--source",
        choices=("store", "objects"),
        default="store",
        help="read the bytes from the store, or from the object store as a KMS does",
    )
    get.add_argument(
        "--object-store", default="", help="file:///dir or s3://bucket (default: configured)"
    )
    get.add_argument("--s3-endpoint", default="", help="S3-compatible endpoint URL")
    get.add_argument(
        "--signer",
        action="append",
        default=[],
        help="an allowed attestation signer address (repeatable; default: any valid signature)",
    )
    get.add_argument(
        "--no-gateway",
        action="store_true",
        help="skip the gateway check (audit an object store offline)",
    )
    get.set_defaults(handler=_get)
