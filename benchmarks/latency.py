"""Block-to-commit latency of confidential transfers, p50/p95, per host range size (1, 5, 20).

The coprocessor as deployed: a devnet whose chains mine a block every 2 s (anvil interval mining,
both chains, as `make demo`), a fresh DAGSTER_HOME (the repo's dagster.yaml: SQLite, queued runs)
and SQLite store per range size, and a real `dagster-daemon run` with the block sensors on: sensor
tick → run request → run process → `addCiphertextMaterial` on the gateway. Per range size N the
devnet is fresh and the daemon starts with FHEVM_DAGSTER_HOST_RANGE_SIZE=N and
FHEVM_DAGSTER_GATEWAY_RANGE_SIZE=N (as `make demo` sets both); every other setting keeps its
default (`benchmarks/fault_harness.py`, without its proxies and fault knobs).

Traffic: `--transfers` demo-token `transferAmount` calls (the demo traffic of
`fhevm-dagster traffic`: the amount encrypted on chain, no input proof), one per `--interval`
seconds on average, each at a random moment of its own interval (a fixed period would land every
transfer at the same place in its range when the period is a multiple of the range's), each
from its own sender (minted before timing, and waited for) to a fresh receiver, so no transfer
reads another's result. A transfer's latency: from the timestamp of the host block
holding it to the timestamp of the gateway block holding this coprocessor's
AddCiphertextMaterial for the last of its allowed handles (block timestamps of both chains: anvil
stamps blocks with this machine's clock, whole seconds). The breakdown comes from the run
records of the Dagster instance (`latency_stats`).

    python benchmarks/latency.py                    # sizes 1,5,20; 12 transfers, 1 per 40 s
    python benchmarks/latency.py --sizes 20 --transfers 4 --interval 20 --timeout 300

About 12 minutes per size on 2 cores when the machine keeps up (more when it does not: each
size waits up to `--timeout` after its last transfer). Prints a markdown table, a table of step
times, and a recommendation for the Makefile's RANGE_SIZE; figures also go to `<root>/latency.json`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dagster import RunsFilter
from eth_account import Account
from fault_harness import FIRST_USER, GATEWAY_JOB, HOST_JOB, REPO, Harness
from latency_stats import (
    HEADER,
    Breakdown,
    SizeResult,
    Transfer,
    as_dict,
    breakdown,
    recommend,
    steps_table,
)
from web3 import Web3
from web3.types import TxReceipt

from fhevm_dagster.chain.ciphertext_commits import commit_events
from fhevm_dagster.chain.config import DEFAULT_RPC
from fhevm_dagster.devnet import anvil_account, run_token_traffic, send_transaction, set_balance
from fhevm_dagster.devnet.traffic import token_contract
from fhevm_dagster.sensors.blocks import SENSOR_INTERVAL_S

ALLOWED_TOPIC = bytes(Web3.keccak(text="Allowed(address,address,bytes32)"))
#: One transfer's work on this machine (2 cores): FHE evaluation and squash, in seconds.
TRANSFER_WORK_S = 2.5 + 12.0


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _busiest(n: int = 3) -> str:
    """The processes using the most CPU now (what else shares the machine)."""
    out = subprocess.run(
        ["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True
    ).stdout.splitlines()
    return "; ".join(" ".join(line.split()) for line in out[:n])


def allowed_handles(receipt: TxReceipt, acl: str) -> list[bytes]:
    """The handles a transaction allowed (the ACL's `Allowed` events), in log order."""
    out: list[bytes] = []
    for log in receipt["logs"]:
        if log["address"].lower() == acl.lower() and bytes(log["topics"][0]) == ALLOWED_TOPIC:
            handle = bytes(log["data"])[:32]
            if handle not in out:
                out.append(handle)
    return out


class Probe:
    """Sends the timed transfers on one harness and watches the gateway for their commits."""

    def __init__(self, h: Harness, transfers: int) -> None:
        self.h = h
        self.senders = [anvil_account(FIRST_USER + i) for i in range(transfers)]
        self.hw3, self.gw3 = h.host_w3, h.gateway_w3
        self.token = token_contract(self.hw3, h.info)
        self.sender_address = h.info.coprocessor_tx_sender_address.lower()
        self._ts: dict[tuple[str, int], int] = {}

    def timestamp(self, chain: str, block: int) -> int:
        if (chain, block) not in self._ts:
            w3 = self.hw3 if chain == "host" else self.gw3
            self._ts[(chain, block)] = int(w3.eth.get_block(block)["timestamp"])
        return self._ts[(chain, block)]

    def mint(self) -> list[Transfer]:
        """Funds and mints every sender; the mints as transfers to wait for."""
        for account in self.senders:
            set_balance(self.hw3, account.address, 10**21)
        users = [FIRST_USER + i for i in range(len(self.senders))]
        records = run_token_traffic(self.h.info, 0, users=users, seed=1)
        return [self._transfer(self.hw3.eth.get_transaction_receipt(r.tx_hash)) for r in records]

    def send(self, i: int) -> Transfer:
        """Transfer i: sender i to a fresh address (a small amount: it always moves)."""
        call = self.token.functions.transferAmount(Account.create().address, 1000 + i)
        return self._transfer(send_transaction(self.hw3, self.senders[i], call))

    def _transfer(self, receipt: TxReceipt) -> Transfer:
        block = int(receipt["blockNumber"])
        handles = allowed_handles(receipt, self.h.info.acl_address)
        return Transfer(block, self.timestamp("host", block), handles)

    def poll(self, transfers: list[Transfer]) -> None:
        """Records the gateway block timestamp of our first commit of each pending handle."""
        pending = [h for t in transfers for h in t.handles if h not in t.committed_ts]
        if not pending:
            return
        info = self.h.info
        events = commit_events(
            self.gw3,
            info.ciphertext_commits_address,
            pending,
            info.gateway_start_block,
            max_span=DEFAULT_RPC.logs_max_span,
        )
        first: dict[bytes, int] = {}
        for e in events:
            if not e.consensus and (e.sender or "").lower() == self.sender_address:
                first.setdefault(e.material.handle, e.block_number)
        for t in transfers:
            for handle in t.handles:
                if handle in first and handle not in t.committed_ts:
                    t.committed_ts[handle] = self.timestamp("gateway", first[handle])

    def wait(self, transfers: list[Transfer], deadline: float) -> bool:
        while True:
            self.poll(transfers)
            if all(t.done for t in transfers):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(2)


def measure_size(size: int, args: argparse.Namespace, root: Path) -> SizeResult:
    """One range size on a fresh devnet and DAGSTER_HOME: mint, wait, timed transfers, drain."""
    started, load_before, busiest = time.monotonic(), _loadavg(), _busiest()
    h = Harness(
        root / f"size-{size}", range_size=size, gateway_range_size=args.gateway_range_size or size,
        block_time=args.block_time, proxies=False, fault_knobs=False,
    )  # fmt: skip
    try:
        h.start()
        print(f"\n## range size {size} ({h.root}); load {load_before}; busiest: {busiest}")
        print("settings changed from their defaults: " + ", ".join(
            f"{k}={v}" for k, v in h.knobs.items()
        ))  # fmt: skip
        probe = Probe(h, args.transfers)
        mints = probe.mint()
        ready = probe.wait(mints, time.monotonic() + args.timeout)
        print(f"mints committed: {ready} ({time.monotonic() - started:.0f} s since start)")
        transfers: list[Transfer] = []
        t0, slots = time.monotonic(), random.Random(size)
        for i in range(args.transfers):
            at = t0 + (i + slots.random()) * args.interval
            time.sleep(max(0.0, at - time.monotonic()))
            transfers.append(probe.send(i))
            probe.poll(transfers)
            print(f"  transfer {i} in host block {transfers[-1].block}", flush=True)
        probe.wait(transfers, time.monotonic() + args.timeout)
        done = [t for t in transfers if t.done]
        shown = [f"{t.latency:.0f}" if t.done else "-" for t in transfers]
        print(f"latencies in send order (s; a growing series is a queue): {' '.join(shown)}")
        parts = [b for t in done if (b := _breakdown(h, probe, t, size)) is not None]
        return SizeResult(
            size, len(transfers), [t.latency for t in done], parts,
            len(h.instance.get_run_ids(RunsFilter(job_name=HOST_JOB))),
            len(h.instance.get_run_ids(RunsFilter(job_name=GATEWAY_JOB))),
            time.monotonic() - started, (load_before, _loadavg()),
        )  # fmt: skip
    finally:
        h.stop()


def _breakdown(
    h: Harness, probe: Probe, t: Transfer, size: int, wait_s: float = 90
) -> Breakdown | None:
    """`t`'s breakdown once its range's run ended (a run outlives its commits by a few steps);
    None when it does not end within `wait_s` or cannot be read (the latency stands without it)."""
    end_ts = probe.timestamp("host", (t.block // size + 1) * size - 1)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            found = breakdown(h.instance, HOST_JOB, t, size, end_ts)
        except Exception as exc:
            print(f"  no breakdown for block {t.block}: {type(exc).__name__}: {exc}")
            return None
        if found is not None or time.monotonic() > deadline:
            return found
        time.sleep(2)


def makefile_range_size() -> str:
    found = re.search(r"^RANGE_SIZE \?= (\d+)", (REPO / "Makefile").read_text(), re.M)
    return found.group(1) if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,5,20", help="host range sizes, comma-separated")
    parser.add_argument("--transfers", type=int, default=12, help="timed transfers per size")
    parser.add_argument(
        "--interval", type=float, default=40.0, help="mean seconds between transfers"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0,
        help="seconds to wait for the mints' commits, and for the transfers' after the last one",
    )  # fmt: skip
    parser.add_argument("--block-time", type=int, default=2, help="seconds per block, both chains")
    parser.add_argument(
        "--gateway-range-size", type=int, help="gateway blocks per range (default: the host's)"
    )
    parser.add_argument("--root", type=Path, help="work dir (default: a temp dir, kept)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # tear the harness down on TERM
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    root = args.root or Path(tempfile.mkdtemp(prefix="fhevm-latency-"))
    print(
        f"block time {args.block_time} s (both chains); sensor interval {SENSOR_INTERVAL_S} s; "
        f"{args.transfers} transfers per size, one per {args.interval:g} s: offered load "
        f"~{TRANSFER_WORK_S:g} s of FHE + squash per {args.interval:g} s "
        f"(~{TRANSFER_WORK_S / args.interval:.0%} of the machine, run overheads not counted); "
        f"gateway range size {args.gateway_range_size or 'same as host'}; work dir {root}"
    )
    results: list[SizeResult] = []
    for size in sizes:
        results.append(measure_size(size, args, root))
        (root / "latency.json").write_text(json.dumps([as_dict(r) for r in results], indent=1))
        print(f"\n{HEADER}\n" + "\n".join(r.row() for r in results), flush=True)
    print("\nmedian seconds per step of the transfers' host runs:\n" + steps_table(results))
    for r in results:
        print(f"range size {r.size}: {r.wall_s:.0f} s, load average {r.load[0]} → {r.load[1]}")
    print(f"load average now {_loadavg()}; busiest now: {_busiest()}")
    print(recommend(results, makefile_range_size()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
