"""Peak memory of evaluating a range of N confidential transfers, against the size of the keys.

On a private devnet, ranges of N transfers (default 25, 50, 100, 200) are ingested, then each is
evaluated (`evaluate_range`: DAG, FHE with re-randomization, stores) in a child process of its
own, so that every figure starts from a fresh process with only the keys loaded. The child
samples its resident set size (RSS, /proc: it counts TFHE-rs's Rust allocations, which
tracemalloc does not see) every 20 ms: `base` is the RSS once the keys are loaded, `peak` the
highest RSS while the range runs, `peak - base` what the range itself costs. With a bounded
batch (FHEVM_DAGSTER_RANGE_BATCH_HANDLES, `--batch`) `peak - base` stays flat as N grows;
`--batch 0` holds the whole range, the behaviour before the bound. `--squash N,...` also squashes
the ranges of those sizes (about 4 s per Uint64 handle on a slow core, so keep them small),
each in its own child, after the evaluations. Ranges are evaluated in the order given (each
spends the balances of the previous one), so the sizes add up: 375 transfers for the default,
about an hour on 2 busy cores.

    nice python benchmarks/range_memory.py [--sizes 25,50,100,200] [--batch 64] [--threads 2]
        [--squash 25] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MB = 1 << 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sampled_peak(work: Callable[[], Any], every: float = 0.02) -> tuple[Any, int]:
    """Runs `work` while a thread samples the RSS; its result and the highest RSS seen."""
    peak = rss_bytes()
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(every):
            peak = max(peak, rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = work()
    finally:
        stop.set()
        sampler.join()
    return out, max(peak, rss_bytes())


def child(args: argparse.Namespace) -> None:
    """One step of one range in this fresh process; prints its figures as JSON."""
    from fhevm_dagster.chain.config import HostChainConfig
    from fhevm_dagster.pipeline.block_ranges import parse_range_key
    from fhevm_dagster.pipeline.evaluate import evaluate_range
    from fhevm_dagster.pipeline.range_job import RangeJob
    from fhevm_dagster.pipeline.squash import squash_range
    from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource
    from fhevm_dagster.store import Store

    store = Store.open(args.url)
    started = time.perf_counter()
    engine = FheResource(key_dir=str(DEVNET_TEST_KEYS)).engine()
    load_seconds = time.perf_counter() - started
    base = rss_bytes()
    chain = HostChainConfig(args.chain_id, "http://unused", "0x" + "aa" * 20, "0x" + "bb" * 20, 0)
    job = RangeJob(
        parse_range_key(args.range), store, args.batch, args.threads, lambda: engine, host=chain
    )

    def step() -> dict[str, Any]:
        if args.child == "squash":
            return squash_range(job).figures
        report = evaluate_range(job).detail
        assert report is not None
        return report.figures()

    started = time.perf_counter()
    figures, peak = sampled_peak(step)
    print(
        json.dumps(
            {
                "base": base,
                "peak": peak,
                "seconds": time.perf_counter() - started,
                "load_seconds": load_seconds,
                "figures": {k: v for k, v in figures.items() if isinstance(v, int | float)},
            }
        )
    )


def run_child(step: str, url: str, key: str, chain_id: int, batch: int, threads: int) -> Any:
    cmd = [sys.executable, __file__, "--child", step, "--url", url, "--range", key]
    cmd += ["--chain-id", str(chain_id), "--batch", str(batch), "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def key_sizes() -> dict[str, float]:
    """The key files a coprocessor loads, in MB (the server key from the derived-key cache)."""
    from fhevm_dagster.compute.keys import CLIENT_KEY, derived_server_key_path
    from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS

    meta = json.loads((DEVNET_TEST_KEYS / "keys.json").read_text())
    server = derived_server_key_path(DEVNET_TEST_KEYS / CLIENT_KEY, int(meta["server_key_seed"]))
    files = {"server_key": server} | {
        p.stem: p for p in DEVNET_TEST_KEYS.glob("*.bin") if p.name != CLIENT_KEY
    }
    return {name: p.stat().st_size / MB for name, p in files.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--squash", default="", help="sizes whose range is also squashed")
    parser.add_argument("--repeat", type=int, default=1, help="evaluations per range (median)")
    parser.add_argument("--child", choices=["evaluate", "squash"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--range", help=argparse.SUPPRESS)
    parser.add_argument("--chain-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from dagster import DagsterInstance, materialize

    from fhevm_dagster.devnet import devnet_down, devnet_up, free_port, run_token_traffic
    from fhevm_dagster.devnet.host_contracts import LOCAL_HOST_CHAIN_ID
    from fhevm_dagster.host_chains import host_chain_defs
    from fhevm_dagster.pipeline.block_ranges import BlockRange
    from fhevm_dagster.resources.chain import HostChainResource
    from fhevm_dagster.resources.io import ParquetIOManager
    from fhevm_dagster.resources.store import StoreResource

    sizes = [int(s) for s in args.sizes.split(",")]
    squash = {int(s) for s in args.squash.split(",") if s}
    host = host_chain_defs(f"host_{LOCAL_HOST_CHAIN_ID}")
    work = Path(tempfile.mkdtemp(prefix="fhevm-memory-"))
    url = f"sqlite:///{work / 'store.sqlite'}"
    info = devnet_up(work / "devnet", host_port=free_port(), gateway_port=free_port())
    instance = DagsterInstance.ephemeral()
    resources: dict[str, Any] = {
        host.name: HostChainResource(
            chain_id=info.host_chain_id,
            rpc_url=info.host_rpc_url,
            acl_address=info.acl_address,
            executor_address=info.executor_address,
        ),
        "store": StoreResource(database_url=url),
        "parquet_io_manager": ParquetIOManager(base_dir=str(work / "parquet")),
    }

    def ingest(records: list[Any]) -> str:
        blocks = [r.block_number for r in records]
        key = BlockRange(min(blocks), max(blocks)).key
        instance.add_dynamic_partitions(str(host.partitions.name), [key])
        result = materialize(
            host.assets[:1], partition_key=key, instance=instance, resources=resources
        )
        assert result.success
        return key

    def evaluate(key: str) -> Any:
        return run_child("evaluate", url, key, info.host_chain_id, args.batch, args.threads)

    keys = key_sizes()
    print("keys (MB): " + ", ".join(f"{k} {v:.1f}" for k, v in keys.items()))
    print(f"batch {args.batch} handles, {args.threads} threads, RSS sampled every 20 ms")
    head = ["transfers", "ops", "stored", "held", "base MB", "peak MB", "range MB", "range/key"]
    head += ["s"]
    print(" ".join(f"{h:>9}" for h in head))
    rows: list[tuple[int, float]] = []
    ranges: dict[int, str] = {}
    try:
        evaluate(ingest(run_token_traffic(info, transfers=0)))  # the mints: balances to spend
        for n in sizes:
            key = ingest(run_token_traffic(info, transfers=n, seed=n))
            runs = [evaluate(key) for _ in range(args.repeat)]
            base = statistics.median(r["base"] for r in runs) / MB
            peak = statistics.median(r["peak"] for r in runs) / MB
            f = runs[0]["figures"]
            cells = [
                f"{n}", f"{f['evaluated']}", f"{f['stored']}", f"{f['peak_held_ciphertexts']}",
                f"{base:.0f}", f"{peak:.0f}", f"{peak - base:.1f}",
                f"{(peak - base) / keys['server_key']:.2%}",
                f"{statistics.median(r['seconds'] for r in runs):.0f}",
            ]  # fmt: skip
            print(" ".join(f"{c:>9}" for c in cells), flush=True)
            rows.append((n, peak - base))
            ranges[n] = key
        for n in sorted(squash & ranges.keys()):
            s = run_child("squash", url, ranges[n], info.host_chain_id, args.batch, args.threads)
            print(
                f"squash of the {n}-transfer range: {s['figures']['squashed']} handles, "
                f"base {s['base'] / MB:.0f} MB, peak {s['peak'] / MB:.0f} MB, range "
                f"{(s['peak'] - s['base']) / MB:.1f} MB, {s['seconds']:.0f} s",
                flush=True,
            )
    finally:
        devnet_down(work / "devnet")
    first_n, first = min(rows)
    for n, cost in sorted(rows)[1:]:
        print(
            f"{n} / {first_n} transfers: {n / first_n:.0f}x the work, "
            f"range memory {cost:.1f} / {first:.1f} MB = {cost / first:.2f}x"
            if first > 0
            else f"{n} transfers: range memory {cost:.1f} MB"
        )


if __name__ == "__main__":
    main()
