"""``Channel.keep_alive``: the OS ends a connection whose peer vanished, even while a
request waits for its answer without a timeout (the gateway journal's PUTs)."""

from __future__ import annotations

import socket

import pytest

from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType


def test_keep_alive_sets_the_probes_and_the_unacknowledged_data_bound() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ch: Channel[bytes] = Channel(
            "127.0.0.1", listener.getsockname()[1], BytesPayloadType(), timeout=5
        )
        ch.open()
        try:
            ch.keep_alive(idle_s=7, interval_s=3, probes=4, unacked_s=20)
            sock = ch._socket  # what the OS was told
            assert sock is not None
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            expected = {"TCP_KEEPIDLE": 7, "TCP_KEEPINTVL": 3, "TCP_KEEPCNT": 4}
            expected["TCP_USER_TIMEOUT"] = 20_000
            for name, value in expected.items():
                if hasattr(socket, name):
                    assert sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)) == value
        finally:
            ch.close()
        with pytest.raises(OSError, match="not connected"):
            ch.keep_alive()
