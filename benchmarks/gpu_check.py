"""The CUDA engine against the plaintext oracle and the CPU engine, and its transfers per second.

The prepared check of a GPU machine (`benchmarks/gpu_check.sh` runs it there, with the CPU figures
of the same run). `--device cpu` runs it all on the CPU engine: the CPU half, on any machine.

Keys: the committed devnet client key, public key and CRS, and the compressed server key that
`server_key_seed` derives (cached): the GPU engine expands it, and its decompression is the server
key of the devnet's CPU coprocessors and of the golden vectors, so GPU bytes can be compared with
the reference's and with the CPU engine's.

1. Operators: every case of the golden vectors (each operator of SPEC §4 on every type, scalar
   forms, the ERC-20 transfer chains) through the pipeline's FHE backend on the device
   (decompress, re-randomize, compute, compress): the decrypted result must equal the reference's
   plaintext and the oracle's; the input lists verified and expanded (`verify_input`), the squash
   cases squashed, each decrypted. Each ct64 and ct128 digest is compared with the reference's
   (the reference's CPU bytes; consensus between CPU and GPU operators needs them equal).
2. Transfers per second: batches of independent transfers, the transactions of a range exported
   by `benchmarks/vs_reference.py` (`--work`, ERC7984 `confidentialTransfer`s between disjoint
   pairs) repeated under fresh handles up to each batch size, through the range scheduler
   (`run_dag`) on `--threads` threads: evaluation alone (decompress, transfer, compress: what
   TFHE-rs's 78 transfers/s on an H100 measures) and with every allowed result squashed as it is
   produced and digested (the `ciphertexts` step of a range). The first batch is also checked
   against the oracle, and with `--compare-cpu` against the CPU engine's bytes.

    python benchmarks/gpu_check.py --device cuda --work independent-100.work.json \
        [--batches 10,100,1000] [--threads 16] [--compare-cpu] [--cpu-batches 10] [--out check.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tfhe_py

from fhevm_dagster.compute.dag import RangeDag, build_dag
from fhevm_dagster.compute.evaluate import Ct64, FheBackend, PlainBackend
from fhevm_dagster.compute.inputs import VerifiedInput, verify_input
from fhevm_dagster.compute.keys import CLIENT_KEY, CRS, PUBLIC_KEY, cached_compressed_server_key
from fhevm_dagster.compute.oracle import Plain
from fhevm_dagster.compute.scheduler import run_dag
from fhevm_dagster.compute.sns import SquashPipe
from fhevm_dagster.compute.vectors import Vectors
from fhevm_dagster.protocol.computations import ComputationRow
from fhevm_dagster.protocol.digests import ciphertext_digest, sns_ciphertext_digest
from fhevm_dagster.protocol.types import FheType

REPO = Path(__file__).resolve().parent.parent
KEYS = REPO / "tfhe-py" / "tests" / "fixtures" / "keys"
VECTORS = REPO / "tests" / "fixtures" / "reference_vectors" / "vectors.json"


class Engines:
    """The device engine, the CPU engine on the same server key (when asked), the client key."""

    def __init__(self, device: str, compare_cpu: bool) -> None:
        meta = json.loads((KEYS / "keys.json").read_text())
        started = time.perf_counter()
        compressed = cached_compressed_server_key(KEYS / CLIENT_KEY, int(meta["server_key_seed"]))
        self.key_seconds = time.perf_counter() - started
        public_key = tfhe_py.CompactPublicKey.load(KEYS / PUBLIC_KEY)
        crs = tfhe_py.Crs.load(KEYS / CRS)
        self.client = tfhe_py.ClientKey.load(KEYS / CLIENT_KEY)
        started = time.perf_counter()
        self.cpu = (
            tfhe_py.Engine(compressed.decompress(), public_key, crs)
            if device == "cpu" or compare_cpu
            else None
        )
        self.cpu_seconds = time.perf_counter() - started
        started = time.perf_counter()
        self.device = (
            tfhe_py.Engine.cuda(compressed, public_key, crs) if device == "cuda" else self.cpu
        )
        self.device_seconds = time.perf_counter() - started
        assert self.device is not None
        self.compare = self.cpu if device == "cuda" and compare_cpu else None

    def decrypt(self, ct64: bytes) -> int:
        assert self.device is not None
        return int(self.client.decrypt(self.device.decompress(ct64)))


class Tally:
    """Counts of one check: cases, wrong plaintexts (named), digests equal to the reference's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cases = 0
        self.wrong: list[str] = []
        self.compared = 0
        self.same_bytes = 0
        self.seconds = 0.0

    def plain(self, case: str, got: int | str, *expected: int | str | None) -> None:
        self.cases += 1
        if any(e is not None and str(got) != str(e) for e in expected):
            self.wrong.append(f"{case}: got {got}, expected {' / '.join(map(str, expected))}")

    def compare_digest(self, digest: bytes, reference: str) -> None:
        self.compared += 1
        self.same_bytes += "0x" + digest.hex() == reference

    def line(self) -> str:
        same = f", bytes equal to the reference's {self.same_bytes}/{self.compared}"
        bad = f" WRONG: {self.wrong[:5]}" if self.wrong else ""
        ok = self.cases - len(self.wrong)
        return f"{self.name}: {ok}/{self.cases} plaintexts right{same} ({self.seconds:.1f} s){bad}"

    def json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "wrong": self.wrong,
            "compared": self.compared,
            "same_bytes": self.same_bytes,
            "seconds": round(self.seconds, 2),
        }


