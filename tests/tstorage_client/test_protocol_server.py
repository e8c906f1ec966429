"""Server role of the protocol core: request decoding and response encoding."""

from __future__ import annotations

import random
import struct
from typing import Any

import numpy as np
import pytest

from tests.tstorage_client import vectors as V
from tests.tstorage_client.conftest import drain
from tstorage_client import events as ev
from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_client.errors import RemoteProtocolError
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.protocol import (
    NEED_DATA,
    ClientConnection,
    ObjectRecordDecoder,
    ServerConnection,
    decode_put_records,
    encode_get_records,
)
from tstorage_client.record import Key

HOW = ["whole", "bytewise"]


def put_records(events: list[Any]) -> list[tuple[Key, bytes]]:
    out: list[tuple[Key, bytes]] = []
    for e in events:
        if isinstance(e, ev.PutBatch):
            out.extend(e.block.to_records())
    return out


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("vector", [V.GET_REQUEST, V.GET_ALL_REQUEST])
def test_decode_get_request(vector: tuple[Key, Key, bytes], how: str) -> None:
    kmin, kmax, wire = vector
    conn = ServerConnection()
    assert drain(conn, wire, how) == [ev.GetRequest(kmin, kmax)]


@pytest.mark.parametrize("how", HOW)
def test_decode_get_acq_request(how: str) -> None:
    kmin, kmax, wire = V.GET_ACQ_REQUEST
    assert drain(ServerConnection(), wire, how) == [ev.GetAcqRequest(kmin, kmax)]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("vector", [V.PUT_2_RECORDS, V.PUTA_2_RECORDS, V.PUT_EMPTY, V.PUTA_EMPTY])
def test_decode_put_streams(vector: tuple[list[tuple[Key, bytes]], bool, bytes], how: str) -> None:
    records, with_acq, wire = vector
    events = drain(ServerConnection(), wire, how)
    assert events[0] == ev.PutRequest(with_acq)
    assert isinstance(events[-1], ev.PutEnd)
    expected = [(k if with_acq else Key(k.cid, k.mid, k.moid, k.cap, -1), p) for k, p in records]
    assert put_records(events) == expected


@pytest.mark.parametrize("how", HOW)
def test_requests_back_to_back_with_trailing_bytes(how: str) -> None:
    """Several requests on one connection; the last one incomplete stays pending."""
    wire = V.GET_REQUEST[2] + V.PUT_2_RECORDS[2] + V.GET_ACQ_REQUEST[2] + V.GET_REQUEST[2][:30]
    conn = ServerConnection()
    events = drain(conn, wire, how)
    kinds = [type(e).__name__ for e in events]
    # Two one-record batches: one PutBatch when both are buffered, else one each.
    assert kinds in (
        ["GetRequest", "PutRequest", "PutBatch", "PutEnd", "GetAcqRequest"],
        ["GetRequest", "PutRequest", "PutBatch", "PutBatch", "PutEnd", "GetAcqRequest"],
    )
    assert put_records(events) == [
        (Key(k.cid, k.mid, k.moid, k.cap, -1), p) for k, p in V.PUT_2_RECORDS[0]
    ]
    assert conn.next_event() is NEED_DATA
    conn.receive_data(V.GET_REQUEST[2][30:])
    assert conn.next_event() == ev.GetRequest(V.GET_REQUEST[0], V.GET_REQUEST[1])


def test_eof_at_boundary_is_end_of_stream() -> None:
    conn = ServerConnection()
    conn.receive_data(V.GET_REQUEST[2])
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ev.GetRequest)
    assert isinstance(conn.next_event(), ev.EndOfStream)


@pytest.mark.parametrize("cut", [1, 11, 12, 40, 75])
def test_eof_mid_request_is_an_error(cut: int) -> None:
    conn = ServerConnection()
    conn.receive_data(V.GET_REQUEST[2][:cut])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):  # stays failed
        conn.next_event()


