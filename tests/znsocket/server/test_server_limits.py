"""Hostile clients against a real server: each limit holds, the offender gets a clear error,
and other clients are not affected (issue: bounded memory per client, no lock-out).

Raw WebSocket clients speak Engine.IO/Socket.IO by hand, as an attacker would.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import statistics
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import websocket

from tests._servers import ServerProcess, spawn
from tests.znsocket.server.conftest import NAMESPACE, RawClient

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RawSocketIO:
    """A WebSocket speaking Socket.IO frames by hand, joined to the znsocket namespace."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", timeout=timeout
        )
        assert str(self.ws.recv()).startswith("0{")  # Engine.IO OPEN
        self.ws.send("40" + NAMESPACE + ",")
        assert str(self.ws.recv()).startswith("40" + NAMESPACE + ",")

    def send(self, text: str) -> None:
        self.ws.send(text)

    def ack(self, ack_id: int, namespace: str = NAMESPACE) -> Any:
        """Wait for the acknowledgement ``ack_id``; answer Engine.IO pings meanwhile."""
        prefix = f"43{namespace},{ack_id}"
        while True:
            frame = self.ws.recv()
            if frame == "2":
                self.ws.send("3")
                continue
            if isinstance(frame, str) and frame.startswith(prefix):
                return json.loads(frame[len(prefix) :])[0]

    def close_code(self) -> int | None:
        """Read until the server closes; its close status (``None`` if the socket just ends)."""
        while True:
            try:
                frame = self.ws.recv_frame()  # raw: no close handshake of our own
            except websocket.WebSocketConnectionClosedException:
                return None
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data
                return int.from_bytes(data[:2], "big") if len(data) >= 2 else None

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerProcess]:
    """A server with small limits, so each is reached with little traffic."""
    argv = ["znsocket", "--port", "0", "--max-http-buffer-size", "1000000"]
    argv += ["--max-attachments", "8", "--chunk-buffer-per-connection", "3000000"]
    argv += ["--chunk-buffer-total", "8000000", "--chunk-timeout", "2"]
    argv += ["--max-connections", "20", "--request-timeout", "1"]
    with spawn(argv) as proc:
        yield proc


@pytest.fixture
def raw(server: ServerProcess) -> Iterator[Callable[[], RawSocketIO]]:
    """Raw connections to the default server (1 MB packets, every other limit at its default)."""
    opened: list[RawSocketIO] = []

    def factory() -> RawSocketIO:
        conn = RawSocketIO(server.port)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        conn.close()


@pytest.fixture
def sio(limited: ServerProcess) -> Iterator[Callable[..., RawClient]]:
    """socket.io clients of the server with small limits."""
    opened: list[RawClient] = []

    def factory(**kwargs: Any) -> RawClient:
        client = RawClient(limited.url, **kwargs)
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.close()


# --------------------------------------------------------------- binary attachments
def test_too_many_announced_attachments_are_refused_and_not_buffered(
    server: ServerProcess, raw: Callable[[], RawSocketIO], connect: Callable[..., RawClient]
) -> None:
    offender = raw()
    placeholder = {"_placeholder": True, "num": 0}
    offender.send(f'45100000-{NAMESPACE},1["set",[["k",{json.dumps(placeholder)}],{{}}]]')
    reply = offender.ack(1)
    assert reply["error"]["type"] == "MessageTooLargeError"
    assert "at most 1000 attachments" in reply["error"]["msg"]
    assert "not run" in reply["error"]["msg"]
    before = rss_bytes(server.pid)
    frame = b"\x00" * 900_000
    for _ in range(60):  # 54 MB of attachments the server must not keep
        offender.ws.send_binary(frame)
    bystander = connect()
    assert bystander.cmd("set", "bystander", "ok") == {"data": True}
    assert bystander.cmd("exists", "k") == {"data": 0}
    assert rss_bytes(server.pid) - before < 30 * MIB


