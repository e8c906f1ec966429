"""The flagged-buffer codec: vectors from the spec, path selection, bounded decoding."""

from __future__ import annotations

import base64
import gzip
import json
import os
import struct

import pytest

from znsocket.exceptions import DeserializationError
from znsocket.protocol import (
    FLAG_GZIP,
    FLAG_JSON,
    Path,
    decode_buffer,
    dumps_call,
    encode_buffer,
    plan_call,
    split_chunks,
)


def test_dumps_call_is_compact_json_with_str_fallback() -> None:
    assert dumps_call(("name", "Alice"), {}) == b'[["name","Alice"],{}]'
    assert dumps_call([], {"x": object}).startswith(b'[[],{"x":"<class')


def test_plain_flag_vector() -> None:
    buf = encode_buffer(b'[["k"],{}]', compress=False)
    assert buf == b'\x00[["k"],{}]'
    assert decode_buffer(buf) == (["k"], {})


def test_gzip_flag_vector_has_big_endian_length() -> None:
    raw = dumps_call(["k", "v" * 2000], {})
    buf = encode_buffer(raw, compress=True)
    assert buf[0] == FLAG_GZIP
    assert struct.unpack(">I", buf[1:5])[0] == len(raw)
    assert gzip.decompress(buf[5:]) == raw
    assert decode_buffer(buf) == (["k", "v" * 2000], {})


def test_upstream_style_gzip_is_accepted() -> None:
    # upstream compresses with the current mtime; the header field must not matter
    raw = b'[["a",1],{"mapping":{"f":"v"}}]'
    buf = b"\x01" + len(raw).to_bytes(4, "big") + gzip.compress(raw, compresslevel=6)
    assert decode_buffer(buf) == (["a", 1], {"mapping": {"f": "v"}})


def test_legacy_buffer_without_flag_is_json() -> None:
    assert decode_buffer(b'[["k"],{}]') == (["k"], {})


@pytest.mark.parametrize(
    ("buf", "detail"),
    [
        (b"", "Empty assembled message"),
        (b"\x01\x00\x00", "truncated header"),
        (b"\x01\x00\x00\x00\x05not gzip", "Failed to deserialize message"),
        (b"\x00{not json", "Failed to deserialize message"),
        (b'\x00{"a": 1}', "two-element list"),
        (b"\x00[1, {}]", "args"),
        (b"\x00[[], []]", "kwargs"),
        (b"\x00\xff\xfe", "Failed to deserialize message"),
    ],
)
def test_broken_buffers_raise_deserialization_error(buf: bytes, detail: str) -> None:
    with pytest.raises(DeserializationError, match=detail):
        decode_buffer(buf)


def test_size_mismatch_is_refused() -> None:
    raw = b'[["k"],{}]'
    buf = b"\x01" + (len(raw) + 3).to_bytes(4, "big") + gzip.compress(raw)
    with pytest.raises(DeserializationError, match="Decompressed size mismatch"):
        decode_buffer(buf)


def test_gzip_bomb_stops_at_declared_size() -> None:
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")
    assert len(bomb) < 100_000
    buf = b"\x01" + (10).to_bytes(4, "big") + bomb
    with pytest.raises(DeserializationError, match="exceeds 10 bytes"):
        decode_buffer(buf)


def test_declared_size_above_the_limit_is_refused_before_decompressing() -> None:
    buf = b"\x01" + (2_000_000).to_bytes(4, "big") + gzip.compress(b"[[],{}]")
    with pytest.raises(DeserializationError, match="exceeds 1000 bytes"):
        decode_buffer(buf, max_decoded_bytes=1000)


def test_plain_json_above_the_limit_is_refused() -> None:
    with pytest.raises(DeserializationError, match="exceeds"):
        decode_buffer(b"\x00" + dumps_call(["x" * 2000], {}), max_decoded_bytes=1000)


def test_binary_data_required() -> None:
    with pytest.raises(DeserializationError, match="not binary"):
        decode_buffer("[[],{}]")  # type: ignore[arg-type]


def test_plan_small_call_is_plain() -> None:
    plan = plan_call(["k", "v"], {}, max_message_size_bytes=1_000_000)
    assert plan.path is Path.PLAIN
    assert plan.buffer[0] == FLAG_JSON


def test_plan_compressible_call_above_threshold_is_compressed() -> None:
    plan = plan_call(["k", "a" * 5000], {}, max_message_size_bytes=1_000_000)
    assert plan.path is Path.COMPRESSED
    assert decode_buffer(plan.buffer) == (["k", "a" * 5000], {})


