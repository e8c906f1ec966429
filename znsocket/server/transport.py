"""Faster WebSocket transport for python-engineio's eventlet driver.

python-engineio serves WebSockets with ``eventlet.websocket``. Profiling a ``get`` through
it (``bench/znsocket_server_profile.md``) showed two costs that have nothing to do with
znsocket:

* every inbound frame is read with three to four ``recv`` system calls (2-byte header,
  extended length, 4-byte mask, payload), each a trip through the event hub;
* client frames are unmasked one byte at a time in a Python generator
  (``bytes((data[i] ^ mask[...],))`` per byte): about 0.5 µs per byte, i.e. seconds for
  a multi-megabyte message.

:class:`BufferedWebSocketWSGI` keeps eventlet's protocol handling (handshake, framing,
control frames, limits) and changes only these two things: reads go through a
:class:`BufferedSocket` that fills a buffer with one ``recv`` of up to 64 KiB, and
unmasking XORs whole buffers at once (:func:`unmask`).
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    # eventlet announces its maintenance mode on import; the product owner chose it
    warnings.simplefilter("ignore")
    from engineio.async_drivers import eventlet as engineio_eventlet
    from eventlet import websocket as eventlet_websocket

__all__ = ["READ_SIZE_BYTES", "BufferedSocket", "BufferedWebSocketWSGI", "unmask"]

READ_SIZE_BYTES = 65536


def unmask(data: bytes, mask: Any, length: int | None = None, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte WebSocket ``mask`` starting at mask position ``offset``.

    Args:
        data: Masked payload bytes.
        mask: The four mask bytes (a tuple of ints or bytes).
        length: Ignored (the length of ``data`` is used); kept for eventlet's signature.
        offset: Position of ``data[0]`` within the frame payload.
    """
    size = len(data)
    if not size:
        return b""
    shift = offset % 4
    key = bytes(mask[(shift + i) % 4] for i in range(4))
    stream = key * (size // 4 + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(stream[:size], "little")
    return value.to_bytes(size, "little")


class BufferedSocket:
    """A read-buffering proxy of a green socket; every other attribute passes through.

    Args:
        sock: The connected socket.
    """

    __slots__ = ("_buffer", "_position", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._position = 0

    def recv(self, size: int) -> bytes:
        """Return up to ``size`` bytes, from the buffer or with one ``recv`` call."""
        buffer, position = self._buffer, self._position
        if position < len(buffer):
            end = position + size
            self._position = end
            return buffer[position:end]
        data: bytes = self._sock.recv(max(size, READ_SIZE_BYTES))
        if len(data) <= size:
            return data
        self._buffer = data
        self._position = size
        return data[:size]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _FastRFC6455WebSocket(eventlet_websocket.RFC6455WebSocket):
    """eventlet's RFC 6455 WebSocket with whole-buffer unmasking."""

    _apply_mask = staticmethod(unmask)


class BufferedWebSocketWSGI(engineio_eventlet.WebSocketWSGI):
    """python-engineio's eventlet WebSocket WSGI wrapper, with buffered, fast reads."""

    def _handle_hybi_request(self, environ: dict[str, Any]) -> Any:
        ws = super()._handle_hybi_request(environ)
        # the handshake is done on the raw socket; frames are read through the buffer
        ws.__class__ = _FastRFC6455WebSocket
        ws.socket = BufferedSocket(ws.socket)
        return ws


def install(eio_server: Any) -> None:
    """Make one python-engineio server (eventlet mode) use :class:`BufferedWebSocketWSGI`.

    Other servers in the process keep eventlet's default transport.
    """
    if getattr(eio_server, "async_mode", None) != "eventlet":
        return
    eio_server._async = dict(eio_server._async, websocket=BufferedWebSocketWSGI)