def test_attachments_past_the_byte_bound_are_refused(raw: Callable[[], RawSocketIO]) -> None:
    conn = raw()
    # three attachments of 900 kB: together past the 1 MB packet limit
    payload = [{"_placeholder": True, "num": i} for i in range(3)]
    conn.send(f'453-{NAMESPACE},2["set",[["three",{json.dumps(payload)}],{{}}]]')
    for _ in range(3):
        conn.ws.send_binary(b"\x01" * 900_000)
    reply = conn.ack(2)
    assert reply["error"]["type"] == "MessageTooLargeError"
    assert "exceed 1000000 bytes" in reply["error"]["msg"]
    # the third attachment was discarded: the connection is in step again
    conn.send(f'42{NAMESPACE},3["exists",[["three"],{{}}]]')
    assert conn.ack(3) == {"data": 0}


# ------------------------------------------------------------------ chunk buffer
def chunk(client: RawClient, cid: str, index: int, total: int, data: bytes) -> Any:
    return client.call(
        "chunked_message",
        {
            "chunk_id": cid,
            "chunk_index": index,
            "total_chunks": total,
            "event": "set",
            "data": data,
            "size": len(data),
        },
    )


def test_one_connection_cannot_fill_the_chunk_buffer(sio: Callable[..., RawClient]) -> None:
    offender, bystander = sio(), sio()
    piece = b"\x00" * 900_000
    replies = [chunk(offender, f"hog-{i}", 0, 2, piece) for i in range(4)]
    assert [r.get("status") for r in replies[:3]] == ["waiting"] * 3
    error = replies[3]["error"]
    assert error["type"] == "ChunkLimitError"
    assert "this connection exceed 3000000 bytes" in error["msg"]
    assert "hog-3 was dropped and not run" in error["msg"]
    # the server-wide buffer (8 MB) still has room for everyone else
    value = "v" * 2_000_000
    buffer = b"\x00" + json.dumps([["big", value], {}]).encode()
    parts = [buffer[i : i + 900_000] for i in range(0, len(buffer), 900_000)]
    for i, part in enumerate(parts):
        assert "error" not in chunk(bystander, "fine", i, len(parts), part)
    assert bystander.call("get_chunked_result", {"chunk_id": "fine"}) == {"data": True}
    assert bystander.cmd("get", "big") == {"data": value}


def test_incomplete_chunked_messages_time_out(sio: Callable[..., RawClient]) -> None:
    client = sio()
    buffer = b"\x00" + json.dumps([["late", "value"], {}]).encode()
    assert chunk(client, "slow", 0, 2, buffer[:5])["status"] == "waiting"
    time.sleep(2.5)
    reply = chunk(client, "slow", 1, 2, buffer[5:])
    assert reply["error"]["type"] == "ChunkLimitError"
    assert "not complete within 2 s" in reply["error"]["msg"]
    assert "was not run" in reply["error"]["msg"]
    assert client.cmd("exists", "late") == {"data": 0}
    # a prompt message still goes through
    assert chunk(client, "quick", 0, 2, buffer[:5])["status"] == "waiting"
    assert chunk(client, "quick", 1, 2, buffer[5:]) == {"status": "complete"}
    assert client.call("get_chunked_result", {"chunk_id": "quick"}) == {"data": True}


# -------------------------------------------------------------- HTTP connections
def test_half_finished_requests_time_out_and_free_their_slots(
    limited: ServerProcess, sio: Callable[..., RawClient]
) -> None:
    held = []
    for _ in range(25):  # more than the 20 connections the server serves at once
        s = socket.create_connection(("127.0.0.1", limited.port))
        s.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    try:
        started = time.monotonic()
        client = sio(transports=["polling"])
        assert client.cmd("set", "polling", "ok") == {"data": True}
        assert time.monotonic() - started < 8
        held[0].settimeout(5)
        assert held[0].recv(100) == b""  # closed by the server, no answer
    finally:
        for s in held:
            s.close()


def test_a_dripping_request_is_cut_at_the_deadline(limited: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as s:
        s.settimeout(0.1)
        started = time.monotonic()
        closed_after = None
        for byte in b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n":
            try:
                s.sendall(bytes([byte]))
                if s.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue  # nothing yet: keep dripping (each byte well within 1 s)
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.2)
        assert closed_after is not None and closed_after < 3


