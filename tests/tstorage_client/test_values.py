"""Keys, records, responses, payload types and timestamps: the plain value types."""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct

import numpy as np
import pytest

from tests.tstorage_client import vectors as V
from tstorage_client import timestamp as ts
from tstorage_client.payload_type import (
    BytesPayloadType,
    NumpyPayloadType,
    StructPayloadType,
    TuplePayloadType,
    UnitPayloadType,
)
from tstorage_client.record import Key, Record, make_record
from tstorage_client.response import Response, ResponseAcq, ResponseGet, ResponseStatus


def test_key_defaults_and_validity() -> None:
    assert Key() == Key(-1, -1, -1, -1, -1)
    assert not Key().valid()
    assert Key(0).valid()
    assert Key(1, 2, 3, 4).acq == -1
    assert Key.bytes_count() == 32


def test_key_min_max_encodings() -> None:
    assert Key.min().to_bytes() == V.h(V.KEY_MIN_HEX)
    assert Key.max().to_bytes() == V.h(V.KEY_MAX_HEX)
    assert Key.min() == Key(0, -(2**63), -(2**31), -(2**63), -(2**63))


def test_key_partial_encodings() -> None:
    k = Key(1, 2, 3, 4, 5)
    assert k.to_bytes(with_acq=False) == struct.pack("<iqiq", 1, 2, 3, 4)
    assert k.to_bytes(with_cid=False) == struct.pack("<qiqq", 2, 3, 4, 5)
    assert k.to_bytes(with_cid=False, with_acq=False) == struct.pack("<qiq", 2, 3, 4)


def test_key_from_bytes_rejects_invalid() -> None:
    assert Key.from_bytes(Key(-1, 2, 3, 4, 5).to_bytes()) is None
    assert Key.from_bytes(b"short") is None
    assert Key.from_bytes(b"xx" + Key(1, 2, 3, 4, 5).to_bytes(), 2) == Key(1, 2, 3, 4, 5)


def test_key_out_of_range_raises() -> None:
    with pytest.raises(struct.error):
        Key(2**31, 0, 0, 0, 0).to_bytes()


def test_ordering_and_hashing() -> None:
    assert Key(0, 5) < Key(1, 0)
    assert sorted([Record(Key(2), 1), Record(Key(1), 2)]) == [Record(Key(1), 2), Record(Key(2), 1)]
    assert len({Record(Key(1), 1), Record(Key(1), 1)}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        Key().cid = 3  # type: ignore[misc]
    assert dataclasses.replace(Key.max(), acq=0).acq == 0


def test_make_record_equals_constructor() -> None:
    fast = make_record(1, 2, 3, 4, 5, "v")
    slow = Record(Key(1, 2, 3, 4, 5), "v")
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert type(fast.key) is Key


def test_responses() -> None:
    assert ResponseStatus.OK.is_ok() and bool(ResponseStatus.OK)
    assert not ResponseStatus.ERROR and not ResponseStatus.NO_MEMORY.is_ok()
    assert [s.value for s in ResponseStatus] == [0, -1, 128, 129, 130, 131]
    assert Response(ResponseStatus.OK) and not Response(ResponseStatus.DISCONNECTED)
    assert ResponseAcq(ResponseStatus.OK, 5) == ResponseAcq(ResponseStatus.OK, 5)
    assert ResponseAcq(ResponseStatus.ERROR).acq == -1
    assert ResponseGet(ResponseStatus.OK).data == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        Response(ResponseStatus.OK).status = ResponseStatus.ERROR  # type: ignore[misc]


def test_payload_types() -> None:
    assert StructPayloadType[int]("<i").from_bytes(b"\x01\x00\x00\x00") == 1
    assert StructPayloadType[int]("<i").from_bytes(b"\x01") is None
    assert TuplePayloadType("<ih").to_bytes((1, 2)) == struct.pack("<ih", 1, 2)
    assert UnitPayloadType().to_bytes(123) == b"" and UnitPayloadType().from_bytes(b"xyz") == ()
    assert BytesPayloadType().from_bytes(memoryview(b"ab")) == b"ab"  # type: ignore[arg-type]


def test_numpy_payload_dtypes() -> None:
    pt = NumpyPayloadType(np.int32)
    assert pt.parsing_dtype.names == ("_size", "cid", "mid", "moid", "cap", "acq", "v0")
    assert pt.parsing_dtype.itemsize == 40
    assert pt.serializer_dtype_no_acq.itemsize == 28
    assert pt.serializer_dtype_with_acq.itemsize == 36
    assert pt.record_dtype.names == ("cid", "mid", "moid", "cap", "acq", "v0")
    assert NumpyPayloadType("i,i,d").payload_dtype.names == ("f0", "f1", "f2")
    assert NumpyPayloadType(None).parsing_dtype.itemsize == 36
    assert NumpyPayloadType([("a", "<i2")]).parsing_dtype.itemsize == 38
    values = np.arange(3, dtype=np.int32)
    decoded = pt.from_bytes(pt.to_bytes(values))
    assert decoded is not None and (decoded["v0"] == values).all()
    assert pt.from_bytes(b"abc") is None


@pytest.mark.parametrize(
    ("tstorage_ns", "iso"),
    [
        (0, "2001-01-01T00:00:00+00:00"),
        (492438840000000000, "2016-08-09T12:34:00+00:00"),
        (760000000000000000, "2025-01-31T07:06:40+00:00"),
        (765462944303038001, "2025-04-04T12:35:44.303038+00:00"),
    ],
)
def test_timestamp_worked_numbers(tstorage_ns: int, iso: str) -> None:
    t = ts.Tstoragedatetime.from_tstorage_ns(tstorage_ns)
    assert t.datetime.isoformat() == iso
    assert t.to_tstorage_ns() == tstorage_ns


def test_the_epoch_constants_name_one_instant() -> None:
    # the gateway and the embedded server take both from here
    assert ts.EPOCH.isoformat() == "2001-01-01T00:00:00+00:00"
    assert ts.EPOCH.timestamp() == ts.EPOCH_OFFSET_S == ts.EPOCH_OFFSET_NS // 10**9


def test_timestamp_conversions() -> None:
    assert ts.to_unix(0) == 978307200
    assert ts.from_unix_ns(978307432100000000) == 232100000000
    assert ts.to_unix(978307200.14) == pytest.approx(1956614400.14)
    assert ts.to_unix_ns(ts.from_unix_ns(1742240105369765237)) == 1742240105369765237
    minus_one = ts.Tstoragedatetime.from_tstorage_ns(-1)
    assert minus_one.datetime == dt.datetime(
        2000, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc
    )
    assert minus_one.nanoseconds == 999
    assert minus_one.to_tstorage_ns() == -1  # exact also before the epochs
    early = ts.Tstoragedatetime.from_unix_ns(-1_500_000_001)
    assert early.to_unix_ns() == -1_500_000_001
    assert abs(ts.now_ns() - ts.from_unix_ns(__import__("time").time_ns())) < 10**9
    assert ts.Tstoragedatetime.from_unix(1.5).to_unix() == 1.5
