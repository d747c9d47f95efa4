"""Fault suite: the coprocessor on a real devnet with its daemon running, one fault at a time.

Each fault sends traffic (transfers between users shared by every fault, so its range reads the
balances earlier ranges produced) in a host range of its own, injects the fault, waits for
recovery and prints one markdown row:

    fault (what was live, what it measured) | recovered | ranges lost
    | handles without a confirmed commit | duplicate transactions (any status) | time to recover

The columns are defined in `fault_harness` (judged from the chains). Done when every row reads:
yes, 0, 0, 0. A row reads NO also when the harness had to unstick Dagster after it
(`Harness.reap_dead_runs`): its recovery would have needed the harness. The coprocessor runs at
its default settings; a row that needs more states it in its docstring. Faults run in the order
given (`devnet-reset` wipes the chains: keep it last). `pg-restart` runs the whole suite on
PostgreSQL (store and Dagster instance). The provider rows and `kill-after-broadcast` need
`fault_proxy.RpcProxy` (the JSON-RPC proxy behind the TCP one).

    python benchmarks/faults.py                       # every fault (hours on 2 shared cores)
    python benchmarks/faults.py --short               # the cheap ones (tests/test_faults.py)
    python benchmarks/faults.py --faults host-rpc-drop,lost-tick --short --json rows.json
    python benchmarks/faults.py --list

`--short` keeps the cheap faults (unless `--faults` names others) and shortens outages.
`--json PATH` (`-` for stdout) writes every measured number of every row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dagster import DagsterRunStatus
from fault_harness import (
    DEFAULTS,
    HOST_JOB,
    REPO,
    Harness,
    Measure,
    Provider,
    Window,
)
from fault_proxy import RpcProxy
from web3 import Web3

from fhevm_dagster.devnet.chain import rpc

#: Bytecode that reverts every call (PUSH1 0 PUSH1 0 REVERT).
REVERTING_CODE = "0x60006000fd"
#: Transfers that give a range a "middle" at the default batch: evaluation stores allowed results
#: FHEVM_DAGSTER_RANGE_BATCH_HANDLES at a time (squashes follow them), and a transfer makes two
#: results durable, so a range of fewer than batch/2 transfers is stored in one write. With
#: batch/2 + 8 transfers the first batch is stored while 16 results are still being computed.
MIDDLE_TRANSFERS = int(DEFAULTS["FHEVM_DAGSTER_RANGE_BATCH_HANDLES"]) // 2 + 8
#: The old re-drive's give-up horizon: 5 re-drives, backed off 60, 120, 240, 480 and 960 s
#: (FHEVM_DAGSTER_REDRIVE_* defaults before issue 23).
OLD_REDRIVE_ATTEMPTS = 5
OLD_GIVE_UP_S = sum(60 * 2**i for i in range(OLD_REDRIVE_ATTEMPTS))
#: The long outage's longest duration, should the range fail less often than the old code.
LONG_OUTAGE_MAX_S = 3600.0
#: After it, the next re-drive may be a whole capped back-off away.
LONG_OUTAGE_RECOVERY_S = float(DEFAULTS["FHEVM_DAGSTER_REDRIVE_BACKOFF_MAX"]) + 900
#: The provider rows: a replica this many blocks behind on eth_getLogs; a cap on the logs of one
#: eth_getLogs above the ~10 logs of one transfer's block and under the range's (LOG_TRANSFERS).
LAG_BLOCKS = 2
RESULT_CAP = 20
LOG_TRANSFERS = 4
#: The load row: transfers streamed, seconds between two, and the stretch of the stream (by
#: transfer index) during which the host RPC is down.
LOAD_TRANSFERS = 100
LOAD_PACE_S = 5.0
LOAD_DROP = (34, 67)


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
    notes: tuple[str, ...] = ()
    #: What the harness had to unstick after the row (`Harness.reap_dead_runs`).
    harness_acted: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.recovered and self.measure.ok and not self.harness_acted


Inject = Callable[[Harness, Options], Window]


@dataclass(frozen=True)
class Fault:
    inject: Inject
    #: Cheap enough for --short (tests/test_faults.py picks among these).
    short: bool = False
    #: Seconds to wait for recovery after the fault cleared, when longer than --timeout.
    timeout_s: float = 0.0


def _traffic(h: Harness, o: Options, transfers: int | None = None) -> Window:
    w = h.begin()
    h.traffic(o.transfers if transfers is None else transfers)
    h.close(w)
    return w


def _wait_done(h: Harness, w: Window, timeout: float) -> None:
    ok, _, m = h.wait_recovered(w, timeout)
    if not ok:
        raise RuntimeError(f"the window was not processed before the fault: {m}")


def _poll(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every)


def _providers(h: Harness) -> tuple[Provider, Provider]:
    if h.host_rpc is None or h.gateway_rpc is None:
        raise RuntimeError("needs the provider proxies: Harness(provider=RpcProxy)")
    return h.host_rpc, h.gateway_rpc


def _fill_pool(h: Harness, w: Window, timeout: float = 600) -> None:
    """Waits until every commit of the window is in the gateway's pool (automine off)."""
    want = min(len(h.handles(w)), int(DEFAULTS["FHEVM_DAGSTER_COMMIT_BATCH"]))
    _poll(lambda: len(h.pool()) >= want, timeout, f"fewer than {want} commits broadcast", 0.2)


