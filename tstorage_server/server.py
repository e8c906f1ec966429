"""The TStorage server's I/O layer: an asyncio accept loop, one task per connection.

Each connection drives a ``tstorage_client.protocol.ServerConnection`` (the shared sans-IO
core: it decodes requests and encodes responses) and hands requests to
:mod:`tstorage_server.dispatch`. Store work (commits, GET scans, encoding of large
responses) runs in a :class:`~tstorage_server._workers.WorkerPool`, so the loop keeps
serving other clients while one client's request is being stored or read.

Errors (protocol spec §4.12): the response shape comes from the core's ``send_error``;
the server then half-closes, discards what the client still sends for a short while (so
the client reads the error instead of a reset), and closes that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from typing import Any

from tstorage_client.block import RecordBlock
from tstorage_client.errors import RemoteProtocolError
from tstorage_client.events import (
    NEED_DATA,
    EndOfStream,
    GetAcqRequest,
    GetRecords,
    GetRequest,
    GetStart,
    PutBatch,
    PutEnd,
    PutRequest,
)
from tstorage_client.protocol import DEFAULT_MAX_BUFFER_SIZE, ServerConnection
from tstorage_server import dispatch
from tstorage_server._unpatched import real_socket_module, real_threading
from tstorage_server._workers import WorkerPool
from tstorage_server.store import Snapshot, Store

log = logging.getLogger("tstorage_server")

READ_BYTES = 1 << 20
# Decoding this much buffered input is left to a worker thread, not the event loop.
OFFLOAD_DECODE_BYTES = 1 << 20
DEFAULT_MAX_REQUEST_BYTES = 1 << 30
DEFAULT_DRAIN_TIMEOUT_S = 2.0
DEFAULT_WRITE_STALL_TIMEOUT_S = 300.0
#: a client that connects but never completes the TLS handshake is dropped after this
TLS_HANDSHAKE_TIMEOUT_S = 10.0
# Encoded GET bytes handed to the transport per round trip to a worker thread.
GET_WRITE_BYTES = 4 << 20
#: longest wait, on stop, for the connection handlers to finish after they were cancelled
STOP_TIMEOUT_S = 5.0


class TStorageServer:
    """Serves the TStorage protocol from ``store`` on ``host:port`` (``port=0``: any free).

    Args:
        store: where records live; the server only calls the ``Store`` interface.
        host: address to bind.
        port: TCP port to bind; 0 lets the OS choose (read :attr:`port` after start).
        workers: threads for store work.
        max_request_bytes: largest PUT/PUTA request (keys + payloads) accepted in one piece.
        drain_timeout: seconds to keep reading (and discarding) after an error response.
        write_stall_timeout: seconds a GET may wait for the client to read before the
            connection is closed.
        ssl_context: serve TLS with this server-side context (None: plain TCP).
    """

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 2025,
        *,
        workers: int = 8,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT_S,
        write_stall_timeout: float = DEFAULT_WRITE_STALL_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.max_request_bytes = max_request_bytes
        self.drain_timeout = drain_timeout
        self.write_stall_timeout = write_stall_timeout
        self._workers = workers
        self._pool: WorkerPool | None = None
        self._server: asyncio.base_events.Server | None = None
        # one per open connection: its handler task and its writer (reset on stop)
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._stopping = False

    async def start(self) -> None:
        """Bind and start accepting connections; :attr:`port` is then the bound port."""
        sock_mod = real_socket_module()
        family, kind, proto, _, addr = sock_mod.getaddrinfo(
            self.host, self.port, type=sock_mod.SOCK_STREAM
        )[0]
        sock = sock_mod.socket(family, kind, proto)
        try:
            sock.setsockopt(sock_mod.SOL_SOCKET, sock_mod.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._pool = WorkerPool(self._workers)
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
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- one connection ----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping:
            writer.transport.abort()
            return
        self._connections[task] = writer
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._serve(ServerConnection(DEFAULT_MAX_BUFFER_SIZE), reader, writer)
        except (ConnectionError, BrokenPipeError):
            log.info("%s: connection lost", peer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s: unexpected failure", peer)
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, conn: ServerConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self._pool is not None
        pool = self._pool
        blocks: list[RecordBlock] = []
        request_bytes = 0
        with_acq = False
        while True:
            try:
                if conn.buffered > OFFLOAD_DECODE_BYTES:
                    event = await pool.run(conn.next_event)
                else:
                    event = conn.next_event()
                if event is NEED_DATA:
                    conn.receive_data(await reader.read(READ_BYTES))
                    continue
            except RemoteProtocolError as exc:
                log.info("%s: protocol error: %s", writer.get_extra_info("peername"), exc)
                await self._fail(conn, reader, writer)
                return
            if isinstance(event, EndOfStream):
                return
            if isinstance(event, GetAcqRequest):
                try:
                    result = dispatch.get_acq(self.store, event)
                except dispatch.RequestRejected as exc:
                    log.info("GET_ACQ rejected: %s", exc)
                    await self._fail(conn, reader, writer)
                    return
                writer.write(conn.send(result))
                await writer.drain()
            elif isinstance(event, GetRequest):
                if not await self._get(conn, event, reader, writer):
                    return
            elif isinstance(event, PutRequest):
                blocks, request_bytes, with_acq = [], 0, event.with_acq
            elif isinstance(event, PutBatch):
                blocks.append(event.block)
                request_bytes += event.block.nbytes
                if request_bytes > self.max_request_bytes:
                    log.info("PUT rejected: request larger than %d bytes", self.max_request_bytes)
                    await self._fail(conn, reader, writer)
                    return
            elif isinstance(event, PutEnd):
                try:
                    put_result = await pool.run(dispatch.put, self.store, blocks, with_acq)
                except Exception:
                    log.exception("PUT failed")
                    await self._fail(conn, reader, writer)
                    return
                finally:
                    blocks, request_bytes = [], 0
                writer.write(conn.send(put_result))
                await writer.drain()

    async def _get(
        self,
        conn: ServerConnection,
        request: GetRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Stream one GET response; False when the connection must end."""
        assert self._pool is not None
        pool = self._pool
        try:
            # Opening, the first piece and (for small results) the end in one worker call.
            cursor = await pool.run(_GetCursor.open, self.store, request, conn)
        except dispatch.RequestRejected as exc:
            log.info("GET rejected: %s", exc)
            await self._fail(conn, reader, writer)
            return False
        try:
            writer.write(conn.send(GetStart()))
            chunks = cursor.first
            while chunks:
                writer.writelines(chunks)
                # A client that stops reading would pin its snapshot forever.
                await asyncio.wait_for(writer.drain(), self.write_stall_timeout)
                chunks = [] if cursor.done else await pool.run(cursor.next_chunks)
            writer.write(conn.send(dispatch.get_end(cursor.snapshot, request)))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except (asyncio.TimeoutError, TimeoutError):
            log.info(
                "GET abandoned: the client stopped reading for %.0f s", self.write_stall_timeout
            )
            _reset(writer)
            return False
        except Exception:
            log.exception("GET failed while streaming")
            await self._fail(conn, reader, writer)
            return False
        finally:
            if cursor.done:
                cursor.close()  # nothing can hold its lock any more
            else:
                await pool.run(cursor.close)
        return True

    async def _fail(
        self, conn: ServerConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send the error response for the current request, half-close, drain, (caller) close."""
        with contextlib.suppress(ConnectionError):
            writer.write(conn.send_error())
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            # Unread input at close would make TCP send RST, and the client could lose the
            # error response; read and discard for a while first.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.drain_timeout
            while (left := deadline - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(reader.read(READ_BYTES), left)
                except (asyncio.TimeoutError, TimeoutError):
                    break
                if not data:
                    break


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset, dropping queued bytes (in asyncio and in the kernel)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger on with a zero timeout: close() discards unsent data and sends RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _GetCursor:
    """Encodes the pieces of one GET in worker threads, about ``GET_WRITE_BYTES`` per call.

    Blocks from a snapshot may point into storage that is valid only while the snapshot is
    open, so reading, encoding and closing are serialised by one lock.
    """

    def __init__(self, snapshot: Snapshot, request: GetRequest, conn: ServerConnection) -> None:
        self.snapshot = snapshot
        self._pieces = dispatch.get_records(snapshot, request)
        self._conn = conn
        self._lock = real_threading().Lock()
        self._closed = False
        self.done = False
        self.first: list[bytes] = []

    @classmethod
    def open(cls, store: Store, request: GetRequest, conn: ServerConnection) -> _GetCursor:
        """Validate, take the snapshot and encode the first chunks (worker thread).

        Raises:
            dispatch.RequestRejected: the request is invalid (nothing is held open).
        """
        cursor = cls(dispatch.open_get(store, request), request, conn)
        try:
            cursor.first = cursor.next_chunks()
        except BaseException:
            cursor.close()
            raise
        return cursor

    def next_chunks(self) -> list[bytes]:
        """The next encoded records; sets :attr:`done` once the last ones are returned."""
        chunks: list[bytes] = []
        size = 0
        with self._lock:
            while not self._closed and size < GET_WRITE_BYTES:
                piece: GetRecords | None = next(self._pieces, None)
                if piece is None:
                    self.done = True
                    break
                chunk = self._conn.send(piece)
                chunks.append(chunk)
                size += len(chunk)
        return chunks

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.done = True
                self.snapshot.close()
