"""Our client's own websocket framing over real connections: TLS, and replies cut into bytes.

A relay (``tests/tstorage_client/_proxy.py``) stands between the client and a real
``znsocket`` server: once terminating TLS (``https://`` URL, so ``wss://``; TLS hands
the client records of at most 16 KiB), once forwarding the server's bytes one at a time,
so every frame header and payload arrives split at every possible place.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio.exceptions

import znsocket
from tests._servers import ServerProcess
from tests._tls import TlsFiles, make_tls_files
from tests.tstorage_client._proxy import Relay


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def tls_relay(server: ServerProcess, pki: TlsFiles) -> Iterator[Relay]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    with Relay(server.port, ssl_context=ctx) as relay:
        yield relay


def test_commands_and_a_large_value_over_tls(
    tls_relay: Relay, pki: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(pki.ca))
    client = znsocket.Client.from_url(f"https://127.0.0.1:{tls_relay.port}")
    try:
        big = "x" * 300_000 + "end"  # many TLS records, one websocket frame each way
        client.hset("tls:h", "big", big)
        client.rpush("tls:l", *range(100))
        assert client.hget("tls:h", "big") == big
        assert client.lrange("tls:l", 0, -1) == [str(i) for i in range(100)]
        assert len(znsocket.List(client, "tls:list")) == 0
    finally:
        client.delete("tls:h", "tls:l")
        client.close()


def test_a_server_certificate_the_client_does_not_trust_is_refused(tls_relay: Relay) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError, match="Could not connect") as err:
        znsocket.Client.from_url(f"https://127.0.0.1:{tls_relay.port}")
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value.__cause__)


def test_replies_delivered_one_byte_at_a_time(server: ServerProcess) -> None:
    with Relay(server.port, chunk=1) as relay:
        client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{relay.port}")
        try:
            value = "é" * 200 + "z" * 300  # a 2-byte length field, multi-byte UTF-8
            client.set("split:k", value)
            assert client.get("split:k") == value
            assert client.get("split:missing") is None
            pipe = client.pipeline()
            for i in range(20):
                pipe.hset("split:h", f"f{i}", i)
            assert pipe.execute() == [1] * 20
            assert client.hgetall("split:h") == {f"f{i}": str(i) for i in range(20)}
        finally:
            client.delete("split:k", "split:h")
            client.close()
