"""Flagged message buffers: the byte form of ``[args, kwargs]`` for large messages.

Layout (spec §4.1)::

    +------+---------------------------+-----------------------------------+
    | 0x00 | JSON text (UTF-8)                                             |
    +------+---------------------------+-----------------------------------+
    | 0x01 | uncompressed length (u32, | gzip stream of the JSON (level 6, |
    |      | big-endian)               | fast_gzip from 1 MiB)             |
    +------+---------------------------+-----------------------------------+
    | any other first byte: the whole buffer is JSON ("legacy" form)       |
    +----------------------------------------------------------------------+

The client sends a buffer as the binary ``data`` of a ``compressed_message`` event, or
cut into slices as ``chunked_message`` events. :func:`plan_call` makes the client's choice
between the plain, compressed and chunked paths; :func:`decode_buffer` is the server's
decoder, which bounds the decompressed size (a gzip bomb cannot exhaust memory).

Strategy: pure functions, no I/O; every decoding failure is a
:class:`~znsocket.exceptions.DeserializationError` whose text follows upstream's
``Failed to deserialize message: <detail>``.
"""

from __future__ import annotations

import enum
import gzip
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from znsocket.exceptions import DeserializationError
from znsocket.protocol import jsoncodec
from znsocket.protocol.payload import CallPayload, parse_call_payload

FLAG_JSON = 0x00
FLAG_GZIP = 0x01
GZIP_LEVEL = 6
#: JSON at least this long is compressed the fast way (:func:`fast_gzip`), where level 6
#: would spend most of a large call's time in the client's CPU.
FAST_GZIP_BYTES = 1 << 20
FAST_GZIP_LEVEL = 1
#: A sample that level 1 shrinks less than this (base64, already compressed or random
#: data) is left to Huffman coding alone: faster than level 1 there, and as small
#: (bench/code_choices.md).
_HUFFMAN_ONLY_ABOVE = 0.5
_SAMPLE_BYTES = 64 * 1024
_LENGTH = struct.Struct(">I")
HEADER_BYTES = 1 + _LENGTH.size
#: Bytes the client reserves for chunk metadata: chunk_size = max_message_size - this.
CHUNK_METADATA_BYTES = 250
DEFAULT_COMPRESSION_THRESHOLD_BYTES = 1024
DEFAULT_MAX_MESSAGE_SIZE_BYTES = 1_000_000
#: Upper bound on a decoded message (JSON bytes) unless the caller gives another.
DEFAULT_MAX_DECODED_BYTES = 256 * 1024 * 1024
#: Most output one decompression step produces before the server may serve others.
DECOMPRESS_STEP_BYTES = 1 << 20


def dumps_call(args: Any, kwargs: Any) -> bytes:
    """Serialise ``[args, kwargs]`` as the client does: compact JSON, ``default=str``.

    (:func:`~znsocket.protocol.jsoncodec.dumps_call`: orjson where it writes what
    ``json.dumps`` would; a plain ``Enum`` member is written as its value.)

    Args:
        args: Positional arguments (a list or tuple).
        kwargs: Keyword arguments (a dict).

    Returns:
        UTF-8 JSON bytes.
    """
    return jsoncodec.dumps_call([args, kwargs])


def fast_gzip(data: bytes) -> bytes:
    """A gzip member of ``data`` made for speed on megabytes (any gzip reader decodes it).

    A 64 KiB sample decides: text that level 1 compresses well (repetitive JSON) gets
    level 1; text it barely compresses gets Huffman coding only, no match search.
    """
    sample = data[:_SAMPLE_BYTES]
    ratio = len(zlib.compress(sample, FAST_GZIP_LEVEL)) / max(1, len(sample))
    strategy = zlib.Z_HUFFMAN_ONLY if ratio > _HUFFMAN_ONLY_ABOVE else zlib.Z_DEFAULT_STRATEGY
    packer = zlib.compressobj(FAST_GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 9, strategy)
    return packer.compress(data) + packer.flush()


