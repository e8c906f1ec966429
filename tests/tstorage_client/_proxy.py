"""A TCP relay for integration tests: TLS termination, byte-at-a-time delivery, stalls.

The relay runs an asyncio loop in a thread, accepts on 127.0.0.1 (optionally with TLS)
and forwards every connection to the real server, optionally cutting the server's bytes
into pieces of ``chunk`` bytes with a flush after each (so the client receives responses
split at every possible boundary), or holding back what a client sends once armed
(:meth:`Relay.hold_next`), as a stalled network or server would, and delivering it late
even if the client has gone meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator


class Relay:
    """Forward 127.0.0.1:``port`` to ``target_port``."""

    def __init__(
        self,
        target_port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        chunk: int = 0,
        cut_after: int | None = None,
    ) -> None:
        self.target_port = target_port
        self.ssl_context = ssl_context
        self.chunk = chunk
        #: Close a connection once this many of the server's bytes were forwarded.
        self.cut_after = cut_after
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._hold_s = 0.0
        self._armed = threading.Event()

    def hold_next(self, seconds: float) -> None:
        """Hold the next bytes any client sends (and what follows on that connection) for
        ``seconds`` before they go on to the server."""
        self._hold_s = seconds
        self._armed.set()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        chunk: int,
        cut: int | None = None,
        holds: bool = False,
    ) -> None:
        sent = 0
        try:
            while data := await reader.read(65536):
                if holds and self._armed.is_set():
                    self._armed.clear()
                    await asyncio.sleep(self._hold_s)  # the client's bytes wait meanwhile
                if cut and sent + len(data) >= cut:
                    writer.write(data[: cut - sent])
                    await writer.drain()
                    break
                sent += len(data)
                if chunk:
                    for i in range(0, len(data), chunk):
                        writer.write(data[i : i + chunk])
                        await writer.drain()
                else:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(client_r, server_w, 0, holds=True),
            self._pipe(server_r, client_w, self.chunk, self.cut_after),
        )

    def __enter__(self) -> Relay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@contextlib.contextmanager
def relay(target_port: int, **kw: object) -> Iterator[Relay]:
    """Context manager form of :class:`Relay`."""
    with Relay(target_port, **kw) as r:  # type: ignore[arg-type]
        yield r
