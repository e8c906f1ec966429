"""One open websocket: opened by websocket-client, then framed by :mod:`~znsocket.client.frames`.

websocket-client does what is hard to get right once per connection (the HTTP upgrade,
TLS, proxies, headers); every message after that goes straight through the socket, one
``send`` per frame and one ``recv`` of up to 64 KiB per read.
"""

from __future__ import annotations

import contextlib
import select
import threading
from typing import Any

import websocket

from znsocket.client.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    encode_frame,
)
from znsocket.exceptions import ZnSocketError

__all__ = ["LinkClosedError", "WebSocketLink"]

READ_BYTES = 65536


class LinkClosedError(ZnSocketError, ConnectionError):
    """The server closed the websocket (close frame or end of stream)."""


class WebSocketLink:
    """A connected websocket for one reader thread and any number of senders.

    Args:
        url: ``ws://`` or ``wss://`` URL.
        timeout: Seconds for the opening handshake.
        header: Extra HTTP headers (``"Name: value"`` lines).
    """

    def __init__(self, url: str, timeout: float, header: list[str] | None = None) -> None:
        ws = websocket.WebSocket(skip_utf8_validation=True)
        # websocket-client reads the upgrade answer up to its blank line and no further,
        # so the socket holds nothing of the first frame we now read ourselves
        ws.connect(url, timeout=timeout, header=header or [], suppress_origin=True)
        self._ws = ws
        self.sock: Any = ws.sock
        self._reader = FrameReader()
        self._send_lock = threading.Lock()

    def settimeout(self, seconds: float | None) -> None:
        """Timeout of every later blocking ``recv``/``send`` on the socket."""
        self.sock.settimeout(seconds)

    # ------------------------------------------------------------------ sending
    def send_text(self, text: str) -> None:
        """Send one text message."""
        self._send(encode_frame(OP_TEXT, text.encode()))

    def send_binary(self, data: bytes) -> None:
        """Send one binary message."""
        self._send(encode_frame(OP_BINARY, data))

    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(frame)

    # ------------------------------------------------------------------ receiving
    def readable(self, timeout: float) -> bool:
        """True if :meth:`recv_message` may proceed without waiting ``timeout`` for data."""
        sock = self.sock
        if self._reader.buffered or (hasattr(sock, "pending") and sock.pending()):
            return True  # TLS may hold decrypted bytes that select cannot see
        return bool(select.select([sock], [], [], timeout)[0])

    def recv_message(self) -> tuple[int, bytes]:
        """The next data message as ``(OP_TEXT or OP_BINARY, payload)``; pings are answered.

        Raises:
            LinkClosedError: A close frame or the end of the stream.
            TimeoutError: Nothing arrived within the socket timeout.
            FrameError: The server broke RFC 6455.
            OSError: The socket failed.
        """
        reader = self._reader
        while True:
            message = reader.next_message()
            if message is None:
                data = self.sock.recv(READ_BYTES)
                if not data:
                    raise LinkClosedError("the server closed the connection")
                reader.feed(data)
                continue
            opcode = message[0]
            if opcode in (OP_TEXT, OP_BINARY):
                return message
            if opcode == OP_PING:
                self._send(encode_frame(OP_PONG, message[1]))
            elif opcode == OP_CLOSE:
                raise LinkClosedError("the server sent a close frame")

    # ------------------------------------------------------------------ closing
    def shutdown(self) -> None:
        """Break the connection at once (a blocked reader wakes with an error)."""
        self._ws.shutdown()

    def close(self) -> None:
        """Send a close frame if possible, then close the socket."""
        with contextlib.suppress(Exception):
            self._send(encode_frame(OP_CLOSE, b"\x03\xe8"))  # 1000: normal closure
        self._ws.shutdown()
