"""`fhevm-dagster metrics serve`: the Prometheus endpoint of the coprocessor.

Each scrape reads the store (outcomes), the Dagster instance (per-range figures of the latest
materializations) and both chains' heads (lag); a source that does not answer is reported by
`fhevm_dagster_scrape_source_up{source=…} 0`, never as a failed scrape. Bound to 127.0.0.1 by
default: the figures name contracts and ranges, so exposing them is a deliberate choice.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..chain.config import gateway_from_settings
from ..chain.registry import host_chains_from_settings
from ..metrics import serve
from ..metrics.sources import make_inputs
from ..settings import load_settings, variable
from ..store import Store, StoreTimeouts


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    store = Store.open(
        args.database_url or settings.database_url, timeouts=StoreTimeouts.of(settings)
    )
    instance = None
    if not args.no_dagster:
        from dagster import DagsterInstance

        instance = DagsterInstance.get()  # $DAGSTER_HOME, as `dagster dev` uses
    hosts = host_chains_from_settings(settings)
    gateway = None if args.no_rpc else gateway_from_settings(settings)
    inputs = make_inputs(instance, hosts, gateway)
    host = args.host or settings.metrics_host
    port = settings.metrics_port if args.port is None else args.port
    server, thread = serve(store, inputs, host, port, settings.redrive_alert_after)
    print(f"metrics on http://{host}:{port}/metrics", flush=True)
    try:
        thread.join()
    finally:
        server.shutdown()
    return 0


def register(subparsers: Any) -> None:
    metrics = subparsers.add_parser("metrics", help="the Prometheus endpoint")
    sub = metrics.add_subparsers(dest="metrics_command", metavar="ACTION", required=True)
    srv = sub.add_parser("serve", help="serve /metrics (store, Dagster instance, chain heads)")
    srv.add_argument("--host", default="", help=f"default: ${variable('metrics_host')}")
    srv.add_argument("--port", type=int, default=None, help=f"default: ${variable('metrics_port')}")
    srv.add_argument("--database-url", default="", help="store URL (default: the configured one)")
    srv.add_argument("--no-rpc", action="store_true", help="do not read chain heads (no lag)")
    srv.add_argument("--no-dagster", action="store_true", help="no per-range figures")
    srv.set_defaults(handler=_serve)