def check_operators(e: Engines, vectors: Vectors) -> list[Tally]:
    assert e.device is not None
    dev = FheBackend(e.device)
    stored = vectors.stored_operands()
    ops, chains, inputs, squash = (
        Tally("operators"),
        Tally("chains"),
        Tally("inputs"),
        Tally("squash"),
    )

    started = time.perf_counter()
    for case in vectors["operations"]:
        result = vectors.execute(dev, case, stored)
        ops.plain(case["id"], e.decrypt(result.data), case["plaintext"], vectors.oracle(case))
        ops.compare_digest(ciphertext_digest(result.data), case["ct64_keccak"])
    ops.seconds = time.perf_counter() - started

    started = time.perf_counter()
    ours = vectors.chain_results(dev)
    for chain in vectors["chains"]:
        for step in chain["steps"]:
            key = f"{chain['id']}.{step['result']}"
            chains.plain(key, e.decrypt(ours[key].data), step["plaintext"])
            chains.compare_digest(ciphertext_digest(ours[key].data), step["ct64_keccak"])
    chains.seconds = time.perf_counter() - started

    started = time.perf_counter()
    for case in vectors["inputs"]:
        data = (REPO / case["fixture"]).read_bytes()
        meta = json.loads((REPO / case["fixture"]).with_suffix(".json").read_text())
        args = dict(contract=meta["contract"], user=meta["user"], acl=meta["acl"],
                    host_chain_id=meta["chain_id"])  # fmt: skip
        got = verify_input(e.device, data, **args)
        name = Path(case["fixture"]).stem
        if "rejected" in case:
            inputs.plain(name, type(got).__name__, "RejectedInput")
            continue
        if not isinstance(got, VerifiedInput):
            inputs.plain(name, str(got), "VerifiedInput")
            continue
        digests = case["ct64_keccak"]
        for i, (ct64, reference) in enumerate(zip(got.ciphertexts, digests, strict=True)):
            inputs.plain(f"{name}[{i}]", e.decrypt(ct64), case["plaintexts"][i])
            inputs.compare_digest(ciphertext_digest(ct64), reference)
    inputs.seconds = time.perf_counter() - started

    started = time.perf_counter()
    for case in vectors["squash"]:
        known = vectors["operands"].get(case["operand"])
        ct64 = bytes.fromhex(known["ct64"]) if known else ours[case["operand"]].data
        ct128 = e.device.squash(e.device.decompress(ct64))
        squash.plain(case["operand"], e.client.decrypt_squashed(ct128, case["fhe_type"]),
                     case["plaintext"])  # fmt: skip
        squash.compare_digest(sns_ciphertext_digest(ct128), case["ct128_keccak"])
    squash.seconds = time.perf_counter() - started
    return [ops, chains, inputs, squash]


