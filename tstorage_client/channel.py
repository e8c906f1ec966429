"""Socket module based TStorage communication channel."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

from ._channel_common import LentMemory, ReceiveBuffer, _ChannelMixin
from ._commands import Flow, GetMode, _Close, _Emit, _Recv, _RecvInto, _Send
from .errors import ConnectionClosed, Timeout, TransportError
from .payload_type import PayloadType
from .record import Key, Record
from .records_set import GetCallback, RecordsSet
from .response import Response, ResponseAcq, ResponseGet, ResponseStatus

__all__ = ["Channel"]

T = TypeVar("T")
R = TypeVar("R")


def _transport_error(exc: OSError) -> TransportError:
    if isinstance(exc, socket.timeout | TimeoutError):
        return Timeout(str(exc) or "timed out")
    return ConnectionClosed(str(exc) or type(exc).__name__)


class Channel(_ChannelMixin[T]):
    """Channel provides TStorage communication facilities using socket module.

    Channel can be used as context manager to open and close connection. All put and
    fetched data should be serializable by passed payload_type. Network failures and
    timeouts never raise: they come back as a DISCONNECTED status (the channel is then
    closed).

    Args:
        host: TStorage hostname.
        port: TStorage port.
        payload_type: Data converter of this Channel.
        timeout: Socket timeout in seconds (None = blocking).
        memory_limit: Max memory for GET requests in bytes (None = unlimited).
        ssl_context: Wrap the connection in TLS with this context.

    Beyond the official client: :attr:`deadline` bounds a whole request (connecting,
    sending and receiving), :attr:`bytes_sent` tells whether any of a failed request may
    have reached the server, :meth:`peer_closed` spots a pooled connection that the
    server closed while it was idle, and :meth:`open` connects like :meth:`connect` but
    raises what went wrong.
    """

    def __init__(
        self,
        host: str,
        port: int,
        payload_type: PayloadType[T],
        timeout: float | None = None,
        memory_limit: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._payload_type = payload_type
        self._timeout = timeout
        self._memory_limit = memory_limit
        self._ssl_context = ssl_context
        self._socket: socket.socket | None = None
        self._recv_buffer: ReceiveBuffer | None = None
        self._deadline: float | None = None
        self._bytes_sent = 0

    @property
    def timeout(self) -> float | None:
        """Get or set socket timeout (also applied to a live connection)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._timeout = value
        if self._socket is not None:
            self._socket.settimeout(value)

    @property
    def deadline(self) -> float | None:
        """Get or set a ``time.monotonic()`` instant by which every socket operation ends.

        Each connect, send and receive then waits at most until the deadline (and at most
        ``timeout`` seconds); once it has passed, operations fail at once as timeouts, so
        a request answers DISCONNECTED by the deadline however many reads it needs. None
        (the default): only ``timeout`` applies, to each operation.
        """
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._deadline = value
        if value is None and self._socket is not None:
            self._socket.settimeout(self._timeout)

    @property
    def bytes_sent(self) -> int:
        """Bytes handed to the connection since it was opened.

        A send that failed part-way counts in full (some of it may have left), so an
        unchanged count across a failed request means none of it reached the server.
        """
        return self._bytes_sent

    @property
    def connected(self) -> bool:
        """True while the connection is open (a transport or protocol failure closes it)."""
        return self._socket is not None

    def keep_alive(
        self, idle_s: int = 10, interval_s: int = 5, probes: int = 3, unacked_s: int = 30
    ) -> None:
        """Have the OS probe the open connection after ``idle_s`` seconds of silence, every
        ``interval_s``, and fail it after ``probes`` unanswered probes (TCP keepalive), or
        once data it sent stayed unacknowledged for ``unacked_s`` (TCP_USER_TIMEOUT).

        Beyond the official client: lets a request wait for its answer without a timeout
        and still end when the peer's host or the network is gone (a peer that is only
        slow keeps it open). Options the OS lacks are skipped.

        Raises:
            OSError: not connected, or the OS refused the option.
        """
        if self._socket is None:
            raise OSError("not connected")
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", idle_s),
            ("TCP_KEEPINTVL", interval_s),
            ("TCP_KEEPCNT", probes),
            ("TCP_USER_TIMEOUT", unacked_s * 1000),
        ):
            option = getattr(socket, name, None)
            if option is not None:
                self._socket.setsockopt(socket.IPPROTO_TCP, option, value)

    def peer_closed(self) -> bool:
        """True when the connection is closed, or readable while no request is under way
        (the server closed it, reset it or sent something unasked): an idle connection
        that must not be used. Never blocks."""
        if self._socket is None:
            return True
        # A cooperative (green) socket keeps the OS socket, non-blocking, as ``fd``: a peek
        # at it answers at once, where a green select would take a turn of the event hub
        # on every request. TLS records cannot be peeked at: those take the select.
        raw = getattr(self._socket, "fd", None)
        if self._ssl_context is None and isinstance(raw, socket.SocketType):
            try:
                if raw.gettimeout() == 0.0:
                    raw.recv(1, socket.MSG_PEEK)
                    return True  # end of stream, or bytes nobody asked for
            except BlockingIOError:
                return False  # nothing to read: open and quiet
            except OSError:
                return True
        try:
            readable, _, _ = select.select([self._socket], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _wait_limit(self) -> float | None:
        # the socket timeout for the next operation: the timeout, cut at the deadline
        if self._deadline is None:
            return self._timeout
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline has passed")
        return left if self._timeout is None else min(left, self._timeout)

    @property
    def memory_limit(self) -> int | None:
        """Get or set memory limit in bytes for GET requests."""
        return self._memory_limit

    @memory_limit.setter
    def memory_limit(self, value: int | None) -> None:
        self._memory_limit = value

    def _is_connected(self) -> bool:
        return self._socket is not None

    # --- connection -------------------------------------------------------------------

    def connect(self) -> Response:
        """Connect to specified host at port with set timeout.

        Returns:
            OK status if connected else ERROR status.
        """
        try:
            self.__enter__()
        except Exception:
            return Response(ResponseStatus.ERROR)
        return Response(ResponseStatus.OK)

    def open(self) -> None:
        """Connect like :meth:`connect`, raising the failure instead of an ERROR status.

        Raises:
            OSError: Connection refused, timed out, a name that does not resolve
                (``socket.gaierror``) or a failed TLS handshake (``ssl.SSLError``).
            UnicodeError: ``host`` is not a valid host name.
        """
        self.__enter__()

    def close(self) -> Response:
        """Close underlying socket.

        Returns:
            OK status if closed socket else ERROR status (not connected).
        """
        sock, self._socket = self._socket, None
        if sock is None:
            return Response(ResponseStatus.ERROR)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        return Response(ResponseStatus.OK)

    def __enter__(self) -> Channel[T]:
        """Connect (a connection left open earlier is closed first).

        Raises:
            OSError: Whatever ``socket.create_connection`` or ``wrap_socket`` raises.
        """
        if self._socket is not None:
            self.close()
        self._bytes_sent = 0
        sock = socket.create_connection((self._host, self._port), self._wait_limit())
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        if self._deadline is not None:
            sock.settimeout(self._timeout)
        self._socket = sock
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- the driver ----------------------------------------------------------------------

    # The three seams below keep the official client's private names, so code (and its
    # unit tests) that patch them keep working.

    def _send_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._socket is None:
            raise ConnectionClosed("channel closed")
        if self._deadline is not None:
            self._socket.settimeout(self._wait_limit())
        self._bytes_sent += len(data)
        # A green socket's sendall sends what is left as a slice of it: of bytes, a copy
        # (quadratic in a request of many megabytes); of a memoryview, not.
        self._socket.sendall(memoryview(data))

    def _feed_buffer(self, buffer: ReceiveBuffer, limit: int = 0) -> int:
        if self._socket is None:
            raise ConnectionClosed("channel closed")
        if self._deadline is not None:
            self._socket.settimeout(self._wait_limit())
        memory = buffer.free_space()
        count = self._socket.recv_into(memory, min(limit, len(memory)) if limit else len(memory))
        buffer.increase_available(count)
        return count

    def _early_close(self, response: R) -> R:
        self.close()
        return response

    def _io(self, op: _Send | _Recv | _RecvInto) -> Any:
        if type(op) is _RecvInto:
            return self._feed_buffer(LentMemory(op.buffer))
        if type(op) is _Recv:
            buffer = self._recv_buffer
            if buffer is None or buffer.capacity != max(op.max_bytes, 32):
                buffer = self._recv_buffer = ReceiveBuffer(op.max_bytes)
            buffer.reset()
            count = self._feed_buffer(buffer, op.max_bytes)
            return bytes(buffer.peek(count))
        self._send_data(op.data)  # type: ignore[union-attr]
        return None

    def _run(self, flow: Flow[R]) -> R:
        try:
            op = next(flow)
            while True:
                if type(op) is _Close:
                    self._early_close(None)
                    op = flow.send(None)
                    continue
                try:
                    value = self._io(op)  # type: ignore[arg-type]
                except OSError as exc:
                    op = flow.throw(_transport_error(exc))
                    continue
                except TransportError as exc:
                    op = flow.throw(exc)
                    continue
                op = flow.send(value)
        except StopIteration as stop:
            return stop.value

    def _run_iter(self, flow: Flow[Any]) -> Iterator[Any]:
        try:
            op = next(flow)
            while True:
                if type(op) is _Emit:
                    try:
                        yield from op.items
                    except GeneratorExit:
                        # Abandoned mid-response: the rest of it is still on the wire,
                        # so the connection can no longer be used.
                        self._early_close(None)
                        raise
                    op = flow.send(None)
                    continue
                if type(op) is _Close:
                    self._early_close(None)
                    op = flow.send(None)
                    continue
                try:
                    value = self._io(op)  # type: ignore[arg-type]
                except OSError as exc:
                    op = flow.throw(_transport_error(exc))
                    continue
                except TransportError as exc:
                    op = flow.throw(exc)
                    continue
                op = flow.send(value)
        except StopIteration as stop:
            yield stop.value

    # --- commands --------------------------------------------------------------------------

    def put(
        self, data: RecordsSet[T], max_batch_size: int = 2147483647, skip_invalid: bool = False
    ) -> Response:
        """Put records to TStorage without acq value (the server assigns it).

        Args:
            data: Records to put (with NumpyPayloadType: a structured array or a dict of arrays).
            max_batch_size: Controls maximal serialization buffer size. Must be lower than
                2147483648 (2GiB). Despite this value always at least 1 record will be serialized.
            skip_invalid: Skip invalid records (cid < 0). Otherwise the put stops before the
                first group of invalid records; the groups before it are stored.

        Returns:
            OK status on success else status indicates error.
        """
        return self._run(self._put_flow(data, False, max_batch_size, skip_invalid))

    def puta(
        self, data: RecordsSet[T], max_batch_size: int = 2147483647, skip_invalid: bool = False
    ) -> Response:
        """Put records to TStorage with acq value.

        Args:
            data: Records to put (with NumpyPayloadType: a structured array or a dict of arrays).
            max_batch_size: Controls maximal serialization buffer size. Must be lower than
                2147483648 (2GiB). Despite this value always at least 1 record will be serialized.
            skip_invalid: Skip invalid records (cid < 0). Otherwise the puta stops before
                the first group of invalid records; the groups before it are stored.

        Returns:
            OK status on success else status indicates error.
        """
        return self._run(self._put_flow(data, True, max_batch_size, skip_invalid))

    def get_acq(self, key_min: Key, key_max: Key) -> ResponseAcq:
        """Get last acq value from TStorage.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).

        Returns:
            OK status, acq on success else status indicates error and acq is invalid.
        """
        return self._run(self._get_acq_flow(key_min, key_max))

    def get(self, key_min: Key, key_max: Key, recv_buffer_size: int = 65536) -> ResponseGet[T]:
        """Get records from TStorage.

        Records are get up to memory_limit and request fails if there is more data.
        If request fails at some point it automatically closes connection.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).
            recv_buffer_size: Initial buffer size for receiving data from network capped by self.memory_limit.

        Returns:
            OK status, acq, data on success else status indicates error, data stores partial result and acq is invalid.
        """
        return self._run(self._get_flow(key_min, key_max, recv_buffer_size, GetMode.GET))

    def get_stream(
        self, key_min: Key, key_max: Key, callback: GetCallback[T], recv_buffer_size: int = 65536
    ) -> ResponseAcq:
        """Get records from TStorage.

        Records are get in memory_limit sized batches; the callback gets each non-empty
        batch (a new list each time). If request fails at some point it automatically
        closes connection.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).
            callback: Callable to call on each batch.
            recv_buffer_size: Initial buffer size for receiving data from network capped by self.memory_limit.

        Returns:
            OK status, acq on success else status indicates error and acq is invalid.
        """
        return self._run(
            self._get_flow(key_min, key_max, recv_buffer_size, GetMode.STREAM, callback)
        )

    def get_iter(
        self, key_min: Key, key_max: Key, recv_buffer_size: int = 65536
    ) -> Iterator[Record[T] | ResponseAcq]:
        """Get records from TStorage as iterator.

        If request fails at some point it automatically closes connection.
        Records are yielded after whole batch parsing has been done.
        Remember to check for final response with OK status.

        Args:
            key_min: Lower end of keyrange (inclusive).
            key_max: Upper end of keyrange (exclusive).
            recv_buffer_size: Initial buffer size for receiving data from network capped by self.memory_limit.

        Yields:
            Record or response control data indicating error or successfully finished request.
        """
        return self._run_iter(self._get_flow(key_min, key_max, recv_buffer_size, GetMode.ITER))
