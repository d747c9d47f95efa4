#!/usr/bin/env python3
"""Runs reference-bench on a small work file and checks its digests against our own FheBackend.

    ~/.cache/fhevm-dagster/venv/bin/python tools/reference-vectors/check_bench.py \
        [--bench BIN] [--work WORK.json] [--dir DIR]

Without `--work`, writes a small work file (`DIR/work.json`): three encrypted Uint64 inputs and
two host transactions, a confidential transfer (ok = Ge(bal, amt), zero = TrivialEncrypt(0),
value = IfThenElse(ok, amt, zero), new_to = Add(to, value), new_from = Sub(bal, value); only
new_to and new_from allowed) and a second transaction reading the first's allowed new_from
(Ge(new_from, amt), Sub(new_from, 5) scalar), a cross-transaction dependence. With `--work`, any
work file in reference-bench's format (with every input's ct64) is checked.

Then runs the binary (`--bench`, default: the release binary in
~/.cache/fhevm-dagster/reference-target, built by build-bench.sh) with the devnet test keys, and
recomputes every operation with our pipeline's code: `operands_of` (compute/dag.py),
`FheBackend.execute` (compute/evaluate.py), `squash_batch` (compute/sns.py), `ciphertext_digest`
and `sns_ciphertext_digest` (protocol/digests.py). Prints both sides' digests and times; exits 0
only when every allowed result has the same ct64 and ct128 digests on both sides (and the same
handles failed on both sides).

Not part of the pytest suite: it loads the 1.6 GB server key twice (once per side) and computes
for about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

import tfhe_py  # noqa: E402

from fhevm_dagster.compute.dag import HandleRef, operands_of  # noqa: E402
from fhevm_dagster.compute.evaluate import Ct64, FheBackend  # noqa: E402
from fhevm_dagster.compute.keys import (  # noqa: E402
    CLIENT_KEY,
    PUBLIC_KEY,
    derived_server_key_path,
    load_key_dir,
)
from fhevm_dagster.compute.sns import squash_batch  # noqa: E402
from fhevm_dagster.protocol.computations import ComputationRow  # noqa: E402
from fhevm_dagster.protocol.digests import (  # noqa: E402
    ciphertext_digest,
    sns_ciphertext_digest,
)
from fhevm_dagster.protocol.handles import finish_handle  # noqa: E402
from fhevm_dagster.protocol.opcodes import Operator  # noqa: E402
from fhevm_dagster.protocol.types import FheType  # noqa: E402
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS  # noqa: E402

CHAIN_ID = 12345
CACHE = Path(os.environ.get("FHEVM_DAGSTER_CACHE", Path.home() / ".cache" / "fhevm-dagster"))
DEFAULT_BENCH = CACHE / "reference-target" / "release" / "reference-bench"


def h(label: str, index: int, fhe_type: FheType) -> bytes:
    """A made-up handle: keccak(label) pre-handle, then index, chain id, type byte, version."""
    from eth_utils.crypto import keccak

    return finish_handle(bytes(keccak(label.encode())), index, CHAIN_ID, int(fhe_type))


def x(b: bytes) -> str:
    return "0x" + b.hex()


def small_work(engine: tfhe_py.Engine, client_key: tfhe_py.ClientKey) -> tuple[dict, dict]:
    """The transfer + dependent transaction; returns (work, expected plaintexts by handle)."""
    u64, boolean = FheType.Uint64, FheType.Bool
    bal, to, amt = h("bal", 0, u64), h("to", 1, u64), h("amt", 2, u64)
    inputs = {}
    for handle, value in ((bal, 1000), (to, 0), (amt, 100)):
        inputs[x(handle)] = x(engine.compress(client_key.encrypt(value, int(u64))))
    ok, zero, value = h("ok", 0xFF, boolean), h("zero", 0xFF, u64), h("value", 0xFF, u64)
    new_to, new_from = h("new_to", 0xFF, u64), h("new_from", 0xFF, u64)
    ok2, left = h("ok2", 0xFF, boolean), h("left", 0xFF, u64)

    def op(output, opcode, deps, is_scalar=False, allowed=False):
        return {
            "output": x(output),
            "opcode": int(opcode),
            "is_scalar": is_scalar,
            "is_allowed": allowed,
            "dependencies": [x(d) for d in deps],
        }

    tx1 = [
        op(ok, Operator.Ge, [bal, amt]),
        op(zero, Operator.TrivialEncrypt, [(0).to_bytes(32, "big"), bytes([int(u64)])], True),
        op(value, Operator.IfThenElse, [ok, amt, zero]),
        op(new_to, Operator.Add, [to, value], allowed=True),
        op(new_from, Operator.Sub, [bal, value], allowed=True),
    ]
    tx2 = [
        op(ok2, Operator.Ge, [new_from, amt], allowed=True),
        op(left, Operator.Sub, [new_from, (5).to_bytes(32, "big")], True, allowed=True),
    ]
    work = {
        "transactions": [
            {"tx": x(h("tx1", 0, u64)), "ops": tx1},
            {"tx": x(h("tx2", 0, u64)), "ops": tx2},
        ],
        "inputs": inputs,
    }
    expected = {x(new_to): 100, x(new_from): 900, x(ok2): 1, x(left): 895}
    return work, expected


def ours(engine: tfhe_py.Engine, work: dict) -> tuple[dict, dict, float, float, int]:
    """Our digests: FheBackend.execute in chain order, then squash_batch of the allowed results."""
    backend = FheBackend(engine)
    values: dict[bytes, Ct64] = {
        bytes.fromhex(k[2:]): Ct64(bytes.fromhex(v[2:])) for k, v in work["inputs"].items()
    }
    allowed: list[tuple[bytes, bytes]] = []
    errors: dict[str, str] = {}
    operations = 0
    started = time.monotonic()
    for t in work["transactions"]:
        tx = bytes.fromhex(t["tx"][2:])
        for i, o in enumerate(t["ops"]):
            out = bytes.fromhex(o["output"][2:])
            row = ComputationRow(
                output_handle=out,
                tx_hash=tx,
                block_number=0,
                block_hash=bytes(32),
                tx_index=0,
                log_index=i,
                opcode=o["opcode"],
                dependencies=tuple(bytes.fromhex(d[2:]) for d in o["dependencies"]),
                is_scalar=o["is_scalar"],
                is_allowed=o["is_allowed"],
                fhe_type=out[30],
                caller="",
            )
            try:
                operands = [
                    values[a.handle] if isinstance(a, HandleRef) else a for a in operands_of(row)
                ]
                values[out] = backend.execute(Operator(row.opcode), operands, FheType(out[30]))
                operations += 1
            except Exception as e:  # reported, and compared with the reference's failures
                errors[x(out)] = f"{type(e).__name__}: {e}"
                continue
            if row.is_allowed:
                allowed.append((out, values[out].data))
    evaluate_seconds = time.monotonic() - started
    report = squash_batch(engine, allowed, pool_size=os.cpu_count() or 1)
    results = {}
    for handle, ct64 in allowed:
        ct128 = report.ct128.get(handle)
        results[x(handle)] = {
            "ct64_keccak": x(ciphertext_digest(ct64)),
            "ct128_keccak": x(sns_ciphertext_digest(ct128)) if ct128 is not None else None,
            "ct64": ct64,
        }
    for handle, e in report.errors.items():
        errors[x(handle)] = f"squash: {e}"
    return results, errors, evaluate_seconds, report.wall_seconds, operations


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="reference-bench binary")
    p.add_argument("--work", type=Path, help="an existing WORK.json (default: a small one)")
    p.add_argument("--dir", type=Path, default=Path("/tmp/reference-bench-check"))
    a = p.parse_args()
    if not a.bench.exists():
        sys.exit(f"{a.bench} is missing: build it with tools/reference-vectors/build-bench.sh")
    a.dir.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    keys = load_key_dir(DEVNET_TEST_KEYS, with_client_key=True)
    engine = keys.engine()
    key_seconds = time.monotonic() - t0
    client_key = keys.client_key
    assert client_key is not None
    seed = int(json.loads((DEVNET_TEST_KEYS / "keys.json").read_text())["server_key_seed"])
    server_key_path = derived_server_key_path(DEVNET_TEST_KEYS / CLIENT_KEY, seed)
    print(f"ours: keys loaded in {key_seconds:.1f}s (server key {server_key_path})")

    expected: dict[str, int] = {}
    if a.work:
        work_path = a.work
        work = json.loads(work_path.read_text())
    else:
        work, expected = small_work(engine, client_key)
        work_path = a.dir / "work.json"
        work_path.write_text(json.dumps(work, indent=1) + "\n")
        print(f"wrote {work_path}")

    result_path = a.dir / "result.json"
    cmd = [
        str(a.bench),
        "--work", str(work_path),
        "--server-key", str(server_key_path),
        "--public-key", str(DEVNET_TEST_KEYS / PUBLIC_KEY),
        "--out", str(result_path),
    ]  # fmt: skip
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    print(f"reference-bench process: {time.monotonic() - t0:.1f}s")
    ref = json.loads(result_path.read_text())

    mine, my_errors, evaluate_s, squash_s, my_ops = ours(engine, work)

    print()
    print(f"{'':10} {'operations':>10} {'allowed':>8} {'evaluate s':>11} {'squash s':>9} errors")
    print(
        f"{'reference':10} {ref['operations']:>10} {ref['allowed']:>8} "
        f"{ref['evaluate_seconds']:>11.1f} {ref['squash_seconds']:>9.1f} {len(ref['errors'])}"
        f"   (keys {ref['key_load_seconds']:.1f}s; threads {ref['threads']})"
    )
    print(
        f"{'ours':10} {my_ops:>10} {len(mine):>8} {evaluate_s:>11.1f} {squash_s:>9.1f} "
        f"{len(my_errors)}   (keys {key_seconds:.1f}s; operations one at a time, squash on "
        f"{os.cpu_count()} threads)"
    )
    print()
    same = True
    for handle in sorted(set(ref["results"]) | set(mine)):
        r, m = ref["results"].get(handle), mine.get(handle)
        if r is None or m is None:
            same = False
            print(f"{handle}: only in {'ours' if r is None else 'reference'}")
            continue
        ct64_same = r["ct64_keccak"] == m["ct64_keccak"]
        ct128_same = r["ct128_keccak"] == m["ct128_keccak"] and m["ct128_keccak"] is not None
        same &= ct64_same and ct128_same
        plain = ""
        if handle in expected:
            got = client_key.decrypt(engine.decompress(m["ct64"]))
            plain = f" plaintext {got} (expected {expected[handle]})"
            same &= got == expected[handle]
        print(
            f"{handle}: ct64 {r['ct64_keccak'][:18]}.. {'SAME' if ct64_same else 'DIFFERENT'}"
            f" ({m['ct64_keccak'][:18]}..), ct128 {r['ct128_keccak'] and r['ct128_keccak'][:18]}.."
            f" {'SAME' if ct128_same else 'DIFFERENT'}{plain}"
        )
    for side, errs in (("reference", ref["errors"]), ("ours", my_errors)):
        for handle, e in sorted(errs.items()):
            print(f"{side} error {handle}: {e}")
    # Failures are expected to match too (same handles; the texts differ between the two sides).
    same &= set(ref["errors"]) == set(my_errors)
    print()
    print("ALL DIGESTS EQUAL" if same else "MISMATCH")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