# ---- the faults -------------------------------------------------------------------------------


def baseline(h: Harness, o: Options) -> Window:
    w = _traffic(h, o)
    w.clear()
    return w


def _kill_mid(what: Literal["ct64", "ct128"]) -> Inject:
    def fault(h: Harness, o: Options) -> Window:
        """kill -9 of the window's host run once the store holds some but not all of the
        range's allowed ct64s (`ct64`) or ct128s (`ct128`), polled; the range has
        MIDDLE_TRANSFERS transfers (mined together: a block each would spread them over
        ranges) so that, at the default batch, it has a middle."""
        w = h.begin()
        h.traffic_block(max(o.transfers, MIDDLE_TRANSFERS))
        h.close(w)
        (key,) = h.host_keys(w)
        chain = h.info.host_chain_id
        missing = h.store.missing_ciphertexts if what == "ct64" else h.store.missing_ciphertexts128
        deadline = time.monotonic() + 1800
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} middle seen in range {key}")
            handles = h.store.allowed_handles_of_range(key, chain_id=chain)
            runs = h.runs(HOST_JOB, key, [DagsterRunStatus.STARTED])
            stored = len(handles) - len(missing(handles)) if handles else 0
            if handles and stored == len(handles):
                raise RuntimeError(f"every {what} of {key} stored before a middle was seen")
            if runs and stored > 0 and h.run_pids(runs[0].run_id):
                run = runs[0]
                break
            time.sleep(0.2)
        steps, pool = h.live_steps(run.run_id), h.describe_pool()
        h.kill_run(run.run_id)
        ct64 = len(handles) - len(h.store.missing_ciphertexts(handles))
        ct128 = len(handles) - len(h.store.missing_ciphertexts128(handles))
        w.notes.append(
            f"killed in {'/'.join(steps) or 'no step'}: ct64 {ct64}/{len(handles)}, "
            f"ct128 {ct128}/{len(handles)} stored; {pool}"
        )
        w.figures.update(ct64_at_kill=ct64, ct128_at_kill=ct128, allowed=len(handles))
        w.clear()
        return w

    return fault