def _renamed(h: bytes, copy: int) -> bytes:
    """A fresh handle with the same metadata bytes (21..31: index, chain, type, version)."""
    return hashlib.sha256(copy.to_bytes(4, "big") + h).digest()[:21] + h[21:]


def batch_dag(work: dict[str, Any], transfers: int) -> RangeDag:
    """`transfers` transactions of the exported range, repeated under fresh output handles."""
    txs = work["transactions"]
    rows: list[ComputationRow] = []
    for i in range(transfers):
        tx, copy = txs[i % len(txs)], i // len(txs)
        outputs = {bytes.fromhex(op["output"][2:]) for op in tx["ops"]}
        for j, op in enumerate(tx["ops"]):
            deps = [bytes.fromhex(d[2:]) for d in op["dependencies"]]
            out = bytes.fromhex(op["output"][2:])
            rows.append(
                ComputationRow(
                    output_handle=_renamed(out, copy),
                    tx_hash=_renamed(bytes.fromhex(tx["tx"][2:]), copy),
                    block_number=0,
                    block_hash=bytes(32),
                    tx_index=i,
                    log_index=j,
                    opcode=op["opcode"],
                    dependencies=tuple(_renamed(d, copy) if d in outputs else d for d in deps),
                    is_scalar=op["is_scalar"],
                    is_allowed=op["is_allowed"],
                    fhe_type=out[30],
                    caller="",
                )
            )
    return build_dag(rows)


def run_batch(
    engine: tfhe_py.Engine, dag: RangeDag, inputs: dict[bytes, Ct64], threads: int, squash: bool
) -> tuple[float, dict[bytes, bytes], dict[bytes, bytes], int]:
    """Wall seconds; allowed ct64s and ct128s by handle; failed nodes."""
    ct64s: dict[bytes, bytes] = {}
    ct128s: dict[bytes, bytes] = {}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fhe") as pool:
        pipe = SquashPipe(engine, pool, lambda done: ct128s.update(done), limit=2 * threads)
        started = time.perf_counter()

        def sink(items: list[tuple[tuple[bytes, bytes], Ct64]]) -> None:
            fresh = [(key[0], v.data) for key, v in items]
            ct64s.update(fresh)
            if squash:
                pipe.submit(fresh)

        def load(handles: Any) -> dict[bytes, Ct64]:
            return {h: inputs[h] if h in inputs else Ct64(ct64s[h]) for h in handles}

        result = run_dag(dag, FheBackend(engine), load, sink, threads, pool=pool)
        pipe.close()
        for ct64 in ct64s.values():
            ciphertext_digest(ct64)
        for ct128 in ct128s.values():
            sns_ciphertext_digest(ct128)
        return time.perf_counter() - started, ct64s, ct128s, len(result.errors)


def _same(ours: dict[bytes, bytes], cpu: dict[bytes, bytes]) -> str:
    return f"{sum(cpu.get(h) == c for h, c in ours.items())}/{len(ours)}"


def oracle_values(e: Engines, dag: RangeDag, inputs: dict[bytes, Ct64]) -> dict[bytes, int | None]:
    """The plaintext of every allowed result, from the decrypted inputs through the oracle."""
    plain_inputs = {
        h: Plain(e.decrypt(c.data), FheType(h[30])) for h, c in inputs.items() if h in dag.external
    }
    values: dict[bytes, Plain] = {}

    def sink(items: list[tuple[tuple[bytes, bytes], Plain]]) -> None:
        values.update((key[0], v) for key, v in items)

    def load(handles: Any) -> dict[bytes, Plain]:
        return {h: plain_inputs.get(h) or values[h] for h in handles}

    run_dag(dag, PlainBackend(), load, sink, 1)
    return {h: v.value for h, v in values.items()}


