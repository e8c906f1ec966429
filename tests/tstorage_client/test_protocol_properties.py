"""Property tests of the protocol core: round trips and the fuzz invariant."""

from __future__ import annotations

import ast
import struct
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tstorage_client import events as ev
from tstorage_client.block import RecordBlock
from tstorage_client.errors import RemoteProtocolError
from tstorage_client.payload_type import BytesPayloadType, StructPayloadType, TuplePayloadType
from tstorage_client.protocol import (
    NEED_DATA,
    ClientConnection,
    ObjectRecordDecoder,
    ServerConnection,
    encode_put_batches,
    encode_put_block,
)
from tstorage_client.record import Key, Record

i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
cids = st.integers(0, 2**31 - 1)
keys = st.builds(Key, cids, i64, i32, i64, i64)
payloads = st.binary(max_size=40)


@given(keys)
def test_key_round_trip(key: Key) -> None:
    assert Key.from_bytes(key.to_bytes()) == key
    assert len(key.to_bytes(with_cid=False, with_acq=False)) == 20


@given(
    st.lists(st.tuples(st.integers(0, 5), keys, payloads), max_size=30),
    st.booleans(),
    st.integers(1, 300),
    st.sampled_from([1, 7, 1000]),
)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
def test_put_stream_encode_then_server_decode(
    rows: list[tuple[int, Key, bytes]], with_acq: bool, max_batch: int, chunk: int
) -> None:
    records = [Record(Key(c, k.mid, k.moid, k.cap, k.acq), p) for c, k, p in rows]
    client = ClientConnection()
    wire = client.send(ev.PutRequest(with_acq))
    wire += b"".join(encode_put_batches(records, with_acq, bytes, max_batch_size=max_batch))
    wire += client.send(ev.PutEnd())
    server = ServerConnection()
    got: list[tuple[Key, bytes]] = []
    events: list[Any] = []
    for i in range(0, len(wire), chunk):
        server.receive_data(wire[i : i + chunk])
        while (e := server.next_event()) is not NEED_DATA:
            events.append(e)
            if isinstance(e, ev.PutBatch):
                got.extend(e.block.to_records())
    assert events[0] == ev.PutRequest(with_acq) and events[-1] == ev.PutEnd()
    # Expected order: grouped by cid in order of first occurrence.
    order: dict[int, list[Record[bytes]]] = {}
    for r in records:
        order.setdefault(r.key.cid, []).append(r)
    expected = [
        (r.key if with_acq else Key(r.key.cid, r.key.mid, r.key.moid, r.key.cap, -1), r.value)
        for group in order.values()
        for r in group
    ]
    assert got == expected
    # The columnar encoder produces the same stream as the object encoder.
    block = RecordBlock.from_records([r.key for r in records], [r.value for r in records])
    assert b"".join(encode_put_block(block, with_acq, max_batch)) == b"".join(
        encode_put_batches(records, with_acq, bytes, max_batch_size=max_batch)
    )


@given(st.lists(st.tuples(keys, payloads), max_size=30), i64, st.sampled_from([1, 5, 64, 4096]))
@settings(max_examples=150)
def test_get_response_server_encode_then_client_decode(
    rows: list[tuple[Key, bytes]], acq: int, chunk: int
) -> None:
    server = ServerConnection()
    block = RecordBlock.from_records([k for k, _ in rows], [p for _, p in rows])
    wire = (
        server.send(ev.GetStart()) + server.send(ev.GetRecords(block)) + server.send(ev.GetEnd(acq))
    )
    client = ClientConnection(ObjectRecordDecoder(BytesPayloadType()))
    client.send(ev.GetRequest(Key.min(), Key.max()))
    records: list[Record[bytes]] = []
    end = None
    for i in range(0, len(wire), chunk):
        client.receive_data(wire[i : i + chunk])
        while (e := client.next_event()) is not NEED_DATA:
            if isinstance(e, ev.RecordsBatch):
                records.extend(e.records)
            elif isinstance(e, ev.GetEnd):
                end = e
    assert records == [Record(k, p) for k, p in rows]
    assert end == ev.GetEnd(acq, 0)


@given(
    st.tuples(st.integers(-(2**31), 2**31 - 1), st.floats(allow_nan=False), st.integers(-128, 127))
)
def test_tuple_payload_round_trip(value: tuple[int, float, int]) -> None:
    pt = TuplePayloadType("<idb")
    assert pt.from_bytes(pt.to_bytes(value)) == value
    assert pt.from_bytes(pt.to_bytes(value) + b"x") is None


@given(i64)
def test_struct_payload_round_trip(value: int) -> None:
    pt = StructPayloadType[int]("<q")
    assert pt.from_bytes(pt.to_bytes(value)) == value
    assert pt.from_bytes(struct.pack("<i", 1)) is None


