"""The Prometheus endpoint: a real HTTP scrape of figures read from a store and a Dagster instance.

Runs are separate processes, so the exporter derives everything on scrape; this test writes the
store and the instance as runs would, then scrapes and reads the numbers back.
"""

from __future__ import annotations

import dataclasses
import os
import time
import urllib.request
from pathlib import Path

from dagster import AssetKey, AssetMaterialization, instance_for_test
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from sqlalchemy import func, update

from fhevm_dagster.chain.config import GatewayConfig, HostChainConfig
from fhevm_dagster.devnet import free_port
from fhevm_dagster.metrics import CoprocessorCollector, ScrapeInputs, serve
from fhevm_dagster.metrics.sources import make_inputs
from fhevm_dagster.protocol.computations import AllowedHandle, ComputationRow
from fhevm_dagster.protocol.digests import Material
from fhevm_dagster.store import CommitState, ProofRequest, ProofStatus, Store
from fhevm_dagster.store import schema as s
from fhevm_dagster.store.records import CommitStatus

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


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    return parse(urllib.request.urlopen(url, timeout=10).read().decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def collect(registry: CollectorRegistry) -> Samples:
    """One scrape's exposition text, as the HTTP endpoint serves it."""
    return parse(generate_latest(registry).decode())


def test_scrape_reads_store_and_instance(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/store.sqlite")
    tx = os.urandom(32)
    rows = [row(tx) for _ in range(4)]
    store.write_range(31337, RANGE, rows)
    store.mark_done([r.key for r in rows[:3]])
    store.mark_errors([(rows[3].output_handle, tx, "division by zero")])
    handles = [r.output_handle for r in rows[:3]]
    store.put_ciphertexts128([(h, b"ct128") for h in handles])
    store.put_digests([Material(h, 0, b"\x01" * 32, b"\x02" * 32) for h in handles])
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
        server, _ = serve(store, make_inputs(instance, hosts, gateway), "127.0.0.1", port, 5)
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


H, G = 31337, 10901


def ranges(store: Store) -> None:
    """Ranges of a host chain in every state, and one complete gateway range."""
    old, new = b"\x0a" * 32, b"\x0b" * 32
    book = [
        # chain, key, requested, processed, completed, empty, failed runs
        (H, "000000000000-000000000099", new, new, new, False, 0),  # complete
        (H, "000000000100-000000000199", new, None, new, True, 0),  # empty (complete)
        (H, "000000000200-000000000299", new, None, None, False, 2),  # open, failing
        (H, "000000000300-000000000399", new, new, old, False, 7),  # reorged: open, alerting
        (H, "000000000400-000000000499", new, None, None, False, 0),  # requested: open
        (G, "000000000000-000000000099", new, new, new, False, 0),
    ]
    with store.writer.begin() as conn:
        for chain, key, requested, processed, completed, empty, failed in book:
            first = int(key[:12])
            conn.execute(
                s.host_ranges.insert().values(
                    chain_id=chain,
                    partition_key=key,
                    first_block=first,
                    last_block=first + 99,
                    requested_hash=requested,
                    processed_hash=processed,
                    completed_hash=completed,
                    is_empty=empty,
                    failed_runs=failed,
                    last_failure_at=time.time() if failed else None,
                )
            )
        conn.execute(
            s.range_waits.insert(),
            [
                {"chain_id": H, "range_key": k, "handle": os.urandom(32), "reason": "not stored"}
                for k in ("000000000200-000000000299",) * 2 + ("000000000400-000000000499",)
            ],
        )


def test_scrape_shows_what_keeps_a_chain_behind(store_url: str) -> None:
    """Every figure of the keeping-up state, from a store filled as the pipeline leaves it."""
    store = Store.open(store_url)
    ranges(store)
    tx = os.urandom(32)
    failed, done, unallowed = row(tx), row(tx), row(tx)
    user, app = "0x" + "22" * 20, "0x" + "11" * 20
    allowed = [
        AllowedHandle(failed.output_handle, user, "account", app, tx, 5, 1),
        AllowedHandle(failed.output_handle, "", "decryption", app, tx, 5, 2),
        AllowedHandle(done.output_handle, user, "account", app, tx, 5, 3),
    ]
    store.write_range(H, RANGE, [failed, done, unallowed], allowed)
    store.mark_done([done.key])
    store.mark_errors([(h.output_handle, tx, "division by zero") for h in (failed, unallowed)])
    pending, verified = ProofStatus.PENDING, ProofStatus.VERIFIED
    for zk_id, status, deferrals in ((1, pending, 2), (2, pending, 0), (3, verified, 1)):
        store.put_proof_request(
            ProofRequest(zk_id, G, H, "0x" + "33" * 20, "0x" + "44" * 20, b"p", b"", 7, tx, status)
        )
        with store.writer.begin() as conn:
            p = s.proof_requests
            conn.execute(update(p).where(p.c.zk_proof_id == str(zk_id)).values(deferrals=deferrals))
    handles = [os.urandom(32) for _ in range(3)]
    sizes = (1000, 300, 5000)
    store.put_ciphertexts128([(h, b"x" * n) for h, n in zip(handles, sizes, strict=True)])
    now = time.time()
    with store.writer.begin() as conn:
        t = s.ciphertexts128
        conn.execute(
            update(t).where(t.c.handle == handles[2]).values(ciphertext=b"", purged_at=func.now())
        )
        conn.execute(
            s.sender_leases.insert(),
            [
                {"chain_id": G, "sender": "0x" + c * 20, "owner": owner, "expires_at": now + dt}
                for c, owner, dt in (("aa", "run-1", -120), ("bb", "run-2", 30), ("cc", None, -500))
            ],
        )
    registry = CollectorRegistry()
    registry.register(CoprocessorCollector(store, ScrapeInputs, alert_after=5))
    m = collect(registry)
    store.dispose()

    def by_chain(name: str, chain: int, **labels: str) -> float:
        return m[(name, tuple(sorted({"chain_id": str(chain), **labels}.items())))]

    states = {"complete": 2, "open": 3, "empty": 1, "failing": 2, "alerting": 1, "waiting": 2}
    for state, n in states.items():
        assert by_chain("fhevm_dagster_ranges", H, state=state) == n, state
    assert by_chain("fhevm_dagster_ranges", G, state="complete") == 1
    assert by_chain("fhevm_dagster_ranges", G, state="open") == 0
    assert by_chain("fhevm_dagster_ranges_failed_runs_max", H) == 7
    assert by_chain("fhevm_dagster_ranges_failed_runs_max", G) == 0
    assert m[("fhevm_dagster_redrive_alert_after", ())] == 5
    assert by_chain("fhevm_dagster_inputs_waited_for", H) == 3
    assert by_chain("fhevm_dagster_inputs_waited_for", G) == 0
    # One allowed handle (twice allowed) failed; a failed intermediate is not committed anyway.
    assert by_chain("fhevm_dagster_allowed_handles_uncommittable", H) == 1
    assert m[("fhevm_dagster_proof_requests_deferred", ())] == 1
    assert m[("fhevm_dagster_ciphertexts128", (("state", "held"),))] == 2
    assert m[("fhevm_dagster_ciphertexts128", (("state", "purged"),))] == 1
    assert m[("fhevm_dagster_ciphertexts128_held_bytes", ())] == 1300
    lease = "fhevm_dagster_sender_lease_overdue_seconds"
    assert 120 <= by_chain(lease, G, sender="0x" + "aa" * 20) < 180  # its holder died
    assert by_chain(lease, G, sender="0x" + "bb" * 20) == 0  # held, in time
    assert by_chain(lease, G, sender="0x" + "cc" * 20) == 0  # free


def test_counters_never_fall(tmp_path: Path) -> None:
    """A reorg removes done computations and a re-run uploads nothing: the counters hold, then
    go on rising from there (Prometheus reads a fall as a reset and counts everything again)."""
    store = Store.open(f"sqlite:///{tmp_path}/store.sqlite")
    tx = os.urandom(32)
    rows = [row(tx) for _ in range(3)]
    store.write_range(H, RANGE, rows)
    store.mark_done([r.key for r in rows])
    key = AssetKey([HOST.name, "ciphertext_objects"])
    with instance_for_test() as instance:

        def uploaded(n: int) -> None:
            instance.report_runless_asset_event(
                AssetMaterialization(key, partition=RANGE, metadata={"uploaded": n})
            )

        uploaded(6)
        registry = CollectorRegistry()
        registry.register(CoprocessorCollector(store, make_inputs(instance, [HOST], None), 5))
        processed = ("coprocessor_work_items_processed", ())
        puts = ("coprocessor_sns_worker_aws_upload_success_counter", ())
        m = collect(registry)
        assert (m[processed], m[puts]) == (3, 6)

        store.write_range(H, RANGE, rows[1:])  # a reorg dropped a done computation
        for _ in range(20):  # re-runs of the range: the objects were there
            uploaded(0)
        m = collect(registry)
        assert (m[processed], m[puts]) == (3, 6)
        assert m[("fhevm_dagster_computations", (("status", "done"),))] == 2  # the state falls

        extra = row(tx)
        store.write_range(H, RANGE, [*rows[1:], extra])
        store.mark_done([extra.key])
        uploaded(3)
        m = collect(registry)
        assert (m[processed], m[puts]) == (4, 9)
    store.dispose()
