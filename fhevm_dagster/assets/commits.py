"""The last steps of a host range: squash to ct128, digest, commit the digests on the gateway.

Thin by design: squashing is `compute/sns.py`, digests `protocol/digests.py`, the check-then-send
bookkeeping `compute/commits.py`, the gateway `resources/commits.py`. Every step is idempotent:
a re-run squashes nothing already stored, recomputes equal digests and sends no transaction for a
handle whose commit is confirmed in the store or visible on the gateway.
"""

from collections.abc import Sequence
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
    asset_check,
)

from ..compute.commits import (
    CommitReport,
    GatewayUnreachable,
    commit_materials,
    peer_disagreements,
)
from ..compute.sns import RangeHandles, range_handles, squash_batch
from ..jobs import HOST_RANGE_GROUP
from ..partitions import host_ranges
from ..protocol.digests import Material, ciphertext_digest, sns_ciphertext_digest
from ..resources.chain import GatewayChainResource
from ..resources.commits import CommitSettings, gateway_commit_events
from ..resources.fhe import FheResource
from ..resources.signer import SignerResource
from ..resources.store import StoreResource
from ..store import CommitState, Digest, Store
from .metadata import hex_str, preview, type_name

#: ct64s of the range appear once `ciphertexts` (or an earlier range, or the gateway) stores them.
MISSING_RETRY = RetryPolicy(max_retries=5, delay=10, backoff=Backoff.EXPONENTIAL)
#: A gateway outage or a stuck transaction: retry the whole step, it skips what is done.
COMMIT_RETRY = RetryPolicy(max_retries=4, delay=15, backoff=Backoff.EXPONENTIAL)
DIGEST_COLUMNS = [
    "handle", "fhe_type", "key_id", "ciphertext_digest", "sns_ciphertext_digest",
    "ct64_bytes", "ct128_bytes",
]  # fmt: skip
COMMIT_COLUMNS = ["handle", "status", "tx_hash", "reason"]


def _unhex(s: str) -> bytes:
    return bytes.fromhex(s.removeprefix("0x"))


def _require_ct64(handles: RangeHandles, range_key: str) -> None:
    if handles.missing:
        shown = ", ".join(hex_str(h) for h in handles.missing[:20])
        raise Failure(
            description=f"range {range_key}: {len(handles.missing)} allowed handle(s) have no "
            f"ct64 in the store yet (run `ciphertexts` first): {shown}",
            metadata={"missing": MetadataValue.json([hex_str(h) for h in handles.missing])},
        )


def _errored_meta(handles: RangeHandles) -> dict[str, Any]:
    return {
        "errored": len(handles.errored),
        "errored_handles": MetadataValue.json({hex_str(h): m for h, m in handles.errored.items()}),
    }


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    deps=[AssetKey("ciphertexts")],
    retry_policy=MISSING_RETRY,
    kinds={"python", "tfhe"},
)
def sns_ciphertexts(
    context: AssetExecutionContext, store: StoreResource, fhe: FheResource
) -> MaterializeResult:  # type: ignore[type-arg]
    """Every allowed ct64 of the range squashed to its ct128 decryption format and stored.

    Handles whose computation failed are reported, not squashed; handles without a ct64 yet fail
    the step (retryable) and name themselves.
    """
    st = store.get()
    handles = range_handles(st, context.partition_key)
    _require_ct64(handles, context.partition_key)
    todo = set(st.missing_ciphertexts128(list(handles.stored)))
    items = [(h, ct.ciphertext) for h, ct in handles.stored.items() if h in todo]
    # An empty range must not pay the key load (~25 s for the 1.6 GB server key).
    report = squash_batch(fhe.engine() if items else None, items, fhe.pool_size)
    stored = st.put_ciphertexts128(list(report.ct128.items()))
    meta: dict[str, Any] = {
        "allowed": len(handles.stored) + len(handles.errored),
        "squashed": len(report.ct128),
        "already_stored": len(handles.stored) - len(items),
        "stored": stored,
        "wall_seconds": round(report.wall_seconds, 3),
        "squash_seconds_per_handle": round(sum(report.seconds.values()) / len(report.seconds), 3)
        if report.seconds
        else 0.0,
        **_errored_meta(handles),
    }
    if report.errors:
        shown = "; ".join(f"{hex_str(h)}: {e}" for h, e in list(report.errors.items())[:10])
        raise Failure(
            description=f"squashing failed for {len(report.errors)} handle(s): {shown}",
            metadata=meta,
        )
    return MaterializeResult(metadata=meta)


