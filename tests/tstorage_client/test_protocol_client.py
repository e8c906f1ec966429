"""Client role of the protocol core: request encoding and response decoding."""

from __future__ import annotations

import gc
import struct
from typing import Any

import numpy as np
import pytest

from tests.tstorage_client import vectors as V
from tests.tstorage_client.conftest import drain
from tstorage_client import events as ev
from tstorage_client.errors import (
    LocalProtocolError,
    MemoryLimitExceeded,
    RemoteProtocolError,
    UnparseableRecord,
)
from tstorage_client.payload_type import BytesPayloadType, NumpyPayloadType, StructPayloadType
from tstorage_client.protocol import (
    ClientConnection,
    NumpyRecordDecoder,
    ObjectRecordDecoder,
    encode_put_batches,
)
from tstorage_client.record import Key, Record

HOW = ["whole", "bytewise"]
INT = StructPayloadType[int]("<i")


def get_conn(payload: Any = INT) -> ClientConnection:
    conn = ClientConnection(ObjectRecordDecoder(payload))
    conn.send(ev.GetRequest(Key.min(), Key.max()))
    return conn


def records_of(events: list[ev.Event]) -> list[Any]:
    return [r for e in events if isinstance(e, ev.RecordsBatch) for r in e.records]


@pytest.mark.parametrize("vector", [V.GET_REQUEST, V.GET_ALL_REQUEST])
def test_encode_get_request(vector: tuple[Key, Key, bytes]) -> None:
    kmin, kmax, wire = vector
    assert ClientConnection().send(ev.GetRequest(kmin, kmax)) == wire


def test_encode_get_acq_request() -> None:
    kmin, kmax, wire = V.GET_ACQ_REQUEST
    assert ClientConnection().send(ev.GetAcqRequest(kmin, kmax)) == wire


@pytest.mark.parametrize("vector", [V.PUT_2_RECORDS, V.PUTA_2_RECORDS, V.PUT_EMPTY, V.PUTA_EMPTY])
def test_encode_put_streams(vector: tuple[list[tuple[Key, bytes]], bool, bytes]) -> None:
    records, with_acq, wire = vector
    conn = ClientConnection()
    recs = [Record(k, p) for k, p in records]
    out = conn.send(ev.PutRequest(with_acq))
    out += b"".join(encode_put_batches(recs, with_acq, bytes))
    out += conn.send(ev.PutEnd())
    assert out == wire


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("trailing", [b"", b"\x99" * 7])
def test_decode_get_one_record(how: str, trailing: bytes) -> None:
    records, acq, wire = V.GET_ONE_RECORD
    events = drain(get_conn(), wire + trailing, how)
    assert events[0] == ev.GetStart(0)
    assert events[-1] == ev.GetEnd(acq, 0)
    assert records_of(events) == [Record(k, struct.unpack("<i", p)[0]) for k, p in records]


TRAILING = [b"", b"\x99" * 7]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("trailing", TRAILING)
def test_decode_get_empty(how: str, trailing: bytes) -> None:
    _, acq, wire = V.GET_EMPTY
    assert drain(get_conn(), wire + trailing, how) == [ev.GetStart(0), ev.GetEnd(acq, 0)]


@pytest.mark.parametrize("how", HOW)
def test_decode_get_error_shapes(how: str) -> None:
    events = drain(get_conn(), V.ERROR_GET, how)
    assert events == [ev.GetStart(0), ev.GetEnd(-1, -1)]
    # Mock shape: no padding.
    assert drain(get_conn(), V.ERROR_GET[:-8], how) == [ev.GetStart(0), ev.GetEnd(-1, -1)]
    # Error in the initial header.
    assert drain(get_conn(), V.ERROR_PUT, how) == [ev.GetStart(-1)]


@pytest.mark.parametrize("how", HOW)
def test_decode_acq_and_put_results(how: str) -> None:
    conn = ClientConnection()
    conn.send(ev.GetAcqRequest(Key.min(), Key.max()))
    assert drain(conn, V.GET_ACQ_RESPONSE[1], how) == [ev.AcqResult(100, 0)]
    conn.send(ev.GetAcqRequest(Key.min(), Key.max()))
    assert drain(conn, V.ERROR_GET_ACQ, how) == [ev.AcqResult(-1, -1)]
    conn.send(ev.PutRequest(False))
    assert drain(conn, V.PUT_RESPONSE[2], how) == [
        ev.PutResult(V.PUT_RESPONSE[0], V.PUT_RESPONSE[1], 0)
    ]
    conn.send(ev.PutRequest(True))
    assert drain(conn, V.ERROR_PUT, how) == [ev.PutResult(-1, -1, -1)]


