"""What both ends of a connection share: the decoder states and the receive buffer."""

from __future__ import annotations

import copy
import enum

from .._buffer import ReceiveBuffer
from ..errors import RemoteProtocolError
from .wire import HEADER, HEADER_BYTES


class _State(enum.Enum):
    IDLE = "idle"
    KEYS = "keys"  # server: after a GET/GET_ACQ header
    PUT_SKIP = "put-skip"  # server: skipping a PUT header's aux bytes
    BATCH_HEADER = "batch-header"
    BATCH_BODY = "batch-body"
    PUT_GUARD = "put-guard"  # server: the buffer starts with the PUT's end guard
    GET_HEADER = "get-header"  # client: waiting for the initial GET header
    GET_RECORDS = "get-records"
    GET_TRAILER = "get-trailer"
    ACQ = "acq"  # client: waiting for a GET_ACQ result
    PUT_RESULT = "put-result"  # client: waiting for a PUT result
    ERROR = "error"
    CLOSED = "closed"


class _Connection:
    def __init__(self, max_buffer_size: int | None) -> None:
        self._buf = ReceiveBuffer(max_buffer_size)
        self._eof = False
        self._state = _State.IDLE
        self._error: RemoteProtocolError | None = None
        self._need = 0  # bytes that must be buffered before decoding is worth trying

    @property
    def state(self) -> str:
        """Name of the decoder state (for diagnostics)."""
        return self._state.value

    @property
    def buffered(self) -> int:
        """Bytes received but not decoded yet."""
        return len(self._buf)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Hand received bytes to the decoder; ``b""`` means the peer closed (EOF).

        Problems (the buffer limit is exceeded) are reported by the next ``next_event``
        call, as :class:`~tstorage_client.errors.RemoteProtocolError`.
        """
        if not data:
            self._eof = True
            return
        if self._error is not None:
            return
        try:
            if self._eof:
                raise RemoteProtocolError("data received after EOF")
            self._buf.feed(data)
        except RemoteProtocolError as exc:
            self._fail(exc)

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        self._state = _State.ERROR
        # Kept without a traceback, and raised again as copies: a traceback holds frames
        # that hold this connection, a cycle that would keep its buffers until the
        # garbage collector runs.
        self._error = copy.copy(exc)
        return exc

    def _stored_error(self) -> RemoteProtocolError:
        assert self._error is not None
        return copy.copy(self._error)

    def _header(self) -> tuple[int, int] | None:
        raw = self._buf.consume_exactly(HEADER_BYTES)
        if raw is None:
            return None
        return HEADER.unpack(raw)
