"""Bad input on the client side: clear errors, nothing lost, the connection stays usable."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

import znsocket
import znsocket.exceptions
from tests._servers import ServerProcess
from tests.znsocket.client.conftest import start_server
from tests.znsocket.client.peers import MisbehavingPeer
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
    c = znsocket.Client(
        small_server.url, max_message_size_bytes=10_000_000, enable_compression=False
    )
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


@pytest.mark.parametrize(
    "reply", ['43/znsocket,1{"not": "a list"', "9garbage", "451-/znsocket,1[{}]extra"]
)
def test_malformed_answer_drops_the_connection_with_a_clear_error(
    reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer = MisbehavingPeer(reply=reply)
    sio = znsocket.client.SocketIOTransport(reconnection=False)
    sio.connect(f"http://127.0.0.1:{peer.port}", namespaces=["/znsocket"])
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR), pytest.raises(ConnectionLostError, match="protocol error"):
        sio.call("get", [["k"], {}], namespace="/znsocket", timeout=10)
    assert time.monotonic() - t0 < 5
    assert not sio.connected
    sio.disconnect()  # ends the dispatcher thread


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x81\x85abcd" + b"12345", "masked"),  # servers must not mask
        (b"\xc1\x01x", "reserved bits"),
        (b"\x83\x01x", "unknown opcode"),
        (b"\x89\x7e\x00\x80" + b"p" * 128, "control frames"),
    ],
)
def test_broken_websocket_frames_drop_the_connection_with_a_clear_error(
    raw: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer = MisbehavingPeer(raw_reply=raw)
    sio = znsocket.client.SocketIOTransport(reconnection=False)
    sio.connect(f"http://127.0.0.1:{peer.port}", namespaces=["/znsocket"])
    with caplog.at_level(logging.ERROR), pytest.raises(ConnectionLostError, match=reason):
        sio.call("get", [["k"], {}], namespace="/znsocket", timeout=10)
    assert "websocket protocol error" in caplog.text
    assert not sio.connected
    sio.disconnect()


def test_a_close_frame_mid_call_is_a_clear_error() -> None:
    peer = MisbehavingPeer(raw_reply=b"\x88\x02\x03\xe8")
    sio = znsocket.client.SocketIOTransport(reconnection=False)
    sio.connect(f"http://127.0.0.1:{peer.port}", namespaces=["/znsocket"])
    with pytest.raises(ConnectionLostError, match="close frame"):
        sio.call("get", [["k"], {}], namespace="/znsocket", timeout=10)
    sio.disconnect()
