"""Local anvil nodes managed by PID file: start, wait until they answer, status, stop.

Each node is named (e.g. "host", "gateway") and keeps `<name>.pid` and `<name>.log` in a state dir,
so a node started by one command (`fhevm-dagster devnet up`) can be found and stopped by another.
Nodes run in their own session so they outlive the process that started them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import DevnetError
from .tools import anvil_binary

#: Hardfork pinned so anvil upgrades do not change gas rules under us.
HARDFORK = "prague"
#: The default anvil mnemonic: its accounts are public test keys.
TEST_MNEMONIC = "test test test test test test test test test test test junk"
#: Prefunded accounts of that mnemonic: 0 deploys, 1-4 are the demo traffic's users, 9 owns the
#: host contracts; tests take the others as users of their own (a user's first mint must fall in
#: the blocks the test ingests, so no two tests on one devnet may fund the same user).
ACCOUNTS = 12

# Popen objects of nodes started by this process, so stopping them also reaps them (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class AnvilNode:
    """A running anvil node."""

    name: str
    pid: int
    port: int
    chain_id: int
    rpc_url: str
    log_file: str


@dataclass(frozen=True)
class AnvilStatus:
    """What the PID file and the RPC endpoint say about a named node."""

    name: str
    running: bool
    pid: int | None
    rpc_url: str | None
    chain_id: int | None
    block_number: int | None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def rpc_call(
    rpc_url: str, method: str, params: list[object] | None = None, timeout: float = 2.0
) -> object:
    """One JSON-RPC call with the standard library (used before web3 is worth setting up)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        rpc_url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise DevnetError(f"{method} on {rpc_url} failed: {reply['error']}")
    return reply["result"]


def _paths(state_dir: Path, name: str) -> tuple[Path, Path, Path]:
    return state_dir / f"{name}.pid", state_dir / f"{name}.log", state_dir / f"{name}.json"


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


def _is_anvil(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return _alive(pid)  # no procfs: trust the PID file
    return b"anvil" in cmdline


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_anvil(
    state_dir: Path,
    name: str,
    *,
    port: int,
    chain_id: int,
    timeout: float = 30.0,
    extra_args: list[str] | None = None,
) -> AnvilNode:
    """Starts anvil on 127.0.0.1:`port` with `chain_id` and waits until it answers eth_chainId."""
    state_dir.mkdir(parents=True, exist_ok=True)
    pid_file, log_file, meta_file = _paths(state_dir, name)
    existing = anvil_status(state_dir, name)
    if existing.running:
        raise DevnetError(f"anvil '{name}' is already running (pid {existing.pid}); stop it first")
    if port_in_use(port):
        raise DevnetError(f"port {port} on 127.0.0.1 is already in use; choose another port")
    args = [
        str(anvil_binary()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--hardfork",
        HARDFORK,
        "--mnemonic",
        TEST_MNEMONIC,
        "--accounts",
        str(ACCOUNTS),
        "--balance",
        "10000",
        *(extra_args or []),
    ]
    log = log_file.open("ab")
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    _children[process.pid] = process
    rpc_url = f"http://127.0.0.1:{port}"
    pid_file.write_text(f"{process.pid}\n")
    meta_file.write_text(
        json.dumps({"pid": process.pid, "port": port, "chain_id": chain_id}) + "\n"
    )
    node = AnvilNode(name, process.pid, port, chain_id, rpc_url, str(log_file))
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            _cleanup(state_dir, name)
            raise DevnetError(
                f"anvil '{name}' exited with code {process.returncode}; log {log_file}:\n"
                + _tail(log_file)
            )
        try:
            answered = rpc_call(rpc_url, "eth_chainId", timeout=1.0)
        except (OSError, urllib.error.URLError, DevnetError):
            answered = None
        if answered is not None:
            if int(str(answered), 16) != chain_id:
                stop_anvil(state_dir, name)
                raise DevnetError(
                    f"anvil '{name}' answers chain id {answered}, expected {chain_id}"
                )
            return node
        if time.monotonic() > deadline:
            stop_anvil(state_dir, name)
            raise DevnetError(f"anvil '{name}' did not answer on {rpc_url} within {timeout}s")
        time.sleep(0.1)


def _cleanup(state_dir: Path, name: str) -> None:
    pid_file, _, meta_file = _paths(state_dir, name)
    pid_file.unlink(missing_ok=True)
    meta_file.unlink(missing_ok=True)


def _read_meta(state_dir: Path, name: str) -> dict[str, int] | None:
    pid_file, _, meta_file = _paths(state_dir, name)
    if not pid_file.exists():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        return {k: int(v) for k, v in meta.items()}
    except (OSError, ValueError):
        try:
            return {"pid": int(pid_file.read_text().strip())}
        except (OSError, ValueError):
            return None


def anvil_status(state_dir: Path, name: str) -> AnvilStatus:
    """Whether the PID file's node is alive, with its chain id and block number if it answers."""
    meta = _read_meta(state_dir, name)
    if meta is None or not _alive(meta["pid"]) or not _is_anvil(meta["pid"]):
        return AnvilStatus(name, False, meta["pid"] if meta else None, None, None, None)
    port = meta.get("port")
    rpc_url = f"http://127.0.0.1:{port}" if port else None
    chain_id = block = None
    if rpc_url:
        try:
            chain_id = int(str(rpc_call(rpc_url, "eth_chainId")), 16)
            block = int(str(rpc_call(rpc_url, "eth_blockNumber")), 16)
        except (OSError, urllib.error.URLError, DevnetError):
            pass
    return AnvilStatus(name, True, meta["pid"], rpc_url, chain_id, block)


def stop_anvil(state_dir: Path, name: str, timeout: float = 10.0) -> bool:
    """Stops the node of the PID file (SIGTERM, then SIGKILL); returns whether one was running."""
    meta = _read_meta(state_dir, name)
    if meta is None:
        return False
    pid = meta["pid"]
    was_running = _alive(pid) and _is_anvil(pid)
    if was_running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=timeout)
    _cleanup(state_dir, name)
    return was_running
