"""Confidential-token transfers per second, end to end, against the bare FHE cost.

For ranges of 1, 10 and 50 transfers on a private devnet: the whole host range (`host_events`,
`fhe_computations`, `ciphertexts` materialised by Dagster: RPC, decoding, store, DAG, FHE with
re-randomization, compression, store) against the same operations called straight through
`tfhe_py` in a plain loop, in the same run. Both on one thread, so the ratio is the orchestration
overhead; then the pipeline again with the thread pool, for throughput. The engine is loaded
before timing (a run loads it once; see jobs.py).

    python benchmarks/transfers.py [--sizes 1,10,50] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import tfhe_py
from dagster import DagsterInstance, materialize

from fhevm_dagster.assets.host import ciphertexts, fhe_computations, host_events
from fhevm_dagster.compute.dag import HandleRef, build_dag
from fhevm_dagster.devnet import devnet_down, devnet_up, free_port, run_token_traffic
from fhevm_dagster.devnet.state import DevnetInfo
from fhevm_dagster.partitions import HOST_RANGES, BlockRange
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Store


def pipeline(
    instance: DagsterInstance, info: DevnetInfo, rng: BlockRange, url: str, work: Path, threads: int
) -> float:
    resources: dict[str, Any] = {
        "chain": HostChainResource(
            rpc_url=info.host_rpc_url,
            acl_address=info.acl_address,
            executor_address=info.executor_address,
            key_id="0",
        ),
        "store": StoreResource(database_url=url),
        "fhe": FheResource(key_dir=str(DEVNET_TEST_KEYS), threads=threads),
        "parquet_io_manager": ParquetIOManager(base_dir=str(work / "parquet")),
    }
    started = time.perf_counter()
    result = materialize(
        [host_events, fhe_computations, ciphertexts],
        partition_key=rng.key,
        instance=instance,
        resources=resources,
    )
    elapsed = time.perf_counter() - started
    assert result.success
    return elapsed


def bare(store: Store, engine: tfhe_py.Engine, rng: BlockRange) -> tuple[float, int]:
    """The range's operations through tfhe_py in a loop: no DAG scheduler, store or Dagster."""
    dag = build_dag(store.computations_of_range(rng.key))
    stored = store.get_ciphertexts(sorted(dag.external))
    values = {h: engine.decompress(c.ciphertext) for h, c in stored.items()}
    started = time.perf_counter()
    for key in dag.order:
        row = dag.nodes[key].row
        operands = [
            values[o.handle] if isinstance(o, HandleRef) else o for o in dag.nodes[key].operands
        ]
        values[row.output_handle] = engine.execute(row.opcode, operands, row.fhe_type, True)
        if row.is_allowed:
            engine.compress(values[row.output_handle])
    return time.perf_counter() - started, len(dag.order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="fhevm-bench-"))
    url = f"sqlite:///{work / 'store.sqlite'}"
    info = devnet_up(work / "devnet", host_port=free_port(), gateway_port=free_port())
    instance = DagsterInstance.ephemeral()
    fhe = FheResource(key_dir=str(DEVNET_TEST_KEYS))
    started = time.perf_counter()
    engine = fhe.engine()
    print(f"keys loaded in {time.perf_counter() - started:.1f} s (once per run in production)")
    store = Store.open(url)
    print(f"{'transfers':>9} {'ops':>5} {'bare 1t':>9} {'pipe 1t':>9} {'overhead':>9} "
          f"{f'pipe {args.threads}t':>9} {'transfers/s':>12}")  # fmt: skip
    try:
        mints = run_token_traffic(info, transfers=0)  # first use: mints, in its own range
        ranges = [
            BlockRange(min(r.block_number for r in mints), max(r.block_number for r in mints))
        ]
        for n in [0, *sizes]:
            if n:
                records = run_token_traffic(info, transfers=n, seed=n)
                blocks = [r.block_number for r in records]
                ranges.append(BlockRange(min(blocks), max(blocks)))
            rng = ranges[-1]
            instance.add_dynamic_partitions(HOST_RANGES, [rng.key])
            one = pipeline(instance, info, rng, url, work, threads=1)
            if not n:
                continue  # the mints: warm-up, and the balances the transfers spend
            base, ops = bare(store, engine, rng)
            many = pipeline(instance, info, rng, url, work, threads=args.threads)
            print(f"{n:>9} {ops:>5} {base:>8.1f}s {one:>8.1f}s {one / base - 1:>8.1%} "
                  f"{many:>8.1f}s {n / many:>12.3f}")  # fmt: skip
    finally:
        devnet_down(work / "devnet")


if __name__ == "__main__":
    main()