def encode_buffer(
    json_bytes: bytes, *, compress: bool, compresslevel: int | None = GZIP_LEVEL
) -> bytes:
    """Flag a JSON message, gzip-compressing it when asked.

    Args:
        json_bytes: The JSON text of ``[args, kwargs]``.
        compress: Write the ``0x01`` gzip form instead of ``0x00`` + JSON.
        compresslevel: gzip level (upstream uses 6; any level decodes the same), or
            None for :func:`fast_gzip`.

    Returns:
        The flagged buffer.
    """
    if compress:
        packed = (
            fast_gzip(json_bytes)
            if compresslevel is None
            else gzip.compress(json_bytes, compresslevel=compresslevel, mtime=0)
        )
        return bytes([FLAG_GZIP]) + _LENGTH.pack(len(json_bytes)) + packed
    return bytes([FLAG_JSON]) + json_bytes


def _gunzip_bounded(data: bytes, limit: int, pause: Callable[[], None] | None = None) -> bytes:
    """Decompress one or more gzip members, refusing output beyond ``limit`` bytes.

    Output grows by at most :data:`DECOMPRESS_STEP_BYTES` per step and ``pause`` runs
    between steps, so a server can let other clients' requests run while a large (or
    hostile) message inflates, and a bomb is refused as soon as it passes ``limit``.
    """
    # pieces joined once at the end: a growing buffer would be copied on the way
    pieces: list[bytes] = []
    size = 0
    rest = data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = rest
        while not d.eof:
            piece = d.decompress(pending, min(limit + 1 - size, DECOMPRESS_STEP_BYTES))
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise DeserializationError(
                    f"Failed to deserialize message: decompressed size exceeds {limit} bytes"
                )
            pending = d.unconsumed_tail
            # a step can end with all input read and output still held by the decompressor
            if not piece and not pending:
                break
            if pause is not None:
                pause()
        if not d.eof:
            raise DeserializationError("Failed to deserialize message: truncated gzip stream")
        rest = d.unused_data
    return b"".join(pieces)


def decode_buffer(
    buffer: bytes,
    *,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    pause: Callable[[], None] | None = None,
) -> CallPayload:
    """Decode a flagged buffer into ``(args, kwargs)``.

    Args:
        buffer: The flagged buffer (whole message).
        max_decoded_bytes: Largest JSON text accepted after decompression.
        pause: Called between decompression steps (a server passes a yield to its other
            green threads); ``None`` decompresses without a break.

    Returns:
        The validated ``(args, kwargs)`` pair.

    Raises:
        DeserializationError: Empty buffer, bad gzip, size mismatch, oversized content,
            invalid JSON (nested deeper than
            :data:`~znsocket.protocol.jsoncodec.MAX_DEPTH` levels included) or a JSON value
            that is not ``[list, dict]``.
    """
    if not isinstance(buffer, (bytes, bytearray, memoryview)):
        raise DeserializationError("Failed to deserialize message: data is not binary")
    buffer = bytes(buffer)
    if not buffer:
        raise DeserializationError("Failed to deserialize message: Empty assembled message")
    flag = buffer[0]
    if flag == FLAG_GZIP:
        if len(buffer) < HEADER_BYTES:
            raise DeserializationError("Failed to deserialize message: truncated header")
        (expected,) = _LENGTH.unpack_from(buffer, 1)
        if expected > max_decoded_bytes:
            raise DeserializationError(
                f"Failed to deserialize message: declared size {expected} exceeds "
                f"{max_decoded_bytes} bytes"
            )
        try:
            text = _gunzip_bounded(buffer[HEADER_BYTES:], expected, pause)
        except zlib.error as exc:
            raise DeserializationError(f"Failed to deserialize message: {exc}") from exc
        if len(text) != expected:
            raise DeserializationError("Failed to deserialize message: Decompressed size mismatch")
    elif flag == FLAG_JSON:
        text = buffer[1:]
    else:
        text = buffer
    if len(text) > max_decoded_bytes:
        raise DeserializationError(
            f"Failed to deserialize message: size exceeds {max_decoded_bytes} bytes"
        )
    try:
        value = jsoncodec.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeserializationError(f"Failed to deserialize message: {exc}") from exc
    try:
        return parse_call_payload(value)
    except ValueError as exc:
        raise DeserializationError(f"Failed to deserialize message: {exc}") from exc


