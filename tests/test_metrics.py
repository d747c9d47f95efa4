"""The Prometheus endpoint: a real HTTP scrape of figures read from a store and a Dagster instance.

Runs are separate processes, so the exporter derives everything on scrape; this test writes the
store and the instance as runs would, then scrapes and reads the numbers back.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.request
from pathlib import Path

import pytest
from dagster import AssetKey, AssetMaterialization, instance_for_test
from prometheus_client.parser import text_string_to_metric_families

from fhevm_dagster.chain.config import GatewayConfig, HostChainConfig
from fhevm_dagster.devnet import free_port
from fhevm_dagster.metrics_cli import make_inputs, serve
from fhevm_dagster.protocol.computations import ComputationRow
from fhevm_dagster.store import CommitState, Digest, Store
from fhevm_dagster.store.records import CommitStatus

pytestmark = pytest.mark.fast
RANGE = "000000000000-000000000099"
HOST = HostChainConfig(31337, "", "0x" + "aa" * 20, "0x" + "bb" * 20, 0)


def row(tx: bytes) -> ComputationRow:
    return ComputationRow(
        os.urandom(32),
        tx,
        5,
        b"\x01" * 32,
        0,
        0,
        0,
        (os.urandom(32),),
        False,
        True,
        2,
        "0x" + "11" * 20,
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_scrape_reads_store_and_instance(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/store.sqlite")
    tx = os.urandom(32)
    rows = [row(tx) for _ in range(4)]
    store.write_range(31337, RANGE, rows)
    store.mark_done([r.key for r in rows[:3]])
    store.mark_errors([(rows[3].output_handle, tx, "division by zero")])
    handles = [r.output_handle for r in rows[:3]]
    store.put_ciphertexts128([(h, b"ct128") for h in handles])
    store.put_digests([Digest(h, 0, b"\x01" * 32, b"\x02" * 32) for h in handles])
    store.set_commit_status(CommitStatus(handles[0], CommitState.CONFIRMED, tx, None))
    store.set_commit_status(CommitStatus(handles[1], CommitState.FAILED, None, "reverted"))
    store.mark_range_processed(31337, RANGE, 0, 99, b"\x03" * 32)

    with instance_for_test() as instance:
        instance.report_runless_asset_event(
            AssetMaterialization(
                AssetKey([HOST.name, "ciphertexts"]),
                partition=RANGE,
                metadata={"wall_seconds": 2.5, "fhe_seconds": 4.0, "operations_per_second": 1.6},
            )
        )
        instance.report_runless_asset_event(
            AssetMaterialization(
                AssetKey([HOST.name, "ciphertext_objects"]),
                partition=RANGE,
                metadata={"uploaded": 6},
            )
        )
        port = free_port()
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the RPC source is down
        hosts = [dataclasses.replace(HOST, rpc_url=dead)]
        gateway = GatewayConfig(10901, dead, "", "")
        server, _ = serve(store, make_inputs(instance, hosts, gateway), "127.0.0.1", port)
        try:
            m = scrape(f"http://127.0.0.1:{port}/metrics")
        finally:
            server.shutdown()
    store.dispose()

    assert m[("coprocessor_work_items_processed", ())] == 3
    assert m[("coprocessor_work_items_errors", ())] == 1
    assert m[("coprocessor_sns_worker_task_execute_success_counter", ())] == 3
    assert m[("coprocessor_txn_sender_add_ciphertext_material_success_counter", ())] == 1
    assert m[("coprocessor_txn_sender_add_ciphertext_material_fail_counter", ())] == 1
    assert m[("coprocessor_add_ciphertext_material_unsent_gauge", ())] == 2
    assert m[("coprocessor_sns_worker_aws_upload_success_counter", ())] == 6
    assert m[("fhevm_dagster_computations", (("status", "done"),))] == 3
    ranged = (("asset", "ciphertexts"), ("chain", HOST.name), ("range", RANGE))
    assert m[("fhevm_dagster_range_wall_seconds", ranged)] == 2.5
    assert m[("fhevm_dagster_range_fhe_seconds", ranged)] == 4.0
    assert m[("fhevm_dagster_scrape_source_up", (("source", "dagster"),))] == 1
    assert m[("fhevm_dagster_scrape_source_up", (("source", "host_rpc"),))] == 0
    assert not any(name == "fhevm_dagster_host_lag_blocks" for name, _ in m)  # no head, no lag
