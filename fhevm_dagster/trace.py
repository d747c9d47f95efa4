"""Where a handle came from and how far it got: the data behind `fhevm-dagster trace <handle>`.

Pure (no Dagster, no web3): the store gives origin and stages, an object backend the upload stage,
a caller-supplied lookup the gateway's consensus, and an optional decryptor (the devnet's test
client key) the plaintexts, each compared with the plaintext oracle over the decrypted operands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak

from .compute.dag import HandleRef, operands_of
from .compute.oracle import OracleOperand, Plain
from .compute.oracle import evaluate as oracle_evaluate
from .objects import ObjectBackend, StoredObject, ct64_key, ct128_key
from .objects.attestation import Attestation, AttestationError
from .objects.backends import meta_get
from .objects.upload import ATTESTATION_KEY
from .protocol.opcodes import OperationError
from .protocol.types import FheType
from .store import Store

MAX_DEPTH = 32


def _hex(b: bytes | None) -> str:
    return "" if b is None else "0x" + b.hex()


def _type_name(value: int) -> str:
    try:
        return FheType(value).name
    except ValueError:
        return str(value)


@dataclass
class TraceNode:
    handle: bytes
    fhe_type: str
    origin: str  # computed | input | unknown
    stages: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    plaintext: int | None = None
    oracle: int | None = None
    oracle_note: str = ""
    operands: list[TraceNode | str] = field(default_factory=list)  # nodes, or scalar hex

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "handle": _hex(self.handle),
            "fhe_type": self.fhe_type,
            "origin": self.origin,
            "stages": self.stages,
            **({"source": self.source} if self.source else {}),
        }
        if self.plaintext is not None or self.oracle is not None or self.oracle_note:
            out["plaintext"] = self.plaintext
            out["oracle"] = self.oracle
            if self.oracle_note:
                out["oracle_note"] = self.oracle_note
        if self.operands:
            out["operands"] = [
                o.as_dict() if isinstance(o, TraceNode) else o for o in self.operands
            ]
        return out


def _uploaded(backend: ObjectBackend, handle: bytes) -> str:
    states = []
    for key in (ct64_key(handle), ct128_key(handle)):
        obj: StoredObject | None = backend.get(key)
        if obj is None:
            states.append(f"{key}: absent")
            continue
        try:
            att = Attestation.from_json(meta_get(obj.metadata, ATTESTATION_KEY) or "")
            att.verify(handle)
            want = att.ciphertext_digest if key.startswith("ct64/") else att.sns_ciphertext_digest
            ok = bytes(keccak(obj.body)) == want
            states.append(f"{key}: {'attested' if ok else 'bytes differ from attestation'}")
        except AttestationError as exc:
            states.append(f"{key}: attestation rejected ({exc})")
    if all(s.endswith(": attested") for s in states):
        return "yes"
    return "; ".join(states)


def trace(
    store: Store,
    handle: bytes,
    *,
    backend: ObjectBackend | None = None,
    consensus: Callable[[bytes], str] | None = None,
    decrypt: Callable[[bytes], int] | None = None,
    depth: int = 0,
) -> TraceNode:
    """The origin tree of `handle` (operands recursively to inputs) with its stages."""
    ct = store.get_ciphertexts([handle]).get(handle)
    comps = store.computations_by_output([handle])
    comp = comps[0] if comps else None
    origin = "computed" if comp is not None else (ct.origin if ct is not None else "unknown")
    node = TraceNode(handle, _type_name(handle[30]), origin)
    if comp is not None:
        node.source = {
            "chain_id": comp.chain_id,
            "range": comp.range_key,
            "block": comp.block_number,
            "tx": _hex(comp.tx_hash),
            "log_index": comp.log_index,
            "operator": comp.operator.name,
            "caller": comp.caller,
        }
        node.stages["evaluated"] = comp.status.value + (
            f" ({comp.error_message})" if comp.error_message else ""
        )
    node.stages["stored"] = "yes" if ct is not None else "no"
    node.stages["squashed"] = "yes" if store.get_ciphertexts128([handle]) else "no"
    digest = store.get_digests([handle]).get(handle)
    node.stages["digested"] = (
        f"ct64 {_hex(digest.ciphertext_digest)}, ct128 {_hex(digest.sns_ciphertext_digest)}"
        if digest
        else "no"
    )
    commit = store.get_commit_statuses([handle]).get(handle)
    node.stages["committed"] = (
        f"{commit.status.value} {_hex(commit.tx_hash)}".strip() if commit else "no"
    )
    if backend is not None:
        node.stages["uploaded"] = _uploaded(backend, handle)
    if consensus is not None:
        node.stages["consensus"] = consensus(handle)
    if decrypt is not None and ct is not None:
        node.plaintext = decrypt(ct.ciphertext)

    if comp is None or depth >= MAX_DEPTH:
        return node
    operands: list[OracleOperand] = []
    for operand in operands_of(comp):
        if isinstance(operand, HandleRef):
            child = trace(
                store,
                operand.handle,
                backend=backend,
                consensus=None,  # consensus is about allowed results: asked for the root only
                decrypt=decrypt,
                depth=depth + 1,
            )
            node.operands.append(child)
            # An intermediate result is not stored: the oracle goes on from its own oracle value.
            known = child.plaintext if child.plaintext is not None else child.oracle
            operands.append(Plain(known, FheType(operand.handle[30])))
        else:
            node.operands.append("scalar " + _hex(operand))
            operands.append(operand)
    if decrypt is not None:
        try:
            node.oracle = oracle_evaluate(comp.operator, operands, FheType(comp.fhe_type)).value
            if node.oracle is None:
                node.oracle_note = "not predictable (random, or an operand is unknown)"
        except OperationError as exc:
            node.oracle_note = str(exc)
    return node
