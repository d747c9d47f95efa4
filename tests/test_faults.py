"""The fault suite's short form (benchmarks/faults.py): four cheap faults against a real devnet
with a real `dagster-daemon` running at its default settings, each followed by full recovery: no
range lost, every handle committed by this coprocessor, no extra gateway transaction of any
status, and nothing the harness had to unstick.

`gateway-reorg-commits-only` is the one row here that fails before issue 23's fixes (a gateway
range holding only our commits, dropped by a reorg before the sensor planned it, is recorded
empty and its commits are never sent again: 491 s and red then). The whole test took 287 s on 2
cores (one devnet, one daemon, the shared users' mint range, one range per fault).
The full suite is run by hand:
`python benchmarks/faults.py` (see its docstring).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from devnet_fixtures import _require_tools
from faults import Options, row_markdown, run_suite

SHORT = ["host-rpc-drop", "daemon-restart", "lost-tick", "gateway-reorg-commits-only"]


@pytest.mark.faults
@pytest.mark.devnet  # the harness starts the devnet; the daemon's runs load the test keys
@pytest.mark.fhe
def test_short_fault_suite_recovers(tmp_path: Path) -> None:
    _require_tools()
    rows = run_suite(SHORT, Options(transfers=1, outage_s=20, timeout_s=300), root=tmp_path)
    table = "\n".join(row_markdown(r) for r in rows)
    assert [r.fault for r in rows] == SHORT
    for r in rows:
        assert r.ok, table
        assert r.measure.ranges >= 1 and r.measure.handles >= 1, table
