"""Both channels against the project's TStorage server, started as a process on 127.0.0.1.

Every test body is async and runs twice: once on :class:`AsyncChannel` and once on the
blocking :class:`Channel` (wrapped by ``SyncChannelAsAsync``).
"""

from __future__ import annotations

import dataclasses
import gc
import random
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._servers import ServerProcess
from tests._tls import make_tls_files
from tests.tstorage_client._proxy import relay
from tests.tstorage_client.conftest import collect
from tstorage_client.channel import Channel
from tstorage_client.payload_type import (
    BytesPayloadType,
    NumpyPayloadType,
    StructPayloadType,
    TuplePayloadType,
    UnitPayloadType,
)
from tstorage_client.record import Key, Record
from tstorage_client.response import ResponseAcq, ResponseStatus

pytestmark = pytest.mark.integration

MAX64 = 2**63 - 1
INT = StructPayloadType[int]("<i")
Make = Callable[..., Any]


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def __call__(self, records: Any) -> None:
        self.batches.append(list(records))

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]

    @property
    def records(self) -> list[Any]:
        return [r for b in self.batches for r in b]


async def test_reference_scenario(fresh_server: ServerProcess, make_channel: Make) -> None:
    """The sequence of the official integration suite (spec 8.1), on an empty server."""
    port = fresh_server.port
    ch = make_channel(port, INT)
    # get_empty
    async with ch:
        r = await ch.get(Key.min(), Key.max())
        assert r.is_ok() and len(r.data) == 0 and r.acq >= 0
        assert not (await ch.get(dataclasses.replace(Key.max(), acq=0), Key.min())).is_ok()
        after = await ch.get(Key.min(), Key.max())  # the failed GET closed the channel
        assert after.status == ResponseStatus.DISCONNECTED
    async with ch:
        assert (await ch.get(Key(0, -10, -10, -10, -10), Key(10, 10, 10, 10, 10))).is_ok()
        assert not (await ch.get(Key(-1, -10, -10, -10, -10), Key(10, 10, 10, 10, 10))).is_ok()
    # put_nothing, put_2_records, puta_2_records, strange_puta
    async with ch:
        assert (await ch.put([])).is_ok()
        assert (await ch.puta([])).is_ok()
        assert (
            await ch.put([Record(Key(0, 12, 0, 10), 314), Record(Key(1, 12, 1, 10), 314)])
        ).is_ok()
        assert (
            await ch.put([Record(Key(0, 34, 0, 10), 314), Record(Key(1, 34, 1, 10), 314)])
        ).is_ok()
        assert (
            await ch.puta([Record(Key(0, 12, 2, 10, 10), 314), Record(Key(1, 12, 3, 10, 11), 314)])
        ).is_ok()
        assert (
            await ch.puta([Record(Key(0, 34, 2, 10, 12), 314), Record(Key(1, 34, 3, 10, 13), 314)])
        ).is_ok()
        assert (await ch.puta([Record(Key.min(), 314)])).is_ok()
        assert (await ch.puta([Record(Key.max(), 314)])).is_ok()
        assert (await ch.puta([Record(Key(11, 11, 11, MAX64, 0), 314)])).is_ok()
        assert (await ch.put([Record(Key.min(), 314)])).is_ok()
        assert (await ch.put([Record(Key.max(), 314)])).is_ok()
        assert (await ch.put([Record(Key(11, 11, 11, MAX64), 314)])).is_ok()
    # get_acq
    async with ch:
        r = await ch.get_acq(Key.min(), Key.max())
        assert r.is_ok() and r.acq >= 0
        r = await ch.get_acq(Key(0, 0, 0, 0, 0), Key(0, MAX64, 2**31 - 1, MAX64, MAX64))
        assert r.is_ok() and r.acq >= 0
        assert (await ch.get_acq(Key(0, 0, 0, 0, 0), Key(2, 13, 4, 11, 15))) == ResponseAcq(
            ResponseStatus.OK, 15
        )
        assert (await ch.get_acq(Key(0, 12, 2, 10, 10), Key(1, 13, 3, 11, 100))).acq == 100
        assert not (await ch.get_acq(Key(-1, 12, 2, 10, 10), Key(1, 13, 3, 11, 100))).is_ok()
    eight = (Key(0, 0, 0, 0, 0), Key(2, 35, 4, 11, MAX64))
    async with ch:
        assert len((await ch.get(Key.min(), Key.max())).data) == 10
        assert len((await ch.get(*eight)).data) == 8
        cid0 = await ch.get(Key(0, 0, 0, 0, 0), Key(1, 35, 4, 11, 15))
        assert sorted(r.key.acq for r in cid0.data) == [10, 12]
        cid1 = await ch.get(Key(1, 0, 0, 0, 0), Key(2, 35, 4, 11, 15))
        assert sorted(r.key.acq for r in cid1.data) == [11, 13]
        assert (
            len((await ch.get(Key(100, 100, 100, 100, 100), Key(111, 111, 111, 111, 111))).data)
            == 0
        )
        assert all(r.value == 314 for r in (await ch.get(*eight)).data)
    # get_limited_memory: the 8-record response is exactly 356 bytes
    for limit, status, count in [
        (356, ResponseStatus.OK, 8),
        (360, ResponseStatus.OK, 8),
        (355, ResponseStatus.NO_MEMORY, 8),
        (80, ResponseStatus.NO_MEMORY, 1),
    ]:
        ch.memory_limit = limit
        async with ch:
            r = await ch.get(*eight)
            assert (r.status, len(r.data)) == (status, count), limit
    ch.memory_limit = None
    # bad keys / bad payload type
    async with ch:
        r = await ch.get(Key(0, 0, 0, 0, 0), Key(0, MAX64, 2**31 - 1, MAX64, MAX64))
        assert r.status == ResponseStatus.ERROR
    async with ch:
        ch._payload_type = StructPayloadType("<q")
        r = await ch.get(*eight)
        assert r.status == ResponseStatus.UNPARSEABLE_ENTITY and r.data == []
        ch._payload_type = INT
    # get_stream with and without limits: callback counts of spec 6.7
    async with ch:
        all8 = sorted(x.key for x in (await ch.get(*eight)).data)
    stream_cases: list[tuple[int | None, list[int]]] = [
        (None, [8]),
        (90, [1, 3, 2, 2]),
        (120, [2, 3, 3]),
        (76, [1, 2, 2, 2, 1]),
        (80, [1, 2, 2, 2, 1]),
    ]
    for stream_limit, sizes in stream_cases:
        ch.memory_limit = stream_limit
        async with ch:
            got = Collector()
            r = await ch.get_stream(*eight, got)
            assert r.is_ok() and got.sizes == sizes, stream_limit
            assert sorted(x.key for x in got.records) == all8
    for low in (4, 51):
        ch.memory_limit = low
        async with ch:
            got = Collector()
            r = await ch.get_stream(*eight, got)
            assert r.status == ResponseStatus.NO_MEMORY and got.batches == []
    ch.memory_limit = None
    async with ch:
        got = Collector()
        assert (
            await ch.get_stream(Key(0, 0, 0, 0, 0), Key(0, 35, 4, 11, MAX64), got)
        ).status == ResponseStatus.ERROR
    async with ch:
        ch._payload_type = StructPayloadType("<q")
        got = Collector()
        assert (await ch.get_stream(*eight, got)).status == ResponseStatus.UNPARSEABLE_ENTITY
        ch._payload_type = INT
    # get_iter
    async with ch:
        for _ in range(3):
            items = await collect(ch.get_iter(*eight))
            assert (
                len(items) == 9
                and items[-1].is_ok()
                and all(isinstance(i, Record) for i in items[:-1])
            )
    async with ch:
        items = await collect(ch.get_iter(Key(0, 0, 0, 0, 0), Key(0, 35, 4, 11, MAX64)))
        assert len(items) == 1 and items[0].status == ResponseStatus.ERROR
    async with ch:
        ch._payload_type = StructPayloadType("<q")
        items = await collect(ch.get_iter(*eight))
        assert len(items) == 1 and items[0].status == ResponseStatus.UNPARSEABLE_ENTITY
        ch._payload_type = INT


