"""The cost of a range's last steps per handle, against the cost of computing it, in one run.

Prints medians of: switch-and-squash per handle (Uint8, Uint64: decompress + squash + compress,
one thread), the two keccak digests, and one `addCiphertextMaterial` commit on a private devnet
gateway (gas from the receipt, wall time sent one by one and pipelined in a batch), next to one
FheUint64 add measured in the same run, with ratios. A few minutes on 2 slow cores.

    python benchmarks/squash_commit.py [--handles 3] [--commits 20] [--state-dir DIR]

`--state-dir` reuses a running devnet instead of starting a private one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hexbytes import HexBytes

from fhevm_dagster.chain.calls import MemoryJournal, TxStatus
from fhevm_dagster.chain.ciphertext_commits import GatewayCommits
from fhevm_dagster.compute.keys import load_key_dir
from fhevm_dagster.compute.sns import squash_one
from fhevm_dagster.devnet import devnet_down, devnet_up, free_port, load_devnet
from fhevm_dagster.protocol.digests import Material, ciphertext_digest, sns_ciphertext_digest
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.chain import GatewayChainResource
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS
from fhevm_dagster.resources.signer import SignerResource


def timed(n: int, f: Callable[[], object]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        out.append(time.perf_counter() - start)
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def fhe_figures(handles: int) -> dict[str, float]:
    keys = load_key_dir(DEVNET_TEST_KEYS, with_client_key=True)
    assert keys.client_key is not None
    ck, engine = keys.client_key, keys.engine()
    ct8 = engine.compress(ck.encrypt(200, FheType.Uint8))
    ct64 = engine.compress(ck.encrypt((1 << 64) - 6, FheType.Uint64))
    a64, b64 = ck.encrypt(123, FheType.Uint64), ck.encrypt(456, FheType.Uint64)
    ct128 = squash_one(engine, ct64)
    assert ck.decrypt_squashed(ct128, FheType.Uint64) == (1 << 64) - 6
    return {
        "squash_uint8": med(timed(handles, lambda: squash_one(engine, ct8))),
        "squash_uint64": med(timed(handles, lambda: squash_one(engine, ct64))),
        "add_uint64": med(timed(handles, lambda: engine.execute(Operator.Add, [a64, b64]))),
        "digests": med(timed(200, lambda: (ciphertext_digest(ct64), sns_ciphertext_digest(ct128)))),
        "ct64_bytes": float(len(ct64)),
        "ct128_bytes": float(len(ct128)),
    }


def _material() -> Material:
    h = os.urandom(21) + b"\xff" + (31337).to_bytes(8, "big") + bytes([FheType.Uint8, 0])
    return Material(h, 0, os.urandom(32), os.urandom(32))


def commit_figures(state_dir: Path, commits: int) -> dict[str, float]:
    info = load_devnet(state_dir)
    gateway = GatewayChainResource(
        rpc_url=info.gateway_rpc_url,
        ciphertext_commits_address=info.ciphertext_commits_address,
    )
    account = SignerResource(tx_sender_key_file=info.tx_sender_key_file).tx_sender_account()
    client = GatewayCommits.of(gateway.config(), account, 10_000, MemoryJournal())
    client.add_many([_material()])  # warm-up: nonce, chain id, contract objects

    one_by_one = []
    hashes: list[bytes] = []
    for _ in range(commits):
        start = time.perf_counter()
        [result] = client.add_many([_material()])
        one_by_one.append(time.perf_counter() - start)
        assert result.status is TxStatus.CONFIRMED and result.tx_hash, result
        hashes.append(result.tx_hash)
    start = time.perf_counter()
    batch = client.add_many([_material() for _ in range(commits)])
    pipelined = (time.perf_counter() - start) / commits
    assert all(r.status is TxStatus.CONFIRMED for r in batch)
    gas = [int(gateway.web3.eth.get_transaction_receipt(HexBytes(h))["gasUsed"]) for h in hashes]
    start = time.perf_counter()
    client.committed([_material().handle for _ in range(commits)])
    lookup = (time.perf_counter() - start) / commits
    return {
        "commit_gas": med([float(g) for g in gas]),
        "commit_wall": med(one_by_one),
        "commit_wall_pipelined": pipelined,
        "commit_lookup": lookup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handles", type=int, default=3, help="samples per FHE figure")
    parser.add_argument("--commits", type=int, default=20, help="commits per gateway figure")
    parser.add_argument("--state-dir", type=Path, default=None, help="reuse a running devnet")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-commit-") as tmp:
        state_dir = args.state_dir
        if state_dir is None:
            state_dir = Path(tmp) / "devnet"
            devnet_up(state_dir, free_port(), free_port(), deploy_demo=False)
        try:
            chain = commit_figures(state_dir, args.commits)
        finally:
            if args.state_dir is None:
                devnet_down(state_dir)
    fhe = fhe_figures(args.handles)

    add = fhe["add_uint64"]
    print(f"cpu cores: {os.cpu_count()}  samples: {args.handles} FHE, {args.commits} commits")
    print(f"ct64 Uint64: {fhe['ct64_bytes']:.0f} B   ct128 Uint64: {fhe['ct128_bytes']:.0f} B")
    rows = [
        ("FheUint64 add (reference)", add, ""),
        ("squash Uint8 / handle", fhe["squash_uint8"], "s"),
        ("squash Uint64 / handle", fhe["squash_uint64"], "s"),
        ("digests (ct64+ct128 keccak)", fhe["digests"], "s"),
        ("commit, one by one / handle", chain["commit_wall"], "s"),
        ("commit, pipelined / handle", chain["commit_wall_pipelined"], "s"),
        ("commit lookup (events) / handle", chain["commit_lookup"], "s"),
    ]
    print(f"{'step':34} {'median':>12} {'x Uint64 add':>13}")
    for name, seconds, _ in rows:
        print(f"{name:34} {seconds * 1000:10.3f}ms {seconds / add:13.4f}")
    print(f"{'commit gas / handle':34} {chain['commit_gas']:12.0f}")


if __name__ == "__main__":
    main()