@pytest.mark.parametrize(
    ("wire", "ok"),
    [
        (struct.pack("<iQ", 0, 16) + bytes(16), True),
        (struct.pack("<iQ", 0, 20) + bytes(20), True),
        (struct.pack("<iQ", 1, 0), False),
        (struct.pack("<iQ", 1, 8) + bytes(8), False),
        (struct.pack("<iQ", 123, 0), False),
    ],
)
def test_put_result_sizes(wire: bytes, ok: bool) -> None:
    conn = ClientConnection()
    conn.send(ev.PutRequest(False))
    (result,) = drain(conn, wire, "bytewise")
    assert isinstance(result, ev.PutResult) and (result.status == 0) is ok


def test_short_ok_sizes_are_protocol_errors() -> None:
    conn = ClientConnection()
    conn.send(ev.GetAcqRequest(Key.min(), Key.max()))
    with pytest.raises(RemoteProtocolError):
        drain(conn, struct.pack("<iQ", 0, 4) + bytes(4), "whole")


def eight_records_wire(payload_size: int = 4) -> bytes:
    out = struct.pack("<iQ", 0, 0)
    for i in range(8):
        out += struct.pack("<iiqiqq", 32 + payload_size, 0, 12, i, 10, i) + bytes(payload_size)
    return out + struct.pack("<i", 0) + struct.pack("<iQq", 0, 8, 99)


@pytest.mark.parametrize("how", HOW)
def test_unparseable_payload(how: str) -> None:
    with pytest.raises(UnparseableRecord):
        drain(get_conn(StructPayloadType("<q")), eight_records_wire(), how)


def test_unparseable_after_good_records_delivers_them_first() -> None:
    wire = eight_records_wire()
    bad = bytearray(wire)
    struct.pack_into("<i", bad, 12 + 3 * 40 + 4, -1)  # cid of the 4th record
    conn = get_conn()
    conn.receive_data(bytes(bad))
    assert conn.next_event() == ev.GetStart(0)
    batch = conn.next_event()
    assert isinstance(batch, ev.RecordsBatch) and len(batch.records) == 3
    with pytest.raises(UnparseableRecord):
        conn.next_event()


def test_record_too_big_for_memory_limit() -> None:
    conn = get_conn(BytesPayloadType())
    conn.max_record_bytes = 100
    conn.receive_data(struct.pack("<iQ", 0, 0) + struct.pack("<i", 32 + 200) + bytes(10))
    assert conn.next_event() == ev.GetStart(0)
    with pytest.raises(MemoryLimitExceeded):
        conn.next_event()


@pytest.mark.parametrize("how", HOW)
def test_numpy_decoder(how: str) -> None:
    pt = NumpyPayloadType(np.int32)
    conn = ClientConnection(NumpyRecordDecoder(pt.parsing_dtype))
    conn.send(ev.GetRequest(Key.min(), Key.max()))
    events = drain(conn, eight_records_wire(), how)
    arrays = records_of(events)
    merged = np.concatenate(arrays)
    assert merged["moid"].tolist() == list(range(8))
    assert (merged["_size"] == 36).all()
    assert events[-1] == ev.GetEnd(99, 0)


def test_numpy_decoder_rejects_other_sizes() -> None:
    pt = NumpyPayloadType(np.int64)
    conn = ClientConnection(NumpyRecordDecoder(pt.parsing_dtype))
    conn.send(ev.GetRequest(Key.min(), Key.max()))
    with pytest.raises(UnparseableRecord):
        drain(conn, eight_records_wire(), "whole")


# --- PUT batching rules (spec 6.4) ---------------------------------------------------


def batches(records: list[Record[bytes]], **kw: Any) -> list[tuple[int, int]]:
    out = []
    for b in encode_put_batches(records, False, bytes, **kw):
        cid, size = struct.unpack_from("<ii", b)
        assert len(b) == 8 + size
        out.append((cid, size))
    return out


