"""Our gateway contracts' ABI is the ABI of Zama's gateway (zama-ai/fhevm v0.14.0): declarations
with parameter names, event topics of the Python side, and revert data decoded by name (no chain:
the committed artifacts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from contract_handles import keccak
from eth_abi.abi import encode as abi_encode

from fhevm_dagster.abi import canonical_type, decode_revert, selector, signature
from fhevm_dagster.chain.calls import tx_status_of
from fhevm_dagster.chain.ciphertext_commits import ADD_TOPIC, CONSENSUS_TOPIC
from fhevm_dagster.devnet import decode_revert as devnet_decode_revert
from fhevm_dagster.devnet import load_abi, load_artifact
from fhevm_dagster.protocol.gateway_events import VERIFY_PROOF_REQUEST_TOPIC

#: The Zama gateway's declarations (zama-ai/fhevm v0.14.0, gateway-contracts/contracts/:
#: interfaces/IInputVerification.sol, interfaces/ICiphertextCommits.sol, shared/Structs.sol,
#: shared/GatewayConfigChecks.sol, interfaces/IGatewayConfig.sol; the ECDSA errors of OpenZeppelin
#: 5, which InputVerification uses), written out here: what a coprocessor or a KMS built on our
#: ABI expects the real gateway to have. Parameter names count too (web3 decodes by name).
REFERENCE_DECLARATIONS: dict[str, list[str]] = {
    "InputVerification": [
        "event VerifyProofRequest(uint256 indexed zkProofId, uint256 indexed contractChainId,"
        " address contractAddress, address userAddress, bytes ciphertextWithZKProof,"
        " bytes extraData)",
        "event VerifyProofResponseCall(uint256 indexed zkProofId, bytes32[] ctHandles,"
        " bytes signature, address coprocessorTxSender, bytes extraData)",
        "event VerifyProofResponse(uint256 indexed zkProofId, bytes32[] ctHandles,"
        " bytes[] signatures)",
        "event RejectProofResponseCall(uint256 indexed zkProofId, bytes extraData)",
        "event RejectProofResponse(uint256 indexed zkProofId)",
        "error CoprocessorAlreadyVerified(uint256 zkProofId, address txSender, address signer)",
        "error CoprocessorAlreadyRejected(uint256 zkProofId, address txSender, address signer)",
        "error VerifyProofNotRequested(uint256 zkProofId)",
        "error NotCoprocessorTxSender(address txSenderAddress)",
        "error NotCoprocessorSigner(address signerAddress)",
        "error CoprocessorSignerDoesNotMatchTxSender(address signerAddress,"
        " address txSenderAddress)",
        "error HostChainNotRegistered(uint256 chainId)",
        "error HostChainDisabled(uint256 chainId)",
        "error ECDSAInvalidSignature()",
        "error ECDSAInvalidSignatureLength(uint256 length)",
        "error ECDSAInvalidSignatureS(bytes32 s)",
        "function verifyProofRequest(uint256 contractChainId, address contractAddress,"
        " address userAddress, bytes ciphertextWithZKProof, bytes extraData)",
        "function verifyProofResponse(uint256 zkProofId, bytes32[] ctHandles, bytes signature,"
        " bytes extraData)",
        "function rejectProofResponse(uint256 zkProofId, bytes extraData)",
        "function isProofVerified(uint256 zkProofId) view returns (bool)",
        "function isProofRejected(uint256 zkProofId) view returns (bool)",
        "function getVerifyProofConsensusTxSenders(uint256 zkProofId) view returns (address[])",
        "function getRejectProofConsensusTxSenders(uint256 zkProofId) view returns (address[])",
        "function getVersion() pure returns (string)",
        "function eip712Domain() view returns (bytes1 fields, string name, string version,"
        " uint256 chainId, address verifyingContract, bytes32 salt, uint256[] extensions)",
    ],
    "CiphertextCommits": [
        "event AddCiphertextMaterial(bytes32 indexed ctHandle, uint256 keyId,"
        " bytes32 ciphertextDigest, bytes32 snsCiphertextDigest, address coprocessorTxSender)",
        "event AddCiphertextMaterialConsensus(bytes32 indexed ctHandle, uint256 keyId,"
        " bytes32 ciphertextDigest, bytes32 snsCiphertextDigest, address[] coprocessorTxSenders)",
        "error CoprocessorAlreadyAdded(bytes32 ctHandle, address txSender)",
        "error EmptyCtHandles()",
        "error CiphertextMaterialNotFound(bytes32 ctHandle)",
        "error NotCoprocessorTxSender(address txSenderAddress)",
        "error HostChainNotRegistered(uint256 chainId)",
        "error HostChainDisabled(uint256 chainId)",
        "function addCiphertextMaterial(bytes32 ctHandle, uint256 keyId, bytes32 ciphertextDigest,"
        " bytes32 snsCiphertextDigest)",
        "function isCiphertextMaterialAdded(bytes32 ctHandle) view returns (bool)",
        "function getCiphertextMaterials(bytes32[] ctHandles) view returns ((bytes32 ctHandle,"
        " uint256 keyId, bytes32 ciphertextDigest, address[] coprocessorTxSenderAddresses)[]"
        " ctMaterials)",
        "function getSnsCiphertextMaterials(bytes32[] ctHandles) view returns ((bytes32 ctHandle,"
        " uint256 keyId, bytes32 snsCiphertextDigest, address[] coprocessorTxSenderAddresses)[]"
        " snsCtMaterials)",
        "function getAddCiphertextMaterialConsensusTxSenders(bytes32 ctHandle) view"
        " returns (address[])",
        "function getVersion() pure returns (string)",
    ],
}


@dataclass(frozen=True)
class Param:
    """One parameter of a declaration: canonical type, name, indexed, tuple components."""

    type: str
    name: str
    indexed: bool = False
    components: tuple[Param, ...] = ()


@dataclass(frozen=True)
class Declaration:
    kind: str  # event | error | function
    name: str
    inputs: tuple[Param, ...]
    outputs: tuple[Param, ...] = ()
    mutability: str = ""

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(p.type for p in self.inputs)})"


def _split_top(text: str) -> list[str]:
    """`text` cut at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at `text[start]`."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced: {text!r}")


