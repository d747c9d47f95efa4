"""JSON-RPC reading of one chain, with the project's one layer of RPC retries.

Retries live here and nowhere else below Dagster: web3's own `ExceptionRetryConfiguration` retries
connection errors and timeouts of idempotent methods with exponential backoff; Dagster retry
policies sit above it for what outlasts them. Sending a signed transaction is retried too: the
same signed bytes have the same hash, so a resend is never a second transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import cast
from urllib.parse import urlsplit

import requests
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import BadResponseFormat, BlockNotFound, ExtraDataLengthError, Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc.utils import REQUEST_RETRY_ALLOWLIST, ExceptionRetryConfiguration
from web3.types import BlockData, FilterParams, LogReceipt

from ..protocol.bloom import may_contain_address
from ..protocol.events import RawLog
from ..settings import variable
from .config import DEFAULT_RPC, GatewayConfig, HostChainConfig, RpcSettings, SensorRpc
from .logs import get_logs_windowed

#: Errors worth retrying: the node was unreachable, slow or answered with an HTTP error (requests'
#: exceptions are all `OSError`s), not a JSON-RPC error answer or a revert.
RETRIED_ERRORS = (OSError,)
#: Block headers asked for in one JSON-RPC batch.
HEADER_BATCH = 100


def redact(text: str, url: str) -> str:
    """`text` with `url`'s path and query (where providers put API keys) replaced by `…`."""
    parts = urlsplit(url)
    secret = url[len(f"{parts.scheme}://{parts.netloc}") :]
    shown = f"{parts.scheme}://{parts.netloc}" + ("/…" if secret.strip("/") else "")
    text = text.replace(url, shown)
    return text.replace(secret, "/…") if secret.strip("/") else text


@cache
def connect(url: str, settings: RpcSettings = DEFAULT_RPC) -> Web3:
    """The process-wide Web3 client of `url` (one HTTP session per node and settings)."""
    retry = ExceptionRetryConfiguration(
        errors=RETRIED_ERRORS,
        retries=settings.retries + 1,  # web3 counts attempts: 0 would make no request at all
        backoff_factor=settings.backoff_s,
        method_allowlist=[*REQUEST_RETRY_ALLOWLIST, "eth_sendRawTransaction"],
    )
    provider = HTTPProvider(
        url, request_kwargs={"timeout": settings.timeout_s}, exception_retry_configuration=retry
    )
    w3 = Web3(provider)
    if settings.poa:  # before web3's validation refuses the 97-byte extraData of PoA blocks
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def raw_log(log: LogReceipt) -> RawLog:
    """web3's log as the protocol's `RawLog` (bytes, ints)."""
    return RawLog(
        address=Web3.to_checksum_address(log["address"]),
        topics=tuple(bytes(HexBytes(t)) for t in log["topics"]),
        data=bytes(HexBytes(log["data"])),
        block_number=int(log["blockNumber"]),
        block_hash=bytes(HexBytes(log["blockHash"])),
        tx_hash=bytes(HexBytes(log["transactionHash"])),
        tx_index=int(log["transactionIndex"]),
        log_index=int(log["logIndex"]),
    )


class WrongChainError(RuntimeError):
    """The node serves another chain than the one configured (a wrong URL, a reset devnet)."""


class PoaBlocksError(RuntimeError):
    """The node's blocks carry a proof-of-authority `extraData` (Polygon, BSC) that the chain's
    settings do not expect."""


@dataclass(slots=True)
class ChainReader:
    """What every chain is read for: its id (checked once), head, block hashes and logs."""

    rpc_url: str
    rpc: RpcSettings = DEFAULT_RPC
    expected_chain_id: int | None = None
    _chain_id: int | None = field(default=None, repr=False)

    @property
    def web3(self) -> Web3:
        return connect(self.rpc_url, self.rpc)

    @classmethod
    def of(cls, chain: HostChainConfig | GatewayConfig) -> ChainReader:
        return cls(chain.rpc_url, chain.rpc, chain.chain_id)

    @classmethod
    def for_sensor(cls, chain: HostChainConfig | GatewayConfig, sensor: SensorRpc) -> ChainReader:
        """The chain's reader for a sensor tick: the sensor's short timeout and few retries, so a
        stalled node ends the tick with a skip reason inside Dagster's 60-s sensor deadline
        rather than a timed-out tick."""
        return cls(chain.rpc_url, sensor.apply(chain.rpc), chain.chain_id)

    def chain_id(self) -> int:
        """The node's chain id; `WrongChainError` when it is not the expected one."""
        if self._chain_id is None:
            found = int(self.web3.eth.chain_id)
            if self.expected_chain_id is not None and found != self.expected_chain_id:
                raise WrongChainError(
                    f"the node serves chain {found}, configured for chain {self.expected_chain_id}"
                )
            self._chain_id = found
        return self._chain_id

    def head(self) -> int:
        """Latest block number."""
        return int(self.web3.eth.block_number)

    def block_hash(self, number: int) -> bytes | None:
        """Hash of block `number`, or None when the chain is not that long (any more)."""
        try:
            with self._poa_hint():
                block = self.web3.eth.get_block(number)
        except BlockNotFound:
            return None
        value = block.get("hash")
        return None if value is None else bytes(value)

    def may_have_logs(self, first: int, last: int, addresses: Sequence[str]) -> bool:
        """False only when the `logsBloom` of every block first..last excludes every address: a
        proof from the headers that the range has no log of theirs, whatever eth_getLogs of a
        lagging load-balanced replica says. A block the node lacks cannot be proven empty."""
        for start in range(first, last + 1, HEADER_BATCH):
            try:
                blocks = self._blocks(range(start, min(last, start + HEADER_BATCH - 1) + 1))
            except BlockNotFound:
                return True
            for block in blocks:
                bloom = bytes(block["logsBloom"])
                if any(may_contain_address(bloom, a) for a in addresses):
                    return True
        return False

    def _blocks(self, numbers: range) -> list[BlockData]:
        """Headers of `numbers` in one JSON-RPC batch; one request each where the node refuses
        batches (or answers one with an error: the requests one by one say which)."""
        with self._poa_hint():
            try:
                with self.web3.batch_requests() as batch:
                    for n in numbers:
                        batch.add(self.web3.eth.get_block(n))
                    return cast(list[BlockData], batch.execute())  # formatted blocks
            except (Web3RPCError, BadResponseFormat, requests.HTTPError):
                return [self.web3.eth.get_block(n) for n in numbers]

    @contextmanager
    def _poa_hint(self) -> Iterator[None]:
        """Where blocks are read: a PoA chain not configured as one is an error naming the flag."""
        try:
            yield
        except ExtraDataLengthError as exc:
            chain = f"chain {self.expected_chain_id}" if self.expected_chain_id else "this chain"
            raise PoaBlocksError(
                f"{chain}'s blocks carry a proof-of-authority extraData longer than 32 bytes "
                '(Polygon, BSC): set "poa": true in its entry of the host chain registry '
                f"({variable('host_chains')}), or {variable('host_poa')}=1"
            ) from exc

    def get_logs(self, first: int, last: int, addresses: Sequence[str]) -> list[RawLog]:
        """Logs of `addresses` in blocks first..last, in chain order (in chunks the provider
        accepts: `chain.logs`)."""
        params: FilterParams = {"address": [Web3.to_checksum_address(a) for a in addresses]}
        logs = [
            raw_log(log)
            for log in get_logs_windowed(self.web3, params, first, last, self.rpc.logs_max_span)
        ]
        return sorted(logs, key=lambda r: (r.block_number, r.log_index))
