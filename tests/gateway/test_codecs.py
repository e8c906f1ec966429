"""Payload codecs: round trips, exact bytes, and clear refusals."""

from __future__ import annotations

import json
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import BytesCodec, JsonCodec, StructCodec, UnitCodec, parse_codec
from gateway.errors import CodecError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_json_round_trip(value: object) -> None:
    codec = JsonCodec()
    assert codec.decode(codec.encode(value)) == value


@given(st.binary(max_size=256))
def test_bytes_round_trip_both_ways(payload: bytes) -> None:
    codec = BytesCodec()
    text = codec.decode(payload)
    assert isinstance(text, str)
    assert codec.encode(text) == payload
    assert json.loads(json.dumps(text)) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_struct_double_round_trip(x: float) -> None:
    codec = StructCodec("<d")
    assert codec.encode(x) == struct.pack("<d", x)
    assert codec.decode(codec.encode(x)) == x


@given(st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**16 - 1), st.booleans())
def test_struct_several_fields_is_an_array(a: int, b: int, flag: bool) -> None:
    codec = parse_codec("struct:<iH?")
    assert codec.decode(codec.encode([a, b, flag])) == [a, b, flag]


def test_struct_nan_reads_as_null_and_null_writes_nan() -> None:
    codec = StructCodec("<d")
    assert codec.decode(struct.pack("<d", math.nan)) is None
    assert codec.decode(struct.pack("<d", math.inf)) is None
    assert math.isnan(struct.unpack("<d", codec.encode(None))[0])


def test_struct_repeat_counts_expand() -> None:
    codec = StructCodec(">3f")
    assert codec.codes == "fff"
    assert codec.decode(codec.encode([1.0, 2.0, 0.5])) == [1.0, 2.0, 0.5]


@pytest.mark.parametrize(
    ("fmt", "value", "needle"),
    [
        ("<i", 2**31, "does not fit"),
        ("<i", 1.5, "needs an integer"),
        ("<i", True, "needs an integer"),
        ("<d", "1.0", "needs a number"),
        ("<?", 1, "true/false"),
        ("<dd", 1.0, "array of 2"),
        ("<dd", [1.0], "array of 2"),
    ],
)
def test_struct_refuses_values_it_cannot_encode(fmt: str, value: object, needle: str) -> None:
    with pytest.raises(CodecError, match=needle):
        StructCodec(fmt).encode(value)


def test_struct_refuses_payload_of_wrong_size() -> None:
    with pytest.raises(CodecError, match="not a struct:<d value"):
        StructCodec("<d").decode(b"\x00\x01")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("struct:d", "byte order"),
        ("struct:@d", "byte order"),
        ("struct:<", "no fields"),
        ("struct:<10s", "unsupported"),
        ("struct:<d3", "repeat count"),
        ("msgpack", "unknown codec"),
    ],
)
def test_parse_codec_rejects_bad_specs(spec: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_codec(spec)


def test_json_refuses_bad_payload_and_nan() -> None:
    with pytest.raises(CodecError, match="not UTF-8 JSON"):
        JsonCodec().decode(b"\xff{")
    with pytest.raises(CodecError, match="not a JSON value"):
        JsonCodec().encode(math.nan)


def test_bytes_refuses_non_base64() -> None:
    with pytest.raises(CodecError, match="base64"):
        BytesCodec().encode("not base64!")
    with pytest.raises(CodecError, match="base64 text"):
        BytesCodec().encode(12)


def test_unit_only_null() -> None:
    codec = UnitCodec()
    assert codec.encode(None) == b""
    assert codec.decode(b"") is None
    with pytest.raises(CodecError):
        codec.encode(0)
    with pytest.raises(CodecError):
        codec.decode(b"x")


def test_decode_block_matches_decode() -> None:
    codec = StructCodec("<dh")
    values = [[1.5, 2], [None, -3], [0.25, 7]]
    block = b"".join(codec.encode(v) for v in values)
    assert codec.decode_block(block, 3) == values
    with pytest.raises(CodecError, match="are not 2"):
        codec.decode_block(block, 2)
    assert UnitCodec().decode_block(b"", 2) == [None, None]
    with pytest.raises(CodecError, match="vary in size"):
        JsonCodec().decode_block(b"{}", 1)
