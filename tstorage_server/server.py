"""The TStorage server's I/O layer: an asyncio accept loop, one task per connection.

Each connection is served by a :class:`~tstorage_server.connection.Connection` (requests,
responses and the per-request limits); this module binds, accepts, caps the number of
connections, and stops. Store work (commits, GET scans, encoding of large responses) runs
in a :class:`~tstorage_server._workers.WorkerPool`, so the loop keeps serving other
clients while one client's request is being stored or read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Any

from tstorage_server._workers import WorkerPool
from tstorage_server.connection import READ_BYTES, Connection, Shared
from tstorage_server.limits import Limits
from tstorage_server.memory import Trimmer, configure_allocator
from tstorage_server.store import Store

log = logging.getLogger("tstorage_server")

DEFAULT_DRAIN_TIMEOUT_S = 2.0
#: a client that connects but never completes the TLS handshake is dropped after this
TLS_HANDSHAKE_TIMEOUT_S = 10.0
#: longest wait, on stop, for the connection handlers to finish after they were cancelled
STOP_TIMEOUT_S = 5.0
#: seconds between two log lines about connections turned away (an attack must not flood it)
BUSY_LOG_EVERY_S = 10.0


class TStorageServer:
    """Serves the TStorage protocol from ``store`` on ``host:port`` (``port=0``: any free).

    Args:
        store: where records live; the server only calls the ``Store`` interface.
        host: address to bind.
        port: TCP port to bind; 0 lets the OS choose (read :attr:`port` after start).
        workers: threads for store work.
        limits: what clients may make the server hold, and for how long.
        drain_timeout: seconds to keep reading (and discarding) after an error response.
        ssl_context: serve TLS with this server-side context (None: plain TCP).
    """

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 2025,
        *,
        workers: int = 8,
        limits: Limits | None = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.drain_timeout = drain_timeout
        self._workers = workers
        self._shared: Shared | None = None
        self._server: asyncio.base_events.Server | None = None
        # one per open connection: its handler task and its writer (reset on stop)
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._served = 0  # connections being served (the others are being turned away)
        self._turned_away = 0  # since the last log line about it
        self._busy_logged = -BUSY_LOG_EVERY_S
        self._stopping = False

    async def start(self) -> None:
        """Bind and start accepting connections; :attr:`port` is then the bound port."""
        family, kind, proto, _, addr = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        configure_allocator()
        pool = WorkerPool(self._workers)
        self._shared = Shared(self.store, pool, self.limits, self.drain_timeout, Trimmer(pool.run))
        self._server = await asyncio.start_server(
            self._accept,
            sock=sock,
            limit=READ_BYTES,
            ssl=self.ssl_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if self.ssl_context else None,
        )

    async def stop(self) -> None:
        """Stop accepting, end every connection, stop the worker threads.

        Connections are reset, not drained: a peer that stops reading (or one accepted
        just before the stop, whose handler had not started yet) must not keep the
        server from exiting. A request in flight gets no answer, as with any server stop.
        """
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        if self._connections:
            _, pending = await asyncio.wait(list(self._connections), timeout=STOP_TIMEOUT_S)
            if pending:
                log.warning("%d connection handler(s) still running at stop", len(pending))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._shared is not None:
            self._shared.trimmer.close()
            self._shared.pool.close()
            self._shared = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes the requests of all connections hold now (bounded by ``max_buffered_bytes``)."""
        return self._shared.buffered if self._shared is not None else 0

    # -- one connection ----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping or self._shared is None:
            writer.transport.abort()
            return
        shared = self._shared
        self._connections[task] = writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        served = self._served < self.limits.max_connections
        connection = Connection(shared, reader, writer)
        try:
            if served:
                self._served += 1
                await connection.serve()
            else:
                self._note_turned_away()
                await connection.turn_away(f"{self._served} connections are open")
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: unexpected failure", connection.peer)
        finally:
            if served:
                self._served -= 1
            connection.release()
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if not self._stopping:
                shared.trimmer.freed(connection.take_moved())

    def _note_turned_away(self) -> None:
        self._turned_away += 1
        now = asyncio.get_running_loop().time()
        if now - self._busy_logged >= BUSY_LOG_EVERY_S:
            log.warning(
                "%d connection(s) turned away with an error answer: %d are open, the most "
                "--max-connections allows",
                self._turned_away,
                self._served,
            )
            self._turned_away = 0
            self._busy_logged = now