def _param(text: str) -> Param:
    if text.startswith("("):
        end = _closing(text, 0)
        components = tuple(_param(c) for c in _split_top(text[1:end]))
        suffix, *rest = text[end + 1 :].split(" ", 1)
        words = rest[0].split() if rest else []
        kind = f"({','.join(c.type for c in components)}){suffix}"
    else:
        kind, *words = text.split()
        components = ()
    indexed = "indexed" in words
    names = [w for w in words if w != "indexed"]
    return Param(kind, names[0] if names else "", indexed, components)


def _parse(declaration: str) -> Declaration:
    kind, rest = declaration.split(" ", 1)
    open_at = rest.index("(")
    name, end = rest[:open_at], _closing(rest, open_at)
    inputs = tuple(_param(p) for p in _split_top(rest[open_at + 1 : end]))
    tail = rest[end + 1 :].strip()
    outputs: tuple[Param, ...] = ()
    if "returns" in tail:
        tail, returns = tail.split("returns", 1)
        outputs = tuple(_param(p) for p in _split_top(returns.strip()[1:-1]))
    return Declaration(kind, name, inputs, outputs, tail.strip() or "nonpayable")


def _abi_param(param: dict[str, Any]) -> Param:
    return Param(
        canonical_type(param),
        str(param.get("name", "")),
        bool(param.get("indexed", False)),
        tuple(_abi_param(c) for c in param.get("components", [])),
    )


