"""A range of N confidential transfers, with and without sharing decompressions (issue #29).

The range (`transfer_dag`: each transfer Ge, Sub, IfThenElse, Add, IfThenElse on Uint64, both new
balances allowed, between `--accounts` accounts, so transfers read earlier ones' balances) is
written to a SQLite store with real encrypted inputs; then, on fresh copies of that store,
`evaluate_range` evaluates and squashes it (`squash=True`, as the `ciphertexts` asset does by
default), in pairs interleaved `--repeats` times so a change of load hits both sides alike:
- `on`: the range's `OperandCache` (the default): one decompression per ct64 for all its readers;
- `off`: `RangeJob.reuse_operands=False`: a decompression per reader, the reference's count.
Columns: `decompressions` (engine decompressions in the range, operations and squashes),
`on s`/`off s` (median wall seconds of the whole `evaluate_range`: DAG, FHE, stores, squashes),
`off/on` (the ratio of the medians), `equal` (every stored ct64 and ct128 of `on` equals
`off`'s). Single process, the keys loaded once, not timed.

    python benchmarks/operand_cache.py [--transfers 4] [--accounts 3] [--threads 2] [--repeats 3]

Measured (`--transfers 2 --accounts 2 --repeats 3`, 2 threads, a quiet 2-core machine):
14 decompressions on, 28 off; median 36.4 s on, 41.6 s off: off/on 1.14; bytes equal.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import tfhe_py
from transfer_dag import CHAIN, RANGE, write_transfers

from fhevm_dagster.chain.config import HostChainConfig
from fhevm_dagster.compute.keys import load_key_dir
from fhevm_dagster.pipeline.block_ranges import parse_range_key
from fhevm_dagster.pipeline.evaluate import RangeReport, evaluate_range
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS
from fhevm_dagster.store import Store


def copy_store(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def run(
    engine: tfhe_py.Engine, path: Path, threads: int, reuse: bool
) -> tuple[float, RangeReport, Store]:
    store = Store.open(f"sqlite:///{path}")
    started = time.perf_counter()
    chain = HostChainConfig(CHAIN, "http://unused", "0x" + "aa" * 20, "0x" + "bb" * 20, 0)
    job = RangeJob(
        parse_range_key(RANGE), store, 64, threads, lambda: engine, host=chain,
        squash_during_evaluation=True, reuse_operands=reuse,
    )  # fmt: skip
    report = evaluate_range(job).detail
    assert report is not None
    return time.perf_counter() - started, report, store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transfers", type=int, default=4)
    ap.add_argument("--accounts", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    keys = load_key_dir(DEVNET_TEST_KEYS, with_client_key=True)
    assert keys.client_key is not None
    engine = keys.engine()
    work = Path(tempfile.mkdtemp(prefix="operand-cache-"))
    base = work / "base.sqlite"
    client = keys.client_key
    allowed, _ = write_transfers(
        Store.open(f"sqlite:///{base}"),
        args.transfers,
        args.accounts,
        lambda value: engine.compress(client.encrypt(value, FheType.Uint64)),
    )
    seconds: dict[bool, list[float]] = {True: [], False: []}
    counts: dict[bool, int] = {}
    stored: dict[bool, tuple[object, object]] = {}
    for i in range(args.repeats):
        for reuse in (True, False) if i % 2 == 0 else (False, True):
            path = copy_store(base, work / f"{i}-{reuse}.sqlite")
            wall, report, store = run(engine, path, args.threads, reuse)
            assert report.evaluated == 5 * args.transfers and not report.errors
            seconds[reuse].append(wall)
            counts[reuse] = report.operands.decompressions
            stored[reuse] = (
                {h: c.ciphertext for h, c in store.get_ciphertexts(allowed).items()},
                store.get_ciphertexts128(allowed),
            )
            print(f"  repeat {i} {'on ' if reuse else 'off'} {wall:.1f} s", flush=True)
    on, off = statistics.median(seconds[True]), statistics.median(seconds[False])
    head = ["transfers", "ops", "decompressions on", "off", "on s", "off s", "off/on", "equal"]
    cells = [
        f"{args.transfers}", f"{5 * args.transfers}", f"{counts[True]}", f"{counts[False]}",
        f"{on:.1f}", f"{off:.1f}", f"{off / on:.2f}", f"{stored[True] == stored[False]}",
    ]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    print("| " + " | ".join(cells) + " |")
    print(f"threads {args.threads}, accounts {args.accounts}, repeats {args.repeats} (medians)")


if __name__ == "__main__":
    main()
