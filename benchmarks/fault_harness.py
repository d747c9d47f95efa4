"""The coprocessor as deployed, on a real devnet, for fault injection: `Harness`.

One host chain and the gateway (anvil, mining on demand, so ranges complete when the harness says),
a TCP proxy in front of each RPC (`fault_proxy.TcpProxy`: outages) and, when a `provider` proxy
class is given, a JSON-RPC proxy behind it (`fault_proxy.RpcProxy`: a public provider's caps and a
lagging replica, and per-method request counts), a DAGSTER_HOME in a temp dir (the repo's
dagster.yaml, or deploy/dagster-postgres.yaml on a throwaway PostgreSQL cluster) and a real
`dagster-daemon run` subprocess whose sensors and runs reach the chains through the proxies only.
The coprocessor runs at its default settings: the harness sets only the range sizes (blocks are
mined on demand, so a range's size changes no timeout) and, behind proxies, chain-reset adoption.
`benchmarks/latency.py` uses the same harness as deployed: interval mining (`block_time`), no
proxies.

A fault is measured over a `Window`: the host ranges its traffic lands in and the gateway blocks
mined from its start on. Traffic reuses the same users in every window, so a window's transfers
read the balances earlier windows' ranges produced: ranges depend on earlier ranges, as on a live
token (no row needs a range independent of earlier ones: `devnet-reset`'s new chain mints the
same users again). `measure` judges from the chains, not from what the coprocessor believes:
- ranges lost: complete ranges of the window (host, and gateway ranges from the window's first
  gateway block) holding a log of the watched contracts, without a successful run requested for
  their current last-block hash;
- handles without a confirmed commit: the handles an ACL `Allowed`/`AllowedForDecryption` event
  names in the window's host ranges (read from the host chain), without an `AddCiphertextMaterial`
  from this coprocessor's sender on the canonical gateway chain;
- duplicate transactions (any status; the "extra transactions" of issue 23 are this column):
  transactions of this coprocessor's gateway sender mined in the window's gateway blocks, of any
  status (a reverted one still spends a nonce and gas), that are not the first on the canonical
  gateway chain for their intent: (to, method selector, first argument: the handle or the proof
  id). Fee-bump replacements share a nonce, so at most one of them is mined and none counts.
  Transactions the injection itself made fail (`Window.forced`) are neither intents nor extras.
  `transactions`, `reverted` and `forced` are reported beside it (`--json`);
- unanswered proofs: input-proof requests the fault sent (`Window.proofs`) without this sender's
  successful `verifyProofResponse`/`rejectProofResponse` for their id; the answer latency is the
  answer's gateway block timestamp minus the request's.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
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
from typing import Any, Literal, Protocol

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from fault_proxy import TcpProxy
from web3 import Web3

from fhevm_dagster.chain.ciphertext_commits import commit_events
from fhevm_dagster.chain.client import raw_log
from fhevm_dagster.chain.config import DEFAULT_RPC
from fhevm_dagster.chain.sender import padded_gas
from fhevm_dagster.devnet import (
    DevnetInfo,
    anvil_account,
    connect,
    contract_at,
    devnet_down,
    devnet_up,
    free_port,
    load_abi,
    run_token_traffic,
    send_transaction,
)
from fhevm_dagster.devnet.chain import rpc, set_balance
from fhevm_dagster.devnet.env import devnet_settings
from fhevm_dagster.devnet.traffic import token_contract
from fhevm_dagster.protocol.computations import allowed_handles
from fhevm_dagster.protocol.events import decode_logs
from fhevm_dagster.settings import SETTINGS
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
#: Traffic users from this anvil mnemonic index on (0..9 belong to the devnet).
FIRST_USER = 20
#: Users every window's traffic shares (FIRST_USER on): their balances chain across ranges.
SHARED_USERS = 4
_P = "FHEVM_DAGSTER_"
DEFAULTS = {s.env: s.default for s in SETTINGS}
#: How long after a failure the sensor may still re-drive a range (its longest back-off, default
#: settings): a window with such a failure is not idle.
REDRIVE_HORIZON_S = float(DEFAULTS[f"{_P}REDRIVE_BACKOFF_MAX"]) + 60
#: Run monitoring frees a pool slot this long after its run ended (dagster.yaml:
#: free_slots_after_run_end_seconds + poll_interval_seconds); a slot held longer is stuck.
SLOT_GRACE_S = 180.0
#: A node.js-made input list (tests/fixtures/inputs): 100 as Uint64, valid for its contract and
#: user on host chain 31337; every request of it gets a new zkProofId and a real verification.
PROOF_FIXTURE = REPO / "tests" / "fixtures" / "inputs" / "transfer_u64"
#: Who sends the harness's input-proof requests on the gateway (a devnet account with ether).
PROOF_SENDER = 9
_ANSWERS = {
    bytes(Web3.keccak(text=sig))[:4]
    for sig in (
        "verifyProofResponse(uint256,bytes32[],bytes,bytes)",
        "rejectProofResponse(uint256,bytes)",
    )
}
_REQUEST_TOPIC = bytes(
    Web3.keccak(text="VerifyProofRequest(uint256,uint256,address,address,bytes,bytes)")
)

Mode = Literal["pass", "drop", "stall"]


class Proxy(Protocol):
    """What the harness needs of a proxy in front of a node."""

    port: int

    @property
    def url(self) -> str: ...
    def set_mode(self, mode: Mode) -> None: ...
    def close(self) -> None: ...


class Provider(Proxy, Protocol):
    """A JSON-RPC proxy imitating a public provider (`fault_proxy.RpcProxy`)."""

    span_cap: int | None
    result_cap: int | None
    lag_blocks: int
    requests: Counter[str]


ProviderFactory = Callable[[int], Provider]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _children(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc), deepest last."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (proc / "stat").read_text()
                parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        out += kids
        frontier = kids
    return out


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
    """What one fault is judged on: the host blocks of its traffic, the gateway blocks after, and
    what the injection recorded."""

    host_first: int
    gateway_first: int
    host_last: int = -1
    started: float = field(default_factory=time.monotonic)
    #: When the fault was over (time to recover counts from here).
    cleared: float | None = None
    #: What was live when the fault hit, for the row's note.
    notes: list[str] = field(default_factory=list)
    #: Numbers the injection measured (for --json).
    figures: dict[str, float] = field(default_factory=dict)
    #: Our gateway transactions the injection itself made fail: neither intents nor extras.
    forced: set[bytes] = field(default_factory=set)
    #: Input-proof requests sent during the fault, (zkProofId, gateway block): recovery waits for
    #: their answers, and their latency is measured.
    proofs: list[tuple[int, int]] = field(default_factory=list)
    #: Named gateway timestamps (`Harness.gateway_mark`) splitting the window into periods whose
    #: commit throughput is measured: period i runs from mark i to mark i + 1 (the last to the
    #: window's last commit).
    marks: list[tuple[str, int]] = field(default_factory=list)
    #: Called on every poll while waiting for recovery (a live chain producing blocks).
    tick: Callable[[], None] | None = None
    #: Undone once the row is measured (a provider's caps back off).
    undo: list[Callable[[], None]] = field(default_factory=list)

    def clear(self) -> None:
        self.cleared = time.monotonic()


@dataclass(frozen=True)
class Measure:
    """The row's columns, judged from the chains (module docstring)."""

    ranges: int
    ranges_lost: list[str]
    handles: int
    handles_missing: int
    duplicates: int
    transactions: int = 0
    reverted: int = 0
    forced: int = 0
    unanswered: int = 0
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.ranges_lost or self.handles_missing or self.duplicates or self.unanswered)


