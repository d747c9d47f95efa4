"""tfhe_py against TFHE-rs called from Rust: the same operations on the same keys, in one run.

Prints the median of each operation through `tfhe_py` (Python → PyO3 → TFHE-rs) and through
`benchmarks/native` (Rust → TFHE-rs), and their ratio: the cost of the bindings.

    python benchmarks/tfhe_ops.py [--repeats 5] [--slow-repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import tfhe_py

from fhevm_dagster.compute.keys import (
    CLIENT_KEY,
    METADATA,
    cache_dir,
    derived_server_key_path,
    load_key_dir,
)
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "benchmarks" / "native"


def timed(n: int, f: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        out.append(time.perf_counter() - start)
    return out


def python_samples(repeats: int, slow: int) -> dict[str, list[float]]:
    keys = load_key_dir(DEVNET_TEST_KEYS, with_client_key=True)
    assert keys.client_key is not None
    ck, engine = keys.client_key, keys.engine()
    a8, b8 = ck.encrypt(200, FheType.Uint8), ck.encrypt(77, FheType.Uint8)
    a64, b64 = ck.encrypt((1 << 64) - 6, FheType.Uint64), ck.encrypt(123_456, FheType.Uint64)
    flag = engine.execute(Operator.Ge, [a64, b64])
    stored = engine.compress(a64)

    def select64() -> object:
        return engine.execute(Operator.IfThenElse, [flag, a64, b64])

    def select8() -> object:
        return engine.execute(Operator.IfThenElse, [engine.execute(Operator.Ge, [a8, b8]), a8, b8])

    return {
        "uint8_add": timed(repeats, lambda: engine.execute(Operator.Add, [a8, b8])),
        "uint8_mul": timed(repeats, lambda: engine.execute(Operator.Mul, [a8, b8])),
        "uint8_ge": timed(repeats, lambda: engine.execute(Operator.Ge, [a8, b8])),
        "uint8_select": timed(repeats, select8),
        "uint64_add": timed(repeats, lambda: engine.execute(Operator.Add, [a64, b64])),
        "uint64_mul": timed(slow, lambda: engine.execute(Operator.Mul, [a64, b64])),
        "uint64_ge": timed(repeats, lambda: engine.execute(Operator.Ge, [a64, b64])),
        "uint64_select": timed(repeats, select64),
        "uint64_compress": timed(repeats, lambda: engine.compress(a64)),
        "uint64_decompress": timed(repeats, lambda: engine.decompress(stored)),
        "uint64_squash": timed(repeats, lambda: engine.squash(a64)),
    }


def native_samples(repeats: int, slow: int) -> dict[str, list[float]]:
    env = {**os.environ, "CARGO_TARGET_DIR": str(cache_dir() / "cargo-target")}
    started = time.monotonic()
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--manifest-path", str(NATIVE / "Cargo.toml")],
        check=True,
        env=env,
    )
    print(f"native baseline built in {time.monotonic() - started:.0f} s")
    load_key_dir(DEVNET_TEST_KEYS)  # makes sure the cache holds the derived server key
    seed = int(json.loads((DEVNET_TEST_KEYS / METADATA).read_text())["server_key_seed"])
    path = derived_server_key_path(DEVNET_TEST_KEYS / CLIENT_KEY, seed)
    binary = Path(env["CARGO_TARGET_DIR"]) / "release" / "native-bench"
    out = subprocess.run(
        [str(binary), str(DEVNET_TEST_KEYS / CLIENT_KEY), str(path), str(repeats), str(slow)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    samples: dict[str, list[float]] = json.loads(out)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slow-repeats", type=int, default=3, help="for Uint64 mul")
    args = parser.parse_args()
    print(f"tfhe_py {tfhe_py.TFHE_RS_VERSION}, {tfhe_py.PARAMETER_SET}, {os.cpu_count()} CPUs")
    py = python_samples(args.repeats, args.slow_repeats)
    rs = native_samples(args.repeats, args.slow_repeats)
    print(f"{'operation':<20}{'tfhe_py median':>16}{'Rust median':>14}{'ratio':>8}")
    for name, samples in py.items():
        p, r = statistics.median(samples), statistics.median(rs[name])
        print(f"{name:<20}{p * 1000:>13.1f} ms{r * 1000:>11.1f} ms{p / r:>8.3f}")


if __name__ == "__main__":
    main()