async def test_not_connected_reports_disconnected(make_channel: Make) -> None:
    ch = make_channel(1, INT)
    assert (await ch.put([Record(Key(1, 1, 1, 1), 1)])).status == ResponseStatus.DISCONNECTED
    assert (await ch.puta([])).status == ResponseStatus.DISCONNECTED
    assert (await ch.get_acq(Key.min(), Key.max())).status == ResponseStatus.DISCONNECTED
    assert (await ch.get(Key.min(), Key.max())).status == ResponseStatus.DISCONNECTED
    assert (await ch.get_stream(Key.min(), Key.max(), print)).status == ResponseStatus.DISCONNECTED
    assert await collect(ch.get_iter(Key.min(), Key.max())) == [
        ResponseAcq(ResponseStatus.DISCONNECTED)
    ]
    assert (await ch.close()).status == ResponseStatus.ERROR


async def test_connect_refused(make_channel: Make) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ch = make_channel(port, INT)
    assert (await ch.connect()).status == ResponseStatus.ERROR
    with pytest.raises(OSError):
        async with ch:
            pass


async def test_many_records_variable_payloads(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    rng = random.Random(cid_block)
    records = [
        Record(Key(cid_block + c, m, o, 44444, 55555), rng.randbytes(rng.randrange(0, 3000)))
        for c in range(5)
        for m in range(10)
        for o in range(20)
    ]
    box = (Key(cid_block, 0, 0, 44444, 0), Key(cid_block + 5, 10, 20, 44445, MAX64))
    ch = make_channel(shared_server.port, BytesPayloadType())
    async with ch:
        assert (await ch.puta(records, max_batch_size=50_000)).is_ok()
        r = await ch.get(*box)
        assert r.is_ok() and sorted(r.data) == sorted(records)
        got = Collector()
        assert (await ch.get_stream(*box, got)).is_ok()
        assert sorted(got.records) == sorted(records) and len(got.batches) == 1
        items = await collect(ch.get_iter(*box))
        assert items[-1].is_ok() and sorted(items[:-1]) == sorted(records)
        ch.memory_limit = 20_000  # get_stream batches stay within the limit
        got = Collector()
        assert (await ch.get_stream(*box, got)).is_ok()
        assert sorted(got.records) == sorted(records) and len(got.batches) > 10
        # A batch holds the records completed within 20 000 received bytes; its first
        # record may have started in the previous window (the official accounting).
        biggest = max(40 + len(r.value) for r in records)
        for batch in got.batches:
            assert sum(40 + len(r.value) for r in batch) <= 20_000 + biggest
        assert (await ch.get(*box)).status == ResponseStatus.NO_MEMORY


async def test_put_assigns_acq_between_client_clocks(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    from tstorage_client.timestamp import now_ns

    ch = make_channel(shared_server.port, TuplePayloadType("<id"))
    async with ch:
        before = now_ns()
        assert (
            await ch.put([Record(Key(cid_block, i, 0, 1), (i, i / 2)) for i in range(50)])
        ).is_ok()
        after = now_ns()
        r = await ch.get(Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 50, 1, 2, MAX64))
        assert r.is_ok() and [x.value for x in r.data] == [(i, i / 2) for i in range(50)]
        assert all(before <= x.key.acq <= after for x in r.data)
        assert len({x.key.acq for x in r.data}) == 50


async def test_invalid_keys_never_corrupt_the_stream(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    """Spec 6.4.1: the official client writes a negative cid as a batch header."""
    ch = make_channel(shared_server.port, INT)
    box = (Key(cid_block, 0, 0, 0, 0), Key(cid_block + 10, 10, 10, 10, MAX64))
    recs = [
        Record(Key(cid_block + 5, 1, 1, 1, 1), 5),
        Record(Key(-3, 1, 1, 1, 1), -3),
        Record(Key(cid_block + 6, 1, 1, 1, 1), 6),
    ]
    async with ch:
        assert (await ch.puta(recs)).is_ok()
        assert [r.value for r in (await ch.get(*box)).data] == [5]
        assert (
            await ch.puta(
                [dataclasses.replace(r, key=dataclasses.replace(r.key, mid=2)) for r in recs],
                skip_invalid=True,
            )
        ).is_ok()
        assert sorted(r.value for r in (await ch.get(*box)).data) == [5, 5, 6]
        # The connection is still in step: one more request works.
        assert (await ch.get_acq(*box)).is_ok()


async def test_max_batch_size_splits(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    ch = make_channel(shared_server.port, INT)
    recs = [Record(Key(cid_block + i % 3, i, 0, 0), i) for i in range(300)]
    async with ch:
        for size in (1, 28, 1000):
            assert (await ch.put(recs, max_batch_size=size)).is_ok()
        r = await ch.get(Key(cid_block, 0, 0, 0, 0), Key(cid_block + 3, 300, 1, 1, MAX64))
        assert sorted(x.value for x in r.data) == sorted(list(range(300)) * 3)


async def test_out_of_range_key_raises_and_stores_nothing(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    from tstorage_client.errors import LocalProtocolError

    box = (Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 2**40, 10, 10, MAX64))
    bad = Record(Key(cid_block, 2**63, 1, 1), 1)
    ch = make_channel(shared_server.port, INT)
    async with ch:
        # Found before anything was sent: the channel stays usable.
        with pytest.raises(LocalProtocolError):
            await ch.put([Record(Key(cid_block, 1, 1, 1), 1), bad])
        assert (await ch.get_acq(Key.min(), Key.max())).is_ok()
        # Found after a megabyte went out: the request cannot be taken back, so the
        # channel closes and the server drops the torn request.
        many = [Record(Key(cid_block, i, 1, 1), i) for i in range(60_000)]
        with pytest.raises(LocalProtocolError):
            await ch.put([*many, bad], max_batch_size=10_000)
        assert (await ch.get_acq(Key.min(), Key.max())).status == ResponseStatus.DISCONNECTED
    async with ch:
        r = await ch.get(*box)
        assert r.is_ok() and r.data == []


async def test_abandoned_get_iter_closes_the_channel(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    ch = make_channel(shared_server.port, INT)
    box = (Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 100, 1, 1, 1))
    async with ch:
        assert (await ch.puta([Record(Key(cid_block, i, 0, 0, 0), i) for i in range(100)])).is_ok()
        stream = ch.get_iter(box[0], box[1], recv_buffer_size=64)
        first = await stream.__anext__()
        assert first == Record(Key(cid_block, 0, 0, 0, 0), 0)
        await stream.aclose()  # the rest of the response is still unread
        # Not a desynchronised stream: a clear status.
        assert (await ch.get_acq(*box)).status == ResponseStatus.DISCONNECTED
    async with ch:
        assert len((await ch.get(*box)).data) == 100


async def test_unit_payloads(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    ch = make_channel(shared_server.port, UnitPayloadType())
    async with ch:
        assert (await ch.puta([Record(Key(cid_block, i, 0, 0, 0), ()) for i in range(5)])).is_ok()
        r = await ch.get(Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 10, 1, 1, 1))
        assert [x.value for x in r.data] == [()] * 5


async def test_numpy_path(shared_server: ServerProcess, make_channel: Make, cid_block: int) -> None:
    pt = NumpyPayloadType([("x", "<i4"), ("y", "<f8")])
    n = 5000
    arr = np.zeros(n, dtype=pt.parsing_dtype)
    arr["cid"] = cid_block + np.arange(n) % 4
    arr["mid"] = np.arange(n)
    arr["moid"] = 7
    arr["cap"] = 100
    arr["acq"] = 200
    arr["x"] = np.arange(n)
    arr["y"] = np.arange(n) / 3
    box = (Key(cid_block, 0, 0, 0, 0), Key(cid_block + 4, n, 8, 101, 201))
    ch = make_channel(shared_server.port, pt)
    async with ch:
        assert (await ch.puta(arr, max_batch_size=10_000)).is_ok()
        assert (arr["_size"] == 0).all()  # the caller's array is not modified
        r = await ch.get(*box)
        assert r.is_ok()
        got = np.concatenate(r.data)
        got = got[np.lexsort((got["mid"], got["cid"]))]
        exp = arr[np.lexsort((arr["mid"], arr["cid"]))]
        assert (got["_size"] == pt.parsing_dtype.itemsize - 4).all()
        for name in ("cid", "mid", "moid", "cap", "acq", "x", "y"):
            assert (got[name] == exp[name]).all(), name
        items = await collect(ch.get_iter(*box))
        assert items[-1].is_ok() and sum(len(a) for a in items[:-1]) == n
        ch.memory_limit = 4096
        got_batches = Collector()
        assert (await ch.get_stream(*box, got_batches)).is_ok()
        assert (
            sum(len(a) for b in got_batches.batches for a in b) == n
            and len(got_batches.batches) > 10
        )
        ch.memory_limit = None
        # PUT from a dict of arrays: acq assigned by the server.
        cols = {
            "cid": np.full(10, cid_block + 9),
            "mid": np.arange(10),
            "moid": np.zeros(10, np.int32),
            "cap": np.ones(10, np.int64),
            "x": np.arange(10, dtype=np.int32),
            "y": np.zeros(10),
        }
        assert (await ch.put(cols)).is_ok()
        r = await ch.get(Key(cid_block + 9, 0, 0, 0, 0), Key(cid_block + 10, 10, 1, 2, MAX64))
        assert np.concatenate(r.data)["x"].tolist() == list(range(10))


async def test_numpy_get_of_wrong_payload_size_is_unparseable(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    ch = make_channel(shared_server.port, BytesPayloadType())
    async with ch:
        assert (
            await ch.puta(
                [
                    Record(Key(cid_block, 1, 1, 1, 1), b"abcd"),
                    Record(Key(cid_block, 2, 1, 1, 1), b"abcdefgh"),
                ]
            )
        ).is_ok()
        ch._payload_type = NumpyPayloadType(np.int32)
        r = await ch.get(Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 10, 10, 10, 10))
        assert r.status == ResponseStatus.UNPARSEABLE_ENTITY
        assert sum(len(a) for a in r.data) == 1


async def test_responses_split_at_every_byte(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    """A relay hands the server's bytes over one at a time."""
    recs = [Record(Key(cid_block, i, 0, 0, 0), bytes(i % 7)) for i in range(40)]
    box = (Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 40, 1, 1, 1))
    with relay(shared_server.port, chunk=1) as r:
        ch = make_channel(r.port, BytesPayloadType())
        async with ch:
            assert (await ch.puta(recs)).is_ok()
            assert (await ch.get(*box)).data == recs
            assert (await ch.get_acq(*box)).acq == 1
            items = await collect(ch.get_iter(*box))
            assert items[:-1] == recs
        ch2 = make_channel(r.port, NumpyPayloadType(None))
        async with ch2:
            arr = np.zeros(30, dtype=NumpyPayloadType(None).parsing_dtype)
            arr["cid"] = cid_block + 2
            arr["mid"] = np.arange(30)
            assert (await ch2.puta(arr)).is_ok()
            res = await ch2.get(Key(cid_block + 2, 0, 0, 0, 0), Key(cid_block + 3, 30, 1, 1, 1))
            assert res.is_ok() and np.concatenate(res.data)["mid"].tolist() == list(range(30))


def _tls_contexts(tmp_path: Path) -> tuple[Any, Any]:
    import ssl

    pki = make_tls_files(tmp_path / "pki")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca))
    return server_ctx, client_ctx


async def test_tls(
    shared_server: ServerProcess, make_channel: Make, cid_block: int, tmp_path: Path
) -> None:
    """TLS via a local TLS-terminating relay (the server itself speaks plain TCP)."""
    server_ctx, client_ctx = _tls_contexts(tmp_path)
    with relay(shared_server.port, ssl_context=server_ctx) as r:
        ch = make_channel(r.port, INT, ssl_context=client_ctx)
        async with ch:
            assert (await ch.puta([Record(Key(cid_block, 1, 2, 3, 4), 42)])).is_ok()
            res = await ch.get(Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 10, 10, 10, 10))
            assert res.is_ok() and res.data == [Record(Key(cid_block, 1, 2, 3, 4), 42)]
        plain = make_channel(r.port, INT)  # no TLS against a TLS endpoint: a status, no hang
        async with plain:
            assert not (await plain.get_acq(Key.min(), Key.max())).is_ok()


