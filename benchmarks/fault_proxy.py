"""Proxies on 127.0.0.1 in front of a JSON-RPC node, for outages the node itself cannot fake.

`TcpProxy` forwards bytes. Modes: `pass` forwards bytes both ways; `drop` closes every open
connection and every new one at once (the node is down: connection refused / reset); `stall` keeps
connections open and forwards nothing (a hung node or a black-holed network: the client's own
timeout must fire). Back to `pass`, new connections work again; stalled ones are closed so clients
reconnect.

`RpcProxy` reads the JSON-RPC it forwards, with the same modes, and imitates what public providers
(Alchemy, Infura, QuickNode, Polygon RPCs) do that anvil does not: a cap on the blocks or results of
one eth_getLogs, a load-balanced replica that lags behind the head for logs, Polygon's 97-byte
`extraData`, batches refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Mode = Literal["pass", "drop", "stall"]
_CHUNK = 65536


class TcpProxy:
    """127.0.0.1:`port` → 127.0.0.1:`upstream_port`, served by an asyncio loop in a thread."""

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.mode: Mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name=f"proxy-{self.port}", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; `drop` and leaving `stall` close the connections open now."""
        previous, self.mode = self.mode, mode
        if mode == "drop" or previous == "stall":
            self._loop.call_soon_threadsafe(self._close_all)

    def close(self) -> None:
        async def shutdown() -> None:
            self._close_all()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, sock=self._sock))
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._close_all()

    def _close_all(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "drop":
            writer.close()
            return
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self._writers.discard(writer)
            writer.close()
            return
        self._writers.add(up_writer)
        with contextlib.suppress(asyncio.CancelledError):  # the proxy closing under a connection
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(_CHUNK):
                while self.mode == "stall" and not writer.is_closing():
                    await asyncio.sleep(0.1)
                if writer.is_closing():
                    return
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()


#: Polygon's (and BSC's) block `extraData`: 32 vanity bytes, a 65-byte seal signature.
POA_EXTRA_DATA = "0x" + "00" * 97
_BLOCK_METHODS = ("eth_getBlockByNumber", "eth_getBlockByHash")
_MOVING_TAGS = ("latest", "pending", "safe", "finalized")


class RpcProxy:
    """127.0.0.1:`port` → the JSON-RPC node at 127.0.0.1:`upstream_port`, like a public provider.

    Knobs, read on every request (set them at any time): `span_cap` (an eth_getLogs over more
    blocks is refused: -32600 "eth_getLogs is limited to a N block range"), `result_cap` (one
    returning more logs is refused: -32005 "query returned more than N results"), `lag_blocks`
    (eth_getLogs answers from a replica that lacks the newest blocks: their logs are left out,
    while eth_blockNumber and blocks come from the fresh node), `poa_extra_data` (blocks carry a
    97-byte `extraData`), `batches` (False: a JSON-RPC batch is refused with one error).
    `requests` counts the requests received by method (each element of a batch; `"batch"`: the
    batches themselves), answered or not.
    """

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.mode: Mode = "pass"
        self.span_cap: int | None = None
        self.result_cap: int | None = None
        self.lag_blocks = 0
        self.poa_extra_data = False
        self.batches = True
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._closed = False
        self._upstream = threading.local()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _RpcHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"rpc-proxy-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode) -> None:
        """Switch mode: `drop` answers every request by closing its connection, `stall` holds it
        unanswered until the mode changes (then closes it)."""
        self.mode = mode

    def close(self) -> None:
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def count(self, body: Any) -> None:
        """Counts a request (or a batch and its elements) as received."""
        items = body if isinstance(body, list) else [body]
        with self._lock:
            self.requests.update(str(item.get("method")) for item in items)
            if isinstance(body, list):
                self.requests["batch"] += 1

    def answer(self, body: Any) -> Any:
        """The JSON answer to one request or a batch (a list)."""
        if not isinstance(body, list):
            return self._one(body)
        if not self.batches:
            return _error(None, -32600, "batch requests are not supported")
        return [self._one(item) for item in body]

    def hold(self) -> None:
        """Waits while the mode is `stall` (a request that arrived then is dropped after)."""
        while self.mode == "stall" and not self._closed:
            time.sleep(0.05)

    def _one(self, request: dict[str, Any]) -> dict[str, Any]:
        method = str(request.get("method"))
        if method == "eth_getLogs":
            return self._get_logs(request)
        response = self._forward(request)
        block = response.get("result")
        if self.poa_extra_data and method in _BLOCK_METHODS and isinstance(block, dict):
            block["extraData"] = POA_EXTRA_DATA
        return response

    def _get_logs(self, request: dict[str, Any]) -> dict[str, Any]:
        params = request.get("params") or [{}]
        query = dict(params[0])
        head: int | None = None
        if "blockHash" not in query:
            head = self._head()
            first = _block_number(query.get("fromBlock"), head)
            last = _block_number(query.get("toBlock"), head)
            if self.span_cap is not None and last - first + 1 > self.span_cap:
                message = f"eth_getLogs is limited to a {self.span_cap} block range"
                return _error(request.get("id"), -32600, message)
            query["fromBlock"], query["toBlock"] = hex(first), hex(last)
        response = self._forward({**request, "params": [query]})
        logs = response.get("result")
        if not isinstance(logs, list):
            return response
        if self.lag_blocks:
            seen = (self._head() if head is None else head) - self.lag_blocks
            logs = [log for log in logs if int(log["blockNumber"], 16) <= seen]
        if self.result_cap is not None and len(logs) > self.result_cap:
            message = f"query returned more than {self.result_cap} results"
            return _error(request.get("id"), -32005, message)
        return {**response, "result": logs}

    def _head(self) -> int:
        answer = self._forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"})
        return int(answer["result"], 16)

    def _forward(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request to the node, on this thread's keep-alive connection (reopened once when
        the node closed it)."""
        data = json.dumps(request).encode()
        try:
            return self._post(getattr(self._upstream, "conn", None), data)
        except (OSError, http.client.HTTPException):
            self._upstream.conn = None
            return self._post(None, data)

    def _post(self, conn: http.client.HTTPConnection | None, data: bytes) -> dict[str, Any]:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
            self._upstream.conn = conn
        conn.request("POST", "/", data, {"Content-Type": "application/json"})
        answer: dict[str, Any] = json.loads(conn.getresponse().read())
        return answer


def _block_number(tag: object, head: int) -> int:
    """A getLogs filter's block: a number, hex, or a tag (absent: latest)."""
    if tag is None or tag in _MOVING_TAGS:
        return head
    if tag == "earliest":
        return 0
    return int(str(tag), 0) if isinstance(tag, str) else int(str(tag))


def _error(request_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


class _RpcHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as providers do

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without this, Nagle and delayed ACKs add 40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        proxy: RpcProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            request = json.loads(body)
        except ValueError:
            self._reply(400, _error(None, -32700, "parse error"))
            return
        proxy.count(request)
        if proxy.mode != "pass":  # down or hung: no answer, the connection closes
            proxy.hold()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            answer = proxy.answer(request)
        except (OSError, http.client.HTTPException) as exc:
            self._reply(502, _error(None, -32603, f"upstream: {exc}"))
            return
        self._reply(200, answer)

    def _reply(self, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass
