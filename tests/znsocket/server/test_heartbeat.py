"""The Engine.IO heartbeat: live clients stay connected, clients that stop answering pings go.

The server runs with a 1 s ping interval and a 1 s ping timeout, so one heartbeat cycle
(interval + timeout) lasts 2 s and every test below spans more than two of them. With the
defaults (25 s + 20 s) the same defect showed after 45 s: a connection whose heartbeats were
answered was closed, and the call in flight was never answered.
"""

from __future__ import annotations

import contextlib
import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

import znsocket
from tests._servers import ServerProcess, spawn
from tests.znsocket.server.conftest import NAMESPACE, RawClient

pytestmark = pytest.mark.integration

PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 1.0
CYCLE_S = PING_INTERVAL_S + PING_TIMEOUT_S
BUSY_S = 5.0

SERVER = textwrap.dedent(
    f"""
    from znsocket import Server

    Server(
        host="127.0.0.1", port=0, ping_interval={PING_INTERVAL_S}, ping_timeout={PING_TIMEOUT_S}
    ).run()
    """
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A ``znsocket.Server`` with a 1 s heartbeat interval and timeout."""
    with spawn([sys.executable, "-c", SERVER]) as proc:
        yield proc


class RawEngineIO:
    """A bare Engine.IO/socket.io client on a websocket that answers pings only if told to."""

    def __init__(self, port: int) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", timeout=10
        )
        opened = str(self.ws.recv())  # a text frame
        assert opened.startswith("0{")
        self.handshake: dict[str, Any] = json.loads(opened[1:])
        self.ws.send(f"40{NAMESPACE},")
        assert str(self.ws.recv()).startswith(f"40{NAMESPACE},")
        self.pings = 0
        self.next_id = 0

    def call(self, event: str, data: Any, *, answer_pings: bool) -> Any:
        """Send one event with an acknowledgement id and wait for its answer.

        Raises:
            websocket.WebSocketConnectionClosedException: The server closed the connection.
        """
        self.next_id += 1
        ack_prefix = f"43{NAMESPACE},{self.next_id}"
        self.ws.send(f"42{NAMESPACE},{self.next_id}" + json.dumps([event, data]))
        while True:
            frame = self.read()
            if frame.startswith(ack_prefix):
                return json.loads(frame[len(ack_prefix) :])[0]
            if frame == "2" and answer_pings:
                self.ws.send("3")

    def read(self) -> str:
        """The next text frame; pings are counted, a close raises."""
        opcode, payload = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE or not payload:
            raise websocket.WebSocketConnectionClosedException("closed by the server")
        frame = payload.decode()
        if frame == "2":
            self.pings += 1
        return frame

    def close(self) -> None:
        self.ws.close()


def assert_server_serves(server: ServerProcess, key: str, expected: set[str] | None = None) -> None:
    """A new client is served; ``key`` holds one of ``expected`` (if given)."""
    client = RawClient(server.url)
    try:
        if expected is not None:
            assert client.cmd("get", key)["data"] in expected
        assert client.cmd("set", key, "after") == {"data": True}
    finally:
        client.close()
    assert server.alive()


def test_handshake_advertises_the_configured_heartbeat(server: ServerProcess) -> None:
    raw = RawEngineIO(server.port)
    try:
        assert raw.handshake["pingInterval"] == PING_INTERVAL_S * 1000
        assert raw.handshake["pingTimeout"] == PING_TIMEOUT_S * 1000
    finally:
        raw.close()


def test_znsocket_client_calling_back_to_back_outlives_heartbeats(server: ServerProcess) -> None:
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{server.port}")
    try:
        connection = client.sio.eio_sid
        start = time.monotonic()
        calls = 0
        while time.monotonic() - start < BUSY_S:
            assert client.set("heartbeat:ours", str(calls)) is True
            calls += 1
        assert client.get("heartbeat:ours") == str(calls - 1)
        # the client reconnects on its own after a drop: the connection must be the same one
        assert client.sio.eio_sid == connection
        assert calls > 100
    finally:
        client.close()


@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
def test_socketio_client_calling_back_to_back_outlives_heartbeats(
    server: ServerProcess, transports: list[str]
) -> None:
    client = RawClient(server.url, transports=transports)  # never reconnects
    try:
        connection = client.sio.eio.sid
        start = time.monotonic()
        calls = 0
        while time.monotonic() - start < BUSY_S:
            # an unanswered call fails after two cycles instead of hanging
            answer = client.call("set", [["heartbeat:sio", str(calls)], {}], timeout=2 * CYCLE_S)
            assert answer == {"data": True}
            calls += 1
        assert client.cmd("get", "heartbeat:sio") == {"data": str(calls - 1)}
        assert client.sio.eio.sid == connection
        assert client.sio.eio.current_transport == "websocket"
        assert calls > 100
    finally:
        client.close()


def test_idle_client_answering_pings_stays_connected(server: ServerProcess) -> None:
    client = RawClient(server.url)
    try:
        connection = client.sio.eio.sid
        time.sleep(BUSY_S)
        assert client.cmd("set", "heartbeat:idle", "1") == {"data": True}
        assert client.sio.eio.sid == connection
    finally:
        client.close()


def test_bare_client_answering_pings_while_busy_stays_connected(server: ServerProcess) -> None:
    raw = RawEngineIO(server.port)
    try:
        start = time.monotonic()
        while time.monotonic() - start < BUSY_S:
            assert raw.call("set", [["heartbeat:bare", "1"], {}], answer_pings=True) == {
                "data": True
            }
        # a ping every interval, each answered before the timeout
        assert raw.pings >= int(BUSY_S / PING_INTERVAL_S) - 1
    finally:
        raw.close()


def test_silent_client_is_dropped(server: ServerProcess) -> None:
    raw = RawEngineIO(server.port)
    start = time.monotonic()
    try:
        with pytest.raises(websocket.WebSocketException):
            while time.monotonic() - start < 4 * CYCLE_S:
                raw.read()  # pings arrive and are never answered
        elapsed = time.monotonic() - start
        assert raw.pings >= 1
        assert PING_INTERVAL_S + PING_TIMEOUT_S - 0.2 < elapsed < 2 * CYCLE_S + 1
    finally:
        raw.close()
    assert_server_serves(server, "heartbeat:after-silent")


def test_busy_client_not_answering_pings_is_dropped(server: ServerProcess) -> None:
    raw = RawEngineIO(server.port)
    start = time.monotonic()
    calls = 0
    try:
        with pytest.raises(websocket.WebSocketException):
            while time.monotonic() - start < 4 * CYCLE_S:
                raw.call("set", [["heartbeat:deaf", str(calls)], {}], answer_pings=False)
                calls += 1
        elapsed = time.monotonic() - start
        assert raw.pings >= 1
        assert calls > 10
        assert PING_INTERVAL_S + PING_TIMEOUT_S - 0.2 < elapsed < 2 * CYCLE_S + 1
    finally:
        raw.close()
    # the last set may have been applied before its answer was refused
    assert_server_serves(server, "heartbeat:deaf", {str(calls - 1), str(calls)})


def test_client_keeping_its_connection_full_does_not_starve_others() -> None:
    # the default heartbeat: the flood must not get the flooder dropped within the test
    with spawn(["znsocket", "--host", "127.0.0.1", "--port", "0"]) as proc:
        other = RawClient(proc.url)
        flooder = RawEngineIO(proc.port)
        # events without acknowledgement ids: the server reads and never has to write
        blob = b"".join(
            websocket.ABNF.create_frame(
                f'42{NAMESPACE},["set",[["flood","{i}"],{{}}]]', websocket.ABNF.OPCODE_TEXT
            ).format()
            for i in range(1000)
        )
        stop = threading.Event()

        def flood() -> None:
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    sock = flooder.ws.sock
                    assert sock is not None
                    sock.sendall(blob)

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        try:
            time.sleep(0.5)  # a backlog builds up in the server's receive buffer
            start = time.monotonic()
            for i in range(20):
                answer = other.call("set", [["other", str(i)], {}], timeout=5)
                assert answer == {"data": True}
            assert time.monotonic() - start < 10
            assert sender.is_alive()  # the flood lasted the whole time
        finally:
            stop.set()
            flooder.ws.shutdown()
            sender.join(10)
            other.close()
        assert proc.alive()


@pytest.mark.parametrize("field", ["ping_interval", "ping_timeout"])
@pytest.mark.parametrize("value", [0, -1.5])
def test_server_refuses_heartbeat_settings_that_are_not_positive(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{field} must be a positive number of seconds"):
        znsocket.Server(**{field: value}).build()  # type: ignore[arg-type]


def test_cli_heartbeat_options_reach_the_handshake() -> None:
    argv = ["znsocket", "--host", "127.0.0.1", "--port", "0"]
    with spawn([*argv, "--ping-interval", "2", "--ping-timeout", "3"]) as proc:
        raw = RawEngineIO(proc.port)
        try:
            assert raw.handshake["pingInterval"] == 2000
            assert raw.handshake["pingTimeout"] == 3000
        finally:
            raw.close()
