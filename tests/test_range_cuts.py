"""Any cut of blocks into ranges gives the same bytes (SPEC §7): real devnet traffic, cut apart.

The same confidential-token traffic is ingested and evaluated as ranges of 1 and 20 blocks (the
extremes: every result crosses a boundary, or none does), and also of 5 (the demo's) under
`make test-full`, each cut into its own store. Every allowed handle must have the same ct64 in
every cut: a result that crosses a range boundary is read back from the store in its compressed
form, exactly like a result consumed inside its own range (the compress round trip of every
operation). Re-materialising the finished ranges in the same instance stores nothing and reports
no difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, instance_for_test, materialize
from host_defs import HOST_RANGES, ciphertexts, host_ingest, host_resource
from sqlalchemy import update
from tiers import FULL

from fhevm_dagster.assets.host import RECOMPUTED_BYTES_CHECK, VERIFY_TAG
from fhevm_dagster.devnet import DevnetInfo, devnet_down, devnet_up, free_port, run_token_traffic
from fhevm_dagster.pipeline.block_ranges import BlockRange
from fhevm_dagster.protocol.digests import ciphertext_digest
from fhevm_dagster.resources.fhe import DEVNET_TEST_KEYS, FheResource
from fhevm_dagster.resources.io import ParquetIOManager
from fhevm_dagster.resources.store import StoreResource
from fhevm_dagster.store import Store, schema

pytestmark = pytest.mark.fhe
CUTS = (1, 5, 20) if FULL else (1, 20)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetInfo]:
    state = tmp_path_factory.mktemp("cuts-devnet")
    info = devnet_up(state, host_port=free_port(), gateway_port=free_port())
    try:
        yield info
    finally:
        devnet_down(state)


def _resources(info: DevnetInfo, url: str, parquet: Path) -> dict[str, Any]:
    return {
        **host_resource(info),
        "store": StoreResource(database_url=url),
        "fhe": FheResource(key_dir=str(DEVNET_TEST_KEYS), threads=2),
        "parquet_io_manager": ParquetIOManager(base_dir=str(parquet)),
    }


def _process(
    instance: DagsterInstance, info: DevnetInfo, first: int, last: int, size: int, root: Path
) -> Store:
    url = f"sqlite:///{root / 'store.sqlite'}"
    for start in range(first, last + 1, size):
        rng = BlockRange(start, min(start + size - 1, last))
        instance.add_dynamic_partitions(HOST_RANGES, [rng.key])
        result = materialize(
            [host_ingest, ciphertexts],
            partition_key=rng.key,
            instance=instance,
            resources=_resources(info, url, root),
        )
        assert result.success, rng.key
    return Store.open(url)


def _digests(store: Store) -> dict[bytes, bytes]:
    return {row[0]: ciphertext_digest(row[1]) for row in store.snapshot()["ciphertexts"]}


def test_every_cut_of_the_blocks_stores_identical_bytes(chain: DevnetInfo, tmp_path: Path) -> None:
    records = run_token_traffic(chain, transfers=2)
    first, last = 1, max(r.block_number for r in records)
    stored: dict[int, dict[bytes, bytes]] = {}
    with instance_for_test() as instance:
        for size in CUTS:
            root = tmp_path / f"cut-{size}"
            root.mkdir()
            stored[size] = _digests(_process(instance, chain, first, last, size, root))
        assert len(stored[20]) >= 4, "each transfer stored two new balances"
        assert all(stored[size] == stored[20] for size in CUTS), {s: len(stored[s]) for s in CUTS}

        # Re-materialising the last range of the 1-block cut (the last transfer's block) computes
        # nothing: its results are stored (and committed), so they are read back. A determinism
        # check (the run tag) recomputes them in this process: nothing new is stored and the bytes
        # are equal.
        root = tmp_path / "cut-1"
        rng = BlockRange(last, last)
        url = f"sqlite:///{root / 'store.sqlite'}"
        rows = Store.open(url).computations_of_range(rng.key, chain_id=chain.host_chain_id)
        allowed = sum(r.is_allowed for r in rows)
        assert allowed, "the last range holds a transfer"
        for tags, evaluated in (({}, False), ({VERIFY_TAG: "1"}, True)):
            result = materialize(
                [ciphertexts],
                partition_key=rng.key,
                instance=instance,
                resources=_resources(chain, url, root),
                tags=tags,
            )
            assert result.success
            (event,) = result.get_asset_materialization_events()
            figures = event.materialization.metadata
            (check,) = result.get_asset_check_evaluations()
            assert check.check_name == RECOMPUTED_BYTES_CHECK and check.passed
            assert (figures["evaluated"].value > 0) is evaluated, figures
            skipped = figures["skipped_stored"].value
            assert skipped == (0 if evaluated else len(rows) - figures["pruned"].value), figures
            assert check.metadata["compared_handles"].value == (0 if not evaluated else allowed)
        store = Store.open(url)
        assert _digests(store) == stored[1]

        # Drift is never hidden: a stored result that is not what this process computes (here
        # swapped for another handle's bytes) fails the check, naming the handle.
        produced = [
            r.output_handle
            for r in store.computations_of_range(rng.key, chain_id=chain.host_chain_id)
            if r.is_allowed
        ]
        victim, donor = produced[0], next(h for h in stored[1] if h != produced[0])
        donor_bytes = store.get_ciphertexts([donor])[donor].ciphertext
        table = schema.ciphertexts
        with store.engine.begin() as conn:
            conn.execute(
                update(table).where(table.c.handle == victim).values(ciphertext=donor_bytes)
            )
        result = materialize(
            [ciphertexts],
            partition_key=rng.key,
            instance=instance,
            resources=_resources(chain, url, root),
            raise_on_error=False,
            tags={VERIFY_TAG: "1"},
        )
        (check,) = result.get_asset_check_evaluations()
        assert not check.passed
        assert victim.hex() in check.metadata["differences"].value
        assert check.metadata["differing_handles"].value == 1