class Path(enum.Enum):
    """How the client transmits one call."""

    PLAIN = "plain"
    COMPRESSED = "compressed"
    CHUNKED = "chunked"


@dataclass(frozen=True)
class CallPlan:
    """The client's transmission plan for one call (see :func:`plan_call`).

    Attributes:
        path: Plain event, ``compressed_message`` or ``chunked_message``.
        buffer: The flagged buffer (unused on the plain path).
        json_bytes: Length of the JSON text before compression.
    """

    path: Path
    buffer: bytes
    json_bytes: int

    def chunks(self, max_message_size_bytes: int) -> list[bytes]:
        """Cut the buffer into the slices of the chunked path.

        Args:
            max_message_size_bytes: The client's message size limit.

        Raises:
            ValueError: If the limit leaves no room for data after the metadata reserve.
        """
        return split_chunks(self.buffer, max_message_size_bytes)


def plan_call(
    args: Any,
    kwargs: Any,
    *,
    max_message_size_bytes: int,
    enable_compression: bool = True,
    compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD_BYTES,
    compresslevel: int | None = None,
) -> CallPlan:
    """Choose how to send one call, exactly as the upstream client does (spec §4.2).

    The JSON is compressed when compression is on, the JSON is longer than the threshold
    and gzip makes it strictly smaller. A buffer longer than ``max_message_size_bytes`` is
    chunked; a compressed one goes as ``compressed_message``; otherwise the call is a plain
    event (the buffer is then discarded and the structured payload sent instead).

    Args:
        args: Positional arguments.
        kwargs: Keyword arguments.
        max_message_size_bytes: Largest message sent in one piece.
        enable_compression: Allow the gzip form.
        compression_threshold: Smallest JSON length considered for compression.
        compresslevel: gzip level; None: upstream's 6, or :func:`fast_gzip` for JSON of
            :data:`FAST_GZIP_BYTES` or more (every gzip reader decodes either).

    Returns:
        The plan.
    """
    raw = dumps_call(args, kwargs)
    buffer = encode_buffer(raw, compress=False)
    if enable_compression and len(raw) > compression_threshold:
        level = compresslevel
        if level is None and len(raw) < FAST_GZIP_BYTES:
            level = GZIP_LEVEL
        packed = encode_buffer(raw, compress=True, compresslevel=level)
        if len(packed) - HEADER_BYTES < len(raw):
            buffer = packed
    if len(buffer) > max_message_size_bytes:
        path = Path.CHUNKED
    elif buffer[0] == FLAG_GZIP:
        path = Path.COMPRESSED
    else:
        path = Path.PLAIN
    return CallPlan(path=path, buffer=buffer, json_bytes=len(raw))


def split_chunks(buffer: bytes, max_message_size_bytes: int) -> list[bytes]:
    """Cut a flagged buffer into consecutive slices of ``max_message_size - 250`` bytes.

    Args:
        buffer: The flagged buffer.
        max_message_size_bytes: The client's message size limit.

    Returns:
        The slices, in order (at least one).

    Raises:
        ValueError: If ``max_message_size_bytes`` is 250 or less.
    """
    chunk_size = max_message_size_bytes - CHUNK_METADATA_BYTES
    if chunk_size <= 0:
        raise ValueError(
            f"max_message_size_bytes must exceed {CHUNK_METADATA_BYTES} bytes to chunk messages"
        )
    return [buffer[i : i + chunk_size] for i in range(0, len(buffer), chunk_size)] or [b""]
