"""The reference coprocessor's golden vectors (written by `tools/reference-vectors`), read as this
project's backends take them: shared by the byte-for-byte tests and the GPU check, which run the
same cases on other engines.

A case's operands are ciphertext ids (`{"ct": id}`, an operand's ct64 or an earlier chain step's
result) or the exact scalar bytes the reference was given (`{"scalar": hex}`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from fhevm_dagster.compute.evaluate import Backend, Ct64
from fhevm_dagster.compute.oracle import OracleOperand, Plain, evaluate
from fhevm_dagster.protocol.opcodes import OPERATORS, Operator, OpKind
from fhevm_dagster.protocol.types import FheType

T = TypeVar("T")
Case = dict[str, Any]


def engine_operands(opcode: int, operands: list[T]) -> list[T]:
    """Our engine takes the result type from the handle, not as a trailing type-byte operand."""
    kind = OPERATORS[Operator(opcode)].kind
    if kind in (OpKind.CAST, OpKind.TRIVIAL, OpKind.RAND, OpKind.RAND_BOUNDED):
        return operands[:-1]
    return operands


class Vectors:
    """One vectors file: operands, operations, chains, input lists and squash cases."""

    def __init__(self, path: Path) -> None:
        self.data: dict[str, Any] = json.loads(path.read_text())

    def __getitem__(self, section: str) -> Any:
        return self.data[section]

    def stored_operands(self) -> dict[str, Ct64]:
        return {k: Ct64(bytes.fromhex(v["ct64"])) for k, v in self.data["operands"].items()}

    def operands(self, case: Case, values: dict[str, Ct64]) -> list[Ct64 | bytes]:
        """The case's operands as the engine takes them, ciphertexts looked up in `values`."""
        raw: list[Ct64 | bytes] = [
            values[o["ct"]] if "ct" in o else bytes.fromhex(o["scalar"]) for o in case["operands"]
        ]
        return engine_operands(case["opcode"], raw)

    def oracle(self, case: Case) -> int | None:
        """The plaintext oracle over the case's operand plaintexts (None for Rand)."""
        specs = self.data["operands"]
        plain: list[OracleOperand] = [
            Plain(int(specs[o["ct"]]["plaintext"]), FheType(specs[o["ct"]]["fhe_type"]))
            if "ct" in o
            else bytes.fromhex(o["scalar"])
            for o in case["operands"]
        ]
        operands = engine_operands(case["opcode"], plain)
        return evaluate(Operator(case["opcode"]), operands, FheType(case["result_type"])).value

    def execute(self, backend: Backend[Ct64], case: Case, values: dict[str, Ct64]) -> Ct64:
        return backend.execute(
            Operator(case["opcode"]), self.operands(case, values), FheType(case["result_type"])
        )

    def chain_results(self, backend: Backend[Ct64]) -> dict[str, Ct64]:
        """Every chain step's result (`<chain id>.<step>`), each consuming earlier ones as ct64."""
        out: dict[str, Ct64] = {}
        for chain in self.data["chains"]:
            values = self.stored_operands()
            for step in chain["steps"]:
                values[step["result"]] = self.execute(backend, step, values)
                out[f"{chain['id']}.{step['result']}"] = values[step["result"]]
        return out
