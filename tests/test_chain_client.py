"""The chain client's one retry layer, against a JSON-RPC node on 127.0.0.1 that fails on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fhevm_dagster.chain.client import ChainReader, WrongChainError
from fhevm_dagster.chain.config import RpcSettings


class Node(ThreadingHTTPServer):
    """Answers eth_blockNumber / eth_chainId, after `failures` HTTP 503s."""

    failures = 0
    requests = 0


class Handler(BaseHTTPRequestHandler):
    server: Node

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests += 1
        if self.server.failures > 0:
            self.server.failures -= 1
            self.send_response(503)
            self.end_headers()
            return
        result = {"eth_blockNumber": "0x9c", "eth_chainId": "0x7a69"}[body["method"]]
        data = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture()
def node() -> Iterator[Node]:
    server = Node(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()


def url(node: Node) -> str:
    return f"http://127.0.0.1:{node.server_address[1]}"


def test_retries_are_retries_after_the_first_attempt(node: Node) -> None:
    assert ChainReader(url(node), RpcSettings(2.0, 0, 0.01)).head() == 156
    node.failures, node.requests = 2, 0
    assert ChainReader(url(node), RpcSettings(2.0, 2, 0.01)).head() == 156
    assert node.requests == 3
    node.failures, node.requests = 3, 0
    with pytest.raises(OSError):
        ChainReader(url(node), RpcSettings(2.0, 2, 0.01)).head()
    assert node.requests == 3


def test_the_configured_chain_is_checked(node: Node) -> None:
    assert ChainReader(url(node), RpcSettings(2.0, 0), expected_chain_id=31337).chain_id() == 31337
    with pytest.raises(WrongChainError, match="serves chain 31337, configured for chain 1"):
        ChainReader(url(node), RpcSettings(2.0, 0), expected_chain_id=1).chain_id()
