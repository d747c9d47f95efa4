"""The coprocessor's settings: one typed object; nothing else reads the environment for them.

Each field of `Settings` is one setting: its type is the field's annotation, and its variable
(`FHEVM_DAGSTER_` + the field's name in capitals), text default, help, devnet.json field and secret
flag are the field's metadata, written once here. `load_settings` reads every one from its variable,
else from the running devnet's `devnet.json` (when the field names a devnet field), else its
default. It runs when Dagster builds the definitions or a command starts, never at import, and the
object is passed down from there (a few run-time readers that are handed no `Settings`, such as a
sensor tick or the log reader's span, load it where they need it). The README's settings table
is `markdown_table()` (a test keeps them equal).

A frozen dataclass rather than pydantic-settings: the design card names no settings library, the
pydantic in this environment is Dagster's implementation detail, and the rules here (devnet.json
between the environment and the default, `~` in URL defaults, the errors that name the variable)
are a few lines of plain Python that the pure modules can import without pulling in pydantic.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

from .protocol.addresses import ACL_ADDRESS, EXECUTOR_ADDRESS

PREFIX = "FHEVM_DAGSTER_"
_CACHE = "~/.cache/fhevm-dagster"


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the README's table: a field of `Settings` as its variable shows it."""

    env: str
    name: str
    default: str
    help: str
    devnet: str | None = None  # field of devnet.json that supplies it when the variable is unset
    secret: bool = False  # shown in the UI by variable name only (RPC URLs carry API keys)