def test_eof_mid_put_is_an_error() -> None:
    conn = ServerConnection()
    conn.receive_data(V.PUT_2_RECORDS[2][:-4])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        while conn.next_event() is not NEED_DATA:
            pass


def header(cmd: int, size: int) -> bytes:
    return struct.pack("<iQ", cmd, size)


def batch(cid: int, body: bytes, size: int | None = None) -> bytes:
    return struct.pack("<ii", cid, len(body) if size is None else size) + body


def put_rec(n: int, mid: int = 1, moid: int = 2, cap: int = 3, payload: bytes = b"") -> bytes:
    return struct.pack("<iqiq", n, mid, moid, cap) + payload


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (header(2, 64), "unknown command"),
        (header(0, 0), "unknown command"),
        (header(1, 63), "< 64"),
        (header(7, 0), "< 64"),
        (header(5, 0) + batch(-3, b""), "negative batch cid"),
        (header(5, 0) + struct.pack("<ii", 0, -5), "negative batch size"),
        (header(5, 0) + batch(0, put_rec(19)), "outside"),
        (header(6, 0) + batch(0, put_rec(27) + bytes(8)), "outside"),
        (header(5, 0) + batch(0, struct.pack("<i", 20 + 2**25 + 1)), "outside"),
        (header(5, 0) + batch(0, put_rec(24, payload=b"abcd"), size=20), "overruns"),
        (header(5, 0) + batch(0, put_rec(20) + b"xy"), "cannot hold"),
        (header(5, 0) + batch(0, put_rec(20) + put_rec(24, payload=b"abcd"), size=30), "overruns"),
    ],
)
@pytest.mark.parametrize("how", HOW)
def test_framing_errors(wire: bytes, message: str, how: str) -> None:
    conn = ServerConnection()
    with pytest.raises(RemoteProtocolError, match=message):
        drain(conn, wire + bytes(200), how)


def test_get_size_over_64_skips_aux_bytes() -> None:
    kmin, kmax, wire = V.GET_REQUEST
    odd = header(1, 70) + b"AUXAUX" + wire[12:]
    assert drain(ServerConnection(), odd, "bytewise") == [ev.GetRequest(kmin, kmax)]


def test_put_header_size_skips_aux_bytes() -> None:
    wire = header(5, 3) + b"xyz" + V.PUT_2_RECORDS[2][12:]
    events = drain(ServerConnection(), wire, "whole")
    assert len(put_records(events)) == 2


def test_empty_batches_and_repeated_cids() -> None:
    wire = (
        header(5, 0)
        + batch(3, b"")
        + batch(3, put_rec(20))
        + batch(3, put_rec(21, payload=b"z"))
        + b"\xff" * 4
    )
    events = drain(ServerConnection(), wire, "whole")
    recs = put_records(events)
    assert [k.cid for k, _ in recs] == [3, 3]
    assert [p for _, p in recs] == [b"", b"z"]


def test_max_payload_accepted() -> None:
    payload = b"\x07" * 2**25
    wire = (
        header(6, 0)
        + batch(5, struct.pack("<iqiqq", 28 + 2**25, 1, 2, 3, 4) + payload)
        + b"\xff" * 4
    )
    conn = ServerConnection()
    events = []
    for i in range(0, len(wire), 1 << 20):
        conn.receive_data(wire[i : i + (1 << 20)])
        while (e := conn.next_event()) is not NEED_DATA:
            events.append(e)
    recs = put_records(events)
    assert len(recs) == 1 and recs[0][1] == payload and recs[0][0] == Key(5, 1, 2, 3, 4)


def test_buffer_limit() -> None:
    conn = ServerConnection(max_buffer_size=100)
    conn.receive_data(bytes(101))  # reported by next_event, as h11 does
    with pytest.raises(RemoteProtocolError, match="exceed 100 bytes"):
        conn.next_event()


def test_buffer_limit_counts_a_big_record() -> None:
    conn = ServerConnection(max_buffer_size=1000)
    wire = header(5, 0) + batch(0, put_rec(20 + 2000, payload=bytes(2000)))
    with pytest.raises(RemoteProtocolError):
        drain(conn, wire, "whole")