def kill_after_broadcast(h: Harness, o: Options) -> Window:
    """kill -9 of the host run once a commit is in the gateway's pool; automine stays off until
    the re-driven run has simulated every commit of the window (counted as eth_estimateGas
    requests through the gateway's RpcProxy since the kill), so its sender meets the journaled
    transaction still pending: without the journal it would send a second one at a new nonce,
    and the duplicate column shows it once mined."""
    _, gateway_rpc = _providers(h)
    w = _traffic(h, o)
    gw = h.gateway_w3
    h.wait_for_step(w, "ciphertext_digests")
    rpc(gw, "evm_setAutomine", [False])
    try:
        run = h.wait_for_step(w, "digest_commits")
        _poll(lambda: bool(h.pool()), 600, "no commit broadcast")
        h.kill_run(run.run_id)
        before = h.describe_pool()
        counts = gateway_rpc.requests
        simulated, sends = counts["eth_estimateGas"], counts["eth_sendRawTransaction"]
        handles = len(h.handles(w))
        killed = time.monotonic()
        _poll(
            lambda: counts["eth_estimateGas"] - simulated >= handles,
            1800, "the re-driven run did not simulate the window's commits", 0.5,
        )  # fmt: skip
        w.figures["redrive_simulated_after_s"] = time.monotonic() - killed
        time.sleep(2)  # a sender without a journal broadcasts right after its simulation
        w.figures["broadcasts_after_kill"] = counts["eth_sendRawTransaction"] - sends
        w.notes.append(f"at the kill: {before}; re-driven run simulated, then: {h.describe_pool()}")
    finally:
        rpc(gw, "evm_setAutomine", [True])
        rpc(gw, "evm_mine", [])
    w.clear()
    return w


def _outage(proxy: str, mode: str, after_step: str | None) -> Inject:
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


def long_outage(h: Harness, o: Options) -> Window:
    """The host RPC drops as soon as the window's run is requested (before its ingest) and stays
    down until the range has failed more often than the old code re-drove (the first run and 5
    re-drives), at least OLD_GIVE_UP_S (the old back-offs' sum), at most LONG_OUTAGE_MAX_S; the
    range recovers only if re-drives never give up. Default settings."""
    w = _traffic(h, o)
    (key,) = h.host_keys(w)
    _poll(lambda: bool(h.runs(HOST_JOB, key)), 600, f"no run requested for {key}", 0.2)
    h.host_proxy.set_mode("drop")
    down = time.monotonic()

    def over() -> bool:
        long = time.monotonic() - down
        failed = h.failed_runs(HOST_JOB, key)
        return long > LONG_OUTAGE_MAX_S or (long > OLD_GIVE_UP_S and failed > OLD_REDRIVE_ATTEMPTS)

    _poll(over, LONG_OUTAGE_MAX_S + 60, "outage", 10)
    h.host_proxy.set_mode("pass")
    seconds, failed = time.monotonic() - down, h.failed_runs(HOST_JOB, key)
    w.notes.append(f"host RPC down {seconds:.0f} s; {failed} failed runs of {key} meanwhile")
    w.figures.update(outage_s=seconds, failed_runs=failed)
    w.clear()
    return w


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
    CiphertextCommits reverts every call: mined, status 0. Those reverted transactions are the
    injection's (`Window.forced`), not extras; the commits sent again are the intents."""
    w = _traffic(h, o)
    gw = h.gateway_w3
    address = h.info.ciphertext_commits_address
    code = gw.eth.get_code(Web3.to_checksum_address(address)).to_0x_hex()
    h.wait_for_step(w, "ciphertext_digests")
    rpc(gw, "evm_setAutomine", [False])
    try:
        _fill_pool(h, w)
        forced = {bytes.fromhex(tx["hash"][2:]) for tx in h.pool()}
        rpc(gw, "anvil_setCode", [address, REVERTING_CODE])
        rpc(gw, "evm_mine", [])
        w.forced |= forced
    finally:
        rpc(gw, "anvil_setCode", [address, code])
        rpc(gw, "evm_setAutomine", [True])
    w.notes.append(f"{len(w.forced)} commits mined reverted")
    w.clear()
    return w