@given(st.binary(max_size=300), st.sampled_from([1, 3, 50, 1000]))
@settings(max_examples=400)
def test_fuzz_server_decoder(data: bytes, chunk: int) -> None:
    """Random bytes give events or RemoteProtocolError, nothing else."""
    conn = ServerConnection(max_buffer_size=10_000)
    try:
        for i in range(0, len(data), chunk):
            conn.receive_data(data[i : i + chunk])
            while conn.next_event() is not NEED_DATA:
                pass
        conn.receive_data(b"")
        for _ in range(1000):
            if isinstance(conn.next_event(), ev.EndOfStream):
                break
    except RemoteProtocolError:
        pass


@given(st.binary(max_size=300), st.sampled_from([1, 7, 1000]))
@settings(max_examples=300)
def test_fuzz_server_decoder_after_put_header(data: bytes, chunk: int) -> None:
    """Inside a PUT stream (the columnar decoder), random bytes still only give events or
    RemoteProtocolError."""
    conn = ServerConnection(max_buffer_size=10_000)
    stream = struct.pack("<iQ", 5, 0) + data
    try:
        for i in range(0, len(stream), chunk):
            conn.receive_data(stream[i : i + chunk])
            while conn.next_event() is not NEED_DATA:
                pass
    except RemoteProtocolError:
        pass


CLIENT_ROOT = Path(__file__).resolve().parents[2] / "tstorage_client"
SANS_IO = [
    *(f"protocol/{p.name}" for p in (CLIENT_ROOT / "protocol").glob("*.py")),
    "events.py",
    "_buffer.py",
    "record.py",
    "block.py",
    "payload_type.py",
    "errors.py",
]
# gc too: switching the collector is a process-wide decision, the I/O layer's to make
FORBIDDEN = {"socket", "asyncio", "select", "threading", "time", "ssl", "selectors", "gc"}


def test_core_modules_import_no_io() -> None:
    root = CLIENT_ROOT
    assert len(SANS_IO) > 7  # the protocol package's modules were found
    for name in SANS_IO:
        tree = ast.parse((root / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = {node.module.split(".")[0]}
            else:
                continue
            assert not mods & FORBIDDEN, f"{name} imports {mods & FORBIDDEN}"


@given(
    st.lists(
        st.tuples(st.integers(-2, 4), i64, i32, i64, i64, st.integers(-(2**31), 2**31 - 1)),
        max_size=40,
    ),
    st.booleans(),
    st.booleans(),
    st.integers(1, 400),
)
@settings(max_examples=150, deadline=None)
def test_numpy_put_stream_equals_object_stream(
    rows: list[tuple[int, int, int, int, int, int]],
    with_acq: bool,
    skip_invalid: bool,
    max_batch: int,
) -> None:
    """The numpy PUT path sends exactly the bytes the object path sends, invalid cids included."""
    import numpy as np

    from tstorage_client._numpy_path import numpy_put_batches
    from tstorage_client.payload_type import NumpyPayloadType

    pt = NumpyPayloadType(np.int32)
    arr = (
        np.array([(0, *row) for row in rows], dtype=pt.parsing_dtype)
        if rows
        else np.zeros(0, pt.parsing_dtype)
    )
    records = [Record(Key(c, m, o, p, a), struct.pack("<i", v)) for c, m, o, p, a, v in rows]
    object_wire = b"".join(
        encode_put_batches(
            records, with_acq, bytes, max_batch_size=max_batch, skip_invalid=skip_invalid
        )
    )
    numpy_wire = b"".join(numpy_put_batches(arr, with_acq, pt, max_batch, skip_invalid))
    assert numpy_wire == object_wire


@given(
    st.binary(max_size=300), st.sampled_from(["get", "acq", "put"]), st.sampled_from([1, 5, 1000])
)
@settings(max_examples=300)
def test_fuzz_client_decoder(data: bytes, kind: str, chunk: int) -> None:
    """Random response bytes give events or a TStorage error, nothing else."""
    from tstorage_client.errors import MemoryLimitExceeded

    conn = ClientConnection(ObjectRecordDecoder(StructPayloadType[int]("<i")))
    conn.max_record_bytes = 200
    request = {
        "get": ev.GetRequest(Key.min(), Key.max()),
        "acq": ev.GetAcqRequest(Key.min(), Key.max()),
        "put": ev.PutRequest(False),
    }[kind]
    conn.send(request)
    try:
        for i in range(0, len(data), chunk):
            conn.receive_data(data[i : i + chunk])
            while conn.next_event() is not NEED_DATA:
                pass
    except (RemoteProtocolError, MemoryLimitExceeded):
        pass