def test_fixed_and_variable_mix_in_one_batch() -> None:
    """Fast path (same sizes) followed by variable records inside one batch."""
    body = b"".join(put_rec(24, mid=i, payload=struct.pack("<i", i)) for i in range(40))
    body += b"".join(put_rec(20 + i, mid=100 + i, payload=bytes([i]) * i) for i in range(10))
    body += b"".join(put_rec(24, mid=200 + i, payload=b"abcd") for i in range(3))
    wire = header(5, 0) + batch(9, body) + b"\xff" * 4
    for how in HOW:
        recs = put_records(drain(ServerConnection(), wire, how))
        assert [k.mid for k, _ in recs] == list(range(40)) + list(range(100, 110)) + [200, 201, 202]
        assert recs[45][1] == bytes([5]) * 5
        assert recs[0][1] == struct.pack("<i", 0)


def test_decode_put_records_reports_need() -> None:
    raw = put_rec(30, payload=bytes(10))
    block, used, need = decode_put_records(raw[:20], 1, False, len(raw))
    assert block is None and used == 0 and need == 34


# --- response encoding ---------------------------------------------------------------


def test_encode_get_one_record() -> None:
    records, acq, wire = V.GET_ONE_RECORD
    conn = ServerConnection()
    block = RecordBlock.from_records([k for k, _ in records], [p for _, p in records])
    out = conn.send(ev.GetStart()) + conn.send(ev.GetRecords(block)) + conn.send(ev.GetEnd(acq))
    assert out == wire


def test_encode_get_empty() -> None:
    _, acq, wire = V.GET_EMPTY
    conn = ServerConnection()
    assert (
        conn.send(ev.GetStart())
        + conn.send(ev.GetRecords(RecordBlock.empty()))
        + conn.send(ev.GetEnd(acq))
        == wire
    )


def test_encode_results() -> None:
    conn = ServerConnection()
    assert conn.send(ev.AcqResult(V.GET_ACQ_RESPONSE[0])) == V.GET_ACQ_RESPONSE[1]
    assert conn.send(ev.PutResult(V.PUT_RESPONSE[0], V.PUT_RESPONSE[1])) == V.PUT_RESPONSE[2]
    assert conn.send(ev.PutResult()) == V.PUTA_RESPONSE[2]


def test_eight_record_response_is_356_bytes() -> None:
    keys = [Key(0, 12, i, 10, i) for i in range(8)]
    block = RecordBlock.from_records(keys, [V.P314] * 8)
    conn = ServerConnection()
    out = conn.send(ev.GetStart()) + conn.send(ev.GetRecords(block)) + conn.send(ev.GetEnd(1))
    assert len(out) == 356


@pytest.mark.parametrize(
    ("request_wire", "expected"),
    [
        (V.GET_REQUEST[2], V.ERROR_GET),
        (V.GET_ACQ_REQUEST[2], V.ERROR_GET_ACQ),
        (V.PUT_2_RECORDS[2][:20], V.ERROR_PUT),
        (header(9, 0), V.ERROR_PUT),
    ],
)
def test_send_error_shapes(request_wire: bytes, expected: bytes) -> None:
    conn = ServerConnection()
    conn.receive_data(request_wire)
    try:
        while conn.next_event() is not NEED_DATA:
            pass
    except RemoteProtocolError:
        pass
    assert conn.send_error() == expected


def test_send_error_after_get_started() -> None:
    conn = ServerConnection()
    conn.receive_data(V.GET_REQUEST[2])
    conn.next_event()
    conn.send(ev.GetStart())
    assert conn.send_error() == V.ERROR_GET[12:]


