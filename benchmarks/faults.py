"""Fault suite: the coprocessor on a real devnet with its daemon running, one fault at a time.

Each fault sends a little traffic (two fresh users: two mints, `--transfers` transfers) in a range
of its own, injects the fault, waits for recovery and prints one row:

    fault | recovered | ranges lost | handles without a confirmed commit | duplicate transactions
    | time to recover

Done when every row reads: yes, 0, 0, 0. Faults run in the order given (`devnet-reset` wipes the
chains: keep it last). `pg-restart` runs the whole suite on PostgreSQL (store and Dagster instance).

    python benchmarks/faults.py                     # every fault (~30 min on 2 shared cores)
    python benchmarks/faults.py --faults host-rpc-drop,lost-tick --short
    python benchmarks/faults.py --list

`--short` shortens outages and waits (what tests/test_faults.py runs).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_harness import Harness, Measure, Window
from web3 import Web3

from fhevm_dagster.devnet.chain import rpc

#: Bytecode that reverts every call (PUSH1 0 PUSH1 0 REVERT).
REVERTING_CODE = "0x60006000fd"


@dataclass(frozen=True)
class Options:
    transfers: int
    outage_s: float
    timeout_s: float


@dataclass(frozen=True)
class Row:
    fault: str
    recovered: bool
    seconds: float
    measure: Measure
    note: str = ""


Fault = Callable[[Harness, Options], Window]


def _traffic(h: Harness, o: Options) -> Window:
    w = h.begin()
    h.traffic(o.transfers)
    h.close(w)
    return w


def _wait_done(h: Harness, w: Window, timeout: float) -> None:
    ok, _, m = h.wait_recovered(w, timeout)
    if not ok:
        raise RuntimeError(f"the window was not processed before the fault: {m}")


def _pending(h: Harness) -> list[str]:
    """Hashes of this coprocessor's transactions in the gateway's pool."""
    pool = rpc(h.gateway_w3, "txpool_content", [])
    sender = h.info.coprocessor_tx_sender_address.lower()
    return [
        tx["hash"]
        for part in ("pending", "queued")
        for address, txs in pool.get(part, {}).items()
        if address.lower() == sender
        for tx in txs.values()
    ]


def _poll(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


# ---- the faults -------------------------------------------------------------------------------


def baseline(h: Harness, o: Options) -> Window:
    w = _traffic(h, o)
    w.clear()
    return w


def _kill_at(step: str, delay: float) -> Fault:
    def fault(h: Harness, o: Options) -> Window:
        w = _traffic(h, o)
        run = h.wait_for_step(w, step)
        time.sleep(delay)
        h.kill_run(run.run_id)
        w.clear()
        return w

    return fault


def kill_after_broadcast(h: Harness, o: Options) -> Window:
    """kill -9 once a commit is in the gateway's pool and before its receipt is recorded (the
    gateway stops automining so the window stays open)."""
    w = _traffic(h, o)
    gw = h.gateway_w3
    h.wait_for_step(w, "ciphertext_digests")
    rpc(gw, "evm_setAutomine", [False])
    try:
        run = h.wait_for_step(w, "digest_commits")
        _poll(lambda: bool(_pending(h)), 300, "no commit broadcast")
        h.kill_run(run.run_id)
    finally:
        rpc(gw, "evm_setAutomine", [True])
        rpc(gw, "evm_mine", [])
    w.clear()
    return w


def _outage(proxy: str, mode: str, after_step: str | None) -> Fault:
    def fault(h: Harness, o: Options) -> Window:
        w = _traffic(h, o)
        if after_step:
            h.wait_for_step(w, after_step)
        p = h.host_proxy if proxy == "host" else h.gateway_proxy
        p.set_mode(mode)  # type: ignore[arg-type]
        time.sleep(o.outage_s)
        p.set_mode("pass")
        w.clear()
        return w

    return fault


def pg_restart(h: Harness, o: Options) -> Window:
    if h.pg is None:
        raise RuntimeError("pg-restart needs the PostgreSQL harness")
    w = _traffic(h, o)
    h.wait_for_step(w, "ciphertexts")
    h.pg.ctl("restart", "-m", "fast")
    w.clear()
    return w


def gateway_tx_revert(h: Harness, o: Options) -> Window:
    """Our commits, once in the gateway's pool (they passed gas estimation), are mined while
    CiphertextCommits reverts every call: mined, status 0."""
    w = _traffic(h, o)
    gw = h.gateway_w3
    address = h.info.ciphertext_commits_address
    code = gw.eth.get_code(Web3.to_checksum_address(address)).to_0x_hex()
    h.wait_for_step(w, "ciphertext_digests")
    rpc(gw, "evm_setAutomine", [False])
    try:
        _poll(lambda: bool(_pending(h)), 600, "no commit broadcast")
        time.sleep(1)
        rpc(gw, "anvil_setCode", [address, REVERTING_CODE])
        rpc(gw, "evm_mine", [])
    finally:
        rpc(gw, "anvil_setCode", [address, code])
        rpc(gw, "evm_setAutomine", [True])
    w.clear()
    return w


def gateway_tx_drop(h: Harness, o: Options) -> Window:
    """The gateway's pool forgets our commits: broadcast, never mined."""
    w = _traffic(h, o)
    gw = h.gateway_w3
    h.wait_for_step(w, "ciphertext_digests")
    rpc(gw, "evm_setAutomine", [False])
    try:
        _poll(lambda: bool(_pending(h)), 600, "no commit broadcast")
        time.sleep(1)
        for tx in _pending(h):
            rpc(gw, "anvil_dropTransaction", [tx])
    finally:
        rpc(gw, "evm_setAutomine", [True])
    w.clear()
    return w


