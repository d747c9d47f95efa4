"""Byte-for-byte agreement with Zama's reference coprocessor (zama-ai/fhevm v0.14.0).

`tests/fixtures/reference_vectors/vectors.json` was written by `tools/reference-vectors`, a
program that calls the reference crates' own functions (perform_fhe_operation, compress and
decompress, the scheduler's re-randomization, extract_ct_list, squash) on the committed test keys.
Here the same operand ciphertexts go through this project's code paths (the range pipeline's
scheduler step, input verification, squashing) and every ct64 and ct128 digest must be equal:
a coprocessor whose bytes differ is outvoted on every handle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tiers import FULL

from fhevm_dagster.compute.evaluate import Ct64, FheBackend
from fhevm_dagster.compute.inputs import RejectedInput, VerifiedInput, verify_input
from fhevm_dagster.compute.keys import KeySet
from fhevm_dagster.compute.sns import squash_one
from fhevm_dagster.compute.vectors import Vectors
from fhevm_dagster.protocol.digests import ciphertext_digest, sns_ciphertext_digest
from fhevm_dagster.protocol.opcodes import OPERATORS, Operator, OpKind, ScalarRule
from fhevm_dagster.protocol.types import FheType
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource

ROOT = Path(__file__).resolve().parents[1]
VECTORS = Vectors(ROOT / "tests" / "fixtures" / "reference_vectors" / "vectors.json")

#: Operators whose cost grows with the square of the width they work at (minutes at 128 bits and
#: up; MulDiv works at twice its type's width): CI's tier checks them up to 64 working bits.
QUADRATIC = {Operator.Mul, Operator.Div, Operator.Rem, Operator.MulDiv, Operator.Shl,
             Operator.Shr, Operator.Rotl, Operator.Rotr}  # fmt: skip
#: The types a case id names, and those over 16 bits, where one case costs seconds rather than
#: a fraction of one.
TYPE_NAME = re.compile(r"Bool|Uint\d+")
WIDE = re.compile(r"Uint(32|64|128|160|256)")


def _bits(case_id: str) -> list[int]:
    return [FheType[name].bits for name in TYPE_NAME.findall(case_id)]


def _affordable(case: dict[str, Any]) -> bool:
    if case["opcode"] not in QUADRATIC:
        return True
    return max(_bits(case["id"])) * (2 if case["opcode"] == Operator.MulDiv else 1) <= 64


def _shape(case_id: str) -> str:
    return WIDE.sub("W", case_id)


SHAPES = sorted({_shape(c["id"]) for c in VECTORS["operations"] if WIDE.search(c["id"])})


def in_this_run(case: dict[str, Any]) -> bool:
    """`make test-full` (`FHEVM_DAGSTER_FULL=1`) checks every vector. CI's tier checks every case
    up to 16 bits, where every operator, form and scalar conversion of the binding's dispatch
    runs (it is one generic body per type), and of the cases that differ only in their types over
    16 bits (`Add-Uint32-enc` … `Add-Uint128-enc`) one, the types taking turns through the shapes,
    so every operator and form is checked over 16 bits too and every type through a share of
    them: 188 of 351 cases, half the time."""
    if FULL:
        return True
    if not _affordable(case):
        return False
    if not WIDE.search(case["id"]):
        return True
    shape = _shape(case["id"])
    siblings = sorted(
        (c["id"] for c in VECTORS["operations"] if _affordable(c) and _shape(c["id"]) == shape),
        key=_bits,
    )
    return siblings[SHAPES.index(shape) % len(siblings)] == case["id"]


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return FheResource(key_dir=str(DEVNET_TEST_KEYS)).key_set(with_client_key=True)


@pytest.fixture(scope="module")
def backend(keys: KeySet) -> FheBackend:
    return FheBackend(keys.engine())


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


def test_server_key_is_the_reference_programs() -> None:
    """Same seed, same derivation: without the same server key no byte could match."""
    meta = json.loads((DEVNET_TEST_KEYS / "keys.json").read_text())
    assert VECTORS["server_key_seed"] == meta["server_key_seed"]


def test_every_operator_and_type_of_the_table_is_covered() -> None:
    """Every (operator, operand type) SPEC §4 allows has a vector, in each allowed form."""
    seen: set[tuple[int, int, bool]] = set()
    operands = VECTORS["operands"]
    for case in VECTORS["operations"]:
        typed = case["operands"][1:2] if case["opcode"] == Operator.IfThenElse else case["operands"]
        first = typed[0] if typed else {}  # IfThenElse: the branch type, not the control's
        lhs = operands[first["ct"]]["fhe_type"] if "ct" in first else case["result_type"]
        scalar = len(case["operands"]) > 1 and "scalar" in case["operands"][1]
        seen.add((case["opcode"], lhs, scalar))
    forms = {
        ScalarRule.NEVER: (False,),
        ScalarRule.OPTIONAL: (False, True),
        ScalarRule.ONLY: (True,),
        ScalarRule.PARTIAL: (False, True),
    }
    for op, spec in OPERATORS.items():
        if spec.kind in (OpKind.INPUT, OpKind.CAST, OpKind.TRIVIAL, OpKind.RAND,
                         OpKind.RAND_BOUNDED, OpKind.SUM, OpKind.IS_IN):  # fmt: skip
            types = {t for (o, t, _) in seen if o == int(op)}
            if spec.kind is not OpKind.INPUT:
                missing = (spec.out_types or spec.in_types) - {FheType(t) for t in types}
                if spec.kind is OpKind.CAST:
                    missing = spec.in_types - {FheType(t) for t in types}
                assert not missing, f"{op.name}: no vector for {sorted(missing)}"
            continue
        for t in spec.in_types:
            for scalar in forms[spec.scalar]:
                assert (int(op), int(t), scalar) in seen, f"{op.name} {t.name} scalar={scalar}"


@pytest.mark.parametrize(
    "case", [c for c in VECTORS["operations"] if in_this_run(c)], ids=lambda c: c["id"]
)
@pytest.mark.fhe
def test_operation_bytes_equal_the_reference(
    backend: FheBackend, keys: KeySet, case: dict[str, Any]
) -> None:
    """Every operator of SPEC §4 on every type: our bytes, the reference's plaintext, the oracle."""
    result = VECTORS.execute(backend, case, VECTORS.stored_operands())
    assert keys.client_key is not None
    plain = keys.client_key.decrypt(backend.engine.decompress(result.data))
    assert str(plain) == case["plaintext"], "plaintext differs from the reference's"
    expected = VECTORS.oracle(case)
    assert expected is None or plain == expected, "plaintext differs from the oracle's"
    assert hex0x(ciphertext_digest(result.data)) == case["ct64_keccak"], "ct64 bytes differ"