def test_a_polling_body_that_stops_short_gets_no_answer(limited: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port)) as s:
        s.settimeout(5)
        s.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        opened = s.recv(4096)
        sid = json.loads(opened[opened.index(b"{") : opened.rindex(b"}") + 1])["sid"]
    with socket.create_connection(("127.0.0.1", limited.port)) as s:
        s.sendall(
            f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n40/znsocket,".encode()
        )
        started = time.monotonic()
        s.settimeout(10)
        # the body never completes: the connection is closed, not answered "ok"
        assert s.recv(4096) == b""
        assert time.monotonic() - started < 5


# ------------------------------------------------------------ WebSocket messages
def test_fragmented_message_is_refused_once_past_the_limit(
    raw: Callable[[], RawSocketIO], connect: Callable[..., RawClient]
) -> None:
    conn = raw()
    head = f'42{NAMESPACE},1["set",[["frag","'.encode()
    conn.ws.send_frame(websocket.ABNF.create_frame(head, websocket.ABNF.OPCODE_TEXT, fin=0))
    piece = b"x" * 900_000
    try:
        for _ in range(3):  # 2.7 MB of a message announced to be much larger
            conn.ws.send_frame(
                websocket.ABNF.create_frame(piece, websocket.ABNF.OPCODE_CONT, fin=0)
            )
    except OSError:
        pass
    assert conn.close_code() == 1009
    assert connect().cmd("exists", "frag") == {"data": 0}


def test_empty_frame_is_ignored(raw: Callable[[], RawSocketIO]) -> None:
    conn = raw()
    conn.send("")
    conn.send(f'42{NAMESPACE},1["set",[["after-empty","1"],{{}}]]')
    assert conn.ack(1) == {"data": True}


def test_a_frame_that_is_no_engineio_packet_closes_only_its_connection(
    raw: Callable[[], RawSocketIO],
) -> None:
    bystander, conn = raw(), raw()
    conn.send("x")
    assert conn.close_code() == 1011  # a WebSocket close, not an HTTP response
    bystander.send(f'42{NAMESPACE},1["exists",[["k"],{{}}]]')
    assert bystander.ack(1) == {"data": 0}


# --------------------------------------------------------------- malformed packets
def test_malformed_packets_with_an_ack_id_are_answered(raw: Callable[[], RawSocketIO]) -> None:
    conn = raw()
    conn.send(f'42{NAMESPACE},1["get",[["k"],{{}}')
    reply = conn.ack(1)
    assert reply["error"]["type"] == "MalformedMessageError"
    conn.send(f"42{NAMESPACE},2[]")
    assert conn.ack(2)["error"]["type"] == "MalformedMessageError"
    conn.send(f'42{NAMESPACE},3{{"a": 1}}')
    assert conn.ack(3)["error"]["type"] == "MalformedMessageError"
    conn.send('42/elsewhere,4["get",[["k"],{}]]')
    reply = conn.ack(4, namespace="/elsewhere")
    assert reply["error"]["type"] == "UnknownNamespaceError"
    assert "not run" in reply["error"]["msg"]
    conn.send(f'42{NAMESPACE},5["exists",[["k"],{{}}]]')
    assert conn.ack(5) == {"data": 0}


DEEP = 100_000


def test_deep_nesting_is_answered_on_every_path(
    raw: Callable[[], RawSocketIO], connect: Callable[..., RawClient]
) -> None:
    conn = raw()
    conn.send(f'42{NAMESPACE},1["set",[["deep",' + "[" * DEEP + "]" * DEEP + "],{}]]")
    reply = conn.ack(1)
    assert reply["error"]["type"] == "MalformedMessageError"
    assert "nested too deeply" in reply["error"]["msg"]
    pipeline = '[[],{"message":[["set",[["deep",' + "[" * DEEP + "]" * DEEP + "],{}]]]}]"
    conn.send(f'42{NAMESPACE},2["pipeline",{pipeline}]')
    assert "nested too deeply" in conn.ack(2)["error"]["msg"]

    client = connect()
    text = ('[["deep",' + "[" * DEEP + "]" * DEEP + "],{}]").encode()
    packed = b"\x01" + len(text).to_bytes(4, "big") + gzip.compress(text)
    reply = client.call("compressed_message", {"event": "set", "data": packed})
    assert reply["error"]["type"] == "DeserializationError"
    assert "nested too deeply" in reply["error"]["msg"]
    assert chunk(client, "deep", 0, 1, b"\x00" + text) == {"status": "complete"}
    reply = client.call("get_chunked_result", {"chunk_id": "deep"})
    assert reply["error"]["type"] == "DeserializationError"
    assert "nested too deeply" in reply["error"]["msg"]
    assert client.cmd("exists", "deep") == {"data": 0}


