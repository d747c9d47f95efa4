"""The one range-asset factory: a spec (which step, which outputs, checks, resources, retries)
becomes a Dagster asset that builds the step's `RangeJob` from its resources, runs the step
(`step(job) -> StepReport`), logs its notes and yields its outputs' metadata and check results.
Adding a step to a range is one pipeline function and one `RangeAssetSpec`.

A step asks for a job over the port it needs of the store (`RangeJob[SquashBook]`, …); the job
built here holds the whole `Store`, so a spec's step type-checks only if the store fits its port.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    MaterializeResult,
    Output,
    PartitionsDefinition,
    RetryPolicy,
    asset,
    multi_asset,
)

from ..chain.ciphertext_commits import GatewayCommits
from ..chain.client import ChainReader
from ..chain.commit_port import CommitGateway
from ..chain.config import GatewayConfig
from ..chain.sender import TransactionSender, gateway_sender
from ..pipeline.block_ranges import parse_range_key
from ..pipeline.range_job import RangeJob
from ..pipeline.step_report import StepOutput, StepReport
from ..resources.chain import CommitSettings
from ..resources.signer import SignerResource
from ..resources.store import StoreResource
from ..store import Store
from .metadata import figures_metadata, partition_link, step_errors, table_metadata

#: In a spec's resources: the host chain's resource (its name), and those of the chains a
#: gateway range serves.
CHAIN = "<chain>"
HOSTS = "<hosts>"
#: Run tag of a determinism check: `1` recomputes results already stored and compares the bytes
#: (by default a retry or re-materialisation computes only what is not stored yet).
VERIFY_TAG = "fhevm/verify_determinism"


@dataclass(frozen=True)
class RangeOut:
    """One asset a step materialises: a parquet table (`stored`) or only metadata, the columns
    its preview shows (all when None) under `preview`, and a link to another asset's partition."""

    name: str
    kinds: frozenset[str]
    stored: bool = True
    shown: tuple[str, ...] | None = None
    preview: str = "preview"
    link: tuple[str, str] | None = None  # (metadata key, asset name)
    description: str | None = None


@dataclass(frozen=True)
class RangeCheck:
    """A check the step emits (`StepReport.checks`) on one of its assets (the first when None)."""

    name: str
    description: str
    blocking: bool = False
    asset: str | None = None
    partitioned: bool = True


@dataclass(frozen=True)
class RangeAssetSpec:
    step: Callable[[RangeJob[Store]], StepReport[Any]]
    outs: tuple[RangeOut, ...]
    resources: frozenset[str]
    retry_policy: RetryPolicy | None
    description: str
    deps: tuple[str, ...] = ()
    checks: tuple[RangeCheck, ...] = ()
    fhe: bool = False  # computes with FHE: in the deployment's FHE pool
    name: str | None = None  # the op of a multi-output step


@dataclass(frozen=True)
class RangeGroup:
    """Where a range's assets live: key prefix, group, partitions, the chain resource(s), and
    the concurrency pool of its FHE steps (`gpu` on a CUDA deployment)."""

    prefix: tuple[str, ...]
    group: str
    partitions: PartitionsDefinition
    chain: str | None = None
    hosts: tuple[str, ...] = ()
    pool: str | None = None

    def key(self, name: str) -> AssetKey:
        return AssetKey([*self.prefix, name])

    def resources(self, spec: RangeAssetSpec) -> set[str]:
        """The spec's resource keys, `CHAIN` and `HOSTS` replaced by the chains' names."""
        out = set(spec.resources) - {CHAIN, HOSTS}
        if CHAIN in spec.resources and self.chain:
            out.add(self.chain)
        if HOSTS in spec.resources:
            out |= set(self.hosts)
        return out


def range_asset(spec: RangeAssetSpec, where: RangeGroup) -> AssetsDefinition:
    """The asset (or multi-asset) of `spec` in `where`."""
    keys = where.resources(spec)
    first = spec.outs[0].name
    checks = [
        AssetCheckSpec(
            c.name,
            asset=where.key(c.asset or first),
            description=c.description,
            blocking=c.blocking,
            partitions_def=where.partitions if c.partitioned else None,
        )
        for c in spec.checks
    ]
    common: dict[str, Any] = {
        "partitions_def": where.partitions,
        "group_name": where.group,
        "retry_policy": spec.retry_policy,
        "pool": where.pool if spec.fhe else None,
        "required_resource_keys": keys,
        "check_specs": checks or None,
        "deps": [where.key(d) for d in spec.deps],
        "description": spec.description,
    }

    def compute(context: AssetExecutionContext) -> Iterator[Any]:
        yield from _run(context, spec, where, keys)

    if len(spec.outs) > 1:
        outs = {
            o.name: AssetOut(
                key=where.key(o.name),
                io_manager_key="parquet_io_manager" if o.stored else None,
                kinds=set(o.kinds),
                description=o.description,
            )
            for o in spec.outs
        }
        name = "__".join([*where.prefix, spec.name or first])
        multi: AssetsDefinition = multi_asset(name=name, outs=outs, **common)(compute)
        return multi
    out = spec.outs[0]
    stored = {"io_manager_key": "parquet_io_manager", "dagster_type": pd.DataFrame}
    single: AssetsDefinition = asset(
        key=where.key(out.name), kinds=set(out.kinds), **(stored if out.stored else {}), **common
    )(compute)
    return single


