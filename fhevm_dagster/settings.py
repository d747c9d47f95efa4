"""The coprocessor's settings: one table, one way to read them.

A setting is read from its environment variable, else from the running devnet's `devnet.json`
(when the table names a devnet field), else its default. Reading happens when Dagster builds the
definitions or a command starts, never at import. The README's settings table is `markdown_table()`
(a test keeps them equal).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol.addresses import ACL_ADDRESS, EXECUTOR_ADDRESS

DEVNET_JSON_ENV = "FHEVM_DAGSTER_DEVNET_JSON"


@dataclass(frozen=True, slots=True)
class Setting:
    env: str
    default: str
    help: str
    devnet: str | None = None  # field of devnet.json that supplies it when the variable is unset
    secret: bool = False  # shown in the UI by variable name only (RPC URLs carry API keys)


_P = "FHEVM_DAGSTER_"
_CACHE = "~/.cache/fhevm-dagster"
SETTINGS: tuple[Setting, ...] = (
    # The host chains: a file listing them, or the one chain of the HOST_* settings below.
    Setting(f"{_P}HOST_CHAINS", "", "JSON file listing the host chains (README); empty: the devnet's, else the one below"),
    Setting(f"{_P}HOST_CHAIN_ID", "31337", "host chain id, checked against the node", "host_chain_id"),
    Setting(f"{_P}HOST_RPC_URL", "http://127.0.0.1:8545", "host JSON-RPC URL", "host_rpc_url", True),
    Setting(f"{_P}HOST_ACL_ADDRESS", ACL_ADDRESS, "host ACL", "acl_address"),
    Setting(f"{_P}HOST_EXECUTOR_ADDRESS", EXECUTOR_ADDRESS, "host FHEVMExecutor", "executor_address"),
    Setting(f"{_P}KEY_ID", "0", "FHE key id of the host chain (uint256)", "key_id"),
    Setting(f"{_P}HOST_START_BLOCK", "0", "first host block to ingest", "host_start_block"),
    Setting(f"{_P}HOST_RANGE_SIZE", "100", "host blocks per range (partition)"),
    Setting(f"{_P}HOST_CONFIRMATIONS", "", "depth before a host range is ingested; empty: 0 for the running devnet's chains, else 20 (the finalization depth of Zama's host-listener)"),
    Setting(f"{_P}HOST_MAX_RANGES_PER_TICK", "10", "host ranges requested per sensor tick"),
    Setting(f"{_P}HOST_REORG_CHECK_RANGES", "8", "recent host ranges whose last-block hash is rechecked"),
    Setting(f"{_P}HOST_RPC_TIMEOUT", "10", "seconds per host RPC request"),
    Setting(f"{_P}HOST_POA", "0", "`1`: the host chain's blocks carry a proof-of-authority `extraData` (Polygon, BSC; a registry entry says `\"poa\": true`)"),
    # The gateway chain.
    Setting(f"{_P}GATEWAY_CHAIN_ID", "10901", "gateway chain id, checked against the node", "gateway_chain_id"),
    Setting(f"{_P}GATEWAY_RPC_URL", "http://127.0.0.1:8546", "gateway JSON-RPC URL", "gateway_rpc_url", True),
    Setting(f"{_P}GATEWAY_INPUT_VERIFICATION_ADDRESS", "", "gateway InputVerification", "input_verification_address"),
    Setting(f"{_P}GATEWAY_CIPHERTEXT_COMMITS_ADDRESS", "", "gateway CiphertextCommits", "ciphertext_commits_address"),
    Setting(f"{_P}GATEWAY_START_BLOCK", "0", "first gateway block to ingest", "gateway_start_block"),
    Setting(f"{_P}GATEWAY_RANGE_SIZE", "100", "gateway blocks per range (partition)"),
    Setting(f"{_P}GATEWAY_CONFIRMATIONS", "0", "depth before a gateway range is ingested (Zama's gw-listener reads up to the head)"),
    Setting(f"{_P}GATEWAY_MAX_RANGES_PER_TICK", "10", "gateway ranges requested per sensor tick"),
    Setting(f"{_P}GATEWAY_REORG_CHECK_RANGES", "8", "recent gateway ranges whose last-block hash is rechecked"),
    Setting(f"{_P}GATEWAY_RPC_TIMEOUT", "10", "seconds per gateway RPC request"),
    Setting(f"{_P}GATEWAY_BATCH_DEADLINE", "180", "seconds to wait for the receipts of one batch of gateway transactions, together"),
    Setting(f"{_P}GATEWAY_FEE_BUMP", "30", "seconds before an unmined gateway transaction is replaced at its nonce with fees raised by 12.5 %"),
    Setting(f"{_P}SENDER_LEASE", "30", "seconds one process may hold the gateway sender's lease (nonces, broadcasts) without renewing it: a process that dies holding it blocks the others this long"),
    Setting(f"{_P}COMMIT_BATCH", "32", "digest commits in flight at once"),
    Setting(f"{_P}GATEWAY_COMMIT_LOOKBACK", "10000", "gateway blocks searched back for an earlier commit of ours (its block, for reorg checks) and around our commits for peers' (drift): never the whole chain"),
    # Both chains.
    Setting(f"{_P}RUN_EMPTY_RANGES", "0", "`1`: a run for every complete range; `0`: a range without a log of the chain's contracts is recorded as processed without a run (a run per 2-second block would queue behind empty ones)"),
    Setting(f"{_P}ACCEPT_CHAIN_RESET", "", "a chain's genesis changed under its id: `1` start it again (its old rows dropped), `0` stop with an error; empty: `1` for the running devnet's chains only"),
    Setting(f"{_P}RPC_RETRIES", "5", "retries of an RPC request that could not reach the node (web3's retry layer)"),
    Setting(f"{_P}RPC_BACKOFF", "0.5", "seconds before the first RPC retry, doubled per retry"),
    Setting(f"{_P}SENSOR_RPC_TIMEOUT", "5", "seconds per RPC request of a block sensor tick (a tick must end within Dagster's 60-s sensor deadline)"),
    Setting(f"{_P}SENSOR_RPC_RETRIES", "1", "retries of a block sensor tick's RPC request that could not reach the node"),
    Setting(f"{_P}LOGS_MAX_SPAN", "2000", "blocks per eth_getLogs request at most; a provider's lower cap is learnt (halved when refused, grown back after successes)"),
    # Keys: the files must be readable by their owner only (0600); the keys never reach the UI.
    Setting(f"{_P}SIGNER_KEY", "", "coprocessor EIP-712 signer key (0x hex), else the file below", secret=True),
    Setting(f"{_P}SIGNER_KEY_FILE", "", "file holding the signer key", "signer_key_file"),
    Setting(f"{_P}TX_SENDER_KEY", "", "gateway transaction sender key (0x hex), else the file below", secret=True),
    Setting(f"{_P}TX_SENDER_KEY_FILE", "", "file holding the transaction sender key", "tx_sender_key_file"),
    Setting(f"{_P}KEY_DIR", "", "TFHE key set; empty: the committed devnet **test** keys"),
    Setting(f"{_P}ALLOW_TEST_KEYS", "", "`1`: let the public test keys serve chains that are not the running devnet's"),
    # FHE work.
    Setting(f"{_P}DEVICE", "cpu", "`cpu`, or `cuda`: the tfhe-py of `make tfhe-py-gpu` and a GPU; "
            "FHE steps then share the `gpu` pool"),
    Setting(f"{_P}FHE_THREADS", "", "operations evaluated at once; empty: the number of CPUs"),
    Setting(f"{_P}RANGE_BATCH_HANDLES", "64", "ciphertexts a range step holds, computes and stores at a time (its memory bound; 0: the whole range)"),
    # Runs: Dagster's run retries are off (dagster.yaml): run monitoring fails a range run past
    # its maximum runtime, and the block sensors re-drive a range whose run failed.
    Setting(f"{_P}RUN_MAX_RUNTIME", "3600", "seconds a range run may take before run monitoring fails it (`dagster/max_runtime`; 0: no limit)"),
    Setting(f"{_P}REDRIVE_ALERT_AFTER", "5", "failed runs in a row of one range after which the sensor and the metrics alert (re-drives go on)"),
    Setting(f"{_P}REDRIVE_BACKOFF", "60", "seconds from a failed run to its range's re-drive, doubled per failed re-drive (re-drives never stop: transient is not terminal)"),
    Setting(f"{_P}REDRIVE_BACKOFF_MAX", "1800", "longest wait before a re-drive, in seconds"),
    # Where things are kept.
    Setting(f"{_P}DATABASE_URL", f"sqlite:///{_CACHE}/store.sqlite", "coprocessor store (SQLite or postgresql://…)", secret=True),
    Setting(f"{_P}DB_LOCK_TIMEOUT", "30", "PostgreSQL store: seconds a statement may wait for a lock, then it fails (the step retries)"),
    Setting(f"{_P}DB_STATEMENT_TIMEOUT", "300", "PostgreSQL store: seconds a statement (or an idle transaction) may last"),
    Setting(f"{_P}PARQUET_DIR", f"{_CACHE}/parquet", "per-range tables (views)"),
    Setting(f"{_P}PURGE_CT128", "1", "`1`: a ct128's bytes leave the store once committed and in the object store (as the reference deletes its ct128 rows); `0`: kept"),
    Setting(f"{_P}OBJECT_STORE", f"file://{_CACHE}/objects", "ciphertext objects: file:///dir or s3://bucket[/prefix]"),
    Setting(f"{_P}S3_ENDPOINT", "", "S3-compatible endpoint (empty: AWS); credentials: boto3's usual AWS_* chain"),
    Setting(f"{_P}CACHE", _CACHE, "derived server keys and other caches"),
    Setting(f"{_P}DEVNET_DIR", f"{_CACHE}/devnet", "devnet state: PIDs, logs, devnet.json, 0600 key files"),
    Setting(DEVNET_JSON_ENV, f"{_CACHE}/devnet/devnet.json", "the devnet whose fields fill the settings above"),
    Setting(f"{_P}METRICS_HOST", "127.0.0.1", "`fhevm-dagster metrics serve` address"),
    Setting(f"{_P}METRICS_PORT", "9464", "`fhevm-dagster metrics serve` port"),
    Setting(f"{_P}RUN_RETENTION_DAYS", "30", "finished Dagster runs (with their event logs) older than this many days are deleted, daily by `run_retention_sensor` or by `fhevm-dagster runs prune`; the newest run of a range still open and the newest success of each range are kept; 0: keep every run"),
)  # fmt: skip
_BY_ENV = {s.env: s for s in SETTINGS}


def devnet_info() -> dict[str, Any]:
    """The devnet's `DevnetInfo` JSON when present (read as data: no devnet import), else {}."""
    path = Path(os.environ.get(DEVNET_JSON_ENV) or _BY_ENV[DEVNET_JSON_ENV].default).expanduser()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def value(env: str) -> str:
    """The setting's value: environment, else devnet.json, else its default (`~` expanded in
    `sqlite:///~` and `file://~` defaults)."""
    setting = _BY_ENV[env]
    if is_set(env):
        return os.environ[env].strip()
    if setting.devnet is not None:
        from_devnet = devnet_info().get(setting.devnet)
        if from_devnet is not None:
            return str(from_devnet)
    return setting.default.replace("///~/", f"///{Path.home()}/").replace(
        "//~/", f"//{Path.home()}/"
    )


def is_set(env: str) -> bool:
    """Whether the variable itself is set (not the devnet or the default)."""
    return bool(os.environ.get(env, "").strip())


def path(env: str) -> Path:
    """A path setting, `~` expanded."""
    return Path(value(env)).expanduser()


def integer(env: str) -> int:
    text = value(env)
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{env}={text!r} is not an integer") from None


def number(env: str) -> float:
    text = value(env)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{env}={text!r} is not a number") from None


def markdown_table() -> str:
    """The README's settings table."""
    rows = [
        f"| `{s.env}` | {s.help}{' (secret: never shown in the UI)' if s.secret else ''} | "
        f"{'devnet `' + s.devnet + '`, else ' if s.devnet else ''}`{s.default or '(none)'}` |"
        for s in SETTINGS
    ]
    return "\n".join(["| variable | what | default |", "|---|---|---|", *rows])
