"""Ciphertext bytes are the same in every process: what gateway consensus needs (SPEC §7).

Before TFHE-rs was built with `experimental-force_fft_algo_dif4`, each process measured its own
FFT plan and the same Uint64 add then scalar mul gave a different ct64 digest in each fresh
process (the plaintexts were right). Each process here loads the keys itself, runs the range
pipeline's scheduler step on the same stored operands, squashes, and prints the digests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhevm_dagster.compute.keys import KeySet
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource

pytestmark = pytest.mark.fhe
WORKER = """
import json, sys
from fhevm_dagster.compute.evaluate import Ct64, FheBackend
from fhevm_dagster.compute.sns import squash_one
from fhevm_dagster.protocol.digests import ciphertext_digest, sns_ciphertext_digest
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.fhe import FheResource

key_dir, a_hex, b_hex = sys.argv[1:4]
engine = FheResource(key_dir=key_dir).engine()
step = FheBackend(engine)
a, b = Ct64(bytes.fromhex(a_hex)), Ct64(bytes.fromhex(b_hex))
total = step.execute(Operator.Add, [a, b], FheType.Uint64)
scaled = step.execute(Operator.Mul, [total, (3).to_bytes(32, "big")], FheType.Uint64)
ct128 = squash_one(engine, scaled.data)
print(json.dumps({
    "add": ciphertext_digest(total.data).hex(),
    "mul": ciphertext_digest(scaled.data).hex(),
    "ct128": sns_ciphertext_digest(ct128).hex(),
    "mul_ct64": scaled.data.hex(),
}))
"""


def test_two_fresh_processes_give_identical_bytes(tmp_path: Path) -> None:
    keys: KeySet = FheResource(key_dir=str(DEVNET_TEST_KEYS)).key_set(with_client_key=True)
    assert keys.client_key is not None
    engine = keys.engine()
    a = engine.compress(keys.client_key.encrypt(1_000, 5)).hex()
    b = engine.compress(keys.client_key.encrypt(234, 5)).hex()
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", WORKER, str(DEVNET_TEST_KEYS), a, b],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1], [{k: r[k] for k in ("add", "mul", "ct128")} for r in runs]
    scaled = engine.decompress(bytes.fromhex(runs[0]["mul_ct64"]))
    assert keys.client_key.decrypt(scaled) == (1_000 + 234) * 3