@pytest.fixture(scope="module")
def chain_values(backend: FheBackend) -> dict[str, Ct64]:
    """Every chain step's result (`<chain id>.<step>`), each consuming earlier ones as ct64."""
    return VECTORS.chain_results(backend)


@pytest.mark.fhe
@pytest.mark.parametrize("chain", VECTORS["chains"], ids=lambda c: c["id"])
def test_transfer_chains_equal_the_reference(
    keys: KeySet, chain_values: dict[str, Ct64], chain: dict[str, Any]
) -> None:
    """Dependent operations with the compress round trip between them (SPEC §7)."""
    assert keys.client_key is not None
    engine = keys.engine()
    for step in chain["steps"]:
        value = chain_values[f"{chain['id']}.{step['result']}"]
        plain = keys.client_key.decrypt(engine.decompress(value.data))
        assert str(plain) == step["plaintext"], f"step {step['result']}: plaintext differs"
        got = hex0x(ciphertext_digest(value.data))
        assert got == step["ct64_keccak"], f"step {step['result']}: ct64 bytes differ"


@pytest.mark.fhe
@pytest.mark.parametrize("case", VECTORS["inputs"], ids=lambda c: Path(c["fixture"]).stem)
def test_input_lists_equal_the_reference(
    keys: KeySet, backend: FheBackend, case: dict[str, Any]
) -> None:
    data = (ROOT / case["fixture"]).read_bytes()
    meta = json.loads((ROOT / case["fixture"]).with_suffix(".json").read_text())
    result = verify_input(
        backend.engine,
        data,
        contract=meta["contract"],
        user=meta["user"],
        acl=meta["acl"],
        host_chain_id=meta["chain_id"],
    )
    if "rejected" in case:
        assert isinstance(result, RejectedInput), result
        return
    assert isinstance(result, VerifiedInput), result
    assert [hex0x(h) for h in result.handles] == case["handles"]
    assert list(result.fhe_types) == case["fhe_types"]
    assert [hex0x(ciphertext_digest(c)) for c in result.ciphertexts] == case["ct64_keccak"]
    assert keys.client_key is not None
    plain = [str(keys.client_key.decrypt(backend.engine.decompress(c))) for c in result.ciphertexts]
    assert plain == case["plaintexts"]


@pytest.mark.fhe
@pytest.mark.parametrize("case", VECTORS["squash"], ids=lambda c: c["operand"])
def test_squashed_ct128_equals_the_reference(
    keys: KeySet, chain_values: dict[str, Ct64], case: dict[str, Any]
) -> None:
    engine = keys.engine()
    known = VECTORS["operands"].get(case["operand"])
    ct64 = bytes.fromhex(known["ct64"]) if known else chain_values[case["operand"]].data
    assert hex0x(ciphertext_digest(ct64)) == case["ct64_keccak"]
    ct128 = squash_one(engine, ct64)
    assert keys.client_key is not None
    plain = keys.client_key.decrypt_squashed(ct128, case["fhe_type"])
    assert str(plain) == case["plaintext"]
    assert hex0x(sns_ciphertext_digest(ct128)) == case["ct128_keccak"], "ct128 bytes differ"
