"""One client connection of the TStorage server: requests in, responses out, within limits.

A :class:`Connection` drives a ``tstorage_client.protocol.ServerConnection`` (the shared
sans-IO core: it decodes requests and encodes responses) and hands requests to
:mod:`tstorage_server.dispatch`; store work runs in the server's worker threads, but for
a small PUT/PUTA that a store without an fsync per commit can commit at once (no other
commit or compaction holds its commit lock, no other PUT waits for it): that one is
committed on the event loop.

Limits (:class:`~tstorage_server.limits.Limits`): the bytes a request holds (decoded PUT
records waiting for the end marker, plus received bytes not decoded yet) are counted per
connection and server-wide; a request that passes either bound, or is still incomplete
after the request timeout, is refused whole. A GET answer is encoded a bounded piece at
a time, each only once the client has taken the previous one, so a client that reads
slowly costs a bounded buffer and, after the write-stall timeout, its connection.

Errors (protocol spec §4.12): the response shape comes from the core's ``send_error``
(status -1, as the official clients expect for every server error); the server then
half-closes, discards what the client still sends for a short while (so the client reads
the error instead of a reset), and closes that connection only. A PUT/PUTA is committed
only once its end marker arrived, so a refused one has stored nothing, and the log says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import sys
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from tstorage_client.block import RecordBlock
from tstorage_client.errors import RemoteProtocolError
from tstorage_client.events import (
    NEED_DATA,
    EndOfStream,
    Event,
    GetAcqRequest,
    GetRecords,
    GetRequest,
    GetStart,
    NeedData,
    PutBatch,
    PutEnd,
    PutRequest,
)
from tstorage_client.protocol import DEFAULT_MAX_BUFFER_SIZE, ServerConnection
from tstorage_server import dispatch
from tstorage_server._workers import WorkerPool
from tstorage_server.limits import Limits
from tstorage_server.memory import Trimmer
from tstorage_server.store import Snapshot, Store

log = logging.getLogger("tstorage_server")

T = TypeVar("T")

READ_BYTES = 1 << 20
# Decoding this much buffered input is left to a worker thread, not the event loop.
OFFLOAD_DECODE_BYTES = 1 << 20
# A PUT/PUTA holding at most this much is committed on the event loop when the store can
# commit it without waiting (no fsync per commit, no compaction or other PUT under way):
# the round trip to a worker thread and back would cost more than the commit.
INLINE_COMMIT_BYTES = 64 << 10
# Encoded GET bytes produced per round trip to a worker thread, and so about the most a
# GET answer holds beyond what the kernel's socket buffer took.
GET_WRITE_BYTES = 1 << 20

_TIMEOUTS = (asyncio.TimeoutError, TimeoutError)


if sys.version_info >= (3, 11):

    async def _until(aw: Awaitable[T], deadline: float) -> T:
        """``await aw``, or TimeoutError at loop time ``deadline``."""
        async with asyncio.timeout_at(deadline):
            return await aw

else:  # pragma: no cover - Python 3.10

    async def _until(aw: Awaitable[T], deadline: float) -> T:
        """``await aw``, or TimeoutError at loop time ``deadline``."""
        return await asyncio.wait_for(aw, deadline - asyncio.get_running_loop().time())


@dataclass
class Shared:
    """What every connection of one server uses.

    Attributes:
        buffered: bytes all connections' requests hold now (see :class:`Limits`).
    """

    store: Store
    pool: WorkerPool
    limits: Limits
    drain_timeout: float
    trimmer: Trimmer
    buffered: int = 0


class _Refused(Exception):
    """The request being served is refused: answer its error shape, then close."""


class _Stalled(Exception):
    """The client stopped reading a response for the write-stall timeout."""


class Connection:
    """Serves the requests of one client, one at a time, until it leaves or fails a limit.

    Args:
        shared: the server's store, workers, limits and memory accounting.
        reader: the connection's stream reader.
        writer: the connection's stream writer (the caller closes it after :meth:`serve`).
    """

    def __init__(
        self, shared: Shared, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.shared = shared
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        self._conn: ServerConnection | None = ServerConnection(DEFAULT_MAX_BUFFER_SIZE)
        self._blocks: list[RecordBlock] = []  # records of the PUT/PUTA being received
        self._blocks_bytes = 0
        self._held = 0  # what this connection adds to shared.buffered
        self._put: str | None = None  # "PUT"/"PUTA" while one is being received
        self._with_acq = False
        self._request_started: float | None = None
        self._last_received = asyncio.get_running_loop().time()
        self._moved = 0  # bytes received and sent since the last report to the trimmer

    # -- entry points ----------------------------------------------------------------------
    async def serve(self) -> None:
        """Serve requests until the client closes, a limit ends the connection, or it fails.

        Raises:
            Exception: only for failures that are not the client's doing (logged by the
                caller as unexpected).
        """
        try:
            await self._serve()
        except _Refused as refusal:
            log.info("%s: %s", self.peer, refusal)
            await self._fail()
        except _Stalled:
            log.info(
                "%s: the client stopped reading for %g s (--write-stall-timeout): connection reset",
                self.peer,
                self.shared.limits.write_stall_timeout,
            )
            _reset(self.writer)
        except OSError as exc:  # reset, ENOTCONN after a reset, broken pipe, TLS failures
            log.info("%s: connection lost (%s)", self.peer, exc or type(exc).__name__)
        finally:
            self.release()

    async def turn_away(self, reason: str) -> None:
        """Answer the client's first request with its error shape and close, unserved."""
        try:
            conn = self._conn
            assert conn is not None
            deadline = asyncio.get_running_loop().time() + self.shared.drain_timeout
            while conn.next_event() is NEED_DATA:
                conn.receive_data(await _until(self.reader.read(READ_BYTES), deadline))
        except (RemoteProtocolError, OSError, *_TIMEOUTS):
            pass  # no whole header in time: the error shape for "no request" goes out
        try:
            log.debug("%s: turned away: %s", self.peer, reason)
            await self._fail()
        finally:
            self.release()

    def take_moved(self) -> int:
        """Bytes received and sent since the last call (the buffers they needed are gone
        once the connection is closed)."""
        moved, self._moved = self._moved, 0
        return moved

    def release(self) -> None:
        """Drop everything the connection holds (idempotent)."""
        self._drop_request()
        self._conn = None
        self._account()
        # asyncio keeps the connection's error on the reader, and every raise of it added
        # our frames (and the request data they reference) to its traceback: a cycle that
        # only the garbage collector would break.
        exc = self.reader.exception()
        if exc is not None:
            exc.__traceback__ = None

    # -- requests --------------------------------------------------------------------------
    async def _serve(self) -> None:
        while True:
            event = await self._next_event()
            if event is None or isinstance(event, EndOfStream):
                return
            if isinstance(event, PutBatch):
                self._blocks.append(event.block)
                self._blocks_bytes += event.block.nbytes
                del event  # the block is ours now; a frame must not keep it
                self._account()
            elif isinstance(event, PutRequest):
                self._put = "PUTA" if event.with_acq else "PUT"
                self._with_acq = event.with_acq
            elif isinstance(event, PutEnd):
                if not await self._commit():
                    return
                self._answered()
            elif isinstance(event, GetRequest):
                if not await self._get(event):
                    return
                self._answered()
            elif isinstance(event, GetAcqRequest):
                try:
                    result = dispatch.get_acq(self.shared.store, event)
                except dispatch.RequestRejected as exc:
                    raise _Refused(f"GET_ACQ rejected: {exc}") from None
                self._write([self._core().send(result)])
                await self._drain()
                self._answered()

    def _answered(self) -> None:
        # A next request (sent early, or not) cannot have started before this one ended.
        self._request_started = None
        self._last_received = asyncio.get_running_loop().time()

    async def _commit(self) -> bool:
        """Store the PUT/PUTA received; False when the connection must end."""
        blocks, with_acq = self._blocks, self._with_acq
        store = self.shared.store
        try:
            result = None
            if self._blocks_bytes <= INLINE_COMMIT_BYTES:
                result = dispatch.try_put(store, blocks, with_acq)
            if result is None:
                result = await self.shared.pool.run(dispatch.put, store, blocks, with_acq)
        except Exception as exc:
            log.error("%s: %s failed: %r", self.peer, self._put, exc, exc_info=True)
            del blocks
            await self._fail()
            return False
        del blocks
        self._drop_request()
        self.shared.trimmer.freed(self.take_moved())
        self._write([self._core().send(result)])
        await self._drain()
        return True

    async def _get(self, request: GetRequest) -> bool:
        """Stream one GET response; False when the connection must end."""
        pool = self.shared.pool
        conn = self._core()
        try:
            # Opening, the first piece and (for small results) the end in one worker call.
            cursor = await pool.run(_GetCursor.open, self.shared.store, request, conn)
        except dispatch.RequestRejected as exc:
            raise _Refused(f"GET rejected: {exc}") from None
        try:
            self._write([conn.send(GetStart())])
            chunks, cursor.first = cursor.first, []
            while chunks:
                self._write(chunks)
                # Ours go: the transport keeps only what the socket did not take yet.
                chunks = []
                await self._drain()
                if not cursor.done:
                    chunks = await pool.run(cursor.next_chunks)
            self._write([conn.send(dispatch.get_end(cursor.snapshot, request))])
            await self._drain()
            self.shared.trimmer.freed(self.take_moved())
        except (OSError, asyncio.CancelledError, _Stalled):
            raise
        except Exception:
            log.exception("%s: GET failed while streaming", self.peer)
            await self._fail()
            return False
        finally:
            if cursor.done:
                cursor.close()  # nothing can hold its lock any more
            else:
                await pool.run(cursor.close)
        return True

    # -- reading, within the limits ---------------------------------------------------------
    async def _next_event(self) -> Event | None:
        """The next request event; None when the connection ends quietly (idle timeout).

        Raises:
            _Refused: the request broke the protocol or a limit.
        """
        conn = self._core()
        while True:
            try:
                if conn.buffered > OFFLOAD_DECODE_BYTES:
                    event = await self.shared.pool.run(conn.next_event)
                else:
                    event = conn.next_event()
            except RemoteProtocolError as exc:
                raise _Refused(f"protocol error: {exc}{self._outcome()}") from None
            if not isinstance(event, NeedData):
                return event
            data = await self._receive()
            if data is None:
                return None
            conn.receive_data(data)
            self._moved += len(data)
            self._account()

    async def _receive(self) -> bytes | None:
        """Bytes from the client (b"" at EOF); None when it stayed idle too long."""
        conn = self._core()
        limits = self.shared.limits
        loop = asyncio.get_running_loop()
        idle = self._put is None and not conn.buffered and conn.state == "idle"
        if idle:
            self._request_started = None
            deadline = loop.time() + limits.idle_timeout
        else:
            if self._request_started is None:
                self._request_started = self._last_received
            deadline = self._request_started + limits.request_timeout
        try:
            data = await _until(self.reader.read(READ_BYTES), deadline)
        except _TIMEOUTS:
            if idle:
                log.info(
                    "%s: no request for %g s (--idle-timeout): connection closed",
                    self.peer,
                    limits.idle_timeout,
                )
                return None
            raise _Refused(
                f"request still incomplete after {limits.request_timeout:g} s "
                f"(--request-timeout): refused{self._outcome()}"
            ) from None
        self._last_received = loop.time()
        return data

    def _account(self) -> None:
        """Update this connection's share of the buffered bytes; refuse past a bound.

        Raises:
            _Refused: the request holds more than ``max_request_bytes``, or all requests
                together more than ``max_buffered_bytes``.
        """
        held = self._blocks_bytes + (self._conn.buffered if self._conn is not None else 0)
        grew = held > self._held
        shared = self.shared
        shared.buffered += held - self._held
        self._held = held
        if not grew:
            return
        limits = shared.limits
        what = self._put or "request"
        if held > limits.max_request_bytes:
            raise _Refused(
                f"{what} refused: it holds {held} bytes, more than --max-request-bytes "
                f"{limits.max_request_bytes}{self._outcome()}"
            )
        if shared.buffered > limits.max_buffered_bytes:
            raise _Refused(
                f"{what} refused: the requests of all connections hold {shared.buffered} "
                f"bytes, more than --max-buffered-bytes {limits.max_buffered_bytes}"
                f"{self._outcome()}"
            )

    def _outcome(self) -> str:
        """What happened to the data of the request being refused, for the log."""
        # Records are committed only once the end marker arrived, so this is certain.
        return f"; nothing of this {self._put} was stored" if self._put else ""

    def _drop_request(self) -> None:
        self._blocks = []
        self._blocks_bytes = 0
        self._put = None

    def _core(self) -> ServerConnection:
        assert self._conn is not None
        return self._conn

    # -- writing -----------------------------------------------------------------------------
    def _write(self, chunks: list[bytes]) -> None:
        self.writer.writelines(chunks)
        self._moved += sum(map(len, chunks))

    async def _drain(self) -> None:
        """Wait until the client took enough of what was written.

        Raises:
            _Stalled: it took nothing for the write-stall timeout.
        """
        writer = self.writer
        if not writer.transport.get_write_buffer_size():
            # The socket took everything: drain() cannot wait (it still reports a lost
            # connection), so no deadline needs to be armed.
            await writer.drain()
            return
        deadline = asyncio.get_running_loop().time() + self.shared.limits.write_stall_timeout
        try:
            await _until(writer.drain(), deadline)
        except _TIMEOUTS:
            raise _Stalled from None

    async def _fail(self) -> None:
        """Send the error response for the current request, half-close, drain, (caller) close."""
        error = self._conn.send_error() if self._conn is not None else b""
        # Nothing of the request is needed any more: let it go before lingering.
        self.release()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shared.drain_timeout
        with contextlib.suppress(OSError, *_TIMEOUTS):
            self.writer.write(error)
            await _until(self.writer.drain(), deadline)
            if self.writer.can_write_eof():
                self.writer.write_eof()
            # Unread input at close would make TCP send RST, and the client could lose the
            # error response; read and discard for a while first.
            while await _until(self.reader.read(READ_BYTES), deadline):
                pass


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
        self._lock = threading.Lock()
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
                self._pieces = iter(())  # its blocks point into the snapshot
                self.snapshot.close()
