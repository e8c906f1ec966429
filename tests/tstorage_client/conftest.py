"""Fixtures and helpers of the tstorage_client tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import ServerProcess, spawn
from tstorage_client.channel import Channel
from tstorage_client.channel_async import AsyncChannel
from tstorage_client.events import NEED_DATA, Event


def chunked(data: bytes, how: str) -> Iterator[bytes]:
    """``data`` whole, or one byte at a time."""
    if how == "whole":
        yield data
    else:
        for i in range(len(data)):
            yield data[i : i + 1]


def drain(
    conn: Any, data: bytes, how: str, stop: Callable[[Event], bool] | None = None
) -> list[Event]:
    """Feed ``data`` in pieces and collect every event until NEED_DATA after the last byte
    (or until ``stop(event)`` is true)."""
    events: list[Event] = []
    for piece in chunked(data, how):
        conn.receive_data(piece)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
            if stop is not None and stop(event):
                return events
    return events


# --- integration fixtures ------------------------------------------------------------


def start_server(data_dir: Path) -> ServerProcess:
    """The project's TStorage server on a free 127.0.0.1 port."""
    return spawn(["tstorage-server", "--data-dir", str(data_dir), "--port", "0"])


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for tests that isolate themselves by cid (see ``cid_block``)."""
    with start_server(tmp_path_factory.mktemp("tstorage-shared")) as server:
        yield server


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """An empty server of its own."""
    with start_server(tmp_path / "data") as server:
        yield server


_cids = itertools.count(1000, 1000)


@pytest.fixture
def cid_block() -> int:
    """A range of 1000 cids no other test uses on the shared server."""
    return next(_cids)


class SyncChannelAsAsync:
    """A blocking :class:`Channel` behind the coroutine API of :class:`AsyncChannel`, so
    that one async test body exercises both channels."""

    def __init__(self, channel: Channel[Any]) -> None:
        self.channel = channel

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "channel":
            object.__setattr__(self, name, value)
        else:
            setattr(self.channel, name, value)

    async def __aenter__(self) -> SyncChannelAsAsync:
        self.channel.__enter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.channel.__exit__(None, None, None)

    async def connect(self) -> Any:
        return self.channel.connect()

    async def close(self) -> Any:
        return self.channel.close()

    async def put(self, *a: Any, **kw: Any) -> Any:
        return self.channel.put(*a, **kw)

    async def puta(self, *a: Any, **kw: Any) -> Any:
        return self.channel.puta(*a, **kw)

    async def get(self, *a: Any, **kw: Any) -> Any:
        return self.channel.get(*a, **kw)

    async def get_acq(self, *a: Any, **kw: Any) -> Any:
        return self.channel.get_acq(*a, **kw)

    async def get_stream(self, *a: Any, **kw: Any) -> Any:
        return self.channel.get_stream(*a, **kw)

    async def get_iter(self, *a: Any, **kw: Any) -> AsyncIterator[Any]:
        items = self.channel.get_iter(*a, **kw)
        try:
            for item in items:
                yield item
        finally:
            items.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sync", "async"])
def make_channel(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``make_channel(port, payload_type, **kw)`` -> a channel with the async API."""

    def make(port: int, payload_type: Any, host: str = "127.0.0.1", **kw: Any) -> Any:
        if request.param == "sync":
            kw.setdefault("timeout", 30)
            return SyncChannelAsAsync(Channel(host, port, payload_type, **kw))
        kw.pop("timeout", None)
        return AsyncChannel(host, port, payload_type, **kw)

    return make


async def collect(aiter: AsyncIterator[Any]) -> list[Any]:
    """Every item of an async iterator."""
    return [item async for item in aiter]