@pytest.mark.parametrize(
    ("first", "answer"),
    [
        (V.GET_REQUEST[2], [ev.GetStart(), ev.GetEnd(5)]),
        (V.GET_ACQ_REQUEST[2], [ev.AcqResult(5)]),
    ],
)
def test_an_answered_request_leaves_no_error_shape_behind(
    first: bytes, answer: list[ev.Event]
) -> None:
    # A PUT refused before its header arrived, after a GET was answered on the same
    # connection, gets the PUT error shape, not the GET's (a client reads (0,0) as garbage).
    conn = ServerConnection()
    conn.receive_data(first)
    conn.next_event()
    for event in answer:
        conn.send(event)
    conn.receive_data(V.PUT_2_RECORDS[2][:6])
    assert conn.next_event() is NEED_DATA
    assert conn.send_error() == V.ERROR_PUT


def test_encode_variable_records_matches_loop() -> None:
    rng = np.random.default_rng(1)
    payloads = [rng.bytes(int(n)) for n in rng.integers(0, 50, 200)]
    keys = [Key(1, i, -i, i * 3, -5) for i in range(200)]
    block = RecordBlock.from_records(keys, payloads)
    expected = b"".join(
        struct.pack("<iiqiqq", 32 + len(p), k.cid, k.mid, k.moid, k.cap, k.acq) + p
        for k, p in zip(keys, payloads, strict=True)
    )
    assert encode_get_records(block) == expected
    assert encode_get_records(block.take(np.arange(200)[::-1])) == b"".join(
        struct.pack("<iiqiqq", 32 + len(p), k.cid, k.mid, k.moid, k.cap, k.acq) + p
        for k, p in reversed(list(zip(keys, payloads, strict=True)))
    )


def test_key_dtype_is_the_wire_key() -> None:
    arr = np.array([(1, 2, 3, 4, 5)], dtype=KEY_DTYPE)
    assert arr.tobytes() == Key(1, 2, 3, 4, 5).to_bytes()


def _wire_records(records: list[tuple[Key, bytes]]) -> bytes:
    """GET records framed one by one with ``struct`` (the reference for the encoder)."""
    return b"".join(
        struct.pack("<iiqiqq", 32 + len(p), k.cid, k.mid, k.moid, k.cap, k.acq) + p
        for k, p in records
    )


def _client_records(stream: bytes, rng: random.Random) -> list[tuple[Key, bytes]]:
    """A GET response fed to the client role in random splits, as (key, payload) pairs."""
    conn = ClientConnection(ObjectRecordDecoder(BytesPayloadType()))
    conn.send(ev.GetRequest(Key(0, 0, 0, 0, 0), Key(1, 1, 1, 1, 1)))
    got: list[tuple[Key, bytes]] = []
    events: list[Any] = []
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 7, 36, 4096, 300_000, 2_000_000])
        conn.receive_data(stream[pos : pos + step])
        pos += step
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ev.RecordsBatch):
                got.extend((r.key, r.value) for r in event.records)
    assert isinstance(events[0], ev.GetStart) and events[-1] == ev.GetEnd(acq=42)
    return got


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_encode_mixed_large_payloads_is_byte_exact(seed: int) -> None:
    # Large payloads of many lengths (1 KiB to 1 MiB), short ones and empty ones, mixed.
    rng = random.Random(seed)
    records: list[tuple[Key, bytes]] = []
    for i in range(120):
        kind = rng.random()
        if kind < 0.5:
            size = int(2 ** rng.uniform(10, 20))
        elif kind < 0.9:
            size = rng.randrange(0, 300)
        else:
            size = 0
        records.append((Key(rng.randrange(5), i, -i, 3 * i, 2**40 + i), rng.randbytes(size)))
    block = RecordBlock.from_records([k for k, _ in records], [p for _, p in records])
    encoded = encode_get_records(block)
    assert encoded == _wire_records(records)
    # The records of a piece the server cut from a larger block (payload offset not 0).
    piece = block.take(np.arange(10, 90))
    assert encode_get_records(piece) == _wire_records(records[10:90])
    conn = ServerConnection()
    stream = (
        conn.send(ev.GetStart()) + conn.send(ev.GetRecords(block)) + conn.send(ev.GetEnd(acq=42))
    )
    assert _client_records(stream, rng) == records
