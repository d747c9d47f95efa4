"""Confidential-token transfers per second, end to end, against the bare FHE cost.

For ranges of 1, 10 and 50 transfers on a private devnet: the whole host range (`host_events`,
`fhe_computations`, `ciphertexts` materialised by Dagster: RPC, decoding, store, DAG, FHE with
re-randomization, the compress round trip of every operation, store) against the same operations
called straight through `tfhe_py` in a plain loop, in the same run. The bare loop runs twice: with
the reference's compress round trips (decompress every operand, compress every result: what
consensus needs, SPEC §7) and without them (raw values between operations, the path before), so
the round trips' cost per transfer is measured against the previous figure. All on one thread, so
pipeline / bare is the orchestration overhead; then the pipeline again with the thread pool, for
throughput. The engine is loaded before timing (a run loads it once; see jobs.py).

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

from fhevm_dagster.compute.dag import HandleRef, build_dag
from fhevm_dagster.devnet import devnet_down, devnet_up, free_port, run_token_traffic
from fhevm_dagster.devnet.host_contracts import LOCAL_HOST_CHAIN_ID
from fhevm_dagster.devnet.state import DevnetInfo
from fhevm_dagster.host_chains import host_chain_defs
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Store

HOST = host_chain_defs(f"host_{LOCAL_HOST_CHAIN_ID}")


def pipeline(
    instance: DagsterInstance, info: DevnetInfo, rng: BlockRange, url: str, work: Path, threads: int
) -> float:
    resources: dict[str, Any] = {
        HOST.name: HostChainResource(
            chain_id=info.host_chain_id,
            rpc_url=info.host_rpc_url,
            acl_address=info.acl_address,
            executor_address=info.executor_address,
        ),
        "store": StoreResource(database_url=url),
        "fhe": FheResource(key_dir=str(DEVNET_TEST_KEYS), threads=threads),
        "parquet_io_manager": ParquetIOManager(base_dir=str(work / "parquet")),
    }
    started = time.perf_counter()
    result = materialize(
        HOST.assets[:2],  # host_ingest, ciphertexts
        partition_key=rng.key,
        instance=instance,
        resources=resources,
    )
    elapsed = time.perf_counter() - started
    assert result.success
    return elapsed


def bare(
    store: Store, engine: tfhe_py.Engine, rng: BlockRange, round_trips: bool
) -> tuple[float, int]:
    """The range's operations through tfhe_py in a loop: no DAG scheduler, store or Dagster.

    With `round_trips`, values between operations are ct64 (the reference scheduler's path);
    without, raw ciphertexts, and only allowed results are compressed.
    """
    dag = build_dag(store.computations_of_range(rng.key, chain_id=LOCAL_HOST_CHAIN_ID))
    stored = store.get_ciphertexts(sorted(dag.external))
    values: dict[bytes, Any] = {h: c.ciphertext for h, c in stored.items()}
    if not round_trips:
        values = {h: engine.decompress(c) for h, c in values.items()}
    started = time.perf_counter()
    for key in dag.order:
        row = dag.nodes[key].row
        operands = []
        for o in dag.nodes[key].operands:
            if not isinstance(o, HandleRef):
                operands.append(o)
            elif round_trips:
                operands.append(engine.decompress(values[o.handle]))
            else:
                operands.append(values[o.handle])
        result = engine.execute(row.opcode, operands, row.fhe_type, True)
        if round_trips:
            values[row.output_handle] = engine.compress(result)
        else:
            values[row.output_handle] = result
            if row.is_allowed:
                engine.compress(result)
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
    head = ["transfers", "ops", "raw 1t", "bare 1t", "trips/tx", "pipe 1t", "overhead"]
    print(" ".join(f"{h:>9}" for h in [*head, f"pipe {args.threads}t", "transfers/s"]))
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
            instance.add_dynamic_partitions(HOST.partitions.name, [rng.key])
            one = pipeline(instance, info, rng, url, work, threads=1)
            if not n:
                continue  # the mints: warm-up, and the balances the transfers spend
            raw, ops = bare(store, engine, rng, round_trips=False)
            base, _ = bare(store, engine, rng, round_trips=True)
            many = pipeline(instance, info, rng, url, work, threads=args.threads)
            cells = [
                f"{n}", f"{ops}", f"{raw:.1f}s", f"{base:.1f}s", f"{(base - raw) / n:.2f}s",
                f"{one:.1f}s", f"{one / base - 1:.1%}", f"{many:.1f}s", f"{n / many:.3f}",
            ]  # fmt: skip
            print(" ".join(f"{c:>9}" for c in cells))
    finally:
        devnet_down(work / "devnet")


if __name__ == "__main__":
    main()
