"""The host chains this coprocessor serves: data, from one file or the settings.

`Settings.host_chains` names a JSON file holding a list of host chains; else the running
devnet's `host_chains`; else the one chain of the `Settings.host_*` settings. A file entry:

    {"chain_id": 31337, "rpc_url_env": "ETH_RPC_URL", "acl_address": "0x…",
     "executor_address": "0x…", "key_id": 0, "start_block": 0, "confirmations": 12,
     "poa": false}

`rpc_url` or `rpc_url_env` (the variable that holds the URL: it keeps API keys out of the file and
the UI) is required, as is `chain_id`; the other fields default to the `Settings.host_*`
settings (range size, head range size, confirmations, ticks, reorg window, timeout, PoA) or the
canonical addresses; `head_range_size` must divide the entry's `range_size`. `poa` (true/false):
the chain's blocks carry a proof-of-authority `extraData` (Polygon, BSC), which web3 reads only
when told.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ..protocol.addresses import ACL_ADDRESS, EXECUTOR_ADDRESS
from ..settings import Settings, variable
from .config import (
    HostChainConfig,
    RangeRules,
    accept_chain_reset,
    check_range_sizes,
    host_confirmations,
    rpc_settings,
)

_FIELDS = {
    "chain_id", "rpc_url", "rpc_url_env", "acl_address", "executor_address", "key_id",
    "start_block", "confirmations", "range_size", "head_range_size", "max_ranges_per_tick",
    "reorg_check_ranges", "poa",
}  # fmt: skip


class RegistryError(ValueError):
    """A host chain list that cannot be served: says which entry and why."""


def _int(entry: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RegistryError(f"{where}: {key} must be an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise RegistryError(f"{where}: {key} must be an integer, got {value!r}") from None


def _bool(entry: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = entry.get(key, default)
    if value in (0, 1, "0", "1"):  # True and False included
        return value in (1, "1")
    raise RegistryError(f"{where}: {key} must be true or false, got {value!r}")


def _head_size(entry: Mapping[str, Any], settings: Settings, size: int, where: str) -> int | None:
    """The entry's `head_range_size`, else the setting's (None: the range size), a divisor of
    the entry's range size; the error names where each size came from."""
    head = settings.host_head_range_size
    if "head_range_size" in entry:
        head = _int(entry, "head_range_size", 0, where)
    names = [k if k in entry else variable(f"host_{k}") for k in ("range_size", "head_range_size")]
    try:
        check_range_sizes(size, size if head is None else head, *names)
    except ValueError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    return head


def host_chain(
    settings: Settings, entry: Mapping[str, Any], where: str = "host chain"
) -> HostChainConfig:
    """One entry of the list, with the settings' defaults for what it leaves out."""
    unknown = set(entry) - _FIELDS
    if unknown:
        raise RegistryError(
            f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_FIELDS)}"
        )
    if "chain_id" not in entry:
        raise RegistryError(f"{where}: chain_id is required")
    chain_id = _int(entry, "chain_id", 0, where)
    where = f"{where} (chain {chain_id})"
    env = str(entry.get("rpc_url_env") or "")
    url = str(entry.get("rpc_url") or "") or (os.environ.get(env, "").strip() if env else "")
    if not url:
        need = f"${env} is empty" if env else "rpc_url or rpc_url_env is required"
        raise RegistryError(f"{where}: {need}")
    s = settings
    size = _int(entry, "range_size", s.host_range_size, where)
    head = _head_size(entry, s, size, where)
    ranges = RangeRules(
        range_size=size,
        head_range_size=head,
        confirmations=_int(entry, "confirmations", host_confirmations(s, chain_id, url), where),
        max_ranges_per_tick=_int(entry, "max_ranges_per_tick", s.host_max_ranges_per_tick, where),
        start_block=_int(entry, "start_block", 0, where),
        reorg_check_ranges=_int(entry, "reorg_check_ranges", s.host_reorg_check_ranges, where),
        accept_reset=accept_chain_reset(s, chain_id, url),
        run_empty=s.run_empty_ranges,
    )
    return HostChainConfig(
        chain_id=chain_id,
        rpc_url=url,
        acl_address=str(entry.get("acl_address") or ACL_ADDRESS),
        executor_address=str(entry.get("executor_address") or EXECUTOR_ADDRESS),
        key_id=_int(entry, "key_id", s.key_id, where),
        rpc=rpc_settings(s, s.host_rpc_timeout, _bool(entry, "poa", s.host_poa, where)),
        ranges=ranges,
        rpc_url_env=env,
    )


def _single(settings: Settings) -> dict[str, Any]:
    """The one host chain of the `Settings.host_*` settings, as a list entry."""
    return {
        "chain_id": settings.host_chain_id,
        "rpc_url": settings.host_rpc_url,
        "rpc_url_env": settings.variable_if_set("host_rpc_url"),
        "acl_address": settings.host_acl_address,
        "executor_address": settings.host_executor_address,
        "start_block": settings.host_start_block,
    }


def _devnet_entries(devnet: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "chain_id": h["chain_id"],
            "rpc_url": h["rpc_url"],
            "acl_address": h["acl_address"],
            "executor_address": h["executor_address"],
            "start_block": h.get("start_block", 0),
        }
        for h in devnet["host_chains"]
    ]


def host_chains_from_settings(settings: Settings) -> list[HostChainConfig]:
    """Every host chain to serve, in order, with distinct chain ids."""
    path = settings.host_chains
    if path is not None:
        source = f"{variable('host_chains')}={path}"
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(
                f"{source}: cannot read a JSON list of host chains: {exc}"
            ) from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise RegistryError(f"{source}: expected a JSON list of objects")
    else:
        devnet = settings.devnet
        source = "devnet.json"
        entries = _devnet_entries(devnet) if devnet.get("host_chains") else [_single(settings)]
    chains = [host_chain(settings, e, f"{source} entry {i}") for i, e in enumerate(entries)]
    if not chains:
        raise RegistryError(f"{source}: no host chain to serve")
    ids = [c.chain_id for c in chains]
    if len(set(ids)) != len(ids):
        raise RegistryError(f"{source}: chain ids repeat: {ids}")
    return chains
