"""Public RPC providers, imitated by `benchmarks/fault_proxy.RpcProxy` in front of a real anvil:
capped eth_getLogs spans and results, lagging replicas, PoA blocks, stalled nodes.

The anvil tests skip without `npm ci` (like the devnet tests); the pure ones are in the fast tier.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from devnet_fixtures import _require_tools
from fault_proxy import RpcProxy
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import RPCEndpoint

from fhevm_dagster import settings
from fhevm_dagster.chain import logs as chain_logs
from fhevm_dagster.chain.client import ChainReader, PoaBlocksError, raw_log
from fhevm_dagster.chain.config import HostChainConfig, RpcSettings, SensorRpc, gateway_range_rules
from fhevm_dagster.chain.logs import LogsRefusedError, current_span, is_size_refusal
from fhevm_dagster.chain.registry import RegistryError, host_chains_from_settings
from fhevm_dagster.devnet.anvil import AnvilNode, free_port, start_anvil, stop_anvil
from fhevm_dagster.protocol.bloom import bloom_bits, may_contain, may_contain_address
from fhevm_dagster.protocol.events import RawLog
from fhevm_dagster.resources.chain import HostChainResource
from fhevm_dagster.settings import load_settings

#: The emitter: runtime code that emits LOG1(TOPIC, data = counter) `n` times, n = calldata[0:32].
TOPIC = bytes(Web3.keccak(text="Emitted(uint256)"))
RUNTIME = (
    bytes.fromhex("6000355b8015603a57806000527f")
    + TOPIC
    + bytes.fromhex("60206000a1600190036003565b00")
)
INITCODE = bytes.fromhex("603c80600b6000396000f3") + RUNTIME
#: Account 0's first contract: where the emitter lands on a fresh anvil.
EMITTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
#: A block's logsBloom with logs of EMITTER under TOPIC only (from a real anvil receipt).
KNOWN_BLOOM = bytes.fromhex(
    "0000000000000000000000000000000040000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000400000002000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000020000000000000000000000000000000000000000"
    "0000000000000000000800000000000000000040000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000"
)
#: Logs per emitter transaction, one transaction per block.
PATTERN = [i % 5 for i in range(150)]
DENSE = 8  # logs of the one block after them: more than any result cap below
RESULT_CAP = 5
EMPTY_BLOCKS = 120  # mined after it, without a transaction
LAST_LOGS = 3  # logs of the head block, after the empty ones


@dataclass(frozen=True)
class Chain:
    """The anvil of this module: blocks of emitter logs, a dense block, empty blocks, a head with
    logs (nothing is mined after the fixture)."""

    node: AnvilNode
    first: int  # first emitter block
    dense: int  # the block of DENSE logs
    empty_first: int
    empty_last: int
    head: int  # LAST_LOGS logs
    logs: tuple[RawLog, ...]  # every emitter log, read directly from anvil

    def between(self, first: int, last: int) -> list[RawLog]:
        return [r for r in self.logs if first <= r.block_number <= last]


def _emit(w3: Web3, counts: list[int]) -> tuple[int, int]:
    """One automined block per count, emitting that many logs: (first block, last block)."""
    sender = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's account 0, unlocked
    hashes = []
    for n in counts:
        tx = {"from": sender, "to": EMITTER, "data": "0x" + n.to_bytes(32, "big").hex()}
        hashes.append(w3.provider.make_request(RPCEndpoint("eth_sendTransaction"), [tx])["result"])
    first, last = (
        w3.eth.wait_for_transaction_receipt(h)["blockNumber"] for h in (hashes[0], hashes[-1])
    )
    assert last - first == len(counts) - 1  # a block each
    return first, last


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    _require_tools()
    state = tmp_path_factory.mktemp("anvil")
    node = start_anvil(state, "providers", port=free_port(), chain_id=31337)
    try:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployed = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": w3.eth.accounts[0], "data": "0x" + INITCODE.hex()})
        )
        assert deployed["contractAddress"] == EMITTER and bytes(w3.eth.get_code(EMITTER)) == RUNTIME
        first, dense = _emit(w3, [*PATTERN, DENSE])
        w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(EMPTY_BLOCKS)])
        head, _ = _emit(w3, [LAST_LOGS])
        assert head == dense + EMPTY_BLOCKS + 1
        logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": head, "address": EMITTER})
        yield Chain(
            node,
            first,
            dense,
            dense + 1,
            dense + EMPTY_BLOCKS,
            head,
            tuple(raw_log(log) for log in logs),
        )
    finally:
        stop_anvil(state, "providers")


@pytest.fixture()
def proxy(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> Iterator[RpcProxy]:
    """A provider in front of the chain, and no span learnt yet (nor read from the environment)."""
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    monkeypatch.setattr(chain_logs, "_SPANS", {})
    p = RpcProxy(chain.node.port)
    try:
        yield p
    finally:
        p.close()


def quick(url: str, **kw: object) -> ChainReader:
    """A reader of `url` that does not retry (the proxy's answers are what is tested)."""
    return ChainReader(url, RpcSettings(5.0, 0, 0.01, **kw))  # type: ignore[arg-type]


# ---- adaptive eth_getLogs spans ---------------------------------------------------------------


def test_the_chain_has_what_the_tests_need(chain: Chain) -> None:
    assert len(chain.logs) == sum(PATTERN) + DENSE + LAST_LOGS > 300
    assert len(chain.between(chain.dense, chain.dense)) == DENSE
    assert not chain.between(chain.empty_first, chain.empty_last)


def test_spans_halve_under_a_block_cap_and_grow_back(
    chain: Chain, proxy: RpcProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = quick(proxy.url, logs_max_span=64)
    proxy.span_cap = 10
    assert reader.get_logs(0, chain.head, [EMITTER]) == list(chain.logs)
    assert current_span(reader.web3, reader.rpc.logs_max_span) <= 10
    # The learnt span holds for the next call of the process: a doubling is rarely tried again.
    proxy.requests.clear()
    assert reader.get_logs(0, 100, [EMITTER]) == chain.between(0, 100)
    assert (
        proxy.requests["eth_getLogs"]
        <= -(-101 // current_span(reader.web3, reader.rpc.logs_max_span)) + 1
    )
    # The provider lifts its cap: the span doubles back to the maximum, never past it.
    proxy.span_cap = None
    for _ in range(3):
        assert reader.get_logs(0, chain.head, [EMITTER]) == list(chain.logs)
    assert current_span(reader.web3, reader.rpc.logs_max_span) == 64


def test_spans_halve_under_a_result_cap(chain: Chain, proxy: RpcProxy) -> None:
    proxy.result_cap = RESULT_CAP
    reader = quick(proxy.url)
    assert reader.get_logs(0, chain.dense - 1, [EMITTER]) == chain.between(0, chain.dense - 1)
    assert current_span(reader.web3, reader.rpc.logs_max_span) < 2 * RESULT_CAP


def test_a_single_block_still_refused_raises(chain: Chain, proxy: RpcProxy) -> None:
    proxy.result_cap = RESULT_CAP
    with pytest.raises(LogsRefusedError, match=f"single block {chain.dense}: .*more than 5"):
        quick(proxy.url).get_logs(chain.first, chain.dense, [EMITTER])


def test_a_transport_failure_is_not_a_span_problem(chain: Chain, proxy: RpcProxy) -> None:
    reader = quick(proxy.url)
    span = current_span(reader.web3, reader.rpc.logs_max_span)
    proxy.set_mode("drop")
    with pytest.raises(requests.ConnectionError):
        reader.get_logs(0, chain.head, [EMITTER])
    assert (
        current_span(reader.web3, reader.rpc.logs_max_span) == span
        and proxy.requests["eth_getLogs"] == 1
    )


def test_provider_refusals_are_recognized() -> None:
    def rpc(code: int, message: str) -> Web3RPCError:
        error = {"code": code, "message": message}
        return Web3RPCError(str(error), {"jsonrpc": "2.0", "id": 1, "error": error})  # type: ignore[typeddict-item]

    def http(status: int, text: str) -> requests.HTTPError:
        response = requests.Response()
        response.status_code, response._content = status, text.encode()
        return requests.HTTPError(f"{status} for url: https://x/v2/key", response=response)

    refused = [
        rpc(-32614, "eth_getLogs is limited to a 10,000 range"),
        rpc(-32602, "eth_getLogs and eth_newFilter are limited to a 10,000 blocks range"),
        rpc(-32005, "Limit Exceeded"),
        rpc(-32005, "query returned more than 10000 results"),
        rpc(-32000, "block range is too wide"),
        rpc(-32000, "exceed maximum block range: 5000"),
        rpc(-32600, "you can make eth_getLogs requests with up to a 10 block range."),
        rpc(-32000, "Log response size exceeded."),
        rpc(-32000, "too many blocks in range"),
        rpc(-32614, "anything at all"),
        http(413, "Request Entity Too Large"),
        http(400, '{"error": {"code": -32000, "message": "block range too large"}}'),
    ]
    for exc in refused:
        assert is_size_refusal(exc), exc
    for exc in (
        rpc(-32000, "header not found"),
        rpc(-32005, "daily request count exceeded, request rate limited"),
        http(429, "Too Many Requests"),
        http(503, "Service Unavailable"),
        requests.ConnectionError("Connection refused"),
        requests.Timeout("read timed out"),
    ):
        assert not is_size_refusal(exc), exc


# ---- logsBloom --------------------------------------------------------------------------------


def test_bloom_bits_of_a_real_receipt() -> None:
    address = bytes.fromhex(EMITTER[2:])
    value = 0
    for bit in (*bloom_bits(address), *bloom_bits(TOPIC)):
        value |= 1 << bit
    assert value.to_bytes(256, "big") == KNOWN_BLOOM
    assert may_contain_address(KNOWN_BLOOM, EMITTER) and may_contain(KNOWN_BLOOM, TOPIC)
    assert may_contain_address(KNOWN_BLOOM, EMITTER.lower())
    assert not may_contain_address(KNOWN_BLOOM, "0x" + "11" * 20)
    assert not may_contain_address(bytes(256), address)
    with pytest.raises(ValueError, match="256 bytes"):
        may_contain(bytes(255), address)


def test_the_known_bloom_is_anvils(chain: Chain) -> None:
    w3 = Web3(Web3.HTTPProvider(chain.node.rpc_url))
    assert bytes(w3.eth.get_block(chain.first + 1)["logsBloom"]) == KNOWN_BLOOM


def test_blooms_say_which_blocks_may_have_logs(chain: Chain, proxy: RpcProxy) -> None:
    reader = quick(proxy.url)
    assert reader.may_have_logs(chain.first, chain.empty_last, [EMITTER])
    assert reader.may_have_logs(chain.dense, chain.dense, ["0x" + "22" * 20, EMITTER])
    # 120 empty blocks: two batches of headers, and no eth_getLogs at all.
    proxy.requests.clear()
    assert not reader.may_have_logs(chain.empty_first, chain.empty_last, [EMITTER])
    assert proxy.requests["batch"] == 2 and proxy.requests["eth_getBlockByNumber"] == EMPTY_BLOCKS
    assert not proxy.requests["eth_getLogs"]
    # Blocks with logs of another contract only, and blocks the node does not have yet.
    assert not reader.may_have_logs(chain.first, chain.head, ["0x" + "22" * 20])
    assert reader.may_have_logs(chain.head + 1, chain.head + 5, ["0x" + "22" * 20])


def test_blooms_without_batches(chain: Chain, proxy: RpcProxy) -> None:
    proxy.batches = False
    reader = quick(proxy.url)
    assert not reader.may_have_logs(chain.empty_first, chain.empty_first + 9, [EMITTER])
    assert proxy.requests["batch"] == 1 and proxy.requests["eth_getBlockByNumber"] == 20
    assert reader.may_have_logs(chain.empty_first, chain.head, [EMITTER])


def test_blooms_see_what_a_lagging_replica_hides(chain: Chain, proxy: RpcProxy) -> None:
    proxy.lag_blocks = 2
    reader = quick(proxy.url)
    assert reader.get_logs(chain.empty_first, chain.head, [EMITTER]) == []
    assert len(chain.between(chain.head, chain.head)) == LAST_LOGS
    assert reader.may_have_logs(chain.empty_first, chain.head, [EMITTER])


# ---- proof-of-authority blocks ----------------------------------------------------------------


def test_poa_blocks_need_the_poa_flag(chain: Chain, proxy: RpcProxy) -> None:
    proxy.poa_extra_data = True
    direct = ChainReader(chain.node.rpc_url).block_hash(chain.dense)
    reader = ChainReader(proxy.url, RpcSettings(5.0, 0, 0.01), expected_chain_id=137)
    flag = r'chain 137.*"poa": true.*FHEVM_DAGSTER_HOST_POA=1'
    with pytest.raises(PoaBlocksError, match=flag):
        reader.block_hash(chain.dense)
    with pytest.raises(PoaBlocksError, match=flag):
        reader.may_have_logs(chain.first, chain.dense, [EMITTER])
    poa = quick(proxy.url, poa=True)
    assert direct is not None and poa.block_hash(chain.dense) == direct
    assert poa.may_have_logs(chain.first, chain.dense, [EMITTER])


# ---- sensor reads -----------------------------------------------------------------------------


def test_the_sensor_reader_fails_fast_on_a_stalled_node(proxy: RpcProxy) -> None:
    chain = HostChainConfig(31337, proxy.url, EMITTER, EMITTER, 0, RpcSettings(poa=True))
    reader = ChainReader.for_sensor(chain, SensorRpc.of(load_settings()))
    assert reader.rpc == RpcSettings(5.0, 1, 0.5, poa=True)
    assert reader.expected_chain_id == 31337 and reader.head() > 0
    proxy.set_mode("stall")
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        reader.head()
    # 2 attempts of 5 s and a 0.5-s backoff: a skip reason long before Dagster's 60 s.
    assert 10 <= time.monotonic() - started < 15
    assert proxy.requests["eth_blockNumber"] == 3


# ---- settings: registry `poa`, confirmations --------------------------------------------------


@pytest.fixture()
def no_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No setting in the environment; the path of a devnet.json (absent until a test writes it)."""
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.env, raising=False)
    devnet = tmp_path / "devnet.json"
    monkeypatch.setenv(settings.DEVNET_JSON_ENV, str(devnet))
    return devnet


def _registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *entries: object
) -> list[HostChainConfig]:
    registry = tmp_path / "hosts.json"
    registry.write_text(json.dumps(list(entries)))
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_CHAINS", str(registry))
    return host_chains_from_settings(load_settings())


def test_registry_poa(no_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    polygon = {"chain_id": 137, "rpc_url": "https://polygon.example/key", "poa": True}
    eth = {"chain_id": 1, "rpc_url": "https://eth.example/key"}
    chains = _registry(tmp_path, monkeypatch, polygon, eth, {**eth, "chain_id": 2, "poa": 0})
    assert [c.rpc.poa for c in chains] == [True, False, False]
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_POA", "1")
    chains = _registry(tmp_path, monkeypatch, eth, {**eth, "chain_id": 2, "poa": False})
    assert [c.rpc.poa for c in chains] == [True, False]
    resource = HostChainResource.of(chains[0])
    assert resource.poa and resource.config().rpc.poa
    with pytest.raises(RegistryError, match="poa must be true or false, got 'yes'"):
        _registry(tmp_path, monkeypatch, {**eth, "poa": "yes"})
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_POA", "true")
    with pytest.raises(ValueError, match="FHEVM_DAGSTER_HOST_POA='true': expected 1 or 0"):
        _registry(tmp_path, monkeypatch, eth)


def test_confirmations_default_by_chain(
    no_settings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = "http://127.0.0.1:8545"
    no_settings.write_text(
        json.dumps(
            {
                "host_chains": [{"chain_id": 31337, "rpc_url": local}],
                "gateway_chain_id": 10901,
                "gateway_rpc_url": "http://127.0.0.1:8546",
            }
        )
    )
    devnet = {"chain_id": 31337, "rpc_url": local}
    chains = _registry(
        tmp_path,
        monkeypatch,
        devnet,  # the running devnet's chain
        {"chain_id": 31338, "rpc_url": local},  # another id at its URL: not the devnet's
        {"chain_id": 1, "rpc_url": "https://eth.example/key"},
        {"chain_id": 137, "rpc_url": "https://polygon.example/key", "confirmations": 64},
    )
    assert [c.ranges.confirmations for c in chains] == [0, 20, 20, 64]
    assert gateway_range_rules(load_settings()).confirmations == 0
    monkeypatch.setenv("FHEVM_DAGSTER_HOST_CONFIRMATIONS", "3")
    monkeypatch.setenv("FHEVM_DAGSTER_GATEWAY_CONFIRMATIONS", "2")
    chains = _registry(tmp_path, monkeypatch, devnet, {"chain_id": 1, "rpc_url": "https://e/k"})
    assert [c.ranges.confirmations for c in chains] == [3, 3]
    assert gateway_range_rules(load_settings()).confirmations == 2