# -------------------------------------------------------------------- gzip bomb
@pytest.mark.slow
def test_gzip_bomb_does_not_stall_other_clients(server: ServerProcess) -> None:
    """Bombs that inflate past the 256 MiB decoded limit keep arriving; others' calls stay quick."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MIB
    stream = b"".join(packer.compress(block) for _ in range(280)) + packer.flush()
    bomb = b"\x01" + (256 * MIB).to_bytes(4, "big") + stream
    assert len(bomb) < 1_000_000
    offender, bystander = RawClient(server.url), RawClient(server.url)
    stop = threading.Event()
    refused: list[Any] = []

    def bomb_away() -> None:
        while not stop.is_set():
            refused.append(offender.call("compressed_message", {"event": "set", "data": bomb}))

    thread = threading.Thread(target=bomb_away, daemon=True)
    try:
        thread.start()
        while not refused:
            time.sleep(0.05)
        latencies = []
        for i in range(12):
            started = time.monotonic()
            assert bystander.cmd("set", f"bystander-{i}", "ok") == {"data": True}
            latencies.append(time.monotonic() - started)
            time.sleep(0.03)
    finally:
        stop.set()
        thread.join(60)
        offender.close()
        bystander.close()
    assert all("exceeds" in r["error"]["msg"] for r in refused)
    assert statistics.median(latencies) < 0.2, latencies


# ------------------------------------------------------------- slow readers
@pytest.mark.slow
def test_a_client_that_never_reads_costs_a_bounded_buffer_then_is_dropped() -> None:
    """Requests for 900 KB answers, posted over polling and never fetched: the server stops
    reading them at the send bound, others keep being answered, and the offender is
    dropped after the send timeout."""
    argv = ["znsocket", "--port", "0", "--max-http-buffer-size", "1000000"]
    argv += ["--send-buffer-per-connection", str(20 * MIB), "--send-timeout", "4"]
    with spawn(argv) as server:
        bystander = RawClient(server.url)
        try:
            assert bystander.cmd("set", "big", "x" * 900_000) == {"data": True}
            base = f"{server.url}/socket.io/?EIO=4&transport=polling"
            http = requests.Session()
            sid = json.loads(http.get(base, timeout=5).text[1:])["sid"]
            url = f"{base}&sid={sid}"
            http.post(url, data="40" + NAMESPACE + ",", timeout=5)
            assert http.get(url, timeout=5).text.startswith("40" + NAMESPACE)
            before = rss_bytes(server.pid)
            peak, answered, ack, status = before, 0, 0, 200
            started = time.monotonic()
            # 14 gets per POST (python-engineio takes 16 packets at most), no GET ever
            while time.monotonic() - started < 20 and peak - before < 200 * MIB:
                body = "\x1e".join(
                    f'42{NAMESPACE},{ack + i}["get",[["big"],{{}}]]' for i in range(14)
                )
                ack += 14
                # a timeout: held back, the server reads no further request of ours
                with contextlib.suppress(requests.Timeout):
                    status = http.post(url, data=body + "\x1e3", timeout=1).status_code
                peak = max(peak, rss_bytes(server.pid))
                assert bystander.cmd("exists", "big") == {"data": 1}
                answered += 1
                if status != 200:
                    break
            waited = time.monotonic() - started
        finally:
            bystander.close()
        assert peak - before < 20 * MIB + 60 * MIB, (peak - before) / MIB
        assert status == 400  # the session is gone
        assert 4 <= waited < 15, waited
        assert answered > 3
        assert "dropping connection" in server.text()
