"""Compression and chunking: large calls take the paths upstream's client takes."""

from __future__ import annotations

import base64
import logging
import os

import pytest

import znsocket
import znsocket.exceptions
from tests._servers import ServerProcess

pytestmark = pytest.mark.integration


def test_compressed_path_for_compressible_payload(
    client: znsocket.Client, caplog: pytest.LogCaptureFixture
) -> None:
    value = "abc" * 100_000
    with caplog.at_level(logging.DEBUG, logger="znsocket.client"):
        client.set("c", value)
    assert "Compressed message from" in caplog.text
    assert "Using chunked transmission" not in caplog.text
    assert client.get("c") == value


def test_compressed_path_maps_errors_like_plain(client: znsocket.Client) -> None:
    with pytest.raises(TypeError, match="Invalid arguments for get"):
        client.get("a" * 5000, "b", "c", "d")


def test_eight_megabyte_value_is_chunked_and_round_trips(
    client: znsocket.Client, caplog: pytest.LogCaptureFixture
) -> None:
    value = base64.b64encode(os.urandom(6 * 1024 * 1024)).decode()  # 8 MiB of text
    with caplog.at_level(logging.DEBUG, logger="znsocket.client"):
        assert client.hset("big", "f", value) == 1
    assert "Using chunked transmission" in caplog.text
    assert "Splitting message into" in caplog.text
    assert client.hget("big", "f") == value


def test_small_limit_chunks_many_pieces(server: ServerProcess) -> None:
    c = znsocket.Client(server.url, max_message_size_bytes=10_000)
    try:
        value = base64.b64encode(os.urandom(60_000)).decode()
        d = znsocket.Dict(c, "chunky")
        d["v"] = value
        assert d["v"] == value
        p = c.pipeline()
        for i in range(3):
            p.hset("pipechunks", f"f{i}", value)
        assert p.execute() == [1, 1, 1]
        assert c.hget("pipechunks", "f2") == value
    finally:
        c.flushall()
        c.sio.disconnect()


def test_chunked_errors_are_not_mapped_like_upstream(server: ServerProcess) -> None:
    c = znsocket.Client(server.url, max_message_size_bytes=2_000)
    try:
        p = c.pipeline()
        p.set("k", os.urandom(3000).hex())
        p.set("k2", None)
        with pytest.raises(znsocket.exceptions.ZnSocketError, match="Chunked message failed"):
            p.execute()
    finally:
        c.flushall()
        c.sio.disconnect()


def test_compression_can_be_disabled(
    server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    c = znsocket.Client(server.url, enable_compression=False)
    try:
        with caplog.at_level(logging.DEBUG, logger="znsocket.client"):
            c.set("nc", "z" * 50_000)
        assert "Compressed message" not in caplog.text
        assert c.get("nc") == "z" * 50_000
    finally:
        c.flushall()
        c.sio.disconnect()
