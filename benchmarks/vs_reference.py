"""Ours against the reference coprocessor's own code: the same transfers, keys and machine, one run.

For each mode (independent: disjoint sender/receiver pairs, a DAG as wide as the range; chained:
two users trading back and forth, every transfer reading the previous one's balances) and size, on
a private devnet (automine), the transfers land in one host range after their mints (processed
first, not timed). Then, on copies of the same store:
- ours, N threads: the host range job through Dagster (`materialize`: events read over RPC and
  decoded, computations stored, the DAG evaluated with re-randomization and the ct64 round trips,
  each result squashed as it is stored, digests; with `--phase full` also `addCiphertextMaterial`
  committed and confirmed on the gateway);
- the reference, N threads: `tools/reference-vectors` `reference-bench` on the same computations and
  input ct64s: zama-ai/fhevm v0.14.0's own `scheduler` crate as tfhe-worker drives it, then the
  sns-worker squash (rayon over the batch); its digests are compared with ours, byte for byte;
- ours, 1 thread, without commits, against bare: the same operations called straight through
  `tfhe_py` in a loop (decompress, re-randomize, operate, compress; squash; keccak), one thread: the
  ratio of the medians (`--repeats` interleaved pairs) is the orchestration overhead (Dagster,
  RPC, store, DAG).
`--phase evaluate` stops both sides after evaluation (no squash, digests or commits: the reference
side runs its scheduler only), for sizes whose squash would not fit the time at hand.

    python benchmarks/vs_reference.py [--sizes 10] [--modes independent,chained] \
        [--phase full|evaluate] [--threads N] [--repeats K] [--reference-bin PATH] [--overhead-only]

Without `--reference-bin`, `tools/reference-vectors/build-bench.sh` builds it (minutes, once).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tfhe_py
from dagster import AssetsDefinition, DagsterEventType, DagsterInstance, materialize

from fhevm_dagster.compute.dag import HandleRef, build_dag
from fhevm_dagster.compute.keys import derived_server_key_path, load_key_dir
from fhevm_dagster.compute.sns import squash_one
from fhevm_dagster.devnet import (
    DevnetInfo,
    anvil_account,
    connect,
    devnet_down,
    devnet_up,
    free_port,
    run_token_traffic,
    set_balance,
)
from fhevm_dagster.host_chains import host_chain_defs
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.protocol.digests import ciphertext_digest, sns_ciphertext_digest
from fhevm_dagster.resources.chain import CommitSettings, GatewayChainResource, HostChainResource
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.objects import ObjectStoreResource
from fhevm_dagster.resources.signer import SignerResource
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Store

REPO = Path(__file__).resolve().parent.parent
HOST = host_chain_defs("host_31337")
EVALUATE = ["host_events", "ciphertexts"]
SQUASHED = [*EVALUATE, "sns_ciphertexts", "ciphertext_digests"]
FULL = [*SQUASHED, "digest_commits"]
FIRST_USER = 10  # anvil accounts 1-4 are the demo's users
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def assets(names: list[str]) -> list[AssetsDefinition]:
    return [a for a in HOST.assets if any(k.path[-1] in names for k in a.keys)]


@dataclass
class Case:
    mode: str
    transfers: int
    users: list[int]
    pairs: list[tuple[int, int]]


def case(mode: str, transfers: int, first_user: int) -> Case:
    if mode == "independent":
        pairs = [(first_user + 2 * i, first_user + 2 * i + 1) for i in range(transfers)]
        return Case(mode, transfers, [u for p in pairs for u in p], pairs)
    if mode == "chained":
        return Case(mode, transfers, [first_user, first_user + 1], [])
    raise SystemExit(f"unknown mode {mode!r} (independent, chained)")


class Bench:
    """A private devnet, one Dagster instance, the engine and the reference binary."""

    def __init__(self, work: Path, threads: int, reference_bin: Path) -> None:
        self.work = work
        self.threads = threads
        self.reference_bin = reference_bin
        self.info: DevnetInfo = devnet_up(work / "devnet", free_port(), free_port())
        self.instance = DagsterInstance.ephemeral()
        self.keys = load_key_dir(DEVNET_TEST_KEYS)
        self.engine = self.keys.engine()
        self.main = work / "store.sqlite"
        Store.open(self.url(self.main))

    def close(self) -> None:
        devnet_down(self.work / "devnet")

    @staticmethod
    def url(path: Path) -> str:
        return f"sqlite:///{path}"

    def resources(self, store: Path, threads: int, squash: bool) -> dict[str, Any]:
        info = self.info
        return {
            HOST.name: HostChainResource(
                chain_id=info.host_chain_id,
                rpc_url=info.host_rpc_url,
                acl_address=info.acl_address,
                executor_address=info.executor_address,
            ),
            "store": StoreResource(database_url=self.url(store)),
            "fhe": FheResource(
                key_dir=str(DEVNET_TEST_KEYS), threads=threads, squash_during_evaluation=squash
            ),
            "parquet_io_manager": ParquetIOManager(base_dir=str(self.work / "parquet")),
            "gateway": GatewayChainResource(
                rpc_url=info.gateway_rpc_url,
                input_verification_address=info.input_verification_address,
                ciphertext_commits_address=info.ciphertext_commits_address,
            ),
            "signer": SignerResource(tx_sender_key_file=info.tx_sender_key_file),
            # The commit step purges committed ct128s it finds in the object store: none here
            # (the benchmark does not upload), so they are kept, as before.
            "commit_settings": CommitSettings(),
            "objects": ObjectStoreResource(url=f"file://{self.work / 'objects'}"),
        }

    def traffic(self, c: Case, transfers: int, seed: int) -> BlockRange:
        w3 = connect(self.info.host_rpc_url)
        for user in c.users:
            set_balance(w3, anvil_account(user).address, 10**21)
        records = run_token_traffic(self.info, transfers, seed=seed, users=c.users, pairs=c.pairs)
        blocks = [r.block_number for r in records]
        return BlockRange(min(blocks), max(blocks))

    def ours(
        self, rng: BlockRange, store: Path, names: list[str], threads: int, squash: bool
    ) -> tuple[float, dict[str, float]]:
        """Wall seconds of the range's steps through Dagster, and each step's seconds."""
        self.instance.add_dynamic_partitions(str(HOST.partitions.name), [rng.key])
        started = time.perf_counter()
        result = materialize(
            assets(names),
            partition_key=rng.key,
            instance=self.instance,
            resources=self.resources(store, threads, squash),
            run_config=QUIET,
        )
        elapsed = time.perf_counter() - started
        assert result.success
        steps = {
            e.step_key or "?": e.event_specific_data.duration_ms / 1000  # type: ignore[union-attr]
            for e in result.all_events
            if e.event_type is DagsterEventType.STEP_SUCCESS
        }
        return elapsed, steps

    def export(self, store: Store, rng: BlockRange, path: Path) -> None:
        """The range's computations and input ct64s, as the reference bench reads them."""
        rows = store.computations_of_range(rng.key, chain_id=self.info.host_chain_id)
        txs: dict[bytes, list[dict[str, Any]]] = {}
        for r in rows:
            txs.setdefault(r.tx_hash, []).append(
                {
                    "output": "0x" + r.output_handle.hex(),
                    "opcode": r.opcode,
                    "is_scalar": r.is_scalar,
                    "is_allowed": r.is_allowed,
                    "dependencies": ["0x" + d.hex() for d in r.dependencies],
                }
            )
        external = sorted(build_dag(rows).external)
        inputs = store.get_ciphertexts(external)
        work = {
            "transactions": [{"tx": "0x" + tx.hex(), "ops": ops} for tx, ops in txs.items()],
            "inputs": {"0x" + h.hex(): "0x" + c.ciphertext.hex() for h, c in inputs.items()},
        }
        path.write_text(json.dumps(work))

    def reference(self, work: Path, squash: bool) -> dict[str, Any]:
        out = work.with_suffix(".result.json")
        server_key = derived_server_key_path(
            DEVNET_TEST_KEYS / "client_key.bin", int(self.keys_meta()["server_key_seed"])
        )
        command = [
            str(self.reference_bin), "--work", str(work), "--server-key", str(server_key),
            "--public-key", str(DEVNET_TEST_KEYS / "public_key.bin"), "--out", str(out),
        ]  # fmt: skip
        if not squash:
            command.append("--no-squash")
        subprocess.run(command, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result

    @staticmethod
    def keys_meta() -> dict[str, Any]:
        meta: dict[str, Any] = json.loads((DEVNET_TEST_KEYS / "keys.json").read_text())
        return meta

    def bare(self, store: Store, rng: BlockRange, squash: bool) -> float:
        """The range's operations through tfhe_py in a loop, one thread: no Dagster, RPC, store
        or scheduler. Values travel as ct64 between operations (SPEC §7), as in the pipeline."""
        engine = self.engine
        dag = build_dag(store.computations_of_range(rng.key, chain_id=self.info.host_chain_id))
        values = {h: c.ciphertext for h, c in store.get_ciphertexts(sorted(dag.external)).items()}
        started = time.perf_counter()
        for key in dag.order:
            row = dag.nodes[key].row
            operands = [
                engine.decompress(values[o.handle]) if isinstance(o, HandleRef) else o
                for o in dag.nodes[key].operands
            ]
            values[row.output_handle] = engine.compress(
                engine.execute(row.opcode, operands, row.fhe_type, True)
            )
        if squash:
            for key in dag.order:
                if dag.nodes[key].row.is_allowed:
                    ct64 = values[key[0]]
                    ciphertext_digest(ct64)
                    sns_ciphertext_digest(squash_one(engine, ct64))
        return time.perf_counter() - started


def copy_store(src: Path, dst: Path) -> Path:
    """A consistent copy of a SQLite store (WAL included)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def compare(store: Store, handles: list[bytes], ref: dict[str, Any], squash: bool) -> str:
    """How many of our stored digests equal the reference's, as `equal/total`."""
    ct64 = store.get_ciphertexts(handles)
    ct128 = store.get_ciphertexts128(handles) if squash else {}
    equal = 0
    for h in handles:
        theirs = ref["results"].get("0x" + h.hex())
        if theirs is None or h not in ct64:
            continue
        ok = theirs["ct64_keccak"] == "0x" + ciphertext_digest(ct64[h].ciphertext).hex()
        if squash:
            ok = ok and theirs["ct128_keccak"] == "0x" + sns_ciphertext_digest(ct128[h]).hex()
        equal += ok
    return f"{equal}/{len(handles)}"


def run_case(
    bench: Bench, c: Case, phase: str, seed: int, repeats: int, overhead_only: bool = False
) -> list[str]:
    squash = phase == "full"
    mints = bench.traffic(c, 0, seed)
    bench.ours(mints, bench.main, EVALUATE, bench.threads, squash=False)  # balances, untimed
    rng = bench.traffic(c, c.transfers, seed)
    before = copy_store(bench.main, bench.work / f"{c.mode}-{c.transfers}-before.sqlite")

    if not overhead_only:
        many, steps = bench.ours(
            rng, bench.main, FULL if squash else EVALUATE, bench.threads, squash
        )
        store = Store.open(bench.url(bench.main))
        work = bench.work / f"{c.mode}-{c.transfers}.work.json"
        bench.export(store, rng, work)
        ref = bench.reference(work, squash)
    ones: list[float] = []
    bares: list[float] = []
    for i in range(repeats):  # interleaved, so a change of load hits both sides alike
        fresh = copy_store(before, bench.work / f"{c.mode}-{c.transfers}-1t-{i}.sqlite")
        ones.append(bench.ours(rng, fresh, SQUASHED if squash else EVALUATE, 1, squash)[0])
        if overhead_only:
            store = Store.open(bench.url(fresh))
        bares.append(bench.bare(store, rng, squash))
    one = f"{statistics.median(ones):.1f}" if ones else "-"
    bare = f"{statistics.median(bares):.1f}" if bares else "-"
    overhead = f"{statistics.median(ones) / statistics.median(bares) - 1:+.1%}" if ones else "-"
    ops = len(build_dag(store.computations_of_range(rng.key, chain_id=31337)).order)
    n = c.transfers
    if overhead_only:
        return [c.mode, f"{n}", f"{ops}", *["-"] * 6, one, bare, overhead, "-"]

    allowed = [
        r.output_handle
        for r in store.computations_of_range(rng.key, chain_id=31337)
        if r.is_allowed
    ]
    ref_total = ref["evaluate_seconds"] + (ref["squash_seconds"] if squash else 0.0)
    commit = steps.get(f"{HOST.name}__digest_commits", 0.0)
    return [
        c.mode, f"{n}", f"{ops}", f"{many:.1f}", f"{n / many:.3f}", f"{ref_total:.1f}",
        f"{n / ref_total:.3f}", f"{ref_total / many:.2f}", f"{commit:.1f}", one, bare,
        overhead, compare(store, allowed, ref, squash),
    ]  # fmt: skip


HEAD = [
    "mode", "transfers", "ops", "ours s", "ours tx/s", "ref s", "ref tx/s", "ours/ref",
    "commit s", "ours 1t s", "bare 1t s", "overhead", "bytes equal",
]  # fmt: skip


def reference_binary(given: str | None) -> Path:
    if given:
        return Path(given)
    build = subprocess.run(
        [str(REPO / "tools" / "reference-vectors" / "build-bench.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(build.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10")
    parser.add_argument("--modes", default="independent,chained")
    parser.add_argument("--phase", choices=["full", "evaluate"], default="full")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reference-bin", default=None)
    parser.add_argument(
        "--repeats", type=int, default=1, help="ours-1t/bare pairs per case (medians; 0: none)"
    )
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="only the ours-1t/bare pairs (no N-thread run, no reference)",
    )
    args = parser.parse_args()
    if args.overhead_only and args.repeats < 1:
        parser.error("--overhead-only times the ours-1t/bare pairs: --repeats must be 1 or more")
    binary = reference_binary(args.reference_bin)
    work = Path(tempfile.mkdtemp(prefix="fhevm-vs-reference-"))
    bench = Bench(work, args.threads, binary)
    print(f"cores {os.cpu_count()}, threads {args.threads}, phase {args.phase}, work {work}")
    print(f"tfhe-rs {tfhe_py.TFHE_RS_VERSION}; load average {os.getloadavg()[0]:.2f}")
    print(" | ".join(HEAD))
    first = FIRST_USER
    try:
        for mode in args.modes.split(","):
            for size in (int(s) for s in args.sizes.split(",")):
                c = case(mode, size, first)
                first += len(c.users)
                row = run_case(bench, c, args.phase, first, args.repeats, args.overhead_only)
                print(" | ".join(row), flush=True)
    finally:
        bench.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
