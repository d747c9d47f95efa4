"""Ingest one host block range: its executor and ACL logs read and decoded once, its computation
rows and allowed handles written to the store (SPEC §5), idempotently.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from ..chain.config import HostChainConfig
from ..protocol.computations import (
    AllowedHandle,
    ComputationRow,
    allowed_handles,
    computations_from_events,
)
from ..protocol.events import DecodeReport, RawLog, decode_logs
from ..protocol.opcodes import Operator
from ..store import HostChain, RangeWrite, StaleRange
from .block_ranges import BlockRange
from .errors import RangeMoved, StepError
from .identity import GenesisBook, require_identity
from .range_job import RangeJob
from .step_report import StepOutput, StepReport
from .tables import hex_str, type_name


class LogSource(Protocol):
    def chain_id(self) -> int: ...
    def block_hash(self, number: int) -> bytes | None: ...
    def get_logs(self, first: int, last: int, addresses: Sequence[str]) -> list[RawLog]: ...


class IngestBook(GenesisBook, Protocol):
    """What ingesting needs of the store: the chain's identity, its record, and the range's
    rows written in one go."""

    def register_chain(self, chain: HostChain) -> None: ...

    def write_range(
        self,
        chain_id: int,
        range_key: str,
        rows: Sequence[ComputationRow],
        allowed: Sequence[AllowedHandle] = (),
        processed: tuple[int, int, bytes] | None = None,
    ) -> RangeWrite: ...


def read_range_logs(
    source: LogSource, rng: BlockRange, addresses: Sequence[str]
) -> tuple[list[RawLog], bytes]:
    """The range's logs and its last-block hash, read between two equal hashes of the last block,
    every log's block hash equal to the chain's hash of its block (else `RangeMoved`: a reorg raced
    the read, or a load-balanced node answered from another branch)."""
    before = source.block_hash(rng.last)
    logs = source.get_logs(rng.first, rng.last, addresses)
    after = source.block_hash(rng.last)
    if before is None or before != after:
        raise RangeMoved(rng)
    hashes = {n: source.block_hash(n) for n in {log.block_number for log in logs}}
    if any(hashes[log.block_number] != log.block_hash for log in logs):
        raise RangeMoved(rng)
    return logs, after


@dataclass(frozen=True)
class IngestReport:
    chain_id: int
    rng: BlockRange
    last_hash: bytes
    decoded: DecodeReport
    rows: Sequence[ComputationRow]
    allowed: Sequence[AllowedHandle]
    write: RangeWrite

    def event_figures(self) -> dict[str, Any]:
        counts = self.decoded.counts()
        return {
            "chain_id": self.chain_id,
            "first_block": self.rng.first,
            "last_block": self.rng.last,
            "last_block_hash": hex_str(self.last_hash),
            "logs": sum(counts.values()),
            "unknown": counts.pop("unknown"),
            "malformed": counts.pop("malformed"),
            "events": dict(sorted(counts.items())),
        }

    def computation_figures(self) -> dict[str, Any]:
        per_op = Counter(Operator(r.opcode).name for r in self.rows)
        return {
            "computations": len(self.rows),
            "allowed": sum(r.is_allowed for r in self.rows),
            "allowed_handles": len({a.handle for a in self.allowed}),
            "transactions": len({r.tx_hash for r in self.rows}),
            "per_operator": dict(sorted(per_op.items())),
            "store_inserted": self.write.inserted,
            "store_updated": self.write.updated,
            "store_unchanged": self.write.unchanged,
            "store_removed": self.write.removed,
        }

    def events_table(self) -> pd.DataFrame:
        """One row per log (decoded, unknown or malformed), raw log kept for replay."""
        d = self.decoded
        rows = [
            _event_row(e.log, "decoded", e.contract, e.event, e.operator.name if e.operator else "",
                       {k: _jsonable(v) for k, v in e.args.items()})
            for e in d.decoded
        ]  # fmt: skip
        rows += [_event_row(u.log, "unknown", "", "", "", {"reason": u.reason}) for u in d.unknown]
        rows += [
            _event_row(m.log, "malformed", "", m.event, "", {"error": m.error}) for m in d.malformed
        ]
        df = pd.DataFrame(rows, columns=EVENT_COLUMNS)
        return df.sort_values(["block_number", "log_index"], kind="stable").reset_index(drop=True)

    def computations_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "block_number": r.block_number,
                    "tx_hash": hex_str(r.tx_hash),
                    "log_index": r.log_index,
                    "operator": Operator(r.opcode).name,
                    "output_handle": hex_str(r.output_handle),
                    "fhe_type": type_name(r.fhe_type),
                    "dependencies": len(r.dependencies),
                    "is_scalar": r.is_scalar,
                    "is_allowed": r.is_allowed,
                }
                for r in self.rows
            ],
            columns=COMPUTATION_COLUMNS,
        )


EVENT_COLUMNS = [
    "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "address", "topics", "data",
    "status", "contract", "event", "operator", "detail",
]  # fmt: skip
COMPUTATION_COLUMNS = [
    "block_number", "tx_hash", "log_index", "operator", "output_handle", "fhe_type",
    "dependencies", "is_scalar", "is_allowed",
]  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return hex_str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _event_row(
    log: RawLog, status: str, contract: str, event: str, op: str, detail: Any
) -> dict[str, Any]:
    return {
        "block_number": log.block_number,
        "block_hash": hex_str(log.block_hash),
        "tx_hash": hex_str(log.tx_hash),
        "tx_index": log.tx_index,
        "log_index": log.log_index,
        "address": log.address,
        "topics": ",".join(hex_str(t) for t in log.topics),
        "data": hex_str(log.data),
        "status": status,
        "contract": contract,
        "event": event,
        "operator": op,
        "detail": json.dumps(detail, sort_keys=True),
    }


def ingest_range(job: RangeJob[IngestBook]) -> StepReport[IngestReport]:
    """Read, decode and store one range; malformed and unknown logs are reported, not fatal.
    Two outputs: the range's logs (`host_events`) and its computations (`fhe_computations`)."""
    report = _ingest(job.log_source(), job.host_chain, job.store, job.rng)
    out: StepReport[IngestReport] = StepReport(
        report.event_figures(), report.events_table(), detail=report
    )
    for m in report.decoded.malformed:
        where = f"{hex_str(m.log.tx_hash)}#{m.log.log_index}"
        out.note("warning", f"malformed {m.event} log {where}: {m.error}")
    out.outputs["fhe_computations"] = StepOutput(
        report.computations_table(), report.computation_figures()
    )
    return out


def _ingest(
    source: LogSource, chain: HostChainConfig, store: IngestBook, rng: BlockRange
) -> IngestReport:
    """Read, decode and store one range; malformed and unknown logs are reported, not fatal."""
    chain_id = source.chain_id()
    if chain_id != chain.chain_id:
        raise StepError(
            f"host RPC serves chain {chain_id}, configured {chain.chain_id}", retryable=False
        )
    require_identity(source, store, chain.name)
    logs, last_hash = read_range_logs(source, rng, chain.log_addresses)
    store.register_chain(
        HostChain(chain_id, chain.acl_address, chain.executor_address, chain.key_id)
    )
    decoded = decode_logs(logs, chain.executor_address, chain.acl_address)
    rows = computations_from_events(decoded.decoded)
    allowed = allowed_handles(decoded.decoded)
    try:
        write = store.write_range(
            chain_id, rng.key, rows, allowed, processed=(rng.first, rng.last, last_hash)
        )
    except StaleRange as exc:  # another run of this range holds the book's blocks
        raise StepError(f"{exc}: this run writes nothing", retryable=False) from exc
    return IngestReport(chain_id, rng, last_hash, decoded, rows, allowed, write)
