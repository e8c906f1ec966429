"""``[server]`` limits reach the gateway's znsocket server: a hostile client meets them there."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.config import check_config, load_config
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.znsocket.server.conftest import RawClient
from tests.znsocket.server.test_server_limits import RawSocketIO, chunk

pytestmark = pytest.mark.integration

MINIMAL = """
[tstorage.embedded]
data_dir = "data"
"""


def test_defaults_and_bounds(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL)
    server = load_config(path).server
    assert (server.max_connections, server.request_timeout, server.max_attachments) == (
        10_000,
        60.0,
        1000,
    )
    assert server.max_attachment_bytes is None
    assert (server.chunk_buffer_per_connection, server.chunk_buffer_total) == (2**28, 2**30)
    assert (server.chunk_timeout, server.max_decoded_size) == (600.0, 2**28)
    path.write_text(
        "[server]\nchunk_buffer_per_connection = 4096\nchunk_buffer_total = 2048\n"
        "request_timeout = 0\nmax_connections = 0\n" + MINIMAL
    )
    cfg, issues = check_config(path)
    assert cfg is None
    messages = " | ".join(f"{i.location}: {i.message}" for i in issues)
    assert "server.request_timeout" in messages and "server.max_connections" in messages
    path.write_text(
        "[server]\nchunk_buffer_per_connection = 4096\nchunk_buffer_total = 2048\n" + MINIMAL
    )
    cfg, issues = check_config(path)
    assert cfg is None
    assert any("exceeds chunk_buffer_total" in i.message for i in issues)


LIMITS = """
[server]
max_message_size = 1000000
max_attachments = 2
request_timeout = 1
chunk_buffer_per_connection = 2000000
chunk_buffer_total = 4000000
chunk_timeout = 30
"""


def test_a_gateway_enforces_its_server_limits(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    config = meter_config(tstorage, fresh_cid(), fresh_cid())
    gw = start_gateway(textwrap.dedent(LIMITS) + config)
    conn = RawSocketIO(gw.port)
    try:
        conn.send('453-/znsocket,1["set",[["k",[{"_placeholder":true,"num":0}]],{}]]')
        reply = conn.ack(1)
        assert reply["error"]["type"] == "MessageTooLargeError"
        assert "at most 2 attachments" in reply["error"]["msg"]
    finally:
        conn.close()

    client = RawClient(gw.url)
    try:
        replies = [chunk(client, f"hog-{i}", 0, 2, b"\x00" * 900_000) for i in range(3)]
        assert replies[2]["error"]["type"] == "ChunkLimitError"
        assert "this connection exceed 2000000 bytes" in replies[2]["error"]["msg"]
        buffer = b"\x00" + json.dumps([["generic-key", "v"], {}]).encode()
        other = RawClient(gw.url)
        assert chunk(other, "fine", 0, 1, buffer) == {"status": "complete"}
        assert other.call("get_chunked_result", {"chunk_id": "fine"}) == {"data": True}
        other.close()
    finally:
        client.close()

    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        s.settimeout(10)
        assert s.recv(100) == b""  # closed, with no answer, at the request deadline
        assert time.monotonic() - started < 5