def test_batch_split_at_max_batch_size() -> None:
    recs = [Record(Key(7, i, 0, 0), b"abcd") for i in range(3)]  # 28 bytes each on the wire
    assert batches(recs, max_batch_size=56) == [(7, 56), (7, 28)]
    assert batches(recs, max_batch_size=55) == [(7, 28)] * 3
    assert batches(recs, max_batch_size=1) == [(7, 28)] * 3
    assert batches(recs) == [(7, 84)]


def test_grouping_by_first_occurrence() -> None:
    recs = [Record(Key(c, 0, 0, 0), b"") for c in (5, 3, 5, 9, 3)]
    assert batches(recs) == [(5, 48), (3, 48), (9, 24)]


def test_invalid_records_never_write_a_negative_cid() -> None:
    recs = [Record(Key(c, 0, 0, 0), b"") for c in (5, -3, 6)]
    assert batches(recs) == [(5, 24)]
    assert batches(recs, skip_invalid=True) == [(5, 24), (6, 24)]
    assert batches([Record(Key(-1, 0, 0, 0), b"")], skip_invalid=True) == []


def test_out_of_range_key_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        list(encode_put_batches([Record(Key(0, 2**63, 0, 0), b"")], False, bytes))
    with pytest.raises(LocalProtocolError):
        ClientConnection().send(ev.GetRequest(Key(2**31, 0, 0, 0, 0), Key.max()))


def records_wire(rows: list[tuple[int, int, bytes]]) -> bytes:
    """GET response for (cid, mid, payload) rows."""
    out = struct.pack("<iQ", 0, 0)
    for cid, mid, payload in rows:
        out += struct.pack("<iiqiqq", 32 + len(payload), cid, mid, 0, 0, 0) + payload
    return out + struct.pack("<i", 0) + struct.pack("<iQq", 0, 8, 5)


@pytest.mark.parametrize("how", HOW)
def test_struct_runs_stop_at_an_odd_record(how: str) -> None:
    """The fixed-size fast path hands an odd record to the general path, which rejects it."""
    good = [(1, i, struct.pack("<i", i)) for i in range(5)]
    bad_size = records_wire([*good, (1, 99, b"\x00" * 5), *good])
    conn = get_conn()
    with pytest.raises(UnparseableRecord):
        drain(conn, bad_size, how)
    bad_cid = records_wire([*good, (-1, 99, b"\x00" * 4)])
    with pytest.raises(UnparseableRecord):
        drain(get_conn(), bad_cid, how)
    events = drain(get_conn(), records_wire(good * 3), how)
    assert [r.key.mid for r in records_of(events)] == list(range(5)) * 3


@pytest.mark.parametrize("how", HOW)
def test_tuple_payload_decoding(how: str) -> None:
    from tstorage_client.payload_type import TuplePayloadType

    rows = [(2, i, struct.pack("<ih", i, -i)) for i in range(6)]
    events = drain(get_conn(TuplePayloadType("<ih")), records_wire(rows), how)
    assert [r.value for r in records_of(events)] == [(i, -i) for i in range(6)]


def test_struct_payload_without_values_uses_general_path() -> None:
    conn = get_conn(StructPayloadType("<4x"))
    with pytest.raises(UnparseableRecord):  # "<4x" unpacks to (): no value to return
        drain(conn, records_wire([(1, 1, b"\x00" * 4)]), "whole")


class _GcSpy(BytesPayloadType):
    """Notes whether the cyclic GC is on at each payload it decodes."""

    def __init__(self) -> None:
        self.gc_on: list[bool] = []

    def from_bytes(self, buffer: bytes) -> bytes:
        self.gc_on.append(gc.isenabled())
        return bytes(buffer)


def test_the_core_leaves_the_garbage_collector_alone() -> None:
    # Switching the collector is process-wide: the channels decide it, not the sans-IO core.
    head = struct.Struct("<iiqiqq")
    raw = b"".join(head.pack(32 + 1, 1, i, 0, 0, 0) + b"x" for i in range(3)) + bytes(4)
    spy = _GcSpy()
    assert gc.isenabled()
    items, _, _, finished = ObjectRecordDecoder(spy).decode(raw, None)
    assert finished and len(items) == 3
    assert spy.gc_on == [True, True, True]