def throughput(e: Engines, work: dict[str, Any], batches: list[int], threads: int,
               engine: tfhe_py.Engine, label: str) -> list[dict[str, Any]]:  # fmt: skip
    inputs = {bytes.fromhex(h[2:]): Ct64(bytes.fromhex(c[2:])) for h, c in work["inputs"].items()}
    rows = []
    for n in batches:
        dag = batch_dag(work, n)
        evaluate_s, _, _, failed_e = run_batch(engine, dag, inputs, threads, squash=False)
        full_s, ct64s, ct128s, failed_f = run_batch(engine, dag, inputs, threads, squash=True)
        row: dict[str, Any] = {
            "engine": label, "transfers": n, "ops": len(dag.order), "threads": threads,
            "evaluate_s": round(evaluate_s, 2), "evaluate_tx_per_s": round(n / evaluate_s, 2),
            "with_squash_s": round(full_s, 2), "with_squash_tx_per_s": round(n / full_s, 2),
            "failed": failed_e + failed_f,
        }  # fmt: skip
        if n == batches[0]:
            expected = oracle_values(e, dag, inputs)
            wrong = [h.hex() for h, v in expected.items() if e.decrypt(ct64s[h]) != v]
            squashed = [
                h.hex()
                for h, v in expected.items()
                if int(e.client.decrypt_squashed(ct128s[h], h[30])) != v
            ]
            row["oracle"] = f"{len(expected) - len(wrong)}/{len(expected)} ct64 right, " + (
                f"{len(expected) - len(squashed)}/{len(expected)} ct128 right"
            )
            if e.compare is not None and engine is not e.compare:
                _, cpu64, cpu128, _ = run_batch(e.compare, dag, inputs, threads, squash=True)
                row["same_ct64_as_cpu"] = _same(ct64s, cpu64)
                row["same_ct128_as_cpu"] = _same(ct128s, cpu128)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--work", type=Path, help="a range exported by vs_reference.py")
    parser.add_argument("--batches", default="10,100,1000")
    parser.add_argument("--cpu-batches", default="", help="the same batches on the CPU engine")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--compare-cpu", action="store_true")
    parser.add_argument("--skip-operators", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    print(f"tfhe_py CUDA={tfhe_py.CUDA}, GPUs visible: {tfhe_py.cuda_device_count()}, "
          f"cores {os.cpu_count()}, threads {args.threads}", flush=True)  # fmt: skip
    e = Engines(args.device, args.compare_cpu or bool(args.cpu_batches))
    assert e.device is not None
    print(f"engine {e.device.device}: compressed key {e.key_seconds:.1f} s, CPU engine "
          f"{e.cpu_seconds:.1f} s, device engine {e.device_seconds:.1f} s", flush=True)  # fmt: skip
    report: dict[str, Any] = {"device": e.device.device, "threads": args.threads}
    if not args.skip_operators:
        tallies = check_operators(e, Vectors(VECTORS))
        for t in tallies:
            print(t.line(), flush=True)
        report["operators"] = {t.name: t.json() for t in tallies}
    if args.work:
        work = json.loads(args.work.read_text())
        batches = [int(b) for b in args.batches.split(",") if b]
        report["throughput"] = throughput(e, work, batches, args.threads, e.device, args.device)
        cpu_batches = [int(b) for b in args.cpu_batches.split(",") if b]
        if cpu_batches and e.cpu is not None and args.device == "cuda":
            report["throughput"] += throughput(e, work, cpu_batches, args.threads, e.cpu, "cpu")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
