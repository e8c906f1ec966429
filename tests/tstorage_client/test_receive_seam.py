"""The receive seam ``_feed_buffer`` of the official client keeps feeding every GET path.

Code written for the official client, and its own unit tests, patch ``_socket`` and
``_feed_buffer`` to play a recorded response. The in-place receive of fixed-size numpy
records must go through that seam too, or such code silently reads nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_client.channel import Channel
from tstorage_client.channel_async import AsyncChannel
from tstorage_client.events import GetEnd, GetRecords, GetRequest, GetStart
from tstorage_client.payload_type import NumpyPayloadType
from tstorage_client.protocol import ClientConnection, ServerConnection
from tstorage_client.record import Key

N = 500
LO, HI = Key(1, 0, 0, 0, 0), Key(2, 10, 10, 10**9, 10**9)


def recorded_response() -> bytes:
    """What a server sends for a GET of ``N`` int32 records, encoded by the server core."""
    server = ServerConnection()
    server.receive_data(ClientConnection().send(GetRequest(LO, HI)))
    assert isinstance(server.next_event(), GetRequest)  # a server answers a parsed request
    keys = np.zeros(N, dtype=KEY_DTYPE)
    keys["cid"], keys["mid"], keys["moid"] = 1, 2, 3
    keys["cap"] = np.arange(N) + 100
    keys["acq"] = np.arange(N) + 1000
    payload = np.arange(N, dtype="<i4").tobytes()
    block = RecordBlock(keys, np.arange(N + 1, dtype=np.int64) * 4, payload)
    return server.send(GetStart()) + server.send(GetRecords(block)) + server.send(GetEnd(acq=5000))


class Feeder:
    """Plays ``data`` into whatever buffer the channel offers, ``step`` bytes at most."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = bytearray(data)
        self.step = step

    def take(self, buffer: Any, limit: int = 0) -> bytes:
        room = buffer.free_len() if not limit else min(limit, buffer.free_len())
        piece = bytes(self.data[: min(room, self.step)])
        del self.data[: len(piece)]
        return piece

    def feed(self, buffer: Any, limit: int = 0) -> int:
        piece = self.take(buffer, limit)
        buffer.feed(piece)
        return len(piece)

    async def feed_async(self, buffer: Any, limit: int = 0) -> int:
        return self.feed(buffer, limit)


def check(result: Any) -> None:
    assert result.is_ok(), result
    arr = np.concatenate(result.data)
    assert arr["v0"].tolist() == list(range(N))
    assert arr["cap"].tolist() == list(range(100, 100 + N))


@pytest.mark.parametrize("step", [1, 37, 4096, 1 << 20])
def test_channel_numpy_get_through_the_seam(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    ch: Channel[Any] = Channel("127.0.0.1", 1, NumpyPayloadType("<i4"))
    feeder = Feeder(recorded_response(), step)
    monkeypatch.setattr(ch, "_socket", ())
    monkeypatch.setattr(ch, "_send_data", lambda data: None)
    monkeypatch.setattr(ch, "_feed_buffer", feeder.feed)
    check(ch.get(LO, HI))
    assert not feeder.data  # every byte went through the seam


@pytest.mark.parametrize("step", [1, 37, 4096, 1 << 20])
async def test_async_channel_numpy_get_through_the_seam(
    monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    ch: AsyncChannel[Any] = AsyncChannel("127.0.0.1", 1, NumpyPayloadType("<i4"))
    feeder = Feeder(recorded_response(), step)

    async def send(data: bytes) -> None:
        return None

    monkeypatch.setattr(ch, "_reader", ())
    monkeypatch.setattr(ch, "_writer", ())
    monkeypatch.setattr(ch, "_send_data", send)
    monkeypatch.setattr(ch, "_feed_buffer", feeder.feed_async)
    check(await ch.get(LO, HI))
    assert not feeder.data
