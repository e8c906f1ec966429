"""Faster WebSocket transport for python-engineio's eventlet driver.

python-engineio serves WebSockets with ``eventlet.websocket``. Profiling a ``get`` through
it (``bench/znsocket_server_profile.md``) showed two costs that have nothing to do with
znsocket:

* every inbound frame is read with three to four ``recv`` system calls (2-byte header,
  extended length, 4-byte mask, payload), each a trip through the event hub;
* client frames are unmasked one byte at a time in a Python generator
  (``bytes((data[i] ^ mask[...],))`` per byte): seconds of CPU for a multi-megabyte
  message;
* every outgoing packet is queued for a separate writer green thread, one more wake-up
  of the event hub per reply.

:class:`BufferedWebSocketWSGI` keeps eventlet's protocol handling (handshake, framing,
control frames, limits) and changes only these things: reads go through a
:class:`BufferedSocket` that fills a buffer with one ``recv`` of up to 64 KiB, unmasking
XORs whole buffers at once (:func:`unmask`), and once the WebSocket carries the session
packets are written directly by the green thread that produced them whenever nothing is
queued ahead of them (:class:`DirectSendSocket`).

Only MESSAGE packets take the direct path; heartbeats keep going through python-engineio's
writer. The writer gives up on a connection whose queue stays empty for ``ping_interval +
ping_timeout`` - that is python-engineio's check for a client that stopped answering
pings, and it holds only while every PING passes through the queue. When PINGs were also
written directly, the queue of a healthy connection stayed empty and the writer closed it
after 45 s (the defaults 25 s + 20 s), busy or idle.

Slow readers: python-engineio queues every packet for a connection without bound, so a
client that keeps sending requests and never reads their answers (easiest over polling:
POSTs without GETs) makes the server hold all of them. :class:`DirectSendSocket` counts the
bytes of each connection's packets from the moment they are produced until they are
written (to the WebSocket, or returned to a polling GET). While more than
``send_buffer_bytes`` are owed, the connection's further requests are not read (the
WebSocket reader, or a polling POST, waits: backpressure); other connections go on. A
connection that stays over the bound for ``send_timeout_s`` is dropped, its queue freed,
with a log line. One answer larger than the bound is still sent whole.

Hostile frames: eventlet bounds each frame (python-engineio sets the limit to
``max_http_buffer_size``) but joins the fragments of a message without bound, and
python-engineio checks the size of the whole message only after that. Here a message is
refused (close code 1009) as soon as its fragments pass the limit. An empty text frame
(no Engine.IO packet) is skipped, and a frame python-engineio cannot decode closes that
connection with code 1011 instead of an HTTP 500 written into the WebSocket.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from importlib.metadata import version as _dist_version
from time import monotonic as _monotonic
from typing import Any

with warnings.catch_warnings():
    # eventlet announces its maintenance mode on import; the product owner chose it
    warnings.simplefilter("ignore")
    from engineio import exceptions as engineio_exceptions
    from engineio import packet as engineio_packet
    from engineio import socket as engineio_socket
    from engineio.async_drivers import eventlet as engineio_eventlet
    from eventlet import sleep as _green_sleep
    from eventlet import websocket as eventlet_websocket

from znsocket.protocol.masking import xor_mask

__all__ = [
    "DEFAULT_SEND_BUFFER_BYTES",
    "DEFAULT_SEND_TIMEOUT_S",
    "READ_SIZE_BYTES",
    "TURN_S",
    "BufferedSocket",
    "BufferedWebSocketWSGI",
    "DirectSendSocket",
    "unmask",
]

log = logging.getLogger(__name__)

READ_SIZE_BYTES = 65536
#: Longest time (seconds) a reader serves a connection whose data never runs out before
#: letting the other green threads run.
TURN_S = 0.005
#: Bytes of answers one connection may have produced but not yet written before its
#: further requests wait (see :class:`DirectSendSocket`).
DEFAULT_SEND_BUFFER_BYTES = 64 * 1024 * 1024
#: Seconds a connection may stay over that bound before it is dropped.
DEFAULT_SEND_TIMEOUT_S = 30.0
#: How often a waiting reader looks whether its connection drained (seconds).
_DRAIN_POLL_S = 0.01


def unmask(data: bytes, mask: Any, length: int | None = None, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte WebSocket ``mask`` starting at mask position ``offset``.

    eventlet's ``_apply_mask`` signature over :func:`znsocket.protocol.masking.xor_mask`.

    Args:
        data: Masked payload bytes.
        mask: The four mask bytes (a tuple of ints or bytes).
        length: Ignored (the length of ``data`` is used); kept for eventlet's signature.
        offset: Position of ``data[0]`` within the frame payload.
    """
    return xor_mask(data, mask, offset)


