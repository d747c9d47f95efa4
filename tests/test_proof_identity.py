"""A proof request is (gateway, zkProofId, transaction): ids repeat after a gateway reset or a
reorg, and each request is stored, decided and answered on its own (#11, point 6)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from eth_account import Account

from fhevm_dagster.chain.calls import ContractCall, TxOutcome, TxStatus
from fhevm_dagster.chain.config import GatewayConfig
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.pipeline.gateway import answer_requests
from fhevm_dagster.pipeline.range_job import RangeJob
from fhevm_dagster.store import ProofRequest, ProofStatus, Store

GATEWAY = GatewayConfig(10901, "http://127.0.0.1:1", "0x" + "ee" * 20, "0x" + "ff" * 20)


def request(zk_proof_id: int, block: int, tx: int) -> ProofRequest:
    return ProofRequest(
        zk_proof_id, 10901, 31337, "0x" + "cc" * 20, "0x" + "dd" * 20, b"zk", b"", block,
        bytes([tx]) * 32,
    )  # fmt: skip


class RecordingSender:
    """Stands in for the gateway sender: every call is mined."""

    address = "0x" + "ab" * 20

    def __init__(self) -> None:
        self.sent: list[ContractCall] = []

    def send_many(self, calls: Sequence[ContractCall]) -> list[TxOutcome]:
        first = len(self.sent)
        self.sent.extend(calls)
        return [
            TxOutcome(TxStatus.CONFIRMED, bytes([0xA0 + first + i]) * 32) for i in range(len(calls))
        ]


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    st = Store.open(store_url)
    yield st
    st.dispose()


def test_same_id_from_two_transactions_is_two_requests(store: Store) -> None:
    """Before: the second request of id 1 was dropped as a duplicate of the first, so it was
    never verified nor answered."""
    old, new = request(1, 3, 1), request(1, 7, 2)
    assert store.put_proof_request(old) and store.put_proof_request(new)
    assert not store.put_proof_request(new)  # the same request again is still a duplicate
    keys = store.proof_request_keys(10901, 0, 9)
    assert keys == [old.key, new.key]
    assert [r.tx_hash for r in store.proof_requests_with_id(10901, 1)] == [old.tx_hash, new.tx_hash]
    store.set_proof_status(new.key, ProofStatus.REJECTED, "3: bad proof")
    assert store.get_proof_requests(keys)[old.key].status is ProofStatus.PENDING
    store.set_proof_status(old.key, ProofStatus.REJECTED, "3: bad proof")

    sender = RecordingSender()
    job = RangeJob(
        BlockRange(0, 9), store, gateway=GATEWAY, sender=lambda: sender, signer=Account.create
    )
    report = answer_requests(job)
    df, figures = report.table, report.figures
    assert df is not None
    assert len(sender.sent) == 2 and figures["confirmed"] == 2
    assert list(df["request_tx_hash"]) == ["0x" + "01" * 32, "0x" + "02" * 32]
    answered = store.get_proof_requests(keys)
    assert {r.response_status for r in answered.values()} == {TxStatus.CONFIRMED}
    assert answered[old.key].response_tx_hash != answered[new.key].response_tx_hash


def test_ids_order_numerically_within_a_block(store: Store) -> None:
    for i in (10, 9, 100):
        store.put_proof_request(request(i, 5, i))
    assert [k.zk_proof_id for k in store.proof_request_keys(10901, 5, 5)] == [9, 10, 100]
