"""What a scrape reads outside the store: the Dagster instance's per-range figures of the latest
materializations, and both chains' heads (lag). A source that does not answer is named in
`ScrapeInputs.errors`, never a failed scrape."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from ..chain.client import ChainReader, redact
from ..chain.config import GatewayConfig, HostChainConfig, RpcSettings
from . import RangeFigure, ScrapeInputs

#: (asset, numeric metadata keys) exported per range.
RANGE_FIGURES: dict[str, tuple[str, ...]] = {
    "ciphertexts": ("wall_seconds", "fhe_seconds", "operations_per_second"),
    "sns_ciphertexts": ("wall_seconds", "squashed"),
    "digest_commits": ("seconds",),
    "ciphertext_objects": ("wall_seconds", "uploaded", "skipped", "bytes_uploaded"),
}
RANGES_PER_ASSET = 20
#: Newest `ciphertext_objects` materializations counted per chain and scrape (the rest next time).
NEW_MATERIALIZATIONS = 1000


def _last_block(partition: str) -> int | None:
    try:
        return int(partition.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


class UploadTally:
    """Objects put, from the `uploaded` figure of each `ciphertext_objects` materialization, each
    counted once: a counter only goes up, and a sum over the latest ranges would fall as they
    slide. The first read starts from the latest ranges; later reads add what came after."""

    def __init__(self) -> None:
        self.after: dict[str, int] = {}  # chain -> newest storage id counted
        self.total = 0.0

    def read(self, instance: Any, chains: Sequence[str]) -> float:
        from dagster import AssetKey, AssetRecordsFilter

        for chain in chains:
            key = AssetKey([chain, "ciphertext_objects"])
            after = self.after.get(chain)
            if after is None:
                records = instance.fetch_materializations(key, limit=RANGES_PER_ASSET).records
            else:
                since = AssetRecordsFilter(asset_key=key, after_storage_id=after)
                records = instance.fetch_materializations(
                    since, limit=NEW_MATERIALIZATIONS, ascending=True
                ).records
            for rec in records:
                mat = rec.asset_materialization
                raw = getattr(mat.metadata.get("uploaded"), "value", None) if mat else None
                if isinstance(raw, int | float) and not isinstance(raw, bool):
                    self.total += float(raw)
                after = max(after or 0, rec.storage_id)
            if after is not None:
                self.after[chain] = after
        return self.total


def dagster_inputs(
    instance: Any, inputs: ScrapeInputs, chains: Sequence[str], tally: UploadTally
) -> None:
    """Per-range figures of the host chains named `chains` and the last gateway range, from the
    instance's materializations; objects put, counted by `tally`."""
    from dagster import AssetKey

    figures: list[RangeFigure] = []
    for chain, (asset, keys) in itertools.product(chains, RANGE_FIGURES.items()):
        key = AssetKey([chain, asset])
        records = instance.fetch_materializations(key, limit=RANGES_PER_ASSET).records
        seen: set[str] = set()
        for rec in records:  # newest first: keep the latest materialization of each range
            mat = rec.asset_materialization
            if mat is None or not mat.partition or mat.partition in seen:
                continue
            seen.add(mat.partition)
            for name in keys:
                value = mat.metadata.get(name)
                raw = getattr(value, "value", None)
                if isinstance(raw, int | float) and not isinstance(raw, bool):
                    figures.append(RangeFigure(chain, asset, mat.partition, name, float(raw)))
    records = instance.fetch_materializations(AssetKey("proof_requests"), limit=1).records
    if records and records[0].asset_materialization is not None:
        inputs.gateway_last_block = _last_block(records[0].asset_materialization.partition or "")
    inputs.ranges = figures
    # A conflict (other bytes under our key) fails the step: no materialization counts it.
    inputs.uploads = {"uploaded": tally.read(instance, chains), "conflicts": 0.0}


def make_inputs(
    instance: Any | None,
    hosts: Sequence[HostChainConfig],
    gateway: GatewayConfig | None,
) -> Callable[[], ScrapeInputs]:
    """The per-scrape reader of everything outside the store: Dagster's materializations and the
    chain heads (`gateway` None: no RPC at all)."""
    quick = RpcSettings(3.0, 0)  # a scrape answers in seconds, whatever the nodes do
    tally = UploadTally()

    def read() -> ScrapeInputs:
        inputs = ScrapeInputs()
        errors: dict[str, str] = {}
        if instance is not None:
            try:
                dagster_inputs(instance, inputs, [h.name for h in hosts], tally)
            except Exception as exc:  # a scrape must answer: report the source down
                errors["dagster"] = str(exc)
        else:
            errors["dagster"] = "no Dagster instance"
        if gateway is None:
            errors.update(host_rpc="disabled", gateway_rpc="disabled")
            inputs.errors = errors
            return inputs
        heads: dict[int, int] = {}
        for host in hosts:
            try:
                heads[host.chain_id] = ChainReader(host.rpc_url, quick).head()
            except Exception as exc:
                errors["host_rpc"] = redact(f"chain {host.chain_id}: {exc}", host.rpc_url)
        inputs.host_heads = heads
        try:
            inputs.gateway_head = ChainReader(gateway.rpc_url, quick).head()
        except Exception as exc:
            errors["gateway_rpc"] = redact(str(exc), gateway.rpc_url)
        inputs.errors = errors
        return inputs

    return read
