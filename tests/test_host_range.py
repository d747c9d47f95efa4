"""Materialising host_events + fhe_computations for a real devnet range (SQLite and PostgreSQL).

The OpsExerciser sweep emits every operator of host-contracts 0.10.0; each computation row must
decode exactly: its result handle is recomputed from the dependencies per SPEC §2, and its operand
types must fit the §4 table (the chain accepted them, so the table must too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import DagsterInstance, instance_for_test, materialize
from host_defs import HOST, HOST_RANGES, host_ingest, host_resource, node

from fhevm_dagster.devnet import DevnetInfo, TxRecord, run_operator_sweep
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.protocol import handles as H
from fhevm_dagster.protocol.computations import ComputationRow
from fhevm_dagster.protocol.opcodes import (
    HOST_OPERATORS,
    OPERATORS,
    Operator,
    OpKind,
    validate_operation,
)
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Store


@pytest.fixture(scope="module")
def sweep(devnet: DevnetInfo) -> tuple[BlockRange, list[TxRecord]]:
    records = run_operator_sweep(devnet)
    return BlockRange(
        min(r.block_number for r in records), max(r.block_number for r in records)
    ), records


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        yield inst


def recompute(row: ComputationRow, acl: str, chain_id: int) -> bytes:
    """The result handle per SPEC §2 from the row's opcode and dependencies."""
    op, d = row.opcode, row.dependencies
    kind = OPERATORS[Operator(op)].kind
    if kind is OpKind.BINARY:
        return H.binary_op_handle(op, d[0], d[1], int(row.is_scalar), row.fhe_type, acl, chain_id)
    if kind is OpKind.UNARY:
        return H.unary_op_handle(op, d[0], acl, chain_id)
    if kind is OpKind.TERNARY:
        return H.if_then_else_handle(op, d[0], d[1], d[2], acl, chain_id)
    if kind is OpKind.CAST:
        return H.cast_handle(op, d[0], d[1][0], acl, chain_id)
    if kind is OpKind.TRIVIAL:
        return H.trivial_encrypt_handle(op, int.from_bytes(d[0], "big"), d[1][0], acl, chain_id)
    if kind is OpKind.RAND:
        return H.rand_handle(op, d[1][0], d[0], chain_id)
    if kind is OpKind.RAND_BOUNDED:
        return H.rand_bounded_handle(op, int.from_bytes(d[1], "big"), d[2][0], d[0], chain_id)
    raise AssertionError(f"unexpected operator {op}")


def allowed_by_block(events: pd.DataFrame) -> dict[int, set[bytes]]:
    """Handles named by ACL events, per block, read back from the events table."""
    out: dict[int, set[bytes]] = {}
    for e in events.itertuples(index=False):
        detail = json.loads(str(e.detail))
        named = {
            "Allowed": [detail.get("handle")],
            "AllowedForDecryption": detail.get("handlesList"),
        }
        for h in named.get(str(e.event)) or []:
            out.setdefault(int(e.block_number), set()).add(bytes.fromhex(h[2:]))
    return out


def run_range(
    instance: DagsterInstance, info: DevnetInfo, rng: BlockRange, url: str, parquet: Path
) -> dict[str, Any]:
    instance.add_dynamic_partitions(HOST_RANGES, [rng.key])
    result = materialize(
        [host_ingest],
        partition_key=rng.key,
        instance=instance,
        resources={
            **host_resource(info, 7),
            "store": StoreResource(database_url=url),
            "parquet_io_manager": ParquetIOManager(base_dir=str(parquet)),
        },
    )
    assert result.success
    mats = {
        m.asset_key.path[-1]: m.metadata
        for m in result.asset_materializations_for_node(node("host_events"))
    }
    return mats


def test_materialise_range_twice_is_identical(
    devnet: DevnetInfo,
    sweep: tuple[BlockRange, list[TxRecord]],
    instance: DagsterInstance,
    store_url: str,
    tmp_path: Path,
) -> None:
    rng, records = sweep
    meta = run_range(instance, devnet, rng, store_url, tmp_path)
    store = Store.open(store_url)
    try:
        first = store.snapshot()
        rows = store.computations_of_range(rng.key, chain_id=devnet.host_chain_id)
        events = pd.read_parquet(tmp_path / HOST / "host_events" / f"{rng.key}.parquet")
        comps = pd.read_parquet(tmp_path / HOST / "fhe_computations" / f"{rng.key}.parquet")

        assert meta["host_events"]["malformed"].value == 0
        assert meta["fhe_computations"]["computations"].value == len(rows) == len(comps)
        assert {r.tx_hash.hex() for r in rows} <= {r.tx_hash.removeprefix("0x") for r in records}
        assert {r.opcode for r in rows} == set(HOST_OPERATORS) - {Operator.VerifyInput}
        for row in rows:
            assert recompute(row, devnet.acl_address, devnet.host_chain_id) == row.output_handle
            validate_operation(row.opcode, row.dependencies, row.is_scalar, row.fhe_type)
        allowed = set(store.allowed_handles_of_range(rng.key, chain_id=devnet.host_chain_id))
        by_block = allowed_by_block(events)
        assert allowed == set().union(*by_block.values())
        for r in rows:
            assert r.is_allowed == (r.output_handle in by_block.get(r.block_number, set()))
        assert sum(r.is_allowed for r in rows) > 0
        chain = store.get_chain(devnet.host_chain_id)
        assert chain is not None and chain.key_id == 7
        processed = store.get_range(devnet.host_chain_id, rng.key)
        assert processed is not None and processed.processed_hash is not None
        assert set(events["status"]) <= {"decoded", "unknown"}

        meta2 = run_range(instance, devnet, rng, store_url, tmp_path)
        assert meta2["fhe_computations"]["store_inserted"].value == 0
        assert meta2["fhe_computations"]["store_unchanged"].value == len(rows)
        assert store.snapshot() == first
        pd.testing.assert_frame_equal(
            events, pd.read_parquet(tmp_path / HOST / "host_events" / f"{rng.key}.parquet")
        )
    finally:
        store.dispose()
