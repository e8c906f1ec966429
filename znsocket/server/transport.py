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

Hostile frames: eventlet bounds each frame (python-engineio sets the limit to
``max_http_buffer_size``) but joins the fragments of a message without bound, and
python-engineio checks the size of the whole message only after that. Here a message is
refused (close code 1009) as soon as its fragments pass the limit. An empty text frame
(no Engine.IO packet) is skipped, and a frame python-engineio cannot decode closes that
connection with code 1011 instead of an HTTP 500 written into the WebSocket.
"""

from __future__ import annotations

import logging
import warnings
from time import monotonic as _monotonic
from typing import Any

with warnings.catch_warnings():
    # eventlet announces its maintenance mode on import; the product owner chose it
    warnings.simplefilter("ignore")
    from engineio import packet as engineio_packet
    from engineio import socket as engineio_socket
    from engineio.async_drivers import eventlet as engineio_eventlet
    from eventlet import sleep as _green_sleep
    from eventlet import websocket as eventlet_websocket

from znsocket.protocol.masking import xor_mask

__all__ = [
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

    def wait(self) -> Any:
        """The next message; ``None`` once the connection closed."""
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


class DirectSendSocket(engineio_socket.Socket):
    """An Engine.IO socket that writes MESSAGE packets straight to its WebSocket.

    ``direct_ws`` is set when the WebSocket is established. A MESSAGE packet is written
    directly only when python-engineio's writer holds nothing: the queue is empty and no
    send is in flight (the writer yields only inside a send). Otherwise - during a polling
    phase or an upgrade, or while queued packets drain - it is queued as usual, so packet
    order holds. Control packets (PING, CLOSE, NOOP) are always queued: the writer's idle
    timeout is the heartbeat check and must see every PING.
    """

    direct_ws: Any = None

    def send(self, pkt: Any) -> None:
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
            engine_socket.direct_ws = ws
        return ws


def install(eio_server: Any) -> None:
    """Make one python-engineio server (eventlet mode) use :class:`BufferedWebSocketWSGI`.

    Other servers in the process keep eventlet's default transport.
    """
    if getattr(eio_server, "async_mode", None) != "eventlet":
        return
    eio_server._async = dict(eio_server._async, websocket=BufferedWebSocketWSGI)