class BufferedSocket:
    """A read-buffering proxy of a green socket; every other attribute passes through.

    A green socket's ``recv`` returns at once, without a trip through the event hub, when
    data is waiting. A client that keeps its connection full (requests sent without
    waiting for answers) would so keep the reader from ever yielding: no other connection,
    heartbeat or writer would run. Before refilling its buffer, the reader therefore
    yields once it has run for :data:`TURN_S` since it last did.

    Args:
        sock: The connected socket.
    """

    __slots__ = ("_buffer", "_position", "_sock", "_turn_started")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._position = 0
        self._turn_started = _monotonic()

    def recv(self, size: int) -> bytes:
        """Return up to ``size`` bytes, from the buffer or with one ``recv`` call."""
        buffer, position = self._buffer, self._position
        if position < len(buffer):
            end = position + size
            self._position = end
            return buffer[position:end]
        now = _monotonic()
        if now - self._turn_started > TURN_S:
            _green_sleep(0)
            self._turn_started = _monotonic()
        data: bytes = self._sock.recv(max(size, READ_SIZE_BYTES))
        if len(data) <= size:
            return data
        self._buffer = data
        self._position = size
        return data[:size]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _BoundedMessage(eventlet_websocket.RFC6455WebSocket.Message):
    """A message being received whose fragments together may not pass the frame limit."""

    size = 0

    def push(self, data: bytes, final: bool = False) -> None:
        self.size += len(data)
        if self.size > self.max_frame_length:
            raise eventlet_websocket.FailedConnectionError(
                1009, f"Message larger than the limit of {self.max_frame_length} bytes"
            )
        super().push(data, final)


class _FastRFC6455WebSocket(eventlet_websocket.RFC6455WebSocket):
    """eventlet's RFC 6455 WebSocket: whole-buffer unmasking, a count of sends in flight,
    bounded fragmented messages, no empty text messages."""

    _apply_mask = staticmethod(unmask)
    Message = _BoundedMessage
    sending = 0
    #: The Engine.IO socket whose packets this WebSocket carries (for its send account).
    engine_socket: Any = None

    def wait(self) -> Any:
        """The next message; ``None`` once the connection closed.

        Waits first while the connection owes more answer bytes than its bound.
        """
        owner = self.engine_socket
        if owner is not None and not owner.wait_drained():
            return None
        while True:
            data = super().wait()
            if data != "":
                return data

    def send(self, message: Any, **kw: Any) -> None:
        self.sending += 1
        try:
            super().send(message, **kw)
        finally:
            self.sending -= 1
        owner = self.engine_socket
        if owner is not None:
            owner.written(len(message))


def _packet_size(pkt: Any) -> int:
    """Length of ``pkt.encode()``, without building it for a MESSAGE."""
    data = pkt.data
    if pkt.packet_type == engineio_packet.MESSAGE and type(data) in (str, bytes):
        return len(data) + (type(data) is str)
    return len(pkt.encode())