def _range_digests(st: Store, handles: RangeHandles) -> list[tuple[Digest, int, int, int]]:
    """(digest, fhe type, ct64 size, ct128 size) of every stored handle, from the stored bytes."""
    ct128 = st.get_ciphertexts128(list(handles.stored))
    missing = [h for h in handles.stored if h not in ct128]
    if missing:
        raise Failure(
            description=f"{len(missing)} handle(s) have no ct128 (run `sns_ciphertexts` first): "
            + ", ".join(hex_str(h) for h in missing[:20])
        )
    out = []
    for h, ct in handles.stored.items():
        d = Digest(h, ct.key_id, ciphertext_digest(ct.ciphertext), sns_ciphertext_digest(ct128[h]))
        out.append((d, ct.fhe_type, len(ct.ciphertext), len(ct128[h])))
    return out


@asset(
    partitions_def=host_ranges,
    group_name=HOST_RANGE_GROUP,
    io_manager_key="parquet_io_manager",
    deps=[sns_ciphertexts],
    retry_policy=MISSING_RETRY,
    kinds={"python", "parquet"},
)
def ciphertext_digests(context: AssetExecutionContext, store: StoreResource) -> pd.DataFrame:
    """keccak256 of every stored ct64 and ct128 of the range, stored and shown as a table.

    A digest already stored with other bytes means the ciphertexts changed under a committed
    digest (non-determinism or corruption): the step fails loudly instead of hiding it.
    """
    st = store.get()
    handles = range_handles(st, context.partition_key)
    _require_ct64(handles, context.partition_key)
    rows = _range_digests(st, handles)
    before = st.get_digests([d.handle for d, *_ in rows])
    changed = [d.handle for d, *_ in rows if d.handle in before and before[d.handle] != d]
    if changed:
        raise Failure(
            description=f"{len(changed)} stored digest(s) no longer match the stored bytes: "
            + ", ".join(hex_str(h) for h in changed[:20])
        )
    inserted = st.put_digests([d for d, *_ in rows])
    df = pd.DataFrame(
        [
            {
                "handle": hex_str(d.handle),
                "fhe_type": type_name(t),
                "key_id": str(d.key_id),
                "ciphertext_digest": hex_str(d.ct64_digest),
                "sns_ciphertext_digest": hex_str(d.ct128_digest),
                "ct64_bytes": n64,
                "ct128_bytes": n128,
            }
            for d, t, n64, n128 in rows
        ],
        columns=DIGEST_COLUMNS,
    )
    context.add_output_metadata(
        {
            "digests": len(df),
            "inserted": inserted,
            **_errored_meta(handles),
            "preview": preview(df[["handle", "fhe_type", "ciphertext_digest"]]),
        }
    )
    return df


def _materials(df: pd.DataFrame) -> list[Material]:
    return [
        Material(
            _unhex(str(r.handle)),
            int(str(r.key_id)),
            _unhex(str(r.ciphertext_digest)),
            _unhex(str(r.sns_ciphertext_digest)),
        )
        for r in df.itertuples(index=False)
    ]