def gateway_tx_drop(h: Harness, o: Options) -> Window:
    """The gateway's pool forgets our commits: broadcast, never mined."""
    w = _traffic(h, o)
    gw = h.gateway_w3
    h.wait_for_step(w, "ciphertext_digests")
    rpc(gw, "evm_setAutomine", [False])
    try:
        _fill_pool(h, w)
        for tx in h.pool():
            rpc(gw, "anvil_dropTransaction", [tx["hash"]])
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
    """The gateway blocks holding the window's commits, in a range the sensor planned and ran,
    are replaced by empty ones, and the gateway mined past them to the end of that range (a
    live gateway keeps producing blocks): the range's recorded hash changed, so the sensor runs
    it again and its commits are rechecked.

    The commits' range is completed and run before the reorg on purpose. Before, it was run
    only when the commits happened to complete it, depending on where earlier rows left the
    gateway's head: on the run issue 23 quotes they did, and the row passed; on others the
    range was incomplete, so unplanned before the reorg and empty after it (the case of
    `gateway-reorg-commits-only`, which now makes it certain)."""
    gw = h.gateway_w3
    snap = rpc(gw, "evm_snapshot", [])
    w = _traffic(h, o)
    handles = h.handles(w)
    _poll(lambda: h.uncommitted(handles) == 0, o.timeout_s, "the window's commits", 1)
    h.mine_gateway_to_boundary()
    _wait_done(h, w, o.timeout_s)
    keys = sorted({h.gateway_key(b) for b in h.committed(handles).values()})
    head = gw.eth.block_number
    rpc(gw, "evm_revert", [snap])
    rpc(gw, "evm_increaseTime", [100])
    rpc(gw, "anvil_mine", [hex(head - gw.eth.block_number + 1)])
    h.mine_gateway_to_boundary()
    w.notes.append(f"commits in gateway range(s) {', '.join(keys)}, run before the reorg")
    w.clear()
    return w


def gateway_reorg_commits_only(h: Harness, o: Options) -> Window:
    """A gateway reorg drops a gateway range whose only logs were our commits, a range the
    sensor had not planned before the reorg: the gateway starts a fresh range, the window's
    commits land in its first blocks and leave it incomplete (so unplanned), then the chain
    reverts to before them and empty blocks complete the range. The sensor finds the range
    without logs; only a coprocessor that knows its stored commits sit there re-sends them."""
    gw = h.gateway_w3
    h.mine_gateway_to_boundary()
    snap = rpc(gw, "evm_snapshot", [])
    w = _traffic(h, o)
    handles = h.handles(w)
    if len(handles) >= h.gateway_range_size:
        raise RuntimeError(f"{len(handles)} commits would complete the gateway range: fewer")
    _poll(lambda: h.uncommitted(handles) == 0, o.timeout_s, "the window's commits", 1)
    _poll(lambda: not h.lost(w)[1], o.timeout_s, "the window's host run", 1)
    blocks = sorted(set(h.committed(handles).values()))
    key, head = h.gateway_key(blocks[0]), gw.eth.block_number
    if h.gateway_key(blocks[-1]) != key or head >= int(key.split("-")[1]):
        raise RuntimeError(f"the commits (blocks {blocks}) left no incomplete gateway range")
    if h.store.get_range(h.info.gateway_chain_id, key) is not None:
        raise RuntimeError(f"gateway range {key} was planned before the reorg")
    rpc(gw, "evm_revert", [snap])
    rpc(gw, "evm_increaseTime", [100])
    rpc(gw, "anvil_mine", [hex(head - gw.eth.block_number + 1)])
    h.mine_gateway_to_boundary()
    w.notes.append(f"gateway range {key}, unplanned, lost commits in blocks {blocks}")
    w.clear()
    return w


def devnet_reset(h: Harness, o: Options) -> Window:
    """Both chains wiped and deployed again (same ports, chain ids, addresses), then traffic
    (the shared users, minted again on the new chain)."""
    h.reset_devnet()
    _wait_done(h, h.mint_users(), o.timeout_s)
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
        return bool(h.runs(HOST_JOB, key))

    _poll(requested, 300, f"no run requested for {key}")
    h.stop_daemon(signal.SIGKILL, group=True)
    for run in h.runs(HOST_JOB, key):
        h.kill_run(run.run_id)
        h.instance.delete_run(run.run_id)
    h.start_daemon()
    w.clear()
    return w


