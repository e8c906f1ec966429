"""Element shapes: records as List/Dict elements and client JSON back to payloads."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import StructCodec
from gateway.elements import ElementShape, cap_to_time, time_to_cap
from gateway.errors import CodecError
from gateway.keymap import CAP_RANGE
from tstorage_client.timestamp import EPOCH_OFFSET_NS


def test_bare_value_is_upstream_json_text() -> None:
    shape = ElementShape(StructCodec("<dd"))
    assert shape.to_json(5, struct.pack("<dd", 1.5, 2.0)) == "[1.5, 2.0]"
    assert shape.parse("[1.5, 2.0]") == (None, struct.pack("<dd", 1.5, 2.0))


def test_timestamped_round_trip_unix_ns() -> None:
    shape = ElementShape(StructCodec("<d"), "timestamped", "unix_ns")
    text = shape.to_json(10, struct.pack("<d", 3.0))
    assert json.loads(text) == {"t": EPOCH_OFFSET_NS + 10, "v": 3.0}
    assert shape.parse(text) == (10, struct.pack("<d", 3.0))


def test_timestamped_without_t_means_now() -> None:
    shape = ElementShape(StructCodec("<d"), "timestamped")
    assert shape.parse('{"v": 1}') == (None, struct.pack("<d", 1.0))
    assert shape.parse('{"t": null, "v": 1}')[0] is None


@given(st.integers(CAP_RANGE[0], CAP_RANGE[1]), st.sampled_from(["unix_ns", "tstorage_ns"]))
def test_integer_time_units_are_exact(cap: int, unit: str) -> None:
    assert time_to_cap(cap_to_time(cap, unit), unit) == cap  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not json", "not JSON text"),
        ("[1, 2]", "look like"),
        ('{"t": 1, "v": 1, "x": 0}', "look like"),
        ('{"t": "yesterday", "v": 1}', "must be an integer"),
        ('{"t": true, "v": 1}', "must be an integer"),
        ('{"t": 99999999999999999999999, "v": 1}', "outside TStorage's time range"),
        ('{"t": 1, "v": "x"}', "needs a number"),
    ],
)
def test_timestamped_refusals(text: str, needle: str) -> None:
    shape = ElementShape(StructCodec("<d"), "timestamped")
    with pytest.raises(CodecError, match=needle):
        shape.parse(text)


def test_unix_seconds() -> None:
    shape = ElementShape(StructCodec("<d"), "timestamped", "unix_s")
    cap, _ = shape.parse('{"t": 978307201.5, "v": 0}')
    assert cap == 1_500_000_000
    with pytest.raises(CodecError, match="Unix seconds"):
        shape.parse('{"t": "x", "v": 0}')
