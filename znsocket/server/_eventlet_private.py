"""Every use of eventlet's non-public API, behind one door.

python-engineio serves WebSockets with ``eventlet.websocket``. Once eventlet has done the
handshake (``WebSocketWSGI._handle_hybi_request``), :class:`HookedWebSocketWSGI` turns the
new ``RFC6455WebSocket`` into a :class:`GuardedWebSocket` or :class:`FastWebSocket`
(``__class__`` swap) and reads it through a :class:`BufferedSocket`. While the installed
eventlet is in the tested range (:data:`DOOR`); outside it ``WebSocketWSGI`` is
python-engineio's own class and one warning says so.

Fast paths (``ZNSOCKET_FAST_PATHS=0`` turns them off; ``bench/znsocket_server_profile.md``
rows 1 and 2):

* ``buffered_reads``: eventlet reads every frame with three to four ``recv`` calls (2-byte
  header, extended length, mask, payload), each a trip through the event hub; a
  :class:`BufferedSocket` fills a buffer with one ``recv`` of up to 64 KiB.
* ``unmask``: eventlet unmasks client frames one byte at a time in a Python generator
  (``_apply_mask``); :func:`unmask` XORs whole buffers at once.
* ``fast_deflate``: with permessage-deflate (browsers ask for it), eventlet compresses every
  message at zlib's default level 6, several milliseconds of the one event loop for an
  answer of 100 KiB of JSON numbers; :data:`DEFLATE_LEVEL` compresses it about five times
  faster into about a tenth more bytes. The client inflates the same message either way.

Guards (on with the fast paths off): a reader that has run for :data:`TURN_S` lets the
other green threads run before it reads on (:class:`BufferedSocket`). eventlet bounds each frame but joins the fragments of
a message without bound, and python-engineio checks the whole message's size only after
that; here a message is refused (close code 1009) as soon as its fragments pass the limit.
An empty text frame (no Engine.IO packet) is skipped. Each send is counted for the
connection's send account (:mod:`znsocket.server._engineio_private`), and a reader waits
while its connection owes more than its bound.
"""

from __future__ import annotations

import warnings
import zlib
from time import monotonic as _monotonic
from typing import TYPE_CHECKING, Any

with warnings.catch_warnings():
    # eventlet announces its maintenance mode on import; the product owner chose it
    warnings.simplefilter("ignore")
    from engineio.async_drivers import eventlet as engineio_eventlet
    from eventlet import sleep as _green_sleep
    from eventlet import websocket as eventlet_websocket

from znsocket.protocol.masking import xor_mask
from znsocket.server.doors import Door

__all__ = [
    "DEFLATE_LEVEL",
    "DOOR",
    "READ_SIZE_BYTES",
    "TURN_S",
    "BufferedSocket",
    "FastWebSocket",
    "GuardedWebSocket",
    "HookedWebSocketWSGI",
    "WebSocketWSGI",
    "unmask",
]

DOOR = Door(
    "eventlet",
    "0.39",
    "0.42",
    ("buffered_reads", "unmask", "fast_deflate"),
    "its fast paths, the bound on the fragments of one WebSocket message, skipping empty "
    "frames, and the per-connection bound on unsent answers (send_buffer_per_connection)",
)
_used = DOOR.used

READ_SIZE_BYTES = 65536
#: Longest time (seconds) a reader serves a connection whose data never runs out before
#: letting the other green threads run.
TURN_S = 0.005
#: zlib level of the messages sent with permessage-deflate on the fast path (1: fastest).
DEFLATE_LEVEL = 1