def code_server_kill(h: Harness, o: Options) -> Window:
    """The code server (the daemon's gRPC server for workspace.yaml) is killed with the run
    workers it started while the window's host run is inside digest_commits (a commit in the
    gateway's pool: automine is off from ciphertext_digests until the kill); then a user asks
    for an input proof. Its answer latency (request block to our answer's block, gateway
    timestamps) is the row's figure: a dead run must not hold the gateway sender. Recovered
    also means the proof answered and the dead run's range done."""
    w = _traffic(h, o)
    gw = h.gateway_w3
    h.wait_for_step(w, "ciphertext_digests")
    rpc(gw, "evm_setAutomine", [False])
    try:
        run = h.wait_for_step(w, "digest_commits")
        _poll(lambda: bool(h.pool()), 600, "no commit broadcast")
        steps, pool = h.live_steps(run.run_id), h.describe_pool()
        killed = h.kill_code_server()
    finally:
        rpc(gw, "evm_setAutomine", [True])
        rpc(gw, "evm_mine", [])
    if not killed:
        raise RuntimeError("no code server found")
    w.notes.append(f"killed {len(killed)} processes with run {run.run_id[:8]} in "
                   f"{'/'.join(steps)}; {pool}")  # fmt: skip
    w.proofs.append(h.request_proof())
    h.mine_gateway_to_boundary()
    w.clear()
    return w


def _capped(setup: Callable[[Harness], str], transfers: int | None = None) -> Inject:
    def fault(h: Harness, o: Options) -> Window:
        host_rpc, gateway_rpc = _providers(h)

        def reset() -> None:
            for p in (host_rpc, gateway_rpc):
                p.span_cap = p.result_cap = None
                p.lag_blocks = 0

        try:
            what = setup(h)
            w = _traffic(h, o, max(o.transfers, transfers or 0))
        except BaseException:
            reset()
            raise
        w.undo.append(reset)
        w.notes.append(what)
        w.clear()
        return w

    return fault


def _span_cap(h: Harness) -> str:
    cap = h.range_size // 2
    host_rpc, gateway_rpc = _providers(h)
    host_rpc.span_cap = gateway_rpc.span_cap = cap
    return f"eth_getLogs of more than {cap} blocks refused on host and gateway"


def _result_cap(h: Harness) -> str:
    _providers(h)[0].result_cap = RESULT_CAP
    return f"host eth_getLogs of more than {RESULT_CAP} logs refused"


def lagging_replica(h: Harness, o: Options) -> Window:
    """Host eth_getLogs answered by a replica LAG_BLOCKS behind the head, and the window's
    transfers in the last LAG_BLOCKS blocks of its range: when the range completes, the replica
    has none of its logs. Once the sensor has recorded the range (run or not), the host chain
    produces a block per poll, as a live chain does (the replica then serves the range)."""
    host_rpc, _ = _providers(h)
    host_rpc.lag_blocks = LAG_BLOCKS
    try:
        w = h.begin()
        rpc(h.host_w3, "anvil_mine", [hex(h.range_size - LAG_BLOCKS)])
        h.traffic(LAG_BLOCKS)
        h.close(w)
        (key,) = h.host_keys(w)
        chain = h.info.host_chain_id
        _poll(lambda: h.store.get_range(chain, key) is not None, 300, "the sensor's plan", 0.5)
    except BaseException:
        host_rpc.lag_blocks = 0
        raise
    rng = h.store.get_range(chain, key)
    runs = h.runs(HOST_JOB, key)
    state = "processed" if rng is not None and rng.processed_hash else "requested"
    w.notes.append(f"range {key} recorded {state} by the sensor, {len(runs)} run(s)")
    w.tick = lambda: rpc(h.host_w3, "anvil_mine", ["0x1"])
    w.undo.append(lambda: setattr(host_rpc, "lag_blocks", 0))
    w.clear()
    return w