@pytest.mark.parametrize("contract", sorted(REFERENCE_DECLARATIONS))
def test_gateway_abi_is_the_reference_abi(contract: str) -> None:
    """Every reference error, event and function is in our ABI under the same selector or topic
    (keccak of the reference signature), with the same parameter names, indexing and outputs;
    the compiled contract dispatches each function and emits each event."""
    abi = load_abi(contract)
    assert abi == load_artifact(contract).abi  # the package copy is the build's
    code = load_artifact(contract).deployed_bytecode.lower()
    by_id: dict[tuple[str, bytes], dict[str, Any]] = {}
    for item in abi:
        if item["type"] in ("error", "function"):
            by_id[item["type"], selector(signature(item))] = item
        elif item["type"] == "event":
            by_id["event", keccak(signature(item).encode())] = item
    for text in REFERENCE_DECLARATIONS[contract]:
        ref = _parse(text)
        if ref.kind == "event":
            key = keccak(ref.signature.encode())  # topic0
        else:
            key = keccak(ref.signature.encode())[:4]  # selector
        found = by_id.get((ref.kind, key))
        assert found is not None, f"{contract} has no {ref.kind} {ref.signature} (0x{key.hex()})"
        item = found
        ours = Declaration(
            ref.kind,
            item["name"],
            tuple(_abi_param(p) for p in item["inputs"]),
            tuple(_abi_param(p) for p in item.get("outputs", [])),
            item.get("stateMutability", "nonpayable") if ref.kind == "function" else "nonpayable",
        )
        assert ours == ref, f"{contract}: {text}"
        if ref.kind == "function":
            assert key.hex() in code, f"{contract} does not dispatch {ref.signature}"
        if ref.kind == "event":
            assert key.hex() in code, f"{contract} never emits {ref.signature}"
    # The old local-only layouts are gone.
    names = {(i["type"], i.get("name")) for i in abi}
    assert ("function", "isCoprocessorVerified") not in names
    assert ("function", "hasCoprocessorAdded") not in names


def test_python_constants_are_the_reference_topics() -> None:
    """The hand-written topics of the Python side equal the keccak of the reference signatures."""
    ours = {
        "VerifyProofRequest(uint256,uint256,address,address,bytes,bytes)": (
            VERIFY_PROOF_REQUEST_TOPIC
        ),
        "AddCiphertextMaterial(bytes32,uint256,bytes32,bytes32,address)": ADD_TOPIC,
        "AddCiphertextMaterialConsensus(bytes32,uint256,bytes32,bytes32,address[])": (
            CONSENSUS_TOPIC
        ),
    }
    assert ours == {sig: keccak(sig.encode()) for sig in ours}


SIGNER, SENDER = "0x" + "ab" * 20, "0x" + "cd" * 20


@pytest.mark.parametrize(
    ("sig", "args", "status"),
    [
        (
            "CoprocessorAlreadyVerified(uint256,address,address)",
            (7, SENDER, SIGNER),
            "already_done",
        ),
        (
            "CoprocessorAlreadyRejected(uint256,address,address)",
            (7, SENDER, SIGNER),
            "already_done",
        ),
        ("CoprocessorAlreadyAdded(bytes32,address)", (b"\x11" * 32, SENDER), "already_done"),
        ("VerifyProofNotRequested(uint256)", (7,), "failed"),
        ("NotCoprocessorSigner(address)", (SIGNER,), "failed"),
        ("CoprocessorSignerDoesNotMatchTxSender(address,address)", (SIGNER, SENDER), "failed"),
        ("HostChainNotRegistered(uint256)", (12345,), "failed"),
        ("ECDSAInvalidSignatureLength(uint256)", (64,), "failed"),
        ("EmptyCtHandles()", (), "failed"),
        ("CiphertextMaterialNotFound(bytes32)", (b"\x11" * 32,), "failed"),
    ],
)
def test_gateway_reverts_decode(sig: str, args: tuple[Any, ...], status: str) -> None:
    """Reference revert data decodes by name, with arguments, in the gateway client and the devnet
    alike (one decoder); the "already done" ones count as done."""
    types = _split_top(sig[sig.index("(") + 1 : -1])
    data = keccak(sig.encode())[:4] + abi_encode(types, list(args))
    name, shown = decode_revert(data)
    assert name == sig[: sig.index("(")]
    assert tx_status_of(name) == status
    assert devnet_decode_revert(data) == (name, shown)
    for value in args:
        text = value.hex() if isinstance(value, bytes) else str(value)
        assert text.lower() in shown.lower()


def test_superseded_local_errors_do_not_count_as_done() -> None:
    """The two-argument `CoprocessorAlreadyVerified` of the old local gateway is not the
    reference's error: it decodes as unknown, which is a failure, never silently done."""
    data = keccak(b"CoprocessorAlreadyVerified(uint256,address)")[:4] + abi_encode(
        ["uint256", "address"], [7, SENDER]
    )
    name, _ = decode_revert(data)
    assert name == "UnknownError" and tx_status_of(name) == "failed"
