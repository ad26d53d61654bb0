"""A PostgreSQL wire-protocol proxy that can cut a connection at the worst moment of a commit.

``mode="after_commit"``: the server has committed and answered ``CommandComplete COMMIT``; the proxy drops
the answer and the connection, so the client cannot know whether its transaction committed (an ambiguous
commit). ``mode="on_commit"``: the proxy drops the connection when the client sends ``COMMIT``, before the
server sees it, so the server rolls the transaction back. Each arming fires once.
Clients must connect with ``sslmode=disable`` so that every message is framed (no SSL negotiation byte).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class PgProxy:
    upstream_port: int
    port: int = 0
    mode: str = "after_commit"
    armed: bool = False
    fired: int = 0
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()

    def arm(self, mode: str) -> None:
        self.mode, self.armed = mode, True

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        cut = asyncio.Event()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, from_client: bool) -> None:
            buf = b""
            started = not from_client  # the client's first message (startup) has no type byte
            try:
                while not cut.is_set():
                    chunk = await src.read(65536)
                    if not chunk:
                        break
                    buf += chunk
                    out = b""
                    while True:
                        if not started:
                            if len(buf) < 4:
                                break
                            n = int.from_bytes(buf[:4], "big")
                            if len(buf) < n:
                                break
                            out, buf, started = out + buf[:n], buf[n:], True
                            continue
                        if len(buf) < 5:
                            break
                        n = int.from_bytes(buf[1:5], "big")
                        if len(buf) < 1 + n:
                            break
                        msg, buf = buf[: 1 + n], buf[1 + n :]
                        if self.armed and self._fires(msg, from_client):
                            self.armed = False
                            self.fired += 1
                            dst.write(out)
                            cut.set()
                            return
                        out += msg
                    if out:
                        dst.write(out)
                        await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                cut.set()

        tasks = [
            asyncio.create_task(pump(client_r, server_w, True)),
            asyncio.create_task(pump(server_r, client_w, False)),
        ]
        self._tasks.update(tasks)
        await cut.wait()
        for w in (client_w, server_w):
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        for t in tasks:
            t.cancel()
            self._tasks.discard(t)

    def _fires(self, msg: bytes, from_client: bool) -> bool:
        if self.mode == "on_commit" and from_client:
            return msg[:1] == b"Q" and msg[5:].lstrip().upper().startswith(b"COMMIT")
        if self.mode == "after_commit" and not from_client:
            return msg[:1] == b"C" and msg[5:].startswith(b"COMMIT")
        return False