def load(h: Harness, o: Options) -> Window:
    """LOAD_TRANSFERS transfers streamed one per host block, LOAD_PACE_S apart (a live token:
    ranges complete while earlier ones are being processed), with the host RPC down while
    transfers LOAD_DROP[0]..LOAD_DROP[1] are sent. Throughput per period (before the drop,
    during it, after it until the last commit): our commits of the window's handles per second
    by their gateway block timestamps, and transfers per second (2 results per transfer)."""
    w = h.begin()
    h.gateway_mark(w, "before")
    for i in range(LOAD_TRANSFERS):
        if i == LOAD_DROP[0]:
            h.host_proxy.set_mode("drop")
            h.gateway_mark(w, "during")
        if i == LOAD_DROP[1]:
            h.host_proxy.set_mode("pass")
            h.gateway_mark(w, "after")
            w.clear()
        sent = time.monotonic()
        h.traffic(1)
        time.sleep(max(0.0, LOAD_PACE_S - (time.monotonic() - sent)))
    h.close(w)
    return w


FAULTS: dict[str, Fault] = {
    "baseline": Fault(baseline, short=True),
    "kill-mid-store": Fault(_kill_mid("ct64"), timeout_s=2400),
    "kill-after-broadcast": Fault(kill_after_broadcast),
    "kill-mid-squash": Fault(_kill_mid("ct128"), timeout_s=2400),
    "host-rpc-drop": Fault(_outage("host", "drop", None), short=True),
    "host-rpc-stall": Fault(_outage("host", "stall", None), short=True),
    "gateway-rpc-drop": Fault(_outage("gateway", "drop", "ciphertext_digests"), short=True),
    "gateway-rpc-stall": Fault(_outage("gateway", "stall", "ciphertext_digests"), short=True),
    "pg-restart": Fault(pg_restart),
    "gateway-tx-revert": Fault(gateway_tx_revert, short=True),
    "gateway-tx-drop": Fault(gateway_tx_drop, short=True),
    "host-reorg-shallow": Fault(host_reorg_shallow, short=True),
    "host-reorg-deep": Fault(host_reorg_deep, short=True),
    "gateway-reorg": Fault(gateway_reorg, short=True),
    "gateway-reorg-commits-only": Fault(gateway_reorg_commits_only, short=True),
    "code-server-kill": Fault(code_server_kill, timeout_s=900),
    "provider-span-cap": Fault(_capped(_span_cap), short=True),
    "provider-result-cap": Fault(_capped(_result_cap, LOG_TRANSFERS), short=True),
    "lagging-replica": Fault(lagging_replica, short=True),
    "daemon-restart": Fault(daemon_restart, short=True),
    "lost-tick": Fault(lost_tick, short=True),
    "long-outage": Fault(long_outage, timeout_s=LONG_OUTAGE_RECOVERY_S),
    "load": Fault(load, timeout_s=3600),
    "devnet-reset": Fault(devnet_reset, short=True),
}
HEADER = (
    "| fault | recovered | ranges lost | handles without a confirmed commit "
    "| duplicate transactions (any status) | time to recover |"
)


def row_markdown(r: Row) -> str:
    m = r.measure
    lost = f"{len(m.ranges_lost)}/{m.ranges}"
    missing = f"{m.handles_missing}/{m.handles}"
    notes = list(r.notes) + [f"harness acted: {a}" for a in r.harness_acted]
    note = f" ({'; '.join(notes)})" if notes else ""
    recovered = "yes" if r.recovered and not r.harness_acted else "NO"
    return (
        f"| {r.fault}{note} | {recovered} | {lost} | {missing} "
        f"| {m.duplicates} | {r.seconds:.0f} s |"
    )


def row_json(r: Row) -> dict[str, Any]:
    return {"fault": r.fault, "ok": r.ok, "recovered": r.recovered, "seconds": r.seconds,
            **asdict(r.measure), "notes": list(r.notes),
            "harness_acted": list(r.harness_acted)}  # fmt: skip


