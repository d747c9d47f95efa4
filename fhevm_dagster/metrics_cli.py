"""`fhevm-dagster metrics serve`: the Prometheus endpoint of the coprocessor.

Each scrape reads the store (outcomes), the Dagster instance (per-range figures of the latest
materializations) and both chains' heads (lag); a source that does not answer is reported by
`fhevm_dagster_scrape_source_up{source=…} 0`, never as a failed scrape. Bound to 127.0.0.1 by
default: the figures name contracts and ranges, so exposing them is a deliberate choice.
"""

from __future__ import annotations

import argparse
import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

from . import settings
from .chain.client import ChainReader, redact
from .chain.config import GatewayConfig, HostChainConfig, RpcSettings, gateway_from_settings
from .chain.registry import host_chains_from_settings
from .metrics import CoprocessorCollector, RangeFigure, ScrapeInputs
from .store import Store

METRICS_HOST_ENV = "FHEVM_DAGSTER_METRICS_HOST"
METRICS_PORT_ENV = "FHEVM_DAGSTER_METRICS_PORT"
DEFAULT_PORT = 9464
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


def serve(
    store: Store,
    inputs: Callable[[], ScrapeInputs],
    host: str,
    port: int,
    alert_after: int | None = None,
) -> tuple[Any, threading.Thread]:
    """Starts the endpoint in a thread; returns (server, thread) so callers can stop it.
    `alert_after` None: FHEVM_DAGSTER_REDRIVE_ALERT_AFTER."""
    if alert_after is None:
        alert_after = settings.integer("FHEVM_DAGSTER_REDRIVE_ALERT_AFTER")
    registry = CollectorRegistry()
    registry.register(CoprocessorCollector(store, inputs, alert_after))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread


def _serve(args: argparse.Namespace) -> int:
    store = Store.open(args.database_url or None)
    instance = None
    if not args.no_dagster:
        from dagster import DagsterInstance

        instance = DagsterInstance.get()  # $DAGSTER_HOME, as `dagster dev` uses
    hosts = host_chains_from_settings()
    gateway = None if args.no_rpc else gateway_from_settings()
    server, thread = serve(store, make_inputs(instance, hosts, gateway), args.host, args.port)
    print(f"metrics on http://{args.host}:{args.port}/metrics", flush=True)
    try:
        thread.join()
    finally:
        server.shutdown()
    return 0


def register(subparsers: Any) -> None:
    metrics = subparsers.add_parser("metrics", help="the Prometheus endpoint")
    sub = metrics.add_subparsers(dest="metrics_command", metavar="ACTION", required=True)
    srv = sub.add_parser("serve", help="serve /metrics (store, Dagster instance, chain heads)")
    srv.add_argument("--host", default=settings.value(METRICS_HOST_ENV))
    srv.add_argument("--port", type=int, default=settings.integer(METRICS_PORT_ENV))
    srv.add_argument("--database-url", default="", help="store URL (default: the configured one)")
    srv.add_argument("--no-rpc", action="store_true", help="do not read chain heads (no lag)")
    srv.add_argument("--no-dagster", action="store_true", help="no per-range figures")
    srv.set_defaults(handler=_serve)
