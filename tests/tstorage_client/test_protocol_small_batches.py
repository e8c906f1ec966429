"""Server role: PUT/PUTA streams made of many small batches (the C++, C and Java clients
may open a new batch at every cid change), decoded into blocks spanning several batches."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tstorage_client import events as ev
from tstorage_client.errors import RemoteProtocolError
from tstorage_client.protocol import (
    NEED_DATA,
    RUN_MAX_RECORDS,
    RUN_WINDOW_BYTES,
    RunStop,
    ServerConnection,
    walk_put_run,
)
from tstorage_client.record import Key

Rec = tuple[Key, bytes]
HOW = ["whole", "bytewise", "random-3", "random-17"]
GUARD = struct.pack("<i", -1)


def stream_header(with_acq: bool) -> bytes:
    return struct.pack("<iQ", 6 if with_acq else 5, 0)


def wire_record(key: Key, payload: bytes, with_acq: bool) -> bytes:
    if with_acq:
        head = struct.pack("<iqiqq", 28 + len(payload), key.mid, key.moid, key.cap, key.acq)
    else:
        head = struct.pack("<iqiq", 20 + len(payload), key.mid, key.moid, key.cap)
    return head + payload


def wire_batch(cid: int, body: bytes, size: int | None = None) -> bytes:
    return struct.pack("<ii", cid, len(body) if size is None else size) + body


def batches_of(records: Sequence[Rec], with_acq: bool, per_batch: int = 1) -> bytes:
    """Batches of up to ``per_batch`` consecutive records (a new batch at every cid change)."""
    out: list[bytes] = []
    i = 0
    while i < len(records):
        cid = records[i][0].cid
        j = i
        while j < len(records) and j - i < per_batch and records[j][0].cid == cid:
            j += 1
        body = b"".join(wire_record(k, p, with_acq) for k, p in records[i:j])
        out.append(wire_batch(cid, body))
        i = j
    return b"".join(out)


def expected(records: Sequence[Rec], with_acq: bool) -> list[Rec]:
    """What the server must decode: PUT records get acq -1 (the server assigns it)."""
    if with_acq:
        return list(records)
    return [(Key(k.cid, k.mid, k.moid, k.cap, -1), p) for k, p in records]


def pieces(data: bytes, how: str) -> Iterator[bytes]:
    if how == "whole":
        yield data
    elif how == "bytewise":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        rng = random.Random(int(how.split("-")[1]))
        i = 0
        while i < len(data):
            n = rng.choice([1, 2, 3, 5, 8, 13, 40, 100, 1000])
            yield data[i : i + n]
            i += n


def feed(conn: ServerConnection, data: bytes, how: str) -> tuple[list[Rec], list[Any]]:
    """Feed ``data`` and collect the records of every PutBatch and every event."""
    records: list[Rec] = []
    events: list[Any] = []
    for piece in pieces(data, how):
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ev.PutBatch):
                records.extend(event.block.to_records())
    return records, events


def make_records(n: int, cid: Any, payload: Any) -> list[Rec]:
    return [(Key(cid(i), i, -i, 3 * i, 1000 + i), payload(i)) for i in range(n)]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("with_acq", [False, True])
@pytest.mark.parametrize(
    "payload",
    [lambda i: struct.pack("<i", i), lambda i: bytes([i % 251]) * (i % 23), lambda i: b""],
    ids=["fixed-4", "variable", "empty"],
)
def test_many_small_batches_equal_one_batch(how: str, with_acq: bool, payload: Any) -> None:
    records = make_records(300, lambda i: 7, payload)
    one = stream_header(with_acq) + batches_of(records, with_acq, 10**9) + GUARD
    many = stream_header(with_acq) + batches_of(records, with_acq, 1) + GUARD
    got_one, _ = feed(ServerConnection(), one, "whole")
    got_many, events = feed(ServerConnection(), many, how)
    assert got_many == got_one == expected(records, with_acq)
    assert isinstance(events[-1], ev.PutEnd)
    if how == "whole":
        # 300 batches, one event: the block spans them.
        assert [type(e) for e in events] == [ev.PutRequest, ev.PutBatch, ev.PutEnd]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("with_acq", [False, True])
def test_one_record_batches_with_distinct_cids(how: str, with_acq: bool) -> None:
    records = make_records(1000, lambda i: (i * 7919) % 1000, lambda i: struct.pack("<q", -i))
    wire = stream_header(with_acq) + batches_of(records, with_acq) + GUARD
    got, events = feed(ServerConnection(), wire, how)
    assert got == expected(records, with_acq)
    blocks = [e.block for e in events if isinstance(e, ev.PutBatch)]
    assert sum(len(b) for b in blocks) == 1000
    if how == "whole":
        assert len(blocks) == 1
        assert blocks[0].keys["cid"].tolist() == [(i * 7919) % 1000 for i in range(1000)]


@pytest.mark.parametrize("how", HOW)
def test_mixed_big_and_small_batches(how: str) -> None:
    """Small batches around large ones (fixed and variable sizes, a record bigger than
    the scan window) and empty batches: every record, in order."""
    small_a = make_records(50, lambda i: i % 3, lambda i: bytes([i]) * (i % 5))
    big_fixed = make_records(500, lambda i: 40, lambda i: struct.pack("<q", i))
    small_b = make_records(70, lambda i: 100 + i, lambda i: b"x" * (i % 2))
    big_var = make_records(400, lambda i: 41, lambda i: bytes([i % 256]) * (i % 17))
    huge = make_records(1, lambda i: 42, lambda i: bytes(range(256)) * 1024)
    tail = make_records(30, lambda i: 43, lambda i: b"t" * i)
    body = (
        batches_of(small_a, True)
        + wire_batch(9, b"")
        + batches_of(big_fixed, True, 10**9)
        + batches_of(small_b, True)
        + batches_of(big_var, True, 10**9)
        + wire_batch(9, b"")
        + batches_of(huge, True)
        + batches_of(tail, True, 3)
    )
    wire = stream_header(True) + body + GUARD
    got, events = feed(ServerConnection(), wire, how)
    assert got == small_a + big_fixed + small_b + big_var + huge + tail
    assert isinstance(events[-1], ev.PutEnd)


@given(
    batches=st.lists(
        st.tuples(
            st.integers(0, 2**31 - 1),
            st.one_of(
                st.lists(st.binary(max_size=12), max_size=4),
                st.integers(64, 90).map(lambda n: [struct.pack("<i", n)] * n),  # large batch
            ),
        ),
        max_size=40,
    ),
    with_acq=st.booleans(),
    cuts=st.lists(st.integers(1, 300), max_size=60),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_any_batching_any_split(
    batches: list[tuple[int, list[bytes]]], with_acq: bool, cuts: list[int]
) -> None:
    records: list[Rec] = []
    body = b""
    for cid, payloads in batches:
        recs = [(Key(cid, len(records) + i, i, -i, i), p) for i, p in enumerate(payloads)]
        records.extend(recs)
        body += wire_batch(cid, b"".join(wire_record(k, p, with_acq) for k, p in recs))
    wire = stream_header(with_acq) + body + GUARD
    conn = ServerConnection()
    got: list[Rec] = []
    ends = 0
    pos = 0
    for size in [*cuts, len(wire)]:
        piece = wire[pos : pos + size]
        pos += size
        if not piece:  # b"" would mean EOF
            break
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, ev.PutBatch):
                got.extend(event.block.to_records())
            ends += isinstance(event, ev.PutEnd)
    assert got == expected(records, with_acq)
    assert ends == 1 and conn.state == "idle"


def test_blocks_stay_bounded_and_keep_flowing() -> None:
    """A long run of small batches arrives in several bounded blocks, not one huge one."""
    n = RUN_MAX_RECORDS * 2 + 1000
    rec = struct.Struct("<iiiqiqqi")
    body = b"".join(rec.pack(i % 5, 36, 32, i, 0, i, i, i) for i in range(n))
    sizes = [
        len(e.block)
        for e in feed(ServerConnection(), stream_header(True) + body + GUARD, "whole")[1]
        if isinstance(e, ev.PutBatch)
    ]
    assert sum(sizes) == n
    assert 3 <= len(sizes) < 20
    assert max(sizes) <= RUN_MAX_RECORDS
    # Large payloads: bounded by the scan window instead.
    payload = bytes(50_000)
    records = make_records(300, lambda i: i, lambda i: payload)
    wire = stream_header(False) + batches_of(records, False) + GUARD
    blocks = [
        e.block for e in feed(ServerConnection(), wire, "whole")[1] if isinstance(e, ev.PutBatch)
    ]
    assert sum(len(b) for b in blocks) == 300
    assert len(blocks) > 1
    assert max(len(b.payload) for b in blocks) <= RUN_WINDOW_BYTES


def put_rec(n: int, payload: bytes = b"") -> bytes:
    return struct.pack("<iqiq", n, 1, 2, 3) + payload


GOOD = make_records(40, lambda i: i, lambda i: struct.pack("<i", i))


@pytest.mark.parametrize(
    ("bad", "good_in_bad", "message"),
    [
        pytest.param(struct.pack("<i", -3), 0, "negative batch cid -3", id="negative-cid"),
        pytest.param(struct.pack("<ii", 5, -5), 0, "negative batch size", id="negative-size"),
        pytest.param(wire_batch(5, put_rec(19)), 0, "record size 19 outside", id="n-too-small"),
        pytest.param(
            wire_batch(5, struct.pack("<i", 20 + 2**25 + 1)), 0, "outside", id="n-too-large"
        ),
        pytest.param(wire_batch(5, put_rec(24, b"abcd"), size=20), 0, "overruns", id="overrun"),
        pytest.param(
            wire_batch(5, put_rec(20) + b"xy"),
            1,
            "2 bytes left in a batch cannot hold",
            id="leftover-after-record",
        ),
        pytest.param(
            wire_batch(5, put_rec(20) + put_rec(24, b"abcd"), size=30),
            1,
            "overruns",
            id="second-record-overruns",
        ),
        pytest.param(
            wire_batch(5, b"abc"), 0, "3 bytes left in a batch cannot hold", id="tiny-batch"
        ),
    ],
)
@pytest.mark.parametrize("how", HOW)
def test_framing_error_in_a_run_of_small_batches(
    bad: bytes, good_in_bad: int, message: str, how: str
) -> None:
    """The records before the error are delivered, then the error, at the same byte as
    when each batch was decoded on its own; the connection stays failed."""
    after = make_records(5, lambda i: 1, lambda i: b"late")
    wire = (
        stream_header(False)
        + batches_of(GOOD, False)
        + bad
        + batches_of(after, False)
        + GUARD
        + bytes(64)
    )
    conn = ServerConnection()
    got: list[Rec] = []
    with pytest.raises(RemoteProtocolError, match=message):
        for piece in pieces(wire, how):
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, ev.PutBatch):
                    got.extend(event.block.to_records())
    assert got[:40] == expected(GOOD, False)
    assert len(got) == 40 + good_in_bad
    with pytest.raises(RemoteProtocolError, match=message):
        conn.next_event()
    assert conn.send_error() == struct.pack("<iQ", -1, 0)


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("cut", [3, 9, 17, 35])
def test_stream_ending_early_in_a_run(how: str, cut: int) -> None:
    """EOF inside the 11th one-record batch (44 wire bytes each): 10 records, then an error."""
    full = stream_header(True) + batches_of(GOOD, True)
    wire = full[: 12 + 10 * 44 + cut]
    conn = ServerConnection()
    got: list[Rec] = []
    with pytest.raises(RemoteProtocolError, match="closed in the middle"):
        for piece in [*pieces(wire, how), b""]:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, ev.PutBatch):
                    got.extend(event.block.to_records())
    assert got == GOOD[:10]


def test_walk_stops_before_the_guard_and_at_a_large_batch() -> None:
    recs = make_records(3, lambda i: 4, lambda i: b"ab")
    small = batches_of(recs, True)
    run = walk_put_run(small + GUARD, 0, True, 0)
    assert run.stop is RunStop.GUARD and run.consumed == len(small) and run.batch_left == 0
    assert run.block is not None and run.block.to_records() == recs
    big = batches_of(make_records(64, lambda i: 6, lambda i: b"cd"), True, 10**9)
    run = walk_put_run(small + big, 0, True, 0)
    assert run.stop is RunStop.LARGE_BATCH
    assert run.consumed == len(small) + 8 and run.cid == 6 and run.batch_left == len(big) - 8
    run = walk_put_run(small[:-5], 0, True, 0)
    assert run.stop is RunStop.NEED_DATA and run.block is not None and len(run.block) == 2
    assert run.need == 4 + 28 + 2 and run.batch_left == 4 + 28 + 2
    run = walk_put_run(small + GUARD, 0, True, 0, max_records=2)
    assert run.stop is RunStop.LIMIT and run.block is not None and len(run.block) == 2


def identical(n: int, first_mid: int = 0) -> list[Rec]:
    """``n`` records for one-record PUTA batches of one shape (40-byte payloads)."""
    return [(Key(5 + i % 9, first_mid + i, i, -i, i), bytes([i % 256]) * 40) for i in range(n)]


def two_records_same_batch_size() -> tuple[list[Rec], bytes]:
    """Two records in one batch of the same byte size as a batch of ``identical``."""
    recs = [(Key(3, 900, 0, 0, 0), b"abcd"), (Key(3, 901, 0, 0, 0), b"efgh")]
    body = b"".join(wire_record(k, p, True) for k, p in recs)
    assert len(body) == 4 + 28 + 40
    return recs, wire_batch(3, body)


@pytest.mark.parametrize("how", HOW)
def test_runs_of_identical_batches_and_what_ends_them(how: str) -> None:
    """Runs of identically shaped one-record batches ended by another payload size, an
    empty batch, a two-record batch of the same byte size, the guard."""
    a, b, c, d = identical(100), identical(50, 1000), identical(40, 2000), identical(33, 3000)
    other = make_records(1, lambda i: 8, lambda i: b"xyz")
    two, two_wire = two_records_same_batch_size()
    wire = (
        stream_header(True)
        + batches_of(a, True)
        + batches_of(other, True)
        + batches_of(b, True)
        + wire_batch(4, b"")
        + batches_of(c, True)
        + two_wire
        + batches_of(d, True)
        + GUARD
    )
    got, events = feed(ServerConnection(), wire, how)
    assert got == a + other + b + c + two + d
    assert isinstance(events[-1], ev.PutEnd)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param(
            wire_batch(-7, wire_record(Key(0, 1, 2, 3, 4), bytes(40), True)),
            "negative batch cid -7",
            id="negative-cid-same-shape",
        ),
        pytest.param(
            wire_batch(5, struct.pack("<i", 72) + bytes(68)), "overruns", id="record-overruns"
        ),
        pytest.param(
            wire_batch(5, struct.pack("<i", 20) + bytes(68)), "record size 20 outside", id="n-small"
        ),
        pytest.param(wire_batch(5, bytes(76), size=-76), "negative batch size", id="neg-size"),
    ],
)
@pytest.mark.parametrize("how", HOW)
def test_framing_error_after_identical_batches(bad: bytes, message: str, how: str) -> None:
    good = identical(100)
    wire = stream_header(True) + batches_of(good, True) + bad + batches_of(identical(50), True)
    conn = ServerConnection()
    got: list[Rec] = []
    with pytest.raises(RemoteProtocolError, match=message):
        for piece in [*pieces(wire + GUARD, how)]:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, ev.PutBatch):
                    got.extend(event.block.to_records())
    assert got == good


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("cut", [0, 5, 11, 40])
def test_stream_ending_inside_identical_batches(how: str, cut: int) -> None:
    good = identical(100)
    wire = (stream_header(True) + batches_of(good, True))[: 12 + 70 * 80 + cut]
    conn = ServerConnection()
    got: list[Rec] = []
    with pytest.raises(RemoteProtocolError, match="closed in the middle"):
        for piece in [*pieces(wire, how), b""]:
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, ev.PutBatch):
                    got.extend(event.block.to_records())
    assert got == good[:70]
