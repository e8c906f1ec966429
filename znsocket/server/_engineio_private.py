"""Every use of python-engineio's non-public API, behind one door.

python-engineio creates its sockets and WebSocket wrapper itself and offers no seam to
replace them, so :func:`install` sets the server's ``_async["websocket"]`` class, wraps its
``connect`` handler to swap each new ``engineio.socket.Socket`` for a
:class:`DirectSendSocket` (``__class__``), and :class:`DirectSendSocket` reads the socket's
``queue``, ``upgraded`` and ``upgrading``. While the installed python-engineio is in the
tested range (:data:`DOOR`); outside it :func:`install` changes nothing and one warning
says so.

Fast path (``ZNSOCKET_FAST_PATHS=0`` turns it off; ``bench/znsocket_server_profile.md``
row 4):

* ``direct_sends``: python-engineio queues every packet for a writer green thread, one
  more wake-up of the event hub per reply. Once the WebSocket carries the session, a
  MESSAGE packet is written by the green thread that produced it whenever nothing is
  queued or in flight ahead of it. Heartbeats keep going through the writer: the writer
  gives up on a connection whose queue stays empty for ``ping_interval + ping_timeout``
  (python-engineio's check for a client that stopped answering pings), which holds only
  while every PING passes through the queue. When PINGs were also written directly, the
  queue of a healthy connection stayed empty and the writer closed it after 45 s.

Guards (on with the fast paths off):

* slow readers: python-engineio queues every packet without bound, so a client that keeps
  sending requests and never reads their answers (easiest over polling: POSTs without
  GETs) makes the server hold all of them. :class:`DirectSendSocket` counts the bytes of
  each connection's packets from the moment they are produced until they are written (to
  the WebSocket, or returned to a polling GET). While more than ``send_buffer_bytes`` are
  owed, the connection's further requests are not read (backpressure); other connections
  go on. A connection that stays over the bound for ``send_timeout_s`` is dropped, its
  queue freed, with a log line. One answer larger than the bound is still sent whole. The
  account needs eventlet's door too (its WebSocket reports what it wrote).
* a frame python-engineio cannot decode closes that connection with code 1011 instead of
  an HTTP 500 written into the WebSocket.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from time import monotonic as _monotonic
from typing import Any

from engineio import exceptions as engineio_exceptions
from engineio import packet as engineio_packet
from engineio import socket as engineio_socket

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # eventlet's maintenance-mode notice
    from eventlet import sleep as _green_sleep

from znsocket.server import _eventlet_private
from znsocket.server.doors import Door

__all__ = [
    "DEFAULT_SEND_BUFFER_BYTES",
    "DEFAULT_SEND_TIMEOUT_S",
    "DOOR",
    "BufferedWebSocketWSGI",
    "DirectSendSocket",
    "install",
]

log = logging.getLogger(__name__)

DOOR = Door(
    "python-engineio",
    "4.11",
    "4.16",
    ("direct_sends",),
    "its fast path, the per-connection bound on unsent answers (send_buffer_per_connection, "
    "send_timeout), and closing only the connection that sent an undecodable frame",
)
_used = DOOR.used

#: Bytes of answers one connection may have produced but not yet written before its
#: further requests wait (see :class:`DirectSendSocket`).
DEFAULT_SEND_BUFFER_BYTES = 64 * 1024 * 1024
#: Seconds a connection may stay over that bound before it is dropped.
DEFAULT_SEND_TIMEOUT_S = 30.0
#: How often a waiting reader looks whether its connection drained (seconds).
_DRAIN_POLL_S = 0.01


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

    Direct writes: ``direct_ws`` is set when the WebSocket is established (fast paths
    on). A MESSAGE packet is written directly only when python-engineio's writer holds
    nothing: the queue is empty and no send is in flight (the writer yields only inside
    a send). Otherwise - during a polling phase or an upgrade, or while queued packets
    drain - it is queued as usual, so packet order holds. Control packets (PING, CLOSE,
    NOOP) are always queued: the writer's idle timeout is the heartbeat check and must
    see every PING.
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
            return
        _used["direct_sends"] += 1

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


class BufferedWebSocketWSGI(_eventlet_private.WebSocketWSGI):
    """python-engineio's eventlet WebSocket WSGI wrapper: undecodable frames close only
    their connection; the new WebSocket is tied to its Engine.IO socket."""

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

    def opened(self, ws: Any) -> None:
        # python-engineio's handler is the bound method of the session's socket
        engine_socket: Any = getattr(self._engine_handler, "__self__", None)
        if DOOR.fast and type(engine_socket) is engineio_socket.Socket:
            engine_socket.__class__ = DirectSendSocket
        if isinstance(engine_socket, DirectSendSocket):
            if DOOR.fast:
                engine_socket.direct_ws = ws
            engine_socket.transport_ws = ws
            ws.engine_socket = engine_socket


def install(
    eio_server: Any,
    send_buffer_bytes: int | None = DEFAULT_SEND_BUFFER_BYTES,
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
) -> None:
    """Make one python-engineio server (eventlet mode) use :class:`BufferedWebSocketWSGI`
    and bound each connection's unsent bytes (:class:`DirectSendSocket`).

    Other servers in the process keep eventlet's default transport. Outside the tested
    versions (of python-engineio; for the bound, of eventlet too) it changes nothing.

    Args:
        eio_server: The ``engineio.Server``; its ``connect`` handler must be registered
            (python-socketio does so when it creates the server).
        send_buffer_bytes: Bytes of answers a connection may owe before its further
            requests wait; ``None``: no bound.
        send_timeout_s: Seconds a connection may stay over that bound before it is dropped.
    """
    DOOR.announce()
    _eventlet_private.DOOR.announce()
    if not DOOR.open or getattr(eio_server, "async_mode", None) != "eventlet":
        return
    eio_server._async = dict(eio_server._async, websocket=BufferedWebSocketWSGI)
    if send_buffer_bytes is None or not _eventlet_private.DOOR.open:
        return
    # engineio creates its sockets itself (``engineio.server.socket.Socket``); the
    # connect handler runs right after, with the new socket in ``sockets``
    handlers: Any = getattr(eio_server, "handlers", None)
    sockets: Any = getattr(eio_server, "sockets", None)
    connect = handlers.get("connect") if isinstance(handlers, dict) else None
    if connect is None or not isinstance(sockets, dict):
        log.warning(
            "python-engineio %s has no connect handler or socket table: sends are not "
            "bounded per connection",
            DOOR.installed,
        )
        return

    def bounded_connect(sid: str, environ: Any, *args: Any) -> Any:
        engine_socket: Any = sockets.get(sid)
        if type(engine_socket) is engineio_socket.Socket:
            engine_socket.__class__ = DirectSendSocket
            engine_socket.send_limit = send_buffer_bytes
            engine_socket.send_timeout_s = send_timeout_s
        return connect(sid, environ, *args)

    handlers["connect"] = bounded_connect