def _setting(default: str, help: str, devnet: str | None = None, secret: bool = False) -> Any:
    return field(metadata={"setting": (default, help, devnet, secret)})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, typed: `None` where empty means unset (derived, or not wanted)."""

    # fmt: off
    # The host chains: a file listing them, or the one chain of the HOST_* settings below.
    host_chains: Path | None = _setting("", "JSON file listing the host chains (README); empty: the devnet's, else the one below")
    host_chain_id: int = _setting("31337", "host chain id, checked against the node", "host_chain_id")
    host_rpc_url: str = _setting("http://127.0.0.1:8545", "host JSON-RPC URL", "host_rpc_url", True)
    host_acl_address: str = _setting(ACL_ADDRESS, "host ACL", "acl_address")
    host_executor_address: str = _setting(EXECUTOR_ADDRESS, "host FHEVMExecutor", "executor_address")
    key_id: int = _setting("0", "FHE key id of the host chain (uint256)", "key_id")
    host_start_block: int = _setting("0", "first host block to ingest", "host_start_block")
    host_range_size: int = _setting("100", "host blocks per range (partition) while the coprocessor catches up")
    host_head_range_size: int | None = _setting("", "host blocks per range at the chain's head, where a range waits for its last block to be mined: a divisor of the range size, about the blocks mined per 10-s sensor tick; empty: the range size (README, Sensors)")
    host_confirmations: int | None = _setting("", "depth before a host range is ingested; empty: 0 for the running devnet's chains, else 20 (the finalization depth of Zama's host-listener)")
    host_max_ranges_per_tick: int = _setting("10", "host ranges requested per sensor tick")
    host_reorg_check_ranges: int = _setting("8", "recent host ranges whose last-block hash is rechecked")
    host_rpc_timeout: float = _setting("10", "seconds per host RPC request")
    host_poa: bool = _setting("0", "`1`: the host chain's blocks carry a proof-of-authority `extraData` (Polygon, BSC; a registry entry says `\"poa\": true`)")
    # The gateway chain.
    gateway_chain_id: int = _setting("10901", "gateway chain id, checked against the node", "gateway_chain_id")
    gateway_rpc_url: str = _setting("http://127.0.0.1:8546", "gateway JSON-RPC URL", "gateway_rpc_url", True)
    gateway_input_verification_address: str = _setting("", "gateway InputVerification", "input_verification_address")
    gateway_ciphertext_commits_address: str = _setting("", "gateway CiphertextCommits", "ciphertext_commits_address")
    gateway_start_block: int = _setting("0", "first gateway block to ingest", "gateway_start_block")
    gateway_range_size: int = _setting("100", "gateway blocks per range (partition) while the coprocessor catches up")
    gateway_head_range_size: int | None = _setting("", "gateway blocks per range at the chain's head: a divisor of the range size; empty: the range size")
    gateway_confirmations: int = _setting("0", "depth before a gateway range is ingested (Zama's gw-listener reads up to the head)")
    gateway_max_ranges_per_tick: int = _setting("10", "gateway ranges requested per sensor tick")
    gateway_reorg_check_ranges: int = _setting("8", "recent gateway ranges whose last-block hash is rechecked")
    gateway_rpc_timeout: float = _setting("10", "seconds per gateway RPC request")
    gateway_batch_deadline: float = _setting("180", "seconds to wait for the receipts of one batch of gateway transactions, together")
    gateway_fee_bump: float = _setting("30", "seconds before an unmined gateway transaction is replaced at its nonce with fees raised by 12.5 %")
    sender_lease: float = _setting("30", "seconds one process may hold the gateway sender's lease (nonces, broadcasts) without renewing it: a process that dies holding it blocks the others this long")
    commit_batch: int = _setting("32", "digest commits in flight at once")
    gateway_commit_lookback: int = _setting("10000", "gateway blocks searched back for an earlier commit of ours (its block, for reorg checks) and around our commits for peers' (drift): never the whole chain")
    # Both chains.
    run_empty_ranges: bool = _setting("0", "`1`: a run for every complete range; `0`: a range without a log of the chain's contracts is recorded as processed without a run (a run per 2-second block would queue behind empty ones)")
    accept_chain_reset: bool | None = _setting("", "a chain's genesis changed under its id: `1` start it again (its old rows dropped), `0` stop with an error; empty: `1` for the running devnet's chains only")
    rpc_retries: int = _setting("5", "retries of an RPC request that could not reach the node (web3's retry layer)")
    rpc_backoff: float = _setting("0.5", "seconds before the first RPC retry, doubled per retry")
    sensor_rpc_timeout: float = _setting("5", "seconds per RPC request of a block sensor tick (a tick must end within Dagster's 60-s sensor deadline)")
    sensor_rpc_retries: int = _setting("1", "retries of a block sensor tick's RPC request that could not reach the node")
    logs_max_span: int = _setting("2000", "blocks per eth_getLogs request at most; a provider's lower cap is learnt (halved when refused, grown back after successes)")
    # Keys: the files must be readable by their owner only (0600); the keys never reach the UI.
    signer_key: str = _setting("", "coprocessor EIP-712 signer key (0x hex), else the file below", secret=True)
    signer_key_file: Path | None = _setting("", "file holding the signer key", "signer_key_file")
    tx_sender_key: str = _setting("", "gateway transaction sender key (0x hex), else the file below", secret=True)
    tx_sender_key_file: Path | None = _setting("", "file holding the transaction sender key", "tx_sender_key_file")
    key_dir: Path | None = _setting("", "TFHE key set; empty: the committed devnet **test** keys")
    allow_test_keys: bool | None = _setting("", "`1`: let the public test keys serve chains that are not the running devnet's")
    # FHE work.
    device: str = _setting("cpu", "`cpu`, or `cuda`: the tfhe-py of `make tfhe-py-gpu` and a GPU; "
            "FHE steps then share the `gpu` pool")
    fhe_threads: int | None = _setting("", "operations evaluated at once; empty: the number of CPUs")
    range_batch_handles: int = _setting("64", "ciphertexts a range step holds, computes and stores at a time (its memory bound; 0: the whole range)")
    # Runs: Dagster's run retries are off (dagster.yaml): run monitoring fails a range run past
    # its maximum runtime, and the block sensors re-drive a range whose run failed.
    run_max_runtime: int = _setting("3600", "seconds a range run may take before run monitoring fails it (`dagster/max_runtime`; 0: no limit)")
    redrive_alert_after: int = _setting("5", "failed runs in a row of one range after which the sensor and the metrics alert (re-drives go on)")
    redrive_backoff: float = _setting("60", "seconds from a failed run to its range's re-drive, doubled per failed re-drive (re-drives never stop: transient is not terminal)")
    redrive_backoff_max: float = _setting("1800", "longest wait before a re-drive, in seconds")
    # Where things are kept.
    database_url: str = _setting(f"sqlite:///{_CACHE}/store.sqlite", "coprocessor store (SQLite or postgresql://…)", secret=True)
    db_lock_timeout: float = _setting("30", "PostgreSQL store: seconds a statement may wait for a lock, then it fails (the step retries)")
    db_statement_timeout: float = _setting("300", "PostgreSQL store: seconds a statement (or an idle transaction) may last")
    parquet_dir: Path = _setting(f"{_CACHE}/parquet", "per-range tables (views)")
    purge_ct128: bool = _setting("1", "`1`: a ct128's bytes leave the store once committed and in the object store (as the reference deletes its ct128 rows); `0`: kept")
    object_store: str = _setting(f"file://{_CACHE}/objects", "ciphertext objects: file:///dir or s3://bucket[/prefix]")
    s3_endpoint: str = _setting("", "S3-compatible endpoint (empty: AWS); credentials: boto3's usual AWS_* chain")
    cache: Path = _setting(_CACHE, "derived server keys and other caches")
    devnet_dir: Path = _setting(f"{_CACHE}/devnet", "devnet state: PIDs, logs, devnet.json, 0600 key files")
    devnet_json: Path = _setting(f"{_CACHE}/devnet/devnet.json", "the devnet whose fields fill the settings above")
    metrics_host: str = _setting("127.0.0.1", "`fhevm-dagster metrics serve` address")
    metrics_port: int = _setting("9464", "`fhevm-dagster metrics serve` port")
    run_retention_days: int = _setting("30", "finished Dagster runs (with their event logs) older than this many days are deleted, daily by `run_retention_sensor` or by `fhevm-dagster runs prune`; the newest run of a range still open and the newest success of each range are kept; 0: keep every run")
    # fmt: on
    #: The running devnet's devnet.json (empty without one): its chains are treated as throwaway.
    devnet: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: The variables set in the environment itself (not filled from the devnet or a default).
    explicit: frozenset[str] = frozenset()

    def variable_if_set(self, name: str) -> str:
        """The variable of field `name` when the environment sets it, else "" (a URL from one
        is handed to Dagster as that variable, so the UI never shows an API key)."""
        env = variable(name)
        return env if env in self.explicit else ""

    def devnet_host_chain_ids(self) -> set[int]:
        """The running devnet's host chains: the only ones the public test keys may serve."""
        return {int(h["chain_id"]) for h in self.devnet.get("host_chains") or []}

    def is_devnet_chain(self, chain_id: int, rpc_url: str) -> bool:
        """Whether the chain is one of the running devnet's: its chain id at its URL."""
        chains = [
            (h.get("chain_id"), h.get("rpc_url")) for h in self.devnet.get("host_chains") or []
        ]
        chains.append((self.devnet.get("gateway_chain_id"), self.devnet.get("gateway_rpc_url")))
        return (chain_id, rpc_url) in chains


