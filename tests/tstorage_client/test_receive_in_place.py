"""GET records of one fixed size received in place (numpy payloads): the same records,
batches and statuses as the object path, however the bytes are split."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.tstorage_client.test_commands import EIGHT, Scripted
from tstorage_client._commands import GetMode
from tstorage_client.errors import LocalProtocolError
from tstorage_client.events import NEED_DATA, GetEnd, GetRequest, GetStart, RecordsBatch
from tstorage_client.payload_type import NumpyPayloadType, StructPayloadType
from tstorage_client.protocol import ClientConnection, NumpyRecordDecoder
from tstorage_client.record import Key
from tstorage_client.response import ResponseStatus

NP_INT = NumpyPayloadType("<i4")
OBJ_INT = StructPayloadType[int]("<i")
RECORD = 40  # 4 size + 32 key + 4 payload


def record(i: int, cid: int = 0, size: int = 36) -> bytes:
    return struct.pack("<iiqiqq", size, cid, 12, i, 10, i) + struct.pack("<i", i)[: size - 32]


def response(n: int, tail: bytes = b"") -> bytes:
    """A GET response of ``n`` records (payload ``i``), then ``tail`` or the end."""
    body = b"".join(record(i) for i in range(n))
    end = tail if tail else struct.pack("<i", 0) + struct.pack("<iQq", 0, 8, 77)
    return struct.pack("<iQ", 0, 0) + body + end


def scripted(wire: bytes, piece: int, limit: int | None = None, numpy: bool = True) -> Scripted:
    ch = Scripted(wire, piece, limit)
    ch._payload_type = NP_INT if numpy else OBJ_INT
    return ch


def values(items: list[Any]) -> list[int]:
    """Payload values of numpy arrays or of Record objects."""
    out: list[int] = []
    for item in items:
        if isinstance(item, np.ndarray):
            out.extend(int(v) for v in item["v0"])
        else:
            out.append(item.value)
    return out


PIECES = [1, 7, RECORD, 1000, 1 << 22]


def _appender(sink: list[list[int]]) -> Callable[[list[Any]], None]:
    return lambda batch: sink.append(values(batch))


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("n", [0, 1, 3000, 200_000])
def test_get_returns_every_record_however_split(piece: int, n: int) -> None:
    if piece < 100 and n > 3000:
        pytest.skip("too slow one byte at a time")
    ch = scripted(response(n), piece)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert result.status == ResponseStatus.OK and result.acq == 77
    assert values(result.data) == list(range(n))
    for arr in result.data:
        assert arr.flags.writeable
        assert (arr["_size"] == 36).all() and (arr["mid"] == 12).all()


def test_large_responses_arrive_in_few_large_arrays() -> None:
    n = 500_000
    ch = scripted(response(n), 1 << 22)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert values(result.data) == list(range(n))
    # regions grow from 64 KiB to 4 MiB: about 10 arrays for 20 MB, not one per read
    assert len(result.data) < 15


def test_a_small_response_does_not_pin_a_large_buffer() -> None:
    # the first read (header and 24 records) is buffered; the rest is received in place,
    # into a 64 KiB region that ends up mostly empty
    ch = scripted(response(30), 1000)
    data = ch.run(ch._get_flow(*EIGHT, 1000, GetMode.GET)).data
    assert values(data) == list(range(30)) and len(data) == 2
    for arr in data:
        base = arr
        while base.base is not None:
            base = base.base
        assert np.asarray(base).nbytes <= 2 * arr.nbytes


@pytest.mark.parametrize("piece", [1, 7, 1000, 1 << 22])
@pytest.mark.parametrize("limit", [RECORD * 5, 1000, 4096, 65536])
def test_get_stream_batches_match_the_object_path(piece: int, limit: int) -> None:
    wire = response(3000)
    batches: dict[bool, list[list[int]]] = {True: [], False: []}
    for numpy in (True, False):
        ch = scripted(wire, piece, limit, numpy)
        sink: list[list[int]] = batches[numpy]
        result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.STREAM, _appender(sink)))
        assert result.status == ResponseStatus.OK
    assert batches[True] == batches[False]
    assert sum(len(b) for b in batches[True]) == 3000


@pytest.mark.parametrize("piece", [1, 7, 1000, 1 << 22])
def test_get_iter_yields_every_record(piece: int) -> None:
    ch = scripted(response(2000), piece)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.ITER))
    assert result.status == ResponseStatus.OK
    assert values(ch.emitted) == list(range(2000))


@pytest.mark.parametrize("piece", [7, 1000, 1 << 22])
@pytest.mark.parametrize(
    "bad",
    [record(5000, size=40), record(5000, cid=-3), record(5000, size=20)],
    ids=["other-size", "negative-cid", "short-size"],
)
def test_a_bad_record_after_many_is_unparseable_after_the_good_ones(piece: int, bad: bytes) -> None:
    wire = response(4000, tail=bad + record(5001) + struct.pack("<i", 0))
    for numpy in (True, False):
        ch = scripted(wire, piece, numpy=numpy)
        result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
        assert result.status == ResponseStatus.UNPARSEABLE_ENTITY
        assert values(result.data) == list(range(4000)), numpy
        assert ch.closed


@pytest.mark.parametrize("piece", [1, 7, 1000, 1 << 22])
@pytest.mark.parametrize("cut", [12, 12 + 3, 12 + RECORD * 2500, 12 + RECORD * 2500 + 17])
def test_a_stream_that_stops_midway_delivers_the_complete_records(piece: int, cut: int) -> None:
    wire = response(5000)[:cut]
    complete = max(0, (cut - 12) // RECORD)
    ch = scripted(wire, piece)
    got = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert got.status == ResponseStatus.DISCONNECTED and ch.closed
    assert values(got.data) == list(range(complete))
    calls: list[list[int]] = []
    ch = scripted(wire, piece, limit=1 << 20)
    res = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.STREAM, lambda b: calls.append(values(b))))
    assert res.status == ResponseStatus.DISCONNECTED
    assert [v for c in calls for v in c] == list(range(complete))
    ch = scripted(wire, piece)
    res = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.ITER))
    assert res.status == ResponseStatus.DISCONNECTED
    assert values(ch.emitted) == list(range(complete))


def test_a_reset_midway_delivers_the_complete_records() -> None:
    wire = response(5000)
    ch = scripted(wire, 1000)
    ch.fail_after = 12 + RECORD * 3000 + 5
    got = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert got.status == ResponseStatus.DISCONNECTED
    delivered = len(wire) - len(ch.response)
    assert delivered > 12 + RECORD * 3000
    assert values(got.data) == list(range((delivered - 12) // RECORD))


def test_memory_limit_below_one_record_is_no_memory() -> None:
    ch = scripted(response(100), 1 << 22, limit=RECORD - 1)
    got = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert got.status == ResponseStatus.NO_MEMORY


# --- the core's receive_buffer / received API --------------------------------------------


def started() -> ClientConnection:
    conn = ClientConnection(NumpyRecordDecoder(NP_INT.parsing_dtype))
    conn.send(GetRequest(Key(0, 0, 0, 0, 0), Key(1, 1, 1, 1, 1)))
    return conn


def give(conn: ClientConnection, data: bytes, out: list[Any]) -> None:
    """Receive ``data`` through receive_buffer, draining events as a driver does."""
    while data:
        view = conn.receive_buffer()
        n = min(len(view), len(data))
        view[:n] = data[:n]
        conn.received(n)
        data = data[n:]
        drain_events(conn, out)


def drain_events(conn: ClientConnection, out: list[Any]) -> None:
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)


def test_receive_buffer_needs_received_in_between() -> None:
    conn = started()
    conn.receive_buffer(100)
    with pytest.raises(LocalProtocolError):
        conn.receive_buffer(100)
    with pytest.raises(LocalProtocolError):
        conn.received(101)
    conn = started()
    with pytest.raises(LocalProtocolError):
        conn.received(1)
    with pytest.raises(LocalProtocolError):
        conn.receive_buffer(0)


def test_receive_data_and_receive_buffer_may_be_mixed() -> None:
    wire = response(3000)
    conn = started()
    got: list[Any] = []
    give(conn, wire[:1000], got)  # the header and the first records, buffered
    give(conn, wire[1000:20_000], got)  # records received in place
    assert conn._region is not None
    conn.receive_data(wire[20_000:100_000])  # given the old way (more than fits): follows
    drain_events(conn, got)
    give(conn, wire[100_000:], got)
    records = [e for e in got if isinstance(e, RecordsBatch)]
    assert isinstance(got[0], GetStart) and isinstance(got[-1], GetEnd)
    assert values([a for e in records for a in e.records]) == list(range(3000))
