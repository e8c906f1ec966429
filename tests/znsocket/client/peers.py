"""A tiny websocket peer that breaks the rules on purpose.

Some client behaviour (answers to garbage, heartbeats) can only be checked against a peer
that does what no server of ours does; this is not a stand-in for our server.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading


class MisbehavingPeer:
    """Accepts one websocket and joins ``/znsocket``; then misbehaves as configured.

    Args:
        reply: Text sent back for every event the client emits (``None``: no answer).
        ping_interval_ms: Advertised Engine.IO ping interval.
        ping_timeout_ms: Advertised Engine.IO ping timeout.
        send_ping: Send one Engine.IO ping right after the namespace is joined.
        raw_reply: Bytes sent back as they are (e.g. a broken websocket frame) instead of
            ``reply``.
    """

    def __init__(
        self,
        reply: str | None = None,
        ping_interval_ms: int = 25000,
        ping_timeout_ms: int = 20000,
        send_ping: bool = False,
        raw_reply: bytes | None = None,
    ) -> None:
        self.reply = reply
        self.raw_reply = raw_reply
        self.ping_interval_ms = ping_interval_ms
        self.ping_timeout_ms = ping_timeout_ms
        self.send_ping = send_ping
        self.received: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _frame(text: str) -> bytes:
        data = text.encode()
        assert len(data) < 126
        return bytes([0x81, len(data)]) + data

    @staticmethod
    def _read_frame(conn: socket.socket) -> bytes:
        head = conn.recv(2)
        if len(head) < 2:
            return b""
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(conn.recv(2), "big")
        mask = conn.recv(4)
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return b""
            data += chunk
        return bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        ).decode()
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        conn.sendall(
            self._frame(
                f'0{{"sid":"x","upgrades":[],"pingInterval":{self.ping_interval_ms},'
                f'"pingTimeout":{self.ping_timeout_ms}}}'
            )
        )
        while True:
            msg = self._read_frame(conn)
            if not msg:
                return
            self.received.append(msg)
            if msg.startswith(b"40"):
                conn.sendall(self._frame('40/znsocket,{"sid":"y"}'))
                if self.send_ping:
                    conn.sendall(self._frame("2"))
            elif msg.startswith(b"42") and self.raw_reply is not None:
                conn.sendall(self.raw_reply)
            elif msg.startswith(b"42") and self.reply is not None:
                conn.sendall(self._frame(self.reply))
