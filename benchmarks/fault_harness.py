"""The coprocessor as deployed, on a real devnet, for fault injection: `Harness`.

One host chain and the gateway (anvil, mining on demand, so ranges complete when the harness says),
a TCP proxy in front of each RPC (`fault_proxy.TcpProxy`), a DAGSTER_HOME in a temp dir (the repo's
dagster.yaml, or deploy/dagster-postgres.yaml on a throwaway PostgreSQL cluster) and a real
`dagster-daemon run` subprocess whose sensors and runs reach the chains through the proxies only.
`FAULT_KNOBS` shorten timeouts and back-offs so rows end sooner. `benchmarks/latency.py` uses the
same harness as deployed: interval mining (`block_time`), no proxies, no fault knobs.

A fault is measured over a `Window`: the host ranges its traffic lands in (fresh users per window,
so no range depends on another fault's range) and the gateway ranges mined meanwhile. `measure`
says, from the chains and the store rather than from what the coprocessor believes:
- ranges lost: complete ranges of the window without a successful run for their current
  last-block hash;
- handles missing: allowed handles of the window's host ranges (store) without an
  AddCiphertextMaterial from this coprocessor's sender on the gateway;
- duplicate transactions: this sender's successful gateway transactions beyond the first per
  (contract, method, first argument: the handle or proof id), over the whole gateway.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from fault_proxy import TcpProxy
from web3 import Web3

from fhevm_dagster.chain.ciphertext_commits import commit_events
from fhevm_dagster.devnet import (
    DevnetInfo,
    anvil_account,
    connect,
    devnet_down,
    devnet_up,
    free_port,
    run_token_traffic,
)
from fhevm_dagster.devnet.chain import rpc, set_balance
from fhevm_dagster.devnet.env import devnet_settings
from fhevm_dagster.store import Store

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST_JOB = "host_31337_range_job"
GATEWAY_JOB = "gateway_range_job"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
#: Fresh traffic users from this anvil mnemonic index on (0..9 belong to the devnet).
FIRST_USER = 20
_P = "FHEVM_DAGSTER_"
#: Settings the fault suite shortens (defaults in fhevm_dagster.settings): rows end sooner.
FAULT_KNOBS = {
    f"{_P}HOST_RPC_TIMEOUT": "5",
    f"{_P}GATEWAY_RPC_TIMEOUT": "5",
    f"{_P}GATEWAY_BATCH_DEADLINE": "30",
    f"{_P}GATEWAY_FEE_BUMP": "5",
    # A failed range is re-driven after 10 s, not the default minute.
    f"{_P}REDRIVE_BACKOFF": "10",
    f"{_P}REDRIVE_BACKOFF_MAX": "60",
}


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


class Postgres:
    """A throwaway trust-auth cluster from the Debian server binaries (as tests/postgres_fixtures),
    restartable: the PostgreSQL fault."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("no /usr/lib/postgresql/*/bin: apt-get install postgresql")
        # Its own dir under /tmp: the postgres user must reach it (as root, initdb runs as it).
        root = Path(tempfile.mkdtemp(prefix="fhevm-faults-pg-"))
        self.bin, self.root = bins[-1], root
        self.data, self.log, self.port = root / "pgdata", root / "pg.log", free_port()
        sock = root / "pgsock"
        sock.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(sock, "postgres")
        self.opts = f"-h 127.0.0.1 -p {self.port} -k {sock} -c fsync=off -c max_connections=200"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        self.ctl("start")
        for db in ("store", "dagster"):
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", db)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{db}"

    def ctl(self, action: str, *extra: str) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self.opts, "-w",
            *extra, action,
        )  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Window:
    """What one fault is judged on: the host blocks of its traffic, the gateway blocks after."""

    host_first: int
    gateway_first: int
    host_last: int = -1
    started: float = field(default_factory=time.monotonic)
    #: When the fault was over (time to recover counts from here).
    cleared: float | None = None

    def clear(self) -> None:
        self.cleared = time.monotonic()


@dataclass(frozen=True)
class Measure:
    ranges: int
    ranges_lost: list[str]
    handles: int
    handles_missing: int
    duplicates: int

    @property
    def ok(self) -> bool:
        return not self.ranges_lost and not self.handles_missing and not self.duplicates


class Harness:
    """Devnet + proxies + Dagster daemon; see the module docstring."""

    def __init__(
        self, root: Path | None = None, *, postgres: bool = False, range_size: int = 10,
        log: Callable[[str], None] = print, gateway_range_size: int | None = None,
        block_time: int | None = None, proxies: bool = True, fault_knobs: bool = True,
    ) -> None:  # fmt: skip
        """`block_time`: the chains mine every that many seconds (else on demand); `proxies`:
        the daemon reaches the chains through TCP proxies (else directly); `fault_knobs`: the
        settings of `FAULT_KNOBS` (else their defaults)."""
        self.root = Path(root or tempfile.mkdtemp(prefix="fhevm-faults-"))
        self.range_size, self.log = range_size, log
        self.gateway_range_size = gateway_range_size or range_size
        self.block_time, self.proxies, self.fault_knobs = block_time, proxies, fault_knobs
        self.use_postgres = postgres
        self.pg: Postgres | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self._next_user = FIRST_USER
        self.root.mkdir(parents=True, exist_ok=True)
        self._daemon_log = (self.root / "daemon.log").open("ab")

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.state = self.root / "devnet"
        self.host_port, self.gateway_port = free_port(), free_port()
        self.info = self._devnet_up()
        host_url, gateway_url = self.info.host_rpc_url, self.info.gateway_rpc_url
        if self.proxies:
            self.host_proxy = TcpProxy(self.host_port)
            self.gateway_proxy = TcpProxy(self.gateway_port)
            host_url, gateway_url = self.host_proxy.url, self.gateway_proxy.url
        home = self.root / "dagster_home"
        home.mkdir(exist_ok=True)
        env = dict(os.environ)
        if self.use_postgres:
            self.pg = Postgres()
            store_url = self.pg.url("store")
            shutil.copy(REPO / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
            pg_env = {
                "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.pg.port),
                "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "",
                "DAGSTER_PG_DB": "dagster",
            }  # fmt: skip
            os.environ.update(pg_env)  # this process reads the instance too
            env.update(pg_env)
        else:
            store_url = f"sqlite:///{self.root / 'store.sqlite'}"
            shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        self.store_url = store_url
        env.update(devnet_settings(self.info))
        registry = self.root / "host-chains.json"
        host = self.info.host()
        registry.write_text(json.dumps([{
            "chain_id": host.chain_id, "rpc_url": host_url,
            "acl_address": host.acl_address, "executor_address": host.executor_address,
            "start_block": host.start_block,
        }]))  # fmt: skip
        p = _P
        knobs = {
            f"{p}HOST_RANGE_SIZE": str(self.range_size),
            f"{p}GATEWAY_RANGE_SIZE": str(self.gateway_range_size),
            **(FAULT_KNOBS if self.fault_knobs else {}),
        }
        if self.proxies:
            # The chains sit behind the proxies, not at devnet.json's URLs: say that a new
            # genesis is a reset to adopt (the devnet-reset row), and that a block is final when
            # mined, as an operator of a devnet would.
            knobs[f"{p}ACCEPT_CHAIN_RESET"] = "1"
            knobs[f"{p}HOST_CONFIRMATIONS"] = "0"
        #: The settings this harness changes from their defaults (where things are kept aside).
        self.knobs = knobs
        env.update({
            "DAGSTER_HOME": str(home),
            f"{p}HOST_CHAINS": str(registry),
            f"{p}GATEWAY_RPC_URL": gateway_url,
            f"{p}DATABASE_URL": store_url,
            f"{p}PARQUET_DIR": str(self.root / "parquet"),
            f"{p}OBJECT_STORE": f"file://{self.root / 'objects'}",
            **knobs,
            "PATH": f"{BIN}:{env.get('PATH', '')}",
        })  # fmt: skip
        self.env = env
        self.home = home
        self.store = Store.open(store_url)  # creates the schema before any run
        self.instance = DagsterInstance.from_config(str(home))
        self.start_daemon()

    def _devnet_up(self) -> DevnetInfo:
        return devnet_up(
            self.state, self.host_port, self.gateway_port, host_chains=1,
            block_time=self.block_time,
        )  # fmt: skip

    def stop(self) -> None:
        self.stop_daemon(signal.SIGKILL, group=True)
        for pid in self._ours():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proxy in (getattr(self, "host_proxy", None), getattr(self, "gateway_proxy", None)):
            if proxy is not None:
                proxy.close()
        with contextlib.suppress(Exception):
            devnet_down(self.state)
        if self.pg is not None:
            self.pg.stop()

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            cwd=self.root, env=self.env, stdout=self._daemon_log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop_daemon(self, sig: int = signal.SIGTERM, *, group: bool = False) -> None:
        """Stops the daemon process, or with `group` its whole process group (code server and
        the run workers it launched)."""
        if self.daemon is None:
            return
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(self.daemon.pid, sig)
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.daemon.pid, signal.SIGKILL)
            self.daemon.wait(10)
        self.daemon = None

    # ---- chains ---------------------------------------------------------------------------

    @property
    def host_w3(self) -> Web3:
        return connect(self.info.host_rpc_url)

    @property
    def gateway_w3(self) -> Web3:
        return connect(self.info.gateway_rpc_url)

    def mine_host_to_boundary(self) -> int:
        """Mines the host chain up to the end of its current range; returns the head."""
        w3 = self.host_w3
        head, r = w3.eth.block_number, self.range_size
        end = (head + r) // r * r - 1  # head itself when it ends a range
        if end > head:
            rpc(w3, "anvil_mine", [hex(end - head)])
        return end

    def begin(self) -> Window:
        """A fresh window: the host chain mined to a range boundary, so the traffic that follows
        opens a range of its own."""
        head = self.mine_host_to_boundary()
        return Window(head + 1, self.gateway_w3.eth.block_number + 1)

    def traffic(self, transfers: int) -> None:
        """Mints to two fresh users, then `transfers` transfers between them."""
        users = [self._next_user, self._next_user + 1]
        self._next_user += 2
        w3 = self.host_w3
        for i in users:
            set_balance(w3, anvil_account(i).address, 10**21)
        run_token_traffic(self.info, transfers, users=users, seed=self._next_user)

    def close(self, window: Window) -> None:
        """Completes the window's last range (mines to its boundary)."""
        window.host_last = self.mine_host_to_boundary()

    def reset_devnet(self) -> None:
        """The devnet is wiped and deployed again on the same ports and chain ids."""
        devnet_down(self.state)
        self.info = self._devnet_up()

    # ---- Dagster --------------------------------------------------------------------------

    def runs(self, job: str, key: str, statuses: list[DagsterRunStatus] | None = None) -> list[Any]:
        f = RunsFilter(job_name=job, tags={"dagster/partition": key}, statuses=statuses or [])
        return list(self.instance.get_runs(f))

    def _ours(self) -> list[int]:
        """Processes started with this harness's DAGSTER_HOME (leftover runs, code servers)."""
        mark = f"DAGSTER_HOME={self.root / 'dagster_home'}\0".encode()
        out = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if mark in (proc / "environ").read_bytes():
                        out.append(int(proc.name))
        return out

    def run_pids(self, run_id: str) -> list[int]:
        """The live process executing run `run_id`: the pid its events were written from (the
        code server starts run workers through multiprocessing, so no command line names it)."""
        kinds = {DagsterEventType.RUN_START, DagsterEventType.STEP_START}
        logs = self.instance.all_logs(run_id, of_type=kinds)
        pids = {e.dagster_event.pid for e in logs if e.dagster_event and e.dagster_event.pid}
        return [p for p in pids if _alive(p)]

    def started_step(self, run_id: str, step: str) -> bool:
        logs = self.instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        return any(str(e.step_key).endswith(f"__{step}") for e in logs)

    def wait_for_step(self, window: Window, step: str, timeout: float = 600) -> Any:
        """The window's host run once it started `step` (its worker process alive)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for key in self.host_keys(window):
                for run in self.runs(HOST_JOB, key, [DagsterRunStatus.STARTED]):
                    if self.started_step(run.run_id, step) and self.run_pids(run.run_id):
                        return run
            time.sleep(0.2)
        raise TimeoutError(f"no run of {self.host_keys(window)} reached {step} in {timeout}s")

    def kill_run(self, run_id: str) -> int:
        pids = self.run_pids(run_id)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def reap_dead_runs(self) -> list[str]:
        """Marks runs whose worker is gone as failed and frees the pool slots that ended runs
        still hold, so one fault's dead runs do not block the next fault's (run monitoring's
        job, which main does not enable). Called after a row was measured; says what it did."""
        done: list[str] = []
        for run in self.instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
            if not self.run_pids(run.run_id):
                self.instance.report_run_failed(run, "worker process gone (fault harness)")
                done.append(f"run {run.run_id[:8]} marked failed")
        storage = self.instance.event_log_storage
        for pool in storage.get_concurrency_keys():
            for slot in storage.get_concurrency_info(pool).claimed_slots:
                run = self.instance.get_run_by_id(slot.run_id)
                if run is None or run.is_finished:
                    storage.free_concurrency_slots_for_run(slot.run_id)
                    done.append(f"{pool} slot of ended run {slot.run_id[:8]} freed")
        return done

    # ---- measuring ------------------------------------------------------------------------

    def _keys(self, first: int, last: int) -> list[str]:
        r = self.range_size
        start = first // r * r
        return [f"{b:012d}-{b + r - 1:012d}" for b in range(start, last - r + 2, r)]

    def host_keys(self, window: Window) -> list[str]:
        return self._keys(window.host_first, window.host_last)

    def gateway_keys(self, window: Window) -> list[str]:
        head = self.gateway_w3.eth.block_number
        return self._keys(window.gateway_first, head)

    def _done(self, w3: Web3, job: str, key: str) -> bool:
        """A successful run for the range's current last-block hash, or no need of one: the
        sensors give no run to a range without a log of the chain's contracts."""
        first, last = (int(b) for b in key.split("-"))
        info = self.info
        watched = (
            [info.executor_address, info.acl_address]
            if job == HOST_JOB
            else [info.input_verification_address, info.ciphertext_commits_address]
        )
        logs = w3.eth.get_logs(
            {
                "fromBlock": first,
                "toBlock": last,
                "address": [Web3.to_checksum_address(a) for a in watched],
            }
        )
        if not logs:
            return True
        block = w3.eth.get_block(last)
        want = bytes(block["hash"]).hex()
        return any(
            r.tags.get("fhevm/last_block_hash") == want
            for r in self.runs(job, key, [DagsterRunStatus.SUCCESS])
        )

    def _lost(self, window: Window) -> tuple[int, list[str]]:
        hw3, gw3 = self.host_w3, self.gateway_w3
        pairs = [(hw3, HOST_JOB, k) for k in self.host_keys(window)]
        pairs += [(gw3, GATEWAY_JOB, k) for k in self.gateway_keys(window)]
        lost = [f"{'host' if j == HOST_JOB else 'gateway'} {k}" for w, j, k in pairs
                if not self._done(w, j, k)]  # fmt: skip
        return len(pairs), lost

    def _handles(self, window: Window) -> list[bytes]:
        out: list[bytes] = []
        for key in self.host_keys(window):
            out += self.store.allowed_handles_of_range(key, chain_id=self.info.host_chain_id)
        return out

    def _missing(self, handles: list[bytes]) -> int:
        if not handles:
            return 0
        sender = self.info.coprocessor_tx_sender_address.lower()
        events = commit_events(
            self.gateway_w3, self.info.ciphertext_commits_address, handles,
            self.info.gateway_start_block,
        )  # fmt: skip
        ours = {e.material.handle for e in events if not e.consensus and
                (e.sender or "").lower() == sender}  # fmt: skip
        return len(set(handles) - ours)

    def duplicates(self) -> int:
        """This sender's successful gateway transactions beyond the first per (to, method,
        first argument), over the whole gateway chain."""
        w3 = self.gateway_w3
        sender = self.info.coprocessor_tx_sender_address.lower()
        seen: Counter[tuple[str, bytes]] = Counter()
        for n in range(self.info.gateway_start_block, w3.eth.block_number + 1):
            for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
                if str(tx["from"]).lower() != sender:  # type: ignore[index]
                    continue
                if w3.eth.get_transaction_receipt(tx["hash"])["status"] != 1:  # type: ignore[index]
                    continue
                seen[(str(tx["to"]).lower(), bytes(tx["input"])[:36])] += 1  # type: ignore[index]
        return sum(c - 1 for c in seen.values() if c > 1)

    def measure(self, window: Window) -> Measure:
        ranges, lost = self._lost(window)
        handles = self._handles(window)
        return Measure(ranges, lost, len(handles), self._missing(handles), self.duplicates())

    def _in_flight(self, window: Window) -> bool:
        keys = [(HOST_JOB, k) for k in self.host_keys(window)]
        keys += [(GATEWAY_JOB, k) for k in self.gateway_keys(window)]
        for job, key in keys:
            for run in self.runs(job, key, IN_FLIGHT):
                if run.status != DagsterRunStatus.STARTED or self.run_pids(run.run_id):
                    return True
        return False

    def wait_recovered(
        self, window: Window, timeout: float, idle: float = 75.0
    ) -> tuple[bool, float, Measure]:
        """Waits until every range of the window is done and every handle committed; gives up
        at `timeout`, or after `idle` seconds with nothing in flight (a dead run's worker gone,
        no new run requested). Returns (recovered, seconds since the window began, measure)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while True:
            now = time.monotonic()
            try:
                _, lost = self._lost(window)
                if not lost and not self._missing(self._handles(window)):
                    elapsed = now - (window.cleared or window.started)
                    return True, elapsed, self.measure(window)
                busy = self._in_flight(window)
            except Exception as exc:  # a store or instance reconnecting: look again
                self.log(f"  (while waiting: {type(exc).__name__}: {exc})")
                busy = True
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            if now > deadline or (quiet_since is not None and now - quiet_since > idle):
                return False, now - (window.cleared or window.started), self.measure(window)
            time.sleep(2)


@contextlib.contextmanager
def harness(**kwargs: Any) -> Iterator[Harness]:
    h = Harness(**kwargs)
    try:
        h.start()
        yield h
    finally:
        h.stop()
