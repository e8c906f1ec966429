"""Bad input on the client side: clear errors, nothing lost, the connection stays usable.

One test needs a peer that breaks the protocol; no server of ours does that, so a tiny
misbehaving websocket peer is written here (it is not a stand-in for our server).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import znsocket
import znsocket.exceptions
from tests._servers import ServerProcess
from tests.znsocket.client.conftest import start_server
from znsocket.client import ConnectionLostError

pytestmark = pytest.mark.integration


def test_unserialisable_argument_fails_locally(client: znsocket.Client) -> None:
    with pytest.raises(TypeError):
        client.set("k", object())
    with pytest.raises(TypeError):
        client.rpush("l", {1, 2})
    assert client.set("k", "fine") is True  # nothing was sent, the connection is intact


def test_invalid_values_are_refused_by_the_server(client: znsocket.Client) -> None:
    with pytest.raises(znsocket.exceptions.DataError):
        client.set("k", None)
    with pytest.raises(znsocket.exceptions.DataError):
        client.hset("h", "f", None)
    with pytest.raises(znsocket.exceptions.DataError):
        client.lindex("l", None)
    assert client.set("k", "still fine") is True


@pytest.fixture
def small_server() -> Iterator[ServerProcess]:
    proc = start_server("--max-http-buffer-size", "100000")
    yield proc
    proc.stop()


def test_oversized_packet_is_a_clear_error_then_recovers(small_server: ServerProcess) -> None:
    # The client is told a larger limit than the server has: the server drops the packet's
    # connection. The call must fail at once (not wait for its timeout) and the client
    # must work again afterwards.
    c = znsocket.Client(small_server.url, max_message_size_bytes=10_000_000, enable_compression=False)
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectionLostError):
            c.set("k", "x" * 500_000)
        assert time.monotonic() - t0 < 10
        assert c.set("k", "small") is True
        assert c.get("k") == "small"
        assert small_server.alive()
    finally:
        c.sio.disconnect()


def test_limit_from_server_config_avoids_the_drop(small_server: ServerProcess) -> None:
    c = znsocket.Client(small_server.url, enable_compression=False)
    try:
        assert c.max_message_size_bytes == 100_000
        assert c.set("k", "x" * 500_000) is True  # chunked below the server's limit
        assert len(c.get("k")) == 500_000
    finally:
        c.sio.disconnect()


class BrokenPeer:
    """Accepts one websocket, joins /znsocket, then answers any event with garbage."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

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
            data += conn.recv(n - len(data))
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
        conn.sendall(self._frame('0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'))
        while True:
            msg = self._read_frame(conn)
            if not msg:
                return
            if msg.startswith(b"40"):
                conn.sendall(self._frame('40/znsocket,{"sid":"y"}'))
            elif msg.startswith(b"42"):
                conn.sendall(self._frame(self.reply))


@pytest.mark.parametrize("reply", ['43/znsocket,1{"not": "a list"', "9garbage", "451-/znsocket,1[{}]extra"])
def test_malformed_answer_drops_the_connection_with_a_clear_error(
    reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer = BrokenPeer(reply)
    sio = znsocket.client.SocketIOTransport(reconnection=False)
    sio.connect(f"http://127.0.0.1:{peer.port}", namespaces=["/znsocket"])
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR), pytest.raises(ConnectionLostError, match="protocol error"):
        sio.call("get", [["k"], {}], namespace="/znsocket", timeout=10)
    assert time.monotonic() - t0 < 5
    assert not sio.connected
