"""`fhevm-dagster runs prune`: the run retention pass of `run_retention_sensor`, without its
per-tick time bound (a backlog, or the first pass on an instance months old), on `$DAGSTER_HOME`'s
instance and the configured store."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import load_settings, variable
from ..store import Store, StoreTimeouts


def _prune(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from ..retention import PARTITION_TAG, open_among, prune_runs

    settings = load_settings()
    days = settings.run_retention_days if args.older_than_days is None else args.older_than_days
    if days <= 0:
        print("every run is kept (retention 0 days)")
        return 0
    store = Store.open(settings.database_url, timeouts=StoreTimeouts.of(settings))
    try:
        with DagsterInstance.get() as instance:
            pruned = prune_runs(
                instance,
                lambda ranges: open_among(store, ranges),
                older_than_days=days,
                gateway_chain_id=settings.gateway_chain_id,
                dry_run=args.dry_run,
            )
    finally:
        store.dispose()
    if args.dry_run:
        for label, records in (("delete", pruned.deleted), ("keep", pruned.kept)):
            for r in records:
                run = r.dagster_run
                print(
                    f"{label} {run.run_id} {run.job_name} {run.tags.get(PARTITION_TAG, '-')} "
                    f"{run.status.value} {r.update_timestamp.isoformat(timespec='seconds')}"
                )
    print(pruned.summary(days, dry_run=args.dry_run))
    return 0


def register(subparsers: Any) -> None:
    runs = subparsers.add_parser("runs", help="the Dagster instance's run history")
    sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    prune = sub.add_parser(
        "prune",
        help="delete finished runs older than the retention (an open range's newest run stays)",
    )
    prune.add_argument(
        "--older-than-days",
        type=int,
        default=None,
        help=f"default: ${variable('run_retention_days')}",
    )
    prune.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    prune.set_defaults(handler=_prune)