async def test_server_killed_mid_session(tmp_path: Path, make_channel: Make) -> None:
    from tests.tstorage_client.conftest import start_server

    server = start_server(tmp_path / "d")
    ch = make_channel(server.port, INT)
    try:
        async with ch:
            assert (await ch.put([Record(Key(1, 1, 1, 1), 1)])).is_ok()
            server.kill()
            r = await ch.get(Key.min(), Key.max())
            assert r.status == ResponseStatus.DISCONNECTED
            assert (await ch.get_acq(Key.min(), Key.max())).status == ResponseStatus.DISCONNECTED
            assert (
                await ch.put([Record(Key(1, 1, 1, 1), 1)])
            ).status == ResponseStatus.DISCONNECTED
    finally:
        server.stop()


def test_timeout_returns_a_status_and_closes() -> None:
    """A peer that accepts and never answers: the blocking channel gives up after its timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        held: list[socket.socket] = []
        threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
        with Channel("127.0.0.1", port, INT, timeout=0.3) as ch:
            r = ch.get(Key.min(), Key.max())
            assert r.status == ResponseStatus.DISCONNECTED
            assert ch.close().status == ResponseStatus.ERROR  # already closed
        for s in held:
            s.close()


async def test_async_cancellation_closes(shared_server: ServerProcess) -> None:
    import asyncio

    from tstorage_client.channel_async import AsyncChannel

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ch = AsyncChannel("127.0.0.1", port, INT)
        async with ch:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ch.get(Key.min(), Key.max()), 0.3)
            assert (await ch.get_acq(Key.min(), Key.max())).status == ResponseStatus.DISCONNECTED


def test_timeout_property_applies_to_live_socket(shared_server: ServerProcess) -> None:
    with Channel("127.0.0.1", shared_server.port, INT, timeout=5) as ch:
        ch.timeout = 1.5
        assert ch._socket is not None and ch._socket.gettimeout() == 1.5


class _GcSpy(BytesPayloadType):
    """Notes whether the cyclic GC is on at each payload it decodes."""

    def __init__(self) -> None:
        self.gc_on: list[bool] = []

    def from_bytes(self, buffer: bytes) -> bytes:
        self.gc_on.append(gc.isenabled())
        return bytes(buffer)


async def test_the_channels_decode_records_with_the_collector_paused(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    spy = _GcSpy()
    ch = make_channel(shared_server.port, spy)
    async with ch:
        records = [Record(Key(cid_block, i, 0, 0, 0), b"v") for i in range(50)]
        assert (await ch.puta(records)).is_ok()
        r = await ch.get(Key(cid_block, 0, 0, 0, 0), Key(cid_block + 1, 100, 1, 1, 1))
        assert len(r.data) == 50
    assert spy.gc_on == [False] * 50  # paused while the records were decoded
    assert gc.isenabled()  # and on again after
