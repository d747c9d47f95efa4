"""Host-chain access (the only web3 user besides devnet/) and the ingestion settings.

Settings come from environment variables, else from the devnet's `devnet.json`, else defaults:

| variable | default |
|---|---|
| FHEVM_DAGSTER_HOST_RPC_URL | devnet `host_rpc_url`, else http://127.0.0.1:8545 |
| FHEVM_DAGSTER_HOST_ACL_ADDRESS | devnet `acl_address`, else the canonical local ACL |
| FHEVM_DAGSTER_HOST_EXECUTOR_ADDRESS | devnet `executor_address`, else the canonical executor |
| FHEVM_DAGSTER_KEY_ID | devnet `key_id`, else 0 |
| FHEVM_DAGSTER_HOST_START_BLOCK | devnet `host_start_block`, else 0 |
| FHEVM_DAGSTER_HOST_RANGE_SIZE | 100 |
| FHEVM_DAGSTER_HOST_CONFIRMATIONS | 0 (anvil mines on demand; use ~12 on real chains) |
| FHEVM_DAGSTER_HOST_MAX_RANGES_PER_TICK | 10 |
| FHEVM_DAGSTER_HOST_REORG_CHECK_RANGES | 8 (recent ranges whose last-block hash is rechecked) |
| FHEVM_DAGSTER_HOST_RPC_TIMEOUT | 10 (seconds) |
| FHEVM_DAGSTER_DEVNET_JSON | ~/.cache/fhevm-dagster/devnet/devnet.json |
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import BlockNotFound

from ..protocol.events import RawLog

CANONICAL_ACL = "0x50157CFfD6bBFA2DECe204a89ec419c23ef5755D"
CANONICAL_EXECUTOR = "0xe3a9105a3a932253A70F126eb1E3b589C643dD24"
DEVNET_JSON_ENV = "FHEVM_DAGSTER_DEVNET_JSON"
DEFAULT_DEVNET_JSON = Path("~/.cache/fhevm-dagster/devnet/devnet.json")


def devnet_info() -> dict[str, Any]:
    """The devnet's `DevnetInfo` JSON when present (read as data: no devnet import), else {}."""
    path = Path(os.environ.get(DEVNET_JSON_ENV) or DEFAULT_DEVNET_JSON).expanduser()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _setting(env: str, devnet_key: str | None, default: str) -> str:
    value = os.environ.get(env, "").strip()
    if value:
        return value
    if devnet_key is not None:
        found = devnet_info().get(devnet_key)
        if found is not None:
            return str(found)
    return default


class HostChainResource(ConfigurableResource):  # type: ignore[type-arg]
    """JSON-RPC access to the host chain's executor and ACL logs."""

    rpc_url: str
    acl_address: str = CANONICAL_ACL
    executor_address: str = CANONICAL_EXECUTOR
    key_id: str = "0"  # uint256 as decimal text
    request_timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> HostChainResource:
        return cls(
            rpc_url=_setting("FHEVM_DAGSTER_HOST_RPC_URL", "host_rpc_url", "http://127.0.0.1:8545"),
            acl_address=_setting("FHEVM_DAGSTER_HOST_ACL_ADDRESS", "acl_address", CANONICAL_ACL),
            executor_address=_setting(
                "FHEVM_DAGSTER_HOST_EXECUTOR_ADDRESS", "executor_address", CANONICAL_EXECUTOR
            ),
            key_id=_setting("FHEVM_DAGSTER_KEY_ID", "key_id", "0"),
            request_timeout_s=float(_setting("FHEVM_DAGSTER_HOST_RPC_TIMEOUT", None, "10")),
        )

    @property
    def web3(self) -> Web3:
        return _web3(self.rpc_url, self.request_timeout_s)

    def chain_id(self) -> int:
        return int(self.web3.eth.chain_id)

    def head(self) -> int:
        """Latest block number."""
        return int(self.web3.eth.block_number)

    def block_hash(self, number: int) -> bytes | None:
        """Hash of block `number`, or None when the chain is not that long (any more)."""
        try:
            block = self.web3.eth.get_block(number)
        except BlockNotFound:
            return None
        value = block.get("hash")
        return None if value is None else bytes(value)

    def get_logs(self, first: int, last: int) -> list[RawLog]:
        """Executor and ACL logs of blocks first..last, in chain order."""
        logs = self.web3.eth.get_logs(
            {
                "fromBlock": first,
                "toBlock": last,
                "address": [
                    Web3.to_checksum_address(self.executor_address),
                    Web3.to_checksum_address(self.acl_address),
                ],
            }
        )
        out = [
            RawLog(
                address=Web3.to_checksum_address(log["address"]),
                topics=tuple(bytes(HexBytes(t)) for t in log["topics"]),
                data=bytes(HexBytes(log["data"])),
                block_number=int(log["blockNumber"]),
                block_hash=bytes(HexBytes(log["blockHash"])),
                tx_hash=bytes(HexBytes(log["transactionHash"])),
                tx_index=int(log["transactionIndex"]),
                log_index=int(log["logIndex"]),
            )
            for log in logs
        ]
        return sorted(out, key=lambda r: (r.block_number, r.log_index))


@cache
def _web3(url: str, timeout: float) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))


class HostIngestSettings(ConfigurableResource):  # type: ignore[type-arg]
    """How the sensor cuts the host chain into ranges."""

    range_size: int = 100
    confirmations: int = 0
    max_ranges_per_tick: int = 10
    start_block: int = 0
    reorg_check_ranges: int = 8

    @classmethod
    def from_env(cls) -> HostIngestSettings:
        def num(env: str, devnet_key: str | None, default: int) -> int:
            return int(_setting(env, devnet_key, str(default)))

        return cls(
            range_size=num("FHEVM_DAGSTER_HOST_RANGE_SIZE", None, 100),
            confirmations=num("FHEVM_DAGSTER_HOST_CONFIRMATIONS", None, 0),
            max_ranges_per_tick=num("FHEVM_DAGSTER_HOST_MAX_RANGES_PER_TICK", None, 10),
            start_block=num("FHEVM_DAGSTER_HOST_START_BLOCK", "host_start_block", 0),
            reorg_check_ranges=num("FHEVM_DAGSTER_HOST_REORG_CHECK_RANGES", None, 8),
        )