def _figures_note(m: Measure) -> list[str]:
    f = m.figures
    out = [f"answer latency {v:.0f} s" for k, v in f.items() if k.startswith("answer_latency")]
    periods = [k.removesuffix("_transfers_per_s") for k in f if k.endswith("_transfers_per_s")]
    out += [f"{p}: {f[p + '_transfers_per_s']:.3f} transfers/s over {f[p + '_seconds']:.0f} s"
            for p in periods]  # fmt: skip
    if m.unanswered:
        out.append(f"{m.unanswered} proof request(s) unanswered")
    if m.reverted or m.forced:
        out.append(f"{m.transactions} transactions, {m.reverted} reverted, {m.forced} forced")
    return out


def run_fault(h: Harness, name: str, o: Options) -> Row:
    fault = FAULTS[name]
    started = time.monotonic()
    try:
        w = fault.inject(h, o)
    except Exception as exc:  # the injection itself failed: a row that says so
        empty = Measure(0, [], 0, 0, 0)
        acted = tuple(h.reap_dead_runs())
        seconds = time.monotonic() - started
        return Row(name, False, seconds, empty, (f"{type(exc).__name__}: {exc}",), acted)
    try:
        ok, seconds, m = h.wait_recovered(w, max(o.timeout_s, fault.timeout_s))
    finally:
        for undo in w.undo:
            undo()
    notes = [*w.notes, *_figures_note(m)]
    notes += [f"lost: {', '.join(m.ranges_lost[:3])}"] if m.ranges_lost else []
    return Row(name, ok, seconds, m, tuple(notes), tuple(h.reap_dead_runs()))


def selected(names: list[str] | None, short: bool) -> list[str]:
    """The faults to run, in order: `names`, else every fault (the cheap ones with `short`)."""
    if names is None:
        return [n for n, f in FAULTS.items() if f.short or not short]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise SystemExit(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
    return names


def run_suite(
    names: list[str],
    o: Options,
    *,
    root: Path | None = None,
    echo: bool = True,
    code: Path = REPO,
) -> list[Row]:
    """Runs `names` in order on one harness (the daemon running `code`'s coprocessor); prints
    each row as it comes."""
    selected(names, False)
    log = print if echo else (lambda _: None)
    h = Harness(root, postgres="pg-restart" in names, log=log, provider=RpcProxy, code=code)
    rows: list[Row] = []
    try:
        h.start()
        _wait_done(h, h.mint_users(), o.timeout_s)
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
    parser.add_argument("--faults", help="comma-separated, in order (default: all)")
    parser.add_argument("--transfers", type=int, default=1, help="transfers per fault")
    parser.add_argument("--short", action="store_true", help="the cheap faults, shorter outages")
    parser.add_argument("--timeout", type=float, help="seconds to wait for recovery per fault")
    parser.add_argument("--root", type=Path, help="work dir (default: a temp dir, kept)")
    parser.add_argument(
        "--code",
        type=Path,
        default=REPO,
        help="checkout whose coprocessor the daemon runs (default: this one)",
    )
    parser.add_argument("--json", help="write every measured number here (- for stdout)")
    parser.add_argument("--list", action="store_true", help="list the faults and exit")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # tear the harness down on TERM
    if args.list:
        print("\n".join(f"{n}{'' if f.short else '  (full suite only)'}"
                        for n, f in FAULTS.items()))  # fmt: skip
        return 0
    outage = 20.0 if args.short else 45.0
    timeout = args.timeout or (300.0 if args.short else 600.0)
    names = selected(args.faults.split(",") if args.faults else None, args.short)
    o = Options(args.transfers, outage, timeout)
    rows = run_suite([n.strip() for n in names], o, root=args.root, code=args.code)  # fmt: skip
    if args.json:
        text = json.dumps([row_json(r) for r in rows], indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