def _commit_table(materials: Sequence[Material], st: Store) -> pd.DataFrame:
    statuses = st.get_commit_statuses([m.handle for m in materials])
    return pd.DataFrame(
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


def _commit_meta(report: CommitReport, table: pd.DataFrame) -> dict[str, Any]:
    return {
        "handles": len(table),
        "confirmed": report.confirmed,
        "sent": report.sent,
        "skipped_confirmed_in_store": report.skipped_confirmed,
        "found_on_chain": report.found_on_chain,
        "already_added": report.already_added,
        "failed": len(report.failed),
        "failures": MetadataValue.json({hex_str(h): r for h, r in report.failed.items()}),
        "seconds": round(report.seconds, 3),
        "preview": preview(table[["handle", "status", "tx_hash"]]),
    }


def build_digest_commits(retry_policy: RetryPolicy | None = COMMIT_RETRY) -> AssetsDefinition:
    """The `digest_commits` asset; tests build it without retries to see one failure."""

    @asset(
        name="digest_commits",
        partitions_def=host_ranges,
        group_name=HOST_RANGE_GROUP,
        io_manager_key="parquet_io_manager",
        retry_policy=retry_policy,
        kinds={"python", "ethereum"},
    )
    def digest_commits(
        context: AssetExecutionContext,
        ciphertext_digests: pd.DataFrame,
        store: StoreResource,
        gateway: GatewayChainResource,
        signer: SignerResource,
        commit_settings: CommitSettings,
    ) -> pd.DataFrame:
        """`addCiphertextMaterial` for every digest of the range, each at most once per sender.

        Handles confirmed in the store or already committed on the gateway by this sender are
        skipped; `CoprocessorAlreadyAdded` counts as done. Any failed commit (revert, outage)
        fails the range with its reason; the retry sends only what is still missing.
        """
        st = store.get()
        materials = _materials(ciphertext_digests)
        stored = st.get_digests([m.handle for m in materials])
        for m in materials:
            d = stored.get(m.handle)
            if d is None or (d.ct64_digest, d.ct128_digest) != (
                m.ciphertext_digest,
                m.sns_ciphertext_digest,
            ):
                raise Failure(
                    description=f"digest of {hex_str(m.handle)} in the table differs from the "
                    "store: re-materialise ciphertext_digests"
                )
        client = commit_settings.client(gateway, signer.tx_sender_account())
        report = commit_materials(st, client, materials, commit_settings.batch_size)
        table = _commit_table(materials, st)
        meta = _commit_meta(report, table)
        if report.failed:
            first = "; ".join(f"{hex_str(h)}: {r}" for h, r in list(report.failed.items())[:5])
            raise Failure(
                description=f"{len(report.failed)} of {len(materials)} digest commit(s) failed "
                f"(a retry sends only those): {first}",
                metadata=meta,
            )
        context.add_output_metadata(meta)
        return table

    return digest_commits


digest_commits = build_digest_commits()


# --- asset checks ----------------------------------------------------------------------------


@asset_check(asset=sns_ciphertexts, partitions_def=host_ranges, blocking=True)
def every_allowed_handle_squashed(
    context: AssetCheckExecutionContext, store: StoreResource
) -> AssetCheckResult:
    """Each allowed handle of the range has a ct64 and a ct128 (or a recorded computation error)."""
    st = store.get()
    handles = range_handles(st, context.partition_key)
    no128 = st.missing_ciphertexts128(list(handles.stored))
    return AssetCheckResult(
        passed=not handles.missing and not no128,
        metadata={
            "with_ct64": len(handles.stored),
            "without_ct64": MetadataValue.json([hex_str(h) for h in handles.missing]),
            "without_ct128": MetadataValue.json([hex_str(h) for h in no128]),
            **_errored_meta(handles),
        },
    )


@asset_check(asset=ciphertext_digests, partitions_def=host_ranges, blocking=True)
def digests_match_bytes(
    context: AssetCheckExecutionContext, store: StoreResource
) -> AssetCheckResult:
    """The stored digests equal keccak256 of the stored ct64 and ct128 bytes."""
    st = store.get()
    handles = range_handles(st, context.partition_key)
    expected = {d.handle: d for d, *_ in _range_digests(st, handles)}
    stored = st.get_digests(list(expected))
    wrong = [hex_str(h) for h, d in expected.items() if stored.get(h) != d]
    return AssetCheckResult(
        passed=not wrong and not handles.missing,
        metadata={"checked": len(expected), "mismatched_or_absent": MetadataValue.json(wrong)},
    )


@asset_check(asset="digest_commits", partitions_def=host_ranges)
def digests_committed_on_gateway(
    context: AssetCheckExecutionContext,
    store: StoreResource,
    gateway: GatewayChainResource,
    signer: SignerResource,
    commit_settings: CommitSettings,
) -> AssetCheckResult:
    """This sender's AddCiphertextMaterial event exists for each handle with the stored digests."""
    st = store.get()
    handles = range_handles(st, context.partition_key)
    digests = st.get_digests(list(handles.stored))
    client = commit_settings.client(gateway, signer.tx_sender_account())
    try:
        on_chain = client.committed(list(digests))
    except GatewayUnreachable as exc:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata={"error": f"gateway unreachable: {exc}"},
        )
    statuses = st.get_commit_statuses(list(digests))
    problems: dict[str, str] = {}
    for h in handles.stored:
        d = digests.get(h)
        seen = on_chain.get(h)
        status = statuses.get(h)
        if d is None:
            problems[hex_str(h)] = "no digest stored"
        elif seen is None:
            problems[hex_str(h)] = "no AddCiphertextMaterial event from this sender"
        elif (seen.material.ciphertext_digest, seen.material.sns_ciphertext_digest) != (
            d.ct64_digest,
            d.ct128_digest,
        ) or seen.material.key_id != d.key_id:
            problems[hex_str(h)] = "committed digests differ from the stored ones"
        elif status is None or status.status is not CommitState.CONFIRMED:
            problems[hex_str(h)] = f"store status {status.status if status else 'absent'}"
    return AssetCheckResult(
        passed=not problems and not handles.missing,
        metadata={
            "checked": len(handles.stored),
            "sender": client.sender,
            "problems": MetadataValue.json(problems),
        },
    )