@cache
def _types() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(PREFIX + f.name.upper(), f.name, *f.metadata["setting"])
    for f in fields(Settings)
    if "setting" in f.metadata
)
_BY_NAME = {s.name: s for s in SETTINGS}
DEVNET_JSON_ENV = _BY_NAME["devnet_json"].env


def variable(name: str) -> str:
    """The environment variable of the field `name` (for a child process's environment)."""
    return _BY_NAME[name].env


def _text(setting: Setting, environ: Mapping[str, str], devnet: Mapping[str, Any]) -> str:
    """Environment, else devnet.json, else the default (`~` expanded in `sqlite:///~` and
    `file://~` defaults)."""
    if environ.get(setting.env, "").strip():
        return environ[setting.env].strip()
    if setting.devnet is not None:
        from_devnet = devnet.get(setting.devnet)
        if from_devnet is not None:
            return str(from_devnet)
    return setting.default.replace("///~/", f"///{Path.home()}/").replace(
        "//~/", f"//{Path.home()}/"
    )


def _parse(setting: Setting, text: str) -> Any:
    kind = _types()[setting.name]
    optional = isinstance(kind, UnionType) and NoneType in typing.get_args(kind)
    if optional:
        if not text:
            return None
        (kind,) = (t for t in typing.get_args(kind) if t is not NoneType)
    where = f"{setting.env}={text!r}"
    if kind is bool:
        if text not in ("0", "1"):
            raise ValueError(
                f"{where}: expected 1, 0 or unset" if optional else f"{where}: expected 1 or 0"
            )
        return text == "1"
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{where} is not an integer") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{where} is not a number") from None
    if kind is Path:
        return Path(text).expanduser()
    return text


def default(name: str) -> Any:
    """The parsed default of the setting `name`: what the plain configs and resources take as
    their own defaults, so that no default is written twice."""
    setting = _BY_NAME[name]
    return _parse(setting, _text(setting, {}, {}))


def _devnet_info(environ: Mapping[str, str]) -> dict[str, Any]:
    """The devnet's `DevnetInfo` JSON when present (read as data: no devnet import), else {}."""
    path = Path(_text(_BY_NAME["devnet_json"], environ, {})).expanduser()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Every setting from `environ`, else the running devnet's devnet.json, else its default;
    a value that does not parse is an error that names its variable."""
    devnet = _devnet_info(environ)
    values = {s.name: _parse(s, _text(s, environ, devnet)) for s in SETTINGS}
    explicit = frozenset(s.env for s in SETTINGS if environ.get(s.env, "").strip())
    return Settings(**values, devnet=devnet, explicit=explicit)


def markdown_table() -> str:
    """The README's settings table."""
    rows = [
        f"| `{s.env}` | {s.help}{' (secret: never shown in the UI)' if s.secret else ''} | "
        f"{'devnet `' + s.devnet + '`, else ' if s.devnet else ''}`{s.default or '(none)'}` |"
        for s in SETTINGS
    ]
    return "\n".join(["| variable | what | default |", "|---|---|---|", *rows])
