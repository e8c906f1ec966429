"""The client's RFC 6455 frame codec, without sockets."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from znsocket.client.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    FrameError,
    FrameReader,
    encode_frame,
)
from znsocket.client.link import LinkClosedError
from znsocket.exceptions import ZnSocketError
from znsocket.protocol.sio_packets import SocketIOProtocol


def server_frame(opcode: int, payload: bytes, *, final: bool = True, rsv: int = 0) -> bytes:
    """A frame as a server sends it: unmasked (the reader's input)."""
    b0 = (0x80 if final else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return bytes((b0, 126)) + struct.pack("!H", n) + payload
    return bytes((b0, 127)) + struct.pack("!Q", n) + payload


def unmask_client_frame(frame: bytes) -> tuple[int, bytes]:
    """Decode a client frame by the RFC's rules (independent of the codec under test)."""
    assert frame[0] & 0x80 and frame[1] & 0x80  # final, masked
    n, pos = frame[1] & 0x7F, 2
    if n == 126:
        (n,), pos = struct.unpack_from("!H", frame, 2), 4
    elif n == 127:
        (n,), pos = struct.unpack_from("!Q", frame, 2), 10
    mask, body = frame[pos : pos + 4], frame[pos + 4 :]
    assert len(body) == n
    return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


def read_all(reader: FrameReader) -> list[tuple[int, bytes]]:
    out = []
    while (message := reader.next_message()) is not None:
        out.append(message)
    return out


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_client_frames_are_masked_with_the_right_length_form(size: int) -> None:
    payload = os.urandom(size)
    frame = encode_frame(OP_BINARY, payload)
    assert unmask_client_frame(frame) == (OP_BINARY, payload)
    assert encode_frame(OP_TEXT, b"hi", b"\x01\x02\x03\x04") == b"\x81\x82\x01\x02\x03\x04ik"


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6), st.integers(1, 50))
def test_messages_come_out_whole_however_the_bytes_are_split(
    payloads: list[bytes], step: int
) -> None:
    wire = b"".join(server_frame(OP_BINARY, p) for p in payloads)
    reader = FrameReader()
    got = []
    for i in range(0, len(wire), step):
        reader.feed(wire[i : i + step])
        got += read_all(reader)
    assert got == [(OP_BINARY, p) for p in payloads]
    assert reader.buffered == 0


def test_fragments_are_joined_and_control_frames_pass_between_them() -> None:
    reader = FrameReader()
    reader.feed(
        server_frame(OP_TEXT, b"42[", final=False)
        + server_frame(OP_PING, b"p")
        + server_frame(0, b'"a"', final=False)
        + server_frame(0, b"]")
        + server_frame(OP_CLOSE, b"\x03\xe8")
    )
    assert read_all(reader) == [(OP_PING, b"p"), (OP_TEXT, b'42["a"]'), (OP_CLOSE, b"\x03\xe8")]


def test_a_large_message_is_read_as_it_arrives() -> None:
    payload = os.urandom(3_000_000)
    wire = server_frame(OP_BINARY, payload)
    reader = FrameReader()
    for i in range(0, len(wire), 65536):
        assert reader.next_message() is None
        reader.feed(wire[i : i + 65536])
    assert reader.next_message() == (OP_BINARY, payload)


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"\x81\x81abcd" + b"x", "masked"),
        (server_frame(OP_TEXT, b"x", rsv=0x40), "reserved bits"),
        (server_frame(0x3, b"x"), "unknown opcode"),
        (server_frame(0, b"x"), "continuation frame without"),
        (server_frame(OP_PING, b"x", final=False), "control frames"),
        (server_frame(OP_PING, b"x" * 126), "control frames"),
        (server_frame(OP_TEXT, b"a", final=False) + server_frame(OP_TEXT, b"b"), "new message"),
    ],
)
def test_protocol_violations_are_refused(wire: bytes, error: str) -> None:
    reader = FrameReader()
    reader.feed(wire)
    with pytest.raises(FrameError, match=error):
        read_all(reader)


def test_every_client_side_error_is_a_znsocket_error() -> None:
    # a program catching ZnSocketError must catch a broken peer too
    reader = FrameReader()
    reader.feed(server_frame(OP_TEXT, b"x", rsv=0x40))
    with pytest.raises(ZnSocketError, match="reserved bits"):
        read_all(reader)
    with pytest.raises(ZnSocketError, match="empty Socket"):
        SocketIOProtocol().receive_text("4")
    assert issubclass(LinkClosedError, ZnSocketError)
    assert issubclass(LinkClosedError, ConnectionError)  # callers catching OSError still do


def test_an_oversized_message_is_refused_from_its_header() -> None:
    reader = FrameReader(max_message_bytes=1000)
    reader.feed(server_frame(OP_BINARY, b"x" * 1001)[:10])  # the header alone says it
    with pytest.raises(FrameError, match="longer than 1000"):
        reader.next_message()