@asset_check(asset=ciphertext_digests, partitions_def=host_ranges)
def digests_agree_with_other_coprocessors(
    context: AssetCheckExecutionContext,
    store: StoreResource,
    gateway: GatewayChainResource,
    signer: SignerResource,
    commit_settings: CommitSettings,
) -> AssetCheckResult:
    """Drift detector: other coprocessors' AddCiphertextMaterial digests equal ours.

    A coprocessor whose bytes differ from its peers' is outvoted on every handle; this fails
    with a table of the handles that disagree. It judges our digests, committed or not, against
    what peers committed so far: run it again from the UI when peers are behind.
    """
    st = store.get()
    handles = range_handles(st, context.partition_key)
    ours = {
        h: Material(h, d.key_id, d.ct64_digest, d.ct128_digest)
        for h, d in st.get_digests(list(handles.stored)).items()
    }
    me = signer.tx_sender_account().address
    try:
        events = gateway_commit_events(gateway, list(ours), commit_settings.start_block)
    except Exception as exc:  # any RPC failure: nothing can be decided now
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            metadata={"error": f"gateway unreachable: {type(exc).__name__}: {exc}"},
        )
    commits = [(e.sender, e.material) for e in events if e.sender is not None]
    bad = peer_disagreements(ours, commits, me)
    peers = {s for s, _ in commits if s != me}
    consensus = {e.material.handle for e in events if e.consensus}
    rows = "".join(
        f"| {hex_str(d.handle)} | {d.peer} | {hex_str(d.ours.ciphertext_digest)} / "
        f"{hex_str(d.ours.sns_ciphertext_digest)} | {hex_str(d.theirs.ciphertext_digest)} / "
        f"{hex_str(d.theirs.sns_ciphertext_digest)} |\n"
        for d in bad
    )
    return AssetCheckResult(
        passed=not bad,
        metadata={
            "handles": len(ours),
            "peers_seen": len(peers),
            "handles_with_a_peer_commit": len({m.handle for s, m in commits if s != me}),
            "handles_at_consensus": len(consensus & set(ours)),
            "disagreeing_handles": len({d.handle for d in bad}),
            "disagreements": MetadataValue.md(
                "| handle | peer | our ct64 / ct128 digest | theirs |\n|---|---|---|---|\n" + rows
            ),
        },
    )


COMMIT_ASSETS = [sns_ciphertexts, ciphertext_digests, digest_commits]
COMMIT_CHECKS = [
    every_allowed_handle_squashed,
    digests_match_bytes,
    digests_committed_on_gateway,
    digests_agree_with_other_coprocessors,
]