def _run(
    context: AssetExecutionContext, spec: RangeAssetSpec, where: RangeGroup, keys: set[str]
) -> Iterator[Any]:
    with step_errors():
        report = spec.step(range_job(context, where, keys))
    for note in report.notes:
        getattr(context.log, note.level)(note.message)
    for i, out in enumerate(spec.outs):
        part = StepOutput(report.table, report.figures) if i == 0 else report.outputs[out.name]
        metadata = figures_metadata(part.figures)
        if part.table is not None:
            shown = list(out.shown) if out.shown else None
            metadata |= table_metadata(part.table, shown, key=out.preview)
        if out.link:
            label, other = out.link
            metadata[label] = partition_link((*where.prefix, other), context.partition_key)
        if not out.stored:
            yield MaterializeResult(asset_key=where.key(out.name), metadata=metadata)
        else:
            name = out.name if len(spec.outs) > 1 else "result"
            yield Output(part.table, output_name=name, metadata=metadata)
    on = {c.name: where.key(c.asset or spec.outs[0].name) for c in spec.checks}
    for c in report.checks:
        yield AssetCheckResult(
            check_name=c.name,
            asset_key=on[c.name],
            passed=c.passed,
            severity=AssetCheckSeverity(c.severity),
            metadata=figures_metadata(c.metadata),
        )


def range_job(context: AssetExecutionContext, where: RangeGroup, keys: set[str]) -> RangeJob[Store]:
    """The step's job, from the resources its asset holds (`keys`): costly or secret parts
    (chain clients, keys, the object store, the engine) are made only when the step uses them."""
    r = context.resources
    store = r.store
    fhe = r.fhe if "fhe" in keys else None
    host = getattr(r, where.chain).config() if where.chain and where.chain in keys else None
    gateway: GatewayConfig | None = r.gateway.config() if "gateway" in keys else None
    commit = r.commit_settings if "commit_settings" in keys else None
    signer = r.signer if "signer" in keys else None
    chain = host or gateway
    return RangeJob(
        parse_range_key(context.partition_key),
        store.get(),
        batch=store.range_batch_handles,
        threads=fhe.pool_size if fhe else 1,
        engine_of=fhe.engine if fhe else None,
        device=fhe.device if fhe else "",
        host=host,
        hosts={c.chain_id: c for c in (getattr(r, n).config() for n in where.hosts if n in keys)},
        gateway=gateway,
        logs=(lambda: ChainReader.of(chain)) if chain else None,
        commits=_commits(gateway, signer, commit, store) if commit else None,
        sender=_sender(gateway, signer, store),
        signer=signer.signer_account if signer else None,
        objects=r.objects.backend if "objects" in keys else None,
        commit_batch=commit.batch_size if commit else RangeJob.commit_batch,
        purge_ct128=commit.purge_ct128 if commit else RangeJob.purge_ct128,
        recompute=context.run.tags.get(VERIFY_TAG) == "1",
        squash_during_evaluation=fhe.squash_during_evaluation if fhe else False,
    )


def _commits(
    gateway: GatewayConfig | None,
    signer: SignerResource | None,
    commit: CommitSettings,
    store: StoreResource,
) -> Callable[[], CommitGateway] | None:
    """The digest-commit client of this coprocessor's sender, journaling in the store."""
    if gateway is None or signer is None:
        return None
    gw, account = gateway, signer.tx_sender_account
    return lambda: GatewayCommits.of(gw, account(), commit.lookback_blocks, store.get())


def _sender(
    gateway: GatewayConfig | None, signer: SignerResource | None, store: StoreResource
) -> Callable[[], TransactionSender] | None:
    """The gateway sender of this coprocessor's answers, journaling in the store."""
    if gateway is None or signer is None:
        return None
    gw, account = gateway, signer.tx_sender_account
    return lambda: gateway_sender(gw, account(), store.get())