@dataclass(frozen=True)
class Sent:
    """One of our gateway transactions, as `Harness.sender_transactions` reads it."""

    tx_hash: bytes
    block: int
    intent: tuple[str, bytes]  # (to, selector + first argument)
    ok: bool | None  # receipt status; None when not looked up (outside the window)


class Harness:
    """Devnet + proxies + Dagster daemon; see the module docstring."""

    def __init__(
        self, root: Path | None = None, *, postgres: bool = False, range_size: int = 10,
        log: Callable[[str], None] = print, gateway_range_size: int | None = None,
        block_time: int | None = None, proxies: bool = True,
        provider: ProviderFactory | None = None, code: Path = REPO,
    ) -> None:  # fmt: skip
        """`block_time`: the chains mine every that many seconds (else on demand); `proxies`:
        the daemon reaches the chains through TCP proxies (else directly); `provider`: with
        proxies, a JSON-RPC proxy of this class sits behind each TCP proxy (`host_rpc`,
        `gateway_rpc`); `code`: the checkout whose package, workspace.yaml and instance files
        the daemon runs (another one than this harness's: a before/after comparison)."""
        self.root = Path(root or tempfile.mkdtemp(prefix="fhevm-faults-"))
        self.range_size, self.log = range_size, log
        self.gateway_range_size = gateway_range_size or range_size
        self.block_time, self.proxies, self.provider = block_time, proxies, provider
        self.use_postgres, self.code = postgres, code.resolve()
        self.pg: Postgres | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.host_rpc: Provider | None = None
        self.gateway_rpc: Provider | None = None
        self._seed = 0
        self.root.mkdir(parents=True, exist_ok=True)
        self._daemon_log = (self.root / "daemon.log").open("ab")

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.state = self.root / "devnet"
        self.host_port, self.gateway_port = free_port(), free_port()
        self.info = self._devnet_up()
        host_url, gateway_url = self.info.host_rpc_url, self.info.gateway_rpc_url
        if self.proxies:
            host_up, gateway_up = self.host_port, self.gateway_port
            if self.provider is not None:
                self.host_rpc = self.provider(self.host_port)
                self.gateway_rpc = self.provider(self.gateway_port)
                host_up, gateway_up = self.host_rpc.port, self.gateway_rpc.port
            self.host_proxy = TcpProxy(host_up)
            self.gateway_proxy = TcpProxy(gateway_up)
            host_url, gateway_url = self.host_proxy.url, self.gateway_proxy.url
        home = self.root / "dagster_home"
        home.mkdir(exist_ok=True)
        env = dict(os.environ)
        if self.use_postgres:
            self.pg = Postgres()
            store_url = self.pg.url("store")
            shutil.copy(self.code / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
            pg_env = {
                "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.pg.port),
                "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "",
                "DAGSTER_PG_DB": "dagster",
            }  # fmt: skip
            os.environ.update(pg_env)  # this process reads the instance too
            env.update(pg_env)
        else:
            store_url = f"sqlite:///{self.root / 'store.sqlite'}"
            shutil.copy(self.code / "dagster.yaml", home / "dagster.yaml")
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
        }
        if self.proxies:
            # The chains sit behind the proxies, not at devnet.json's URLs: say that a new
            # genesis is a reset to adopt (the devnet-reset row), and that a block is final when
            # mined, as an operator of a devnet would.
            knobs[f"{p}ACCEPT_CHAIN_RESET"] = "1"
            knobs[f"{p}HOST_CONFIRMATIONS"] = "0"
        #: The settings this harness changes from their defaults (where things are kept aside).
        self.knobs = knobs
        # The code location under test is `code`'s: the daemon, its code server and the runs
        # they start import `fhevm_dagster` from there, not from wherever the venv's editable
        # install points (another worktree).
        pythonpath = os.pathsep.join(p for p in (str(self.code), env.get("PYTHONPATH", "")) if p)
        env.update({
            "DAGSTER_HOME": str(home),
            f"{p}HOST_CHAINS": str(registry),
            f"{p}GATEWAY_RPC_URL": gateway_url,
            f"{p}DATABASE_URL": store_url,
            f"{p}PARQUET_DIR": str(self.root / "parquet"),
            f"{p}OBJECT_STORE": f"file://{self.root / 'objects'}",
            **knobs,
            "PATH": f"{BIN}:{env.get('PATH', '')}",
            "PYTHONPATH": pythonpath,
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
        proxies = ("host_proxy", "gateway_proxy", "host_rpc", "gateway_rpc")
        for proxy in (getattr(self, name, None) for name in proxies):
            if proxy is not None:
                proxy.close()
        with contextlib.suppress(Exception):
            devnet_down(self.state)
        if self.pg is not None:
            self.pg.stop()

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(self.code / "workspace.yaml")],
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

    def _mine_to_boundary(self, w3: Web3, size: int) -> int:
        head = w3.eth.block_number
        end = (head + size) // size * size - 1  # head itself when it ends a range
        if end > head:
            rpc(w3, "anvil_mine", [hex(end - head)])
        return end

    def mine_host_to_boundary(self) -> int:
        """Mines the host chain up to the end of its current range; returns the head."""
        return self._mine_to_boundary(self.host_w3, self.range_size)

    def mine_gateway_to_boundary(self) -> int:
        """Mines the gateway up to the end of its current range (a live gateway keeps producing
        blocks: a range completes); returns the head."""
        return self._mine_to_boundary(self.gateway_w3, self.gateway_range_size)

    def gateway_mark(self, window: Window, name: str) -> None:
        """Starts period `name` of the window at the gateway's clock now (an empty block)."""
        gw = self.gateway_w3
        rpc(gw, "evm_mine", [])
        window.marks.append((name, int(gw.eth.get_block("latest")["timestamp"])))

    def begin(self) -> Window:
        """A fresh window: the host chain mined to a range boundary, so the traffic that follows
        opens a range of its own."""
        head = self.mine_host_to_boundary()
        return Window(head + 1, self.gateway_w3.eth.block_number + 1)

    def mint_users(self) -> Window:
        """Mints to the shared users now, in a range of its own (its window), so that a
        window's traffic is its transfers only: one host block each."""
        w = self.begin()
        self.traffic(0)
        self.close(w)
        return w

    def traffic(self, transfers: int) -> None:
        """`transfers` transfers between the shared users (minted on first use), one host
        block each: they read balances that earlier windows' ranges produced."""
        users = list(range(FIRST_USER, FIRST_USER + SHARED_USERS))
        w3 = self.host_w3
        for i in users:
            set_balance(w3, anvil_account(i).address, 10**21)
        self._seed += 1
        run_token_traffic(self.info, transfers, users=users, seed=self._seed)

    def traffic_block(self, transfers: int) -> None:
        """`transfers` transfers between the shared users, mined in one host block (more when
        they outgrow its gas limit): a range holding more transfers than blocks. Every third
        asks for more than any balance (it moves 0), as `run_token_traffic` does."""
        w3 = self.host_w3
        token = token_contract(w3, self.info)
        accounts = [anvil_account(i) for i in range(FIRST_USER, FIRST_USER + SHARED_USERS)]
        nonces = {a.address: int(w3.eth.get_transaction_count(a.address)) for a in accounts}
        self._seed += 1
        rng = random.Random(self._seed)
        rpc(w3, "evm_setAutomine", [False])
        try:
            for i in range(transfers):
                sender, receiver = rng.sample(accounts, 2)
                amount = 2**64 - 1 - rng.randrange(1000) if i % 3 == 2 else rng.randrange(1000)
                call = token.functions.transferAmount(receiver.address, amount)
                params: Any = {"from": sender.address, "nonce": nonces[sender.address]}
                params["gas"] = padded_gas(call.estimate_gas({"from": sender.address}))
                tx: Any = call.build_transaction(params)
                signed = sender.sign_transaction(tx)
                w3.eth.send_raw_transaction(signed.raw_transaction)
                nonces[sender.address] += 1
            while rpc(w3, "txpool_status", [])["pending"] != "0x0":
                rpc(w3, "evm_mine", [])
        finally:
            rpc(w3, "evm_setAutomine", [True])

    def close(self, window: Window) -> None:
        """Completes the window's last range (mines to its boundary)."""
        window.host_last = self.mine_host_to_boundary()

    def reset_devnet(self) -> None:
        """The devnet is wiped and deployed again on the same ports and chain ids."""
        devnet_down(self.state)
        self.info = self._devnet_up()

    def request_proof(self) -> tuple[int, int]:
        """A user's input-proof request on the gateway (PROOF_FIXTURE): (zkProofId, block)."""
        meta = json.loads(PROOF_FIXTURE.with_suffix(".json").read_text())
        data = PROOF_FIXTURE.with_suffix(".bin").read_bytes()
        gw = self.gateway_w3
        iv = contract_at(gw, self.info.input_verification_address, load_abi("InputVerification"))
        call = iv.functions.verifyProofRequest(
            int(meta["chain_id"]), Web3.to_checksum_address(meta["contract"]),
            Web3.to_checksum_address(meta["user"]), data, b"\x00",
        )  # fmt: skip
        receipt = send_transaction(gw, anvil_account(PROOF_SENDER), call)
        for log in receipt["logs"]:
            if log["topics"] and bytes(log["topics"][0]) == _REQUEST_TOPIC:
                return int.from_bytes(bytes(log["topics"][1]), "big"), int(receipt["blockNumber"])
        raise RuntimeError(f"no VerifyProofRequest in {receipt['transactionHash'].hex()}")

    def pool(self) -> list[dict[str, Any]]:
        """This coprocessor's transactions in the gateway's pool (pending and queued)."""
        content = rpc(self.gateway_w3, "txpool_content", [])
        sender = self.info.coprocessor_tx_sender_address.lower()
        return [
            tx
            for part in ("pending", "queued")
            for address, txs in content.get(part, {}).items()
            if address.lower() == sender
            for tx in txs.values()
        ]

    def describe_pool(self) -> str:
        txs = self.pool()
        if not txs:
            return "gateway pool: none of ours"
        shown = ", ".join(f"{tx['hash'][:10]}… nonce {int(tx['nonce'], 16)}" for tx in txs[:4])
        return f"gateway pool: {len(txs)} of ours ({shown})"

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

    def code_servers(self) -> list[int]:
        """The gRPC code servers the daemon started for workspace.yaml (`dagster api grpc`)."""
        out = []
        for pid in self._ours():
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"api" in argv and b"grpc" in argv:
                    out.append(pid)
        return out

    def kill_code_server(self) -> list[int]:
        """kill -9 of every code server with its descendants (the run workers it started);
        returns the pids killed."""
        killed = []
        for pid in self.code_servers():
            for p in [pid, *_children(pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
                    killed.append(p)
        return killed

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

    def live_steps(self, run_id: str) -> list[str]:
        """The run's steps started and not ended, from its events (short names)."""
        kinds = {
            DagsterEventType.STEP_START,
            DagsterEventType.STEP_SUCCESS,
            DagsterEventType.STEP_FAILURE,
            DagsterEventType.STEP_UP_FOR_RETRY,
        }
        live: dict[str, bool] = {}
        for e in self.instance.all_logs(run_id, of_type=kinds):
            step = str(e.step_key).rsplit("__", 1)[-1]
            live[step] = e.dagster_event is not None and (
                e.dagster_event.event_type == DagsterEventType.STEP_START
            )
        return [s for s, on in live.items() if on]

    def wait_for_step(self, window: Window, step: str, timeout: float = 900) -> Any:
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

    def failed_runs(self, job: str, key: str) -> int:
        return len(self.runs(job, key, [DagsterRunStatus.FAILURE]))

    def reap_dead_runs(self) -> list[str]:
        """What Dagster left stuck, fixed and named so the next row starts clean: a run STARTED
        whose worker is gone (its code server died with it: nothing else fails it before its
        maximum runtime) is marked failed, and a pool slot still claimed by a run that ended more
        than SLOT_GRACE_S ago is freed. Not a cure: the caller reports each action, and a row
        whose state needed one does not read green."""
        done: list[str] = []
        started = RunsFilter(statuses=[DagsterRunStatus.STARTED])
        dead = [r for r in self.instance.get_runs(started) if not self.run_pids(r.run_id)]
        if dead:
            time.sleep(5)  # a code server reports a worker that just died within a second
        for run in dead:
            current = self.instance.get_run_by_id(run.run_id)
            if current is not None and current.status == DagsterRunStatus.STARTED:
                self.instance.report_run_failed(current, "worker process gone (fault harness)")
                done.append(f"run {run.run_id[:8]} STARTED without a worker marked failed")
        storage = self.instance.event_log_storage
        now = time.time()
        for pool in storage.get_concurrency_keys():
            for slot in storage.get_concurrency_info(pool).claimed_slots:
                record = self.instance.get_run_record_by_id(slot.run_id)
                ended = record is None or record.dagster_run.is_finished
                end = record.end_time if record is not None else None
                if ended and (end is None or now - end > SLOT_GRACE_S):
                    storage.free_concurrency_slots_for_run(slot.run_id)
                    done.append(f"{pool} slot of run {slot.run_id[:8]}, ended, freed")
        return done

    # ---- measuring ------------------------------------------------------------------------

    def _keys(self, first: int, last: int, size: int) -> list[str]:
        start = first // size * size
        return [f"{b:012d}-{b + size - 1:012d}" for b in range(start, last - size + 2, size)]

    def host_keys(self, window: Window) -> list[str]:
        return self._keys(window.host_first, window.host_last, self.range_size)

    def gateway_keys(self, window: Window) -> list[str]:
        head = self.gateway_w3.eth.block_number
        return self._keys(window.gateway_first, head, self.gateway_range_size)

    def gateway_key(self, block: int) -> str:
        """The gateway range holding `block`."""
        first = block // self.gateway_range_size * self.gateway_range_size
        return f"{first:012d}-{first + self.gateway_range_size - 1:012d}"

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

    def lost(self, window: Window) -> tuple[int, list[str]]:
        hw3, gw3 = self.host_w3, self.gateway_w3
        pairs = [(hw3, HOST_JOB, k) for k in self.host_keys(window)]
        pairs += [(gw3, GATEWAY_JOB, k) for k in self.gateway_keys(window)]
        lost = [f"{'host' if j == HOST_JOB else 'gateway'} {k}" for w, j, k in pairs
                if not self._done(w, j, k)]  # fmt: skip
        return len(pairs), lost

    def handles(self, window: Window) -> list[bytes]:
        """The handles ACL events make durable in the window's host ranges, from the host
        chain (not the store: a coprocessor that missed a log must not shrink the count)."""
        keys = self.host_keys(window)
        if not keys:
            return []
        info, w3 = self.info, self.host_w3
        logs = w3.eth.get_logs(
            {
                "fromBlock": int(keys[0].split("-")[0]),
                "toBlock": int(keys[-1].split("-")[1]),
                "address": Web3.to_checksum_address(info.acl_address),
            }
        )
        report = decode_logs([raw_log(x) for x in logs], info.executor_address, info.acl_address)
        return list(dict.fromkeys(a.handle for a in allowed_handles(report.decoded)))

    def committed(self, handles: list[bytes]) -> dict[bytes, int]:
        """Our AddCiphertextMaterial of each of `handles` on the canonical gateway: its block."""
        if not handles:
            return {}
        sender = self.info.coprocessor_tx_sender_address.lower()
        events = commit_events(
            self.gateway_w3, self.info.ciphertext_commits_address, handles,
            self.info.gateway_start_block, max_span=DEFAULT_RPC.logs_max_span,
        )  # fmt: skip
        out: dict[bytes, int] = {}
        for e in events:
            if not e.consensus and (e.sender or "").lower() == sender:
                out.setdefault(e.material.handle, e.block_number)
        return out

    def uncommitted(self, handles: list[bytes]) -> int:
        return len(set(handles) - set(self.committed(handles)))

    def sender_transactions(self, from_block: int, status_from: int) -> list[Sent]:
        """This coprocessor's transactions mined on the canonical gateway from `from_block` on,
        in chain order; receipt status read for those in blocks from `status_from` on."""
        w3 = self.gateway_w3
        sender = self.info.coprocessor_tx_sender_address.lower()
        out: list[Sent] = []
        for n in range(from_block, w3.eth.block_number + 1):
            for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]:
                t: Any = tx
                if str(t["from"]).lower() != sender:
                    continue
                to, data = str(t["to"]).lower(), bytes(t["input"])
                ok = None
                if n >= status_from:
                    ok = w3.eth.get_transaction_receipt(t["hash"])["status"] == 1
                out.append(Sent(bytes(t["hash"]), n, (to, data[:36]), ok))
        return out

    def _timestamp(self, block: int) -> int:
        return int(self.gateway_w3.eth.get_block(block)["timestamp"])

    def _answers(self, sent: list[Sent], proofs: list[tuple[int, int]]) -> dict[int, int]:
        """The gateway block of our first successful answer to each proof request."""
        iv = self.info.input_verification_address.lower()
        wanted = {zk for zk, _ in proofs}
        out: dict[int, int] = {}
        for s in sent:
            to, head = s.intent
            if to == iv and head[:4] in _ANSWERS and s.ok:
                zk = int.from_bytes(head[4:36], "big")
                if zk in wanted:
                    out.setdefault(zk, s.block)
        return out

    def _unanswered(self, window: Window) -> int:
        if not window.proofs:
            return 0
        first = min(b for _, b in window.proofs)
        answers = self._answers(self.sender_transactions(first, first), window.proofs)
        return len(window.proofs) - len(answers)

    def _throughput(self, window: Window, committed: dict[bytes, int]) -> dict[str, float]:
        """Our commits of the window's handles per second in each marked period (gateway block
        timestamps; the last period ends at the last commit), and transfers per second (a
        transfer makes two results durable: the new balances)."""
        if not window.marks or not committed:
            return {}
        stamps = {b: self._timestamp(b) for b in set(committed.values())}
        times = sorted(stamps[b] for b in committed.values())
        starts = [t for _, t in window.marks]
        ends = [*starts[1:], max(times[-1], starts[-1])]
        out: dict[str, float] = {}
        for i, ((name, start), end) in enumerate(zip(window.marks, ends, strict=True)):
            last = i == len(ends) - 1
            n = sum(1 for t in times if start <= t < end or (last and t == end))
            out[f"{name}_seconds"] = float(end - start)
            out[f"{name}_handles_per_s"] = n / max(end - start, 1)
            out[f"{name}_transfers_per_s"] = out[f"{name}_handles_per_s"] / 2
        return out

    def measure(self, window: Window) -> Measure:
        ranges, lost = self.lost(window)
        handles = self.handles(window)
        committed = self.committed(handles)
        sent = self.sender_transactions(self.info.gateway_start_block, window.gateway_first)
        seen: set[tuple[str, bytes]] = set()
        ours = reverted = dups = forced = 0
        for s in sent:
            if s.tx_hash in window.forced:
                forced += 1
                continue
            if s.block >= window.gateway_first:
                ours += 1
                reverted += s.ok is False
                dups += s.intent in seen
            seen.add(s.intent)
        figures = dict(window.figures)
        answers = self._answers(sent, window.proofs)
        for zk, block in window.proofs:
            if zk in answers:
                latency = self._timestamp(answers[zk]) - self._timestamp(block)
                figures[f"answer_latency_s[{zk}]"] = float(latency)
        figures.update(self._throughput(window, committed))
        return Measure(
            ranges, lost, len(handles), len(set(handles) - set(committed)), dups, ours,
            reverted, forced, len(window.proofs) - len(answers), figures,
        )  # fmt: skip

    def in_flight(self, window: Window) -> bool:
        """A run of the window is queued or working, or failed recently enough that the sensor
        may still re-drive it."""
        keys = [(HOST_JOB, k) for k in self.host_keys(window)]
        keys += [(GATEWAY_JOB, k) for k in self.gateway_keys(window)]
        now = time.time()
        for job, key in keys:
            for run in self.runs(job, key, IN_FLIGHT):
                if run.status != DagsterRunStatus.STARTED or self.run_pids(run.run_id):
                    return True
            failed = self.instance.get_run_records(
                RunsFilter(job_name=job, tags={"dagster/partition": key},
                           statuses=[DagsterRunStatus.FAILURE]), limit=1,
            )  # fmt: skip
            if failed and now - (failed[0].end_time or now) < REDRIVE_HORIZON_S:
                return True
        return False

    def wait_recovered(
        self, window: Window, timeout: float, idle: float = 120.0
    ) -> tuple[bool, float, Measure]:
        """Waits until every range of the window is done, every handle committed and every
        proof request answered; gives up at `timeout`, or after `idle` seconds with nothing in
        flight (no run queued or working, none failed within the sensor's re-drive horizon).
        Returns (recovered, seconds since the fault cleared, measure)."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while True:
            now = time.monotonic()
            try:
                if window.tick is not None:
                    window.tick()
                _, lost = self.lost(window)
                missing = not lost and self.uncommitted(self.handles(window))
                if not lost and not missing and not self._unanswered(window):
                    elapsed = now - (window.cleared or window.started)
                    return True, elapsed, self.measure(window)
                busy = self.in_flight(window)
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
