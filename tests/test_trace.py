"""`fhevm-dagster trace`: origin tree, stages, and plaintexts next to the oracle (real FHE)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from eth_account import Account

from fhevm_dagster.cli import main
from fhevm_dagster.objects import FileBackend, HandleObjects, upload_handles
from fhevm_dagster.protocol.computations import ComputationRow
from fhevm_dagster.protocol.digests import material
from fhevm_dagster.protocol.opcodes import Operator
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.fhe import FheResource
from fhevm_dagster.store import CommitState, Store
from fhevm_dagster.store.records import Ciphertext, CommitStatus
from fhevm_dagster.trace import trace

pytestmark = pytest.mark.fhe
RANGE = "000000000000-000000000099"


def handle(fhe_type: int) -> bytes:
    return os.urandom(21) + b"\xff" + (31337).to_bytes(8, "big") + bytes([fhe_type, 0])


def test_trace_add_of_two_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = FheResource().key_set(with_client_key=True)
    assert keys.client_key is not None
    engine = keys.engine()
    url = f"sqlite:///{tmp_path}/store.sqlite"
    store = Store.open(url)
    a, b, out = handle(FheType.Uint8), handle(FheType.Uint8), handle(FheType.Uint8)
    ct_a = engine.compress(keys.client_key.encrypt(30, FheType.Uint8))
    ct_b = engine.compress(keys.client_key.encrypt(12, FheType.Uint8))
    result = engine.execute(
        int(Operator.Add),
        [engine.decompress(ct_a), engine.decompress(ct_b)],
        int(FheType.Uint8),
        rerandomize=True,
    )
    ct_out = engine.compress(result)
    store.put_ciphertexts(
        [
            Ciphertext(a, ct_a, FheType.Uint8, 0, "input"),
            Ciphertext(b, ct_b, FheType.Uint8, 0, "input"),
            Ciphertext(out, ct_out, FheType.Uint8, 0, "computed"),
        ]
    )
    tx = os.urandom(32)
    row = ComputationRow(
        out, tx, 7, b"\x01" * 32, 0, 3, 0, (a, b), False, True, 2, "0x" + "11" * 20
    )
    store.write_range(31337, RANGE, [row])
    store.mark_done([row.key])
    ct128 = engine.squash(engine.decompress(ct_out))
    store.put_ciphertexts128([(out, ct128)])
    digests = material(out, 0, ct_out, ct128)
    store.put_digests([digests])
    store.set_commit_status(CommitStatus(out, CommitState.CONFIRMED, tx, None))
    objects = FileBackend(tmp_path / "objects")
    upload_handles(
        objects,
        [HandleObjects(digests, ct_out, ct128)],
        Account.from_key("0x" + "11" * 32),
    )

    node = trace(
        store,
        out,
        backend=objects,
        decrypt=lambda ct: int(keys.client_key.decrypt(engine.decompress(ct))),  # type: ignore[union-attr]
    )
    assert node.origin == "computed" and node.source["operator"] == "Add"
    assert node.source["block"] == 7 and node.source["tx"] == "0x" + tx.hex()
    assert node.stages["evaluated"] == "done" and node.stages["squashed"] == "yes"
    assert node.stages["committed"].startswith("confirmed") and node.stages["uploaded"] == "yes"
    assert (node.plaintext, node.oracle) == (42, 42)
    kids = [k for k in node.operands if not isinstance(k, str)]
    assert [(k.origin, k.plaintext, k.stages["squashed"]) for k in kids] == [
        ("input", 30, "no"),
        ("input", 12, "no"),
    ]

    # The CLI: same tree as JSON; an operand the store never saw is reported, exit 3.
    obj_url = f"file://{tmp_path}/objects"
    common = ["--database-url", url, "--object-store", obj_url, "--no-gateway", "--json"]
    capsys.readouterr()
    assert main(["trace", "0x" + out.hex(), "--decrypt", *common]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert (tree["plaintext"], tree["oracle"], tree["stages"]["uploaded"]) == (42, 42, "yes")
    assert [o["plaintext"] for o in tree["operands"]] == [30, 12]
    assert main(["trace", "0x" + handle(2).hex(), *common]) == 3
    store.dispose()
