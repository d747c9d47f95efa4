"""A TCP proxy on 127.0.0.1 in front of a JSON-RPC node, for outages the node itself cannot fake.

Modes: `pass` forwards bytes both ways; `drop` closes every open connection and every new one at
once (the node is down: connection refused / reset); `stall` keeps connections open and forwards
nothing (a hung node or a black-holed network: the client's own timeout must fire). Back to `pass`,
new connections work again; stalled ones are closed so clients reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Literal

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