def host_reorg_shallow(h: Harness, o: Options) -> Window:
    """The range's last blocks (no traffic in them) are replaced after it was processed."""
    w = h.begin()
    h.traffic(o.transfers)
    hw = h.host_w3
    snap = rpc(hw, "evm_snapshot", [])
    h.close(w)
    _wait_done(h, w, o.timeout_s)
    rpc(hw, "evm_revert", [snap])
    rpc(hw, "evm_increaseTime", [100])
    h.close(w)
    w.clear()
    return w


def host_reorg_deep(h: Harness, o: Options) -> Window:
    """Two processed ranges, traffic included, replaced by other blocks with other traffic."""
    w = h.begin()
    hw = h.host_w3
    snap = rpc(hw, "evm_snapshot", [])
    h.traffic(o.transfers)
    h.close(w)
    rpc(hw, "anvil_mine", ["0x1"])
    h.close(w)
    _wait_done(h, w, o.timeout_s)
    rpc(hw, "evm_revert", [snap])
    rpc(hw, "evm_increaseTime", [100])
    h.traffic(o.transfers)
    h.close(w)
    rpc(hw, "anvil_mine", ["0x1"])
    h.close(w)
    w.clear()
    return w


def gateway_reorg(h: Harness, o: Options) -> Window:
    """The gateway blocks holding the window's commits are replaced by empty ones, and the
    gateway mined to the end of that range: a live gateway keeps producing blocks, and the
    commits of a gateway range are rechecked when its range run comes (on-demand anvil would
    leave the range incomplete for good)."""
    gw = h.gateway_w3
    snap = rpc(gw, "evm_snapshot", [])
    w = _traffic(h, o)
    _wait_done(h, w, o.timeout_s)
    head = gw.eth.block_number
    rpc(gw, "evm_revert", [snap])
    rpc(gw, "evm_increaseTime", [100])
    rpc(gw, "anvil_mine", [hex(head - gw.eth.block_number + 1)])
    r = h.range_size
    end = (head + 1 + r) // r * r - 1  # head + 1 itself when it ends a range
    if end > gw.eth.block_number:
        rpc(gw, "anvil_mine", [hex(end - gw.eth.block_number)])
    w.clear()
    return w


def devnet_reset(h: Harness, o: Options) -> Window:
    """Both chains wiped and deployed again (same ports, chain ids, addresses), then traffic."""
    h.reset_devnet()
    w = _traffic(h, o)
    w.clear()
    return w


def daemon_restart(h: Harness, o: Options) -> Window:
    w = _traffic(h, o)
    h.wait_for_step(w, "ciphertexts")
    h.stop_daemon(signal.SIGTERM)
    time.sleep(5)
    h.start_daemon()
    w.clear()
    return w


def lost_tick(h: Harness, o: Options) -> Window:
    """The daemon dies (kill -9, with its code server and run workers) right after the tick that
    requested the window's run; the run it recorded is gone too (the tick never happened for
    Dagster), while the sensor's cursor and the store's range book kept it."""
    w = h.begin()
    h.traffic(o.transfers)
    h.close(w)
    key = h.host_keys(w)[0]

    def requested() -> bool:
        return bool(h.runs("host_31337_range_job", key))

    _poll(requested, 300, f"no run requested for {key}")
    h.stop_daemon(signal.SIGKILL, group=True)
    for run in h.runs("host_31337_range_job", key):
        h.kill_run(run.run_id)
        h.instance.delete_run(run.run_id)
    h.start_daemon()
    w.clear()
    return w


FAULTS: dict[str, Fault] = {
    "baseline": baseline,
    "kill-mid-store": _kill_at("ciphertexts", 2.0),
    "kill-after-broadcast": kill_after_broadcast,
    "kill-mid-squash": _kill_at("sns_ciphertexts", 1.0),
    "host-rpc-drop": _outage("host", "drop", None),
    "host-rpc-stall": _outage("host", "stall", None),
    "gateway-rpc-drop": _outage("gateway", "drop", "ciphertext_digests"),
    "gateway-rpc-stall": _outage("gateway", "stall", "ciphertext_digests"),
    "pg-restart": pg_restart,
    "gateway-tx-revert": gateway_tx_revert,
    "gateway-tx-drop": gateway_tx_drop,
    "host-reorg-shallow": host_reorg_shallow,
    "host-reorg-deep": host_reorg_deep,
    "gateway-reorg": gateway_reorg,
    "daemon-restart": daemon_restart,
    "lost-tick": lost_tick,
    "devnet-reset": devnet_reset,
}
HEADER = (
    "| fault | recovered | ranges lost | handles without a confirmed commit "
    "| duplicate transactions | time to recover |"
)


def row_markdown(r: Row) -> str:
    m = r.measure
    lost = f"{len(m.ranges_lost)}/{m.ranges}"
    missing = f"{m.handles_missing}/{m.handles}"
    note = f" ({r.note})" if r.note else ""
    return (
        f"| {r.fault}{note} | {'yes' if r.recovered else 'NO'} | {lost} | {missing} "
        f"| {m.duplicates} | {r.seconds:.0f} s |"
    )


def run_fault(h: Harness, name: str, o: Options) -> Row:
    started = time.monotonic()
    try:
        w = FAULTS[name](h, o)
    except Exception as exc:  # the injection itself failed: a row that says so
        empty = Measure(0, [], 0, 0, 0)
        return Row(name, False, time.monotonic() - started, empty, f"{type(exc).__name__}: {exc}")
    ok, seconds, m = h.wait_recovered(w, o.timeout_s)
    notes = [f"lost: {', '.join(m.ranges_lost[:3])}"] if m.ranges_lost else []
    notes += [f"after: {r}" for r in h.reap_dead_runs()]
    return Row(name, ok, seconds, m, "; ".join(notes))


def run_suite(
    names: list[str], o: Options, *, root: Path | None = None, echo: bool = True
) -> list[Row]:
    """Runs `names` in order on one harness; prints each row as it comes."""
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise SystemExit(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
    log = print if echo else (lambda _: None)
    h = Harness(root, postgres="pg-restart" in names, log=log)
    rows: list[Row] = []
    try:
        h.start()
        log(f"harness in {h.root}\n{HEADER}\n|---|---|---|---|---|---|")
        for name in names:
            row = run_fault(h, name, o)
            rows.append(row)
            log(row_markdown(row))
            sys.stdout.flush()
    finally:
        with contextlib.suppress(Exception):
            h.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in order")
    parser.add_argument("--transfers", type=int, default=1, help="transfers per fault")
    parser.add_argument("--short", action="store_true", help="shorter outages and waits")
    parser.add_argument("--timeout", type=float, help="seconds to wait for recovery per fault")
    parser.add_argument("--root", type=Path, help="work dir (default: a temp dir, kept)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # tear the harness down on TERM
    if args.list:
        print("\n".join(FAULTS))
        return 0
    outage = 20.0 if args.short else 45.0
    timeout = args.timeout or (240.0 if args.short else 360.0)
    names = [n.strip() for n in args.faults.split(",") if n.strip()]
    rows = run_suite(names, Options(args.transfers, outage, timeout), root=args.root)
    return 0 if all(r.recovered and r.measure.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
