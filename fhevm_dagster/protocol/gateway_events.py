"""Decoding of the gateway `VerifyProofRequest` event (SPEC §6). Pure: no web3.

A log that is not a VerifyProofRequest is skipped by the caller; one whose topics or data do not
decode is reported as malformed with the reason, never fatal for the range.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from .events import RawLog

VERIFY_PROOF_REQUEST_SIGNATURE = "VerifyProofRequest(uint256,uint256,address,address,bytes,bytes)"
VERIFY_PROOF_REQUEST_TOPIC = keccak(text=VERIFY_PROOF_REQUEST_SIGNATURE)


@dataclass(frozen=True, slots=True)
class VerifyProofRequest:
    """One user request to verify an encrypted input list, where it was emitted."""

    zk_proof_id: int
    contract_chain_id: int
    contract_address: str
    user_address: str
    ciphertext_with_proof: bytes
    extra_data: bytes
    log: RawLog


@dataclass(frozen=True, slots=True)
class MalformedRequest:
    log: RawLog
    error: str


@dataclass(frozen=True, slots=True)
class RequestReport:
    requests: list[VerifyProofRequest] = field(default_factory=list)
    malformed: list[MalformedRequest] = field(default_factory=list)
    other: int = 0  # logs of other events (responses, rejections) of the contract


def decode_request(log: RawLog) -> VerifyProofRequest:
    """Decode one VerifyProofRequest log; raises ValueError when it is not a well-formed one."""
    if len(log.topics) != 3 or log.topics[0] != VERIFY_PROOF_REQUEST_TOPIC:
        raise ValueError("not a VerifyProofRequest log (topic0 or topic count)")
    try:
        contract, user, ciphertext, extra = abi_decode(
            ["address", "address", "bytes", "bytes"], log.data
        )
    except Exception as exc:
        raise ValueError(f"VerifyProofRequest data does not decode: {exc}") from exc
    return VerifyProofRequest(
        zk_proof_id=int.from_bytes(log.topics[1], "big"),
        contract_chain_id=int.from_bytes(log.topics[2], "big"),
        contract_address=to_checksum_address(contract),
        user_address=to_checksum_address(user),
        ciphertext_with_proof=bytes(ciphertext),
        extra_data=bytes(extra),
        log=log,
    )


def decode_requests(logs: Iterable[RawLog], input_verification: str) -> RequestReport:
    """The VerifyProofRequests among `logs` of the InputVerification contract, in log order."""
    report = RequestReport()
    other = 0
    want = input_verification.lower()
    for log in logs:
        if log.address.lower() != want or not log.topics:
            other += 1
            continue
        if log.topics[0] != VERIFY_PROOF_REQUEST_TOPIC:
            other += 1
            continue
        try:
            report.requests.append(decode_request(log))
        except ValueError as exc:
            report.malformed.append(MalformedRequest(log, str(exc)))
    return RequestReport(report.requests, report.malformed, other)
