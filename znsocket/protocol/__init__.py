"""The sans-IO znsocket message codec, shared by the client and the server.

Nothing in this package opens a socket, imports socketio or reads the clock:

* :mod:`znsocket.protocol.payload` - the ``[args, kwargs]`` request and the ``{"data"}`` /
  ``{"error"}`` acknowledgement envelopes, and the client's error mapping.
* :mod:`znsocket.protocol.framing` - the flagged byte buffer (``0x00`` JSON, ``0x01`` +
  length + gzip) used by ``compressed_message`` and ``chunked_message``, the client's path
  selection and chunk splitting, and the bounded server-side decoder.
* :mod:`znsocket.protocol.chunks` - bounded reassembly of chunked messages.
* :mod:`znsocket.protocol.events` - the event names of the protocol.
* :mod:`znsocket.protocol.sio_packets` - the Engine.IO/Socket.IO packets we build and read
  ourselves: all of the client's, and the server's fast path.
"""

from znsocket.protocol.chunks import (
    AlreadyComplete,
    Assembled,
    Chunk,
    ChunkAssembler,
    ChunkLimits,
    Waiting,
    parse_chunk,
)
from znsocket.protocol.events import Event
from znsocket.protocol.framing import (
    CHUNK_METADATA_BYTES,
    DEFAULT_COMPRESSION_THRESHOLD_BYTES,
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_MESSAGE_SIZE_BYTES,
    FLAG_GZIP,
    FLAG_JSON,
    CallPlan,
    Path,
    decode_buffer,
    dumps_call,
    encode_buffer,
    plan_call,
    split_chunks,
)
from znsocket.protocol.payload import (
    CallPayload,
    Envelope,
    error_envelope,
    error_envelope_for,
    make_call_payload,
    parse_call_payload,
    raise_for_error,
    success_envelope,
    unwrap_data,
    unwrap_response,
)

__all__ = [
    "CHUNK_METADATA_BYTES",
    "DEFAULT_COMPRESSION_THRESHOLD_BYTES",
    "DEFAULT_MAX_DECODED_BYTES",
    "DEFAULT_MAX_MESSAGE_SIZE_BYTES",
    "FLAG_GZIP",
    "FLAG_JSON",
    "AlreadyComplete",
    "Assembled",
    "CallPayload",
    "CallPlan",
    "Chunk",
    "ChunkAssembler",
    "ChunkLimits",
    "Envelope",
    "Event",
    "Path",
    "Waiting",
    "decode_buffer",
    "dumps_call",
    "encode_buffer",
    "error_envelope",
    "error_envelope_for",
    "make_call_payload",
    "parse_call_payload",
    "parse_chunk",
    "plan_call",
    "raise_for_error",
    "split_chunks",
    "success_envelope",
    "unwrap_data",
    "unwrap_response",
]