def unmask(data: bytes, mask: Any, length: int | None = None, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte WebSocket ``mask`` starting at mask position ``offset``.

    eventlet's ``_apply_mask`` signature over :func:`znsocket.protocol.masking.xor_mask`.

    Args:
        data: Masked payload bytes.
        mask: The four mask bytes (a tuple of ints or bytes).
        length: Ignored (the length of ``data`` is used); kept for eventlet's signature.
        offset: Position of ``data[0]`` within the frame payload.
    """
    _used["unmask"] += 1
    return xor_mask(data, mask, offset)


class BufferedSocket:
    """A read-buffering, turn-taking proxy of a green socket; every other attribute
    passes through.

    A green socket's ``recv`` returns at once, without a trip through the event hub, when
    data is waiting. A client that keeps its connection full (requests sent without
    waiting for answers) would so keep the reader from ever yielding: no other connection,
    heartbeat or writer would run. Before reading from the socket, the reader therefore
    yields once it has run for :data:`TURN_S` since it last did (a guard, always on).

    Args:
        sock: The connected socket.
        buffered: Read up to :data:`READ_SIZE_BYTES` at once and serve later reads from
            that buffer (the ``buffered_reads`` fast path); ``False``: one ``recv`` per read.
    """

    __slots__ = ("_buffer", "_buffered", "_position", "_sock", "_turn_started")

    def __init__(self, sock: Any, buffered: bool = True) -> None:
        self._sock = sock
        self._buffered = buffered
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
        if not self._buffered:
            return self._sock.recv(size)
        _used["buffered_reads"] += 1
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


class GuardedWebSocket(eventlet_websocket.RFC6455WebSocket):
    """eventlet's RFC 6455 WebSocket: a count of sends in flight, bounded fragmented
    messages, no empty text messages, and the owner's send account."""

    Message = _BoundedMessage
    sending = 0
    #: The Engine.IO socket whose packets this WebSocket carries (for its send account):
    #: anything with ``wait_drained() -> bool`` and ``written(size)``.
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


class FastWebSocket(GuardedWebSocket):
    """:class:`GuardedWebSocket` unmasking whole buffers at once and compressing at
    :data:`DEFLATE_LEVEL` (permessage-deflate)."""

    _apply_mask = staticmethod(unmask)
    _deflate_enc: Any  # eventlet's (set in its __init__)

    def _get_permessage_deflate_enc(self) -> Any:
        # eventlet's own choice of compressor (window bits, context takeover negotiated at
        # the handshake), at a faster level; eventlet calls this once per message
        options = self.extensions.get("permessage-deflate")
        if options is None or self.client:
            return super()._get_permessage_deflate_enc()
        _used["fast_deflate"] += 1
        if options.get("server_no_context_takeover"):
            return _deflater(options)
        if self._deflate_enc is None:
            self._deflate_enc = _deflater(options)
        return self._deflate_enc


def _deflater(options: dict[str, Any]) -> Any:
    """A raw-deflate compressor with the window the client accepted (RFC 7692)."""
    bits = options.get("server_max_window_bits", zlib.MAX_WBITS)
    return zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -bits)


class HookedWebSocketWSGI(engineio_eventlet.WebSocketWSGI):
    """python-engineio's eventlet WebSocket WSGI wrapper; :meth:`opened` sees each new
    WebSocket, guarded (and buffered, with the fast paths on)."""

    def _handle_hybi_request(self, environ: dict[str, Any]) -> Any:
        ws = super()._handle_hybi_request(environ)
        # the handshake is done on the raw socket; frames are read through the proxy
        ws.__class__ = FastWebSocket if DOOR.fast else GuardedWebSocket
        ws.socket = BufferedSocket(ws.socket, buffered=DOOR.fast)
        self.opened(ws)
        return ws

    def opened(self, ws: GuardedWebSocket) -> None:
        """Called with each WebSocket once its handshake is done (a hook; does nothing)."""


# Outside the tested range the WebSockets are eventlet's own and ``opened`` is never called.
if TYPE_CHECKING:
    WebSocketWSGI = HookedWebSocketWSGI
else:
    WebSocketWSGI = HookedWebSocketWSGI if DOOR.open else engineio_eventlet.WebSocketWSGI