class DirectSendSocket(engineio_socket.Socket):
    """An Engine.IO socket that bounds its unsent bytes and writes MESSAGE packets directly.

    Send account: ``owed`` counts the bytes of packets sent through :meth:`send` until
    they are written (:meth:`written`, called by the WebSocket) or handed to a polling GET.
    :meth:`wait_drained` is called before reading each request (WebSocket message or
    polling POST) and holds it while more than ``send_limit`` bytes are owed; after
    ``send_timeout_s`` over the bound the connection is dropped. Sends from other
    connections (broadcasts) never wait, but a send finds a connection over the bound for
    too long and drops it too.

    Direct writes: ``direct_ws`` is set when the WebSocket is established. A MESSAGE
    packet is written directly only when python-engineio's writer holds nothing: the queue
    is empty and no send is in flight (the writer yields only inside a send). Otherwise -
    during a polling phase or an upgrade, or while queued packets drain - it is queued as
    usual, so packet order holds. Control packets (PING, CLOSE, NOOP) are always queued:
    the writer's idle timeout is the heartbeat check and must see every PING.
    """

    direct_ws: Any = None
    #: The WebSocket, kept when ``direct_ws`` is given up (to shut it down on a drop).
    transport_ws: Any = None
    #: Bytes owed beyond which requests wait; ``None``: no bound.
    send_limit: int | None = None
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    owed = 0
    #: When ``owed`` last went over ``send_limit`` (monotonic seconds); ``None``: not over.
    over_since: float | None = None

    def _owe(self, size: int) -> None:
        self.owed += size
        limit = self.send_limit
        if limit is not None and self.owed > limit and self.over_since is None:
            self.over_since = _monotonic()

    def written(self, size: int) -> None:
        """``size`` bytes owed were written (or handed to the client)."""
        # packets sent before the account started (OPEN, the upgrade probe) are not owed
        self.owed = max(0, self.owed - size)
        limit = self.send_limit
        if limit is not None and self.owed <= limit:
            self.over_since = None

    def _overdue(self) -> bool:
        """Drop the connection if it stayed over the bound too long; whether it did."""
        since = self.over_since
        if since is None or _monotonic() - since <= self.send_timeout_s:
            return False
        if not self.closed:
            log.warning(
                "dropping connection %s: %d bytes of answers stayed unread, over the bound "
                "of %d bytes (send_buffer_per_connection) for %.1f s (send_timeout %.1f s)",
                self.sid,
                self.owed,
                self.send_limit,
                _monotonic() - since,
                self.send_timeout_s,
            )
            self.drop()
        return True

    def drop(self) -> None:
        """Close the connection at once and free what it has queued."""
        self.close(wait=False, abort=True)
        queue_empty = self.server.get_queue_empty_exception()
        try:
            while True:
                self.queue.get(block=False)
                self.queue.task_done()
        except queue_empty:
            pass
        self.queue.put(None)  # the writer (or a waiting poll) ends
        self.owed = 0
        self.over_since = None
        sock = getattr(self.transport_ws, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                # unblocks a write in flight, ends the reader
                sock.shutdown(2)  # SHUT_RDWR

    def wait_drained(self) -> bool:
        """Wait while more than ``send_limit`` bytes are owed; ``False``: connection dropped."""
        while self.over_since is not None and not self.closed:
            if self._overdue():
                return False
            _green_sleep(_DRAIN_POLL_S)
        return not self.closed

    def send(self, pkt: Any) -> None:
        if self.send_limit is not None:
            if self._overdue():
                return
            self._owe(_packet_size(pkt))
        ws = self.direct_ws
        if (
            pkt.packet_type != engineio_packet.MESSAGE
            or ws is None
            or ws.sending
            or not self.upgraded
            or self.upgrading
            or self.closed
            or not self.queue.empty()
        ):
            super().send(pkt)
            return
        if not self.check_ping_timeout():
            return
        try:
            ws.send(pkt.encode())
        except OSError:
            # the peer went away: let the writer notice and close the connection
            self.direct_ws = None
            super().send(pkt)

    def handle_get_request(self, environ: Any, start_response: Any) -> Any:
        packets = super().handle_get_request(environ, start_response)
        if self.send_limit is not None and isinstance(packets, list):
            # a polling answer: these packets leave the queue for the client
            self.written(
                sum(_packet_size(p) for p in packets if isinstance(p, engineio_packet.Packet))
            )
        return packets

    def handle_post_request(self, environ: Any) -> None:
        if self.send_limit is not None and not self.wait_drained():
            raise engineio_exceptions.SocketIsClosedError()
        super().handle_post_request(environ)


class BufferedWebSocketWSGI(engineio_eventlet.WebSocketWSGI):
    """python-engineio's eventlet WebSocket WSGI wrapper, with buffered reads and direct writes."""

    def __init__(self, handler: Any, server: Any) -> None:
        super().__init__(handler, server)
        self._engine_handler = handler
        self.handler = self._guarded

    def _guarded(self, ws: Any) -> Any:
        """Run python-engineio's handler; a frame it cannot decode closes this connection."""
        try:
            return self._engine_handler(ws)
        except Exception as exc:
            log.info("closing a WebSocket after an undecodable frame: %r", exc)
            engine_socket: Any = getattr(self._engine_handler, "__self__", None)
            if isinstance(engine_socket, engineio_socket.Socket):
                engine_socket.close(wait=False, abort=True)
            ws.close(close_data=(1011, "Undecodable Engine.IO packet"))
            return []

    def _handle_hybi_request(self, environ: dict[str, Any]) -> Any:
        ws = super()._handle_hybi_request(environ)
        # the handshake is done on the raw socket; frames are read through the buffer
        ws.__class__ = _FastRFC6455WebSocket
        ws.socket = BufferedSocket(ws.socket)
        engine_socket: Any = getattr(self._engine_handler, "__self__", None)
        if type(engine_socket) is engineio_socket.Socket:
            engine_socket.__class__ = DirectSendSocket
        if isinstance(engine_socket, DirectSendSocket):
            engine_socket.direct_ws = engine_socket.transport_ws = ws
            ws.engine_socket = engine_socket
        return ws


def install(
    eio_server: Any,
    send_buffer_bytes: int | None = DEFAULT_SEND_BUFFER_BYTES,
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
) -> None:
    """Make one python-engineio server (eventlet mode) use :class:`BufferedWebSocketWSGI`
    and bound each connection's unsent bytes (:class:`DirectSendSocket`).

    Other servers in the process keep eventlet's default transport.

    Args:
        eio_server: The ``engineio.Server``; its ``connect`` handler must be registered
            (python-socketio does so when it creates the server).
        send_buffer_bytes: Bytes of answers a connection may owe before its further
            requests wait; ``None``: no bound.
        send_timeout_s: Seconds a connection may stay over that bound before it is dropped.
    """
    if getattr(eio_server, "async_mode", None) != "eventlet":
        return
    eio_server._async = dict(eio_server._async, websocket=BufferedWebSocketWSGI)
    if send_buffer_bytes is None:
        return
    # engineio creates its sockets itself (``engineio.server.socket.Socket``); the
    # connect handler runs right after, with the new socket in ``sockets``. Checked
    # for python-engineio 4; other versions keep the library's unbounded queue.
    handlers: Any = getattr(eio_server, "handlers", None)
    sockets: Any = getattr(eio_server, "sockets", None)
    connect = handlers.get("connect") if isinstance(handlers, dict) else None
    if not _ENGINEIO_4 or connect is None or not isinstance(sockets, dict):
        log.warning("python-engineio %s: sends are not bounded per connection", _ENGINEIO)
        return

    def bounded_connect(sid: str, environ: Any, *args: Any) -> Any:
        engine_socket: Any = sockets.get(sid)
        if type(engine_socket) is engineio_socket.Socket:
            engine_socket.__class__ = DirectSendSocket
            engine_socket.send_limit = send_buffer_bytes
            engine_socket.send_timeout_s = send_timeout_s
        return connect(sid, environ, *args)

    handlers["connect"] = bounded_connect


_ENGINEIO = _dist_version("python-engineio")
_ENGINEIO_4 = _ENGINEIO.split(".", 1)[0] == "4"