def test_plan_compressible_call_at_threshold_stays_plain() -> None:
    args = ["k", "a" * (1024 - len(dumps_call(["k", ""], {})))]
    assert len(dumps_call(args, {})) == 1024
    assert plan_call(args, {}, max_message_size_bytes=1_000_000).path is Path.PLAIN
    args[1] += "a"
    assert plan_call(args, {}, max_message_size_bytes=1_000_000).path is Path.COMPRESSED


def test_plan_compression_disabled() -> None:
    plan = plan_call(
        ["k", "a" * 5000], {}, max_message_size_bytes=1_000_000, enable_compression=False
    )
    assert plan.path is Path.PLAIN


def test_plan_large_call_is_chunked_and_slices_reassemble() -> None:
    import os

    payload = os.urandom(30_000).hex()
    plan = plan_call(["k", payload], {}, max_message_size_bytes=10_000)
    assert plan.path is Path.CHUNKED
    slices = plan.chunks(10_000)
    assert all(len(s) <= 10_000 - 250 for s in slices)
    assert b"".join(slices) == plan.buffer
    assert decode_buffer(b"".join(slices)) == (["k", payload], {})


def test_split_chunks_needs_room_for_metadata() -> None:
    with pytest.raises(ValueError):
        split_chunks(b"abc", 250)
    assert split_chunks(b"abcdef", 254) == [b"abcd", b"ef"]


def test_decoded_values_keep_json_types() -> None:
    args, kwargs = decode_buffer(b"\x00" + json.dumps([[1, 2.5, None, True], {"a": [1]}]).encode())
    assert args == [1, 2.5, None, True]
    assert kwargs == {"a": [1]}


def test_every_gzip_level_decodes() -> None:
    args = ["k", "abc" * 2000]
    for level in (1, 6, 9):
        plan = plan_call(args, {}, max_message_size_bytes=1_000_000, compresslevel=level)
        assert plan.path is Path.COMPRESSED
        assert decode_buffer(plan.buffer) == (args, {})


@pytest.mark.parametrize(
    "value, most",
    [
        # base64 of random bytes: Huffman coding alone, about 3/4 of the size
        (base64.b64encode(os.urandom(1_200_000)).decode(), 0.78),
        # repetitive JSON: LZ77 still pays, far below Huffman's ratio
        ([{"name": f"item{i}", "tags": ["a", "b"]} for i in range(60_000)], 0.2),
    ],
)
def test_megabyte_calls_are_compressed_fast_and_decode_anywhere(value: object, most: float) -> None:
    args = ["k", "f", value]
    plan = plan_call(args, {}, max_message_size_bytes=100_000_000)
    assert plan.path is Path.COMPRESSED and plan.json_bytes >= 1 << 20
    packed = plan.buffer[5:]
    assert len(packed) <= most * plan.json_bytes
    # a plain gzip reader (upstream's server uses one) gets the JSON back
    assert json.loads(gzip.decompress(packed)) == [args, {}]
    assert decode_buffer(plan.buffer) == (args, {})


def test_decompression_pauses_between_steps_and_stops_at_the_limit() -> None:
    from znsocket.protocol.framing import DECOMPRESS_STEP_BYTES

    pauses: list[None] = []
    raw = json.dumps([["k", "v" * (3 * DECOMPRESS_STEP_BYTES)], {}]).encode()
    buffer = encode_buffer(raw, compress=True)
    assert decode_buffer(buffer, pause=lambda: pauses.append(None)) == (
        ["k", "v" * (3 * DECOMPRESS_STEP_BYTES)],
        {},
    )
    assert len(pauses) >= 3
    pauses.clear()
    bomb = b"\x01" + (len(raw) - 1).to_bytes(4, "big") + buffer[5:]
    with pytest.raises(DeserializationError, match=f"exceeds {len(raw) - 1} bytes"):
        decode_buffer(bomb, pause=lambda: pauses.append(None))
    assert len(pauses) <= 4  # refused once past the limit, not after inflating everything


def test_deep_nesting_is_a_deserialization_error() -> None:

    text = b'[["k",' + b"[" * 100_000 + b"]" * 100_000 + b"],{}]"
    for buffer in (b"\x00" + text, encode_buffer(text, compress=True)):
        with pytest.raises(DeserializationError, match="nested too deeply"):
            decode_buffer(buffer)
