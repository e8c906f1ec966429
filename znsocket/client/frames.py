"""RFC 6455 frames as a websocket client writes and reads them, without any I/O.

Why not websocket-client's own framing (it still does the opening handshake, TLS and
proxies): it reads every message with two ``recv`` calls (header, then payload) and
builds several objects per frame, a large share of a small znsocket call's client CPU
(``bench/znsocket.md``). Here a message costs one ``recv`` of up to 64 KiB and a few
slices.

:func:`encode_frame` builds one masked frame (clients must mask, §5.3).
:class:`FrameReader` is fed the bytes read from the server and hands out whole messages:
data messages reassembled from their fragments, control frames as they come (they may
arrive between the fragments of a message, §5.4).
"""

from __future__ import annotations

import os
import struct

from znsocket.exceptions import ZnSocketError
from znsocket.protocol.masking import xor_mask

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameError",
    "FrameReader",
    "encode_frame",
]

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_DATA_OPS = (OP_TEXT, OP_BINARY)
_CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)
_LEN16 = struct.Struct("!H")
_LEN64 = struct.Struct("!Q")
# Compacting the buffer costs a copy of what is left; do it once this much was consumed.
_COMPACT_BYTES = 1 << 16


class FrameError(ZnSocketError):
    """The server sent something that is not a valid RFC 6455 frame sequence."""


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final (unfragmented) frame carrying ``payload``, masked with ``mask``.

    Args:
        opcode: ``OP_TEXT``, ``OP_BINARY`` or a control opcode.
        payload: The message bytes (UTF-8 for text).
        mask: Four masking bytes; default: fresh random ones, as RFC 6455 requires.
    """
    if mask is None:
        mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + _LEN16.pack(size)
    else:
        head = bytes((0x80 | opcode, 0xFF)) + _LEN64.pack(size)
    return head + mask + xor_mask(payload, mask)


class FrameReader:
    """Turns bytes from the server into messages (sans-IO).

    Args:
        max_message_bytes: Largest data message accepted (``None``: no limit); a longer
            one raises :class:`FrameError` as soon as its header says so.
    """

    def __init__(self, max_message_bytes: int | None = None) -> None:
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._pos = 0
        self._parts: list[bytes] = []  # fragments of the message being reassembled
        self._parts_size = 0
        self._opcode = 0  # opcode of that message

    @property
    def buffered(self) -> int:
        """Bytes received and not handed out yet (possibly a partial frame)."""
        return len(self._buf) - self._pos + self._parts_size

    def feed(self, data: bytes) -> None:
        """Append bytes read from the socket."""
        if self._pos == len(self._buf):
            self._buf = bytearray(data)
            self._pos = 0
            return
        if self._pos >= _COMPACT_BYTES:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_message(self) -> tuple[int, bytes] | None:
        """The next whole message as ``(opcode, payload)``, or ``None`` if more bytes are needed.

        Data messages come with ``OP_TEXT``/``OP_BINARY`` (fragments joined); control
        frames with their own opcode.

        Raises:
            FrameError: Masked or reserved-bit frames, unknown opcodes, fragmented or
                oversized control frames, a continuation without a start, a message
                longer than ``max_message_bytes``.
        """
        while True:
            buf, pos = self._buf, self._pos
            avail = len(buf) - pos
            if avail < 2:
                return None
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80:
                raise FrameError("the server masked a frame")
            if b0 & 0x70:
                raise FrameError("reserved bits set (no extension was negotiated)")
            opcode, final, size = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
            head = 2
            if size == 126:
                if avail < 4:
                    return None
                (size,) = _LEN16.unpack_from(buf, pos + 2)
                head = 4
            elif size == 127:
                if avail < 10:
                    return None
                (size,) = _LEN64.unpack_from(buf, pos + 2)
                head = 10
            if opcode in _CONTROL_OPS:
                if not final or size > 125:
                    raise FrameError("control frames must be final and at most 125 bytes")
            elif opcode in _DATA_OPS:
                if self._parts:
                    raise FrameError("a new message started inside a fragmented one")
            elif opcode != OP_CONTINUATION:
                raise FrameError(f"unknown opcode {opcode:#x}")
            elif not self._parts and not self._opcode:
                raise FrameError("continuation frame without a message to continue")
            limit = self.max_message_bytes
            if limit is not None and opcode not in _CONTROL_OPS and self._parts_size + size > limit:
                raise FrameError(f"message longer than {limit} bytes")
            if avail < head + size:
                return None
            start = pos + head
            with memoryview(buf) as view:
                payload = bytes(view[start : start + size])
            self._pos = start + size
            if opcode in _CONTROL_OPS:
                return opcode, payload
            if opcode != OP_CONTINUATION:
                self._opcode = opcode
            if final and not self._parts:
                message_op, self._opcode = self._opcode, 0
                return message_op, payload
            self._parts.append(payload)
            self._parts_size += size
            if final:
                message = b"".join(self._parts)
                message_op, self._opcode = self._opcode, 0
                self._parts, self._parts_size = [], 0
                return message_op, message
