"""What a range step needs (`step(job: RangeJob[Port]) -> StepReport`), built once per step run by
the Dagster layer (`assets/range_asset.py`) from its resources, or by a test from plain values.

The job is generic over its store: a step names the port it needs of the store (a `Protocol` in
its own module, made of the parts in `pipeline.ports`). The Dagster layer builds a
`RangeJob[Store]`, which mypy accepts as a step's job only if `Store` has every method of the
step's port; a test can build one over an in-memory fake of the port.

Everything that is costly or reads a secret (a chain client, a key, the object store, the FHE
engine) is a factory, called only by a step that uses it; a part the step's asset does not
provide is None, and asking for it is a clear error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from eth_account.signers.local import LocalAccount

from ..chain.commit_port import CommitGateway
from ..chain.config import GatewayConfig, HostChainConfig
from ..compute.evaluate import Engine, EngineFactory
from ..objects import ObjectBackend
from ..settings import default
from .block_ranges import BlockRange

if TYPE_CHECKING:
    from .gateway import AnswerChain
    from .host import LogSource

T = TypeVar("T")
#: The job's store port: covariant, so a job of the whole `Store` is a job of any port it fits.
S = TypeVar("S", covariant=True)


class MissingPart(RuntimeError):
    """A step asked its job for a part that its asset does not provide (a spec's resources)."""


def _need(value: T | None, what: str) -> T:
    if value is None:
        raise MissingPart(f"this range job has no {what}: add it to the asset's resources")
    return value


@dataclass(frozen=True)
class RangeJob(Generic[S]):
    """One step's run on one block range: the store (or the part of it the step uses), the
    chains, the FHE engine, the bounds and the run's flags."""

    rng: BlockRange
    store: S
    #: Ciphertexts a step reads, computes and writes at a time (0: the whole range).
    batch: int = 0
    #: Threads of the FHE work (evaluation, squash).
    threads: int = 1
    engine_of: EngineFactory | None = None
    #: The FHE device, shown in the figures of the steps that compute.
    device: str = ""
    host: HostChainConfig | None = None
    #: The host chains a gateway range serves, by chain id.
    hosts: Mapping[int, HostChainConfig] = field(default_factory=dict)
    gateway: GatewayConfig | None = None
    #: The reader of the range's chain (its logs and block hashes).
    logs: Callable[[], LogSource] | None = None
    #: The digest-commit client of this coprocessor's sender.
    commits: Callable[[], CommitGateway] | None = None
    #: The gateway sender of this coprocessor's answers.
    sender: Callable[[], AnswerChain] | None = None
    #: The EIP-712 signer (answers, object attestations).
    signer: Callable[[], LocalAccount] | None = None
    objects: Callable[[], ObjectBackend] | None = None
    #: Digest commits sent at once; whether committed ct128 bytes leave the store.
    commit_batch: int = default("commit_batch")
    purge_ct128: bool = False
    #: A determinism check: recompute results already stored and compare the bytes.
    recompute: bool = False
    #: Squash each new allowed result while the evaluation goes on.
    squash_during_evaluation: bool = False
    #: Share one decompression of each ct64 among its readers (off: every read decompresses, as
    #: the reference does; a switch for benchmarks).
    reuse_operands: bool = True

    @property
    def host_chain(self) -> HostChainConfig:
        return _need(self.host, "host chain config")

    @property
    def gateway_chain(self) -> GatewayConfig:
        return _need(self.gateway, "gateway config")

    def engine(self) -> Engine:
        """The FHE engine (a step calls this only when it has work: the key load is paid once
        per process, and not by an empty range)."""
        return _need(self.engine_of, "FHE engine")()

    def log_source(self) -> LogSource:
        return _need(self.logs, "chain reader")()

    def commit_gateway(self) -> CommitGateway:
        return _need(self.commits, "digest-commit client")()

    def answer_sender(self) -> Callable[[], AnswerChain]:
        return _need(self.sender, "gateway answer sender")

    def signer_account(self) -> Callable[[], LocalAccount]:
        return _need(self.signer, "signer")

    def object_store(self) -> ObjectBackend:
        return _need(self.objects, "object store")()
