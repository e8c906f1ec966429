"""Server role: the state machine of one connection (requests in, responses out)."""

from __future__ import annotations

import struct

from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import (
    NEED_DATA,
    AcqResult,
    EndOfStream,
    ErrorResponse,
    Event,
    GetAcqRequest,
    GetEnd,
    GetRecords,
    GetRequest,
    GetStart,
    NeedData,
    PutBatch,
    PutEnd,
    PutRequest,
    PutResult,
)
from ..record import Key
from .connection import _Connection, _State
from .get_encode import encode_get_records
from .put_decode import decode_put_records
from .put_runs import _MIN_RUN_WINDOW, RUN_WINDOW_BYTES, RunStop, walk_put_run
from .wire import (
    _TERMINATOR,
    _ZERO8,
    ACQ_PAIR,
    CMD_GET,
    CMD_GET_ACQ,
    CMD_PUT,
    CMD_PUTA,
    DEFAULT_MAX_BUFFER_SIZE,
    HEADER,
    INT64,
    KEY,
    KEY_BYTES,
    KEY_RANGE_BYTES,
)


class ServerConnection(_Connection):
    """Server side of one TStorage connection: decodes requests, encodes responses.

    Args:
        max_buffer_size: Most bytes buffered without a complete record/header; more
            raises :class:`~tstorage_client.errors.RemoteProtocolError`. Must exceed the
            largest record (32 MiB + 32 bytes).
    """

    def __init__(self, max_buffer_size: int | None = DEFAULT_MAX_BUFFER_SIZE) -> None:
        super().__init__(max_buffer_size)
        self._skip = 0
        self._cmd = 0
        self._with_acq = False
        self._cid = 0
        self._batch_left = 0
        self._large = False  # the current batch goes through decode_put_records
        self._window = _MIN_RUN_WINDOW  # bytes scanned per walk over small batches
        self._deferred: RemoteProtocolError | None = None  # raised after the records before it
        self._request: type[Event] | None = None  # kind of the request being served
        self._get_started = False

    def next_event(self) -> Event | NeedData:
        """The next request event, or :data:`NEED_DATA`.

        Raises:
            RemoteProtocolError: The client broke the protocol (raised again on every
                later call); answer with :meth:`send_error` and close.
        """
        if self._error is not None:
            raise self._stored_error()
        try:
            event = self._next()
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        if event is NEED_DATA and self._eof:
            if self._state is _State.IDLE and not self._buf:
                self._state = _State.CLOSED
                return EndOfStream()
            if self._state is _State.CLOSED:
                return EndOfStream()
            raise self._fail(RemoteProtocolError("connection closed in the middle of a request"))
        return event

    def _next(self) -> Event | NeedData:
        buf = self._buf
        while True:
            state = self._state
            if state is _State.BATCH_BODY and self._large:
                if len(buf) < self._need:
                    return NEED_DATA
                body = buf.peek(self._batch_left)
                block, used, need = decode_put_records(
                    body, self._cid, self._with_acq, self._batch_left
                )
                if block is None:
                    self._need = need
                    return NEED_DATA
                self._need = 0
                buf.skip(used)
                buf.commit()
                self._batch_left -= used
                if self._batch_left == 0:
                    self._state = _State.BATCH_HEADER
                    self._large = False
                return PutBatch(block)
            if state is _State.PUT_GUARD:
                if self._deferred is not None:
                    raise self._take_deferred()
                return self._end_put()
            if state is _State.BATCH_BODY or state is _State.BATCH_HEADER:
                if self._deferred is not None:
                    raise self._take_deferred()
                if len(buf) < self._need:
                    return NEED_DATA
                buffered = len(buf)
                raw = buf.peek(max(self._window, self._need))
                run = walk_put_run(raw, self._cid, self._with_acq, self._batch_left)
                buf.skip(run.consumed)
                buf.commit()
                self._cid = run.cid
                self._batch_left = run.batch_left
                self._state = _State.BATCH_BODY if run.batch_left else _State.BATCH_HEADER
                self._need = 0
                stop = run.stop
                if stop is RunStop.NEED_DATA:
                    self._need = run.need
                    if len(raw) < buffered:  # the window ended before the buffer: widen it
                        self._window = min(2 * self._window, RUN_WINDOW_BYTES)
                elif stop is RunStop.LARGE_BATCH:
                    self._large = True
                    self._window = _MIN_RUN_WINDOW
                if run.error is not None:
                    if run.block is None:
                        raise run.error
                    self._deferred = run.error  # records before the error come first
                if run.block is not None:
                    # A small PUT ends right after its records: no second walk to find that.
                    if stop is RunStop.GUARD:
                        self._state = _State.PUT_GUARD
                    return PutBatch(run.block)
                if stop is RunStop.GUARD:
                    return self._end_put()
                continue
            if state is _State.IDLE:
                header = self._header()
                if header is None:
                    return NEED_DATA
                buf.commit()
                cmd, size = header
                self._cmd = cmd
                if cmd in (CMD_GET, CMD_GET_ACQ):
                    self._request = GetRequest if cmd == CMD_GET else GetAcqRequest
                    if size < KEY_RANGE_BYTES:
                        raise RemoteProtocolError(f"GET/GET_ACQ header size {size} < 64")
                    self._skip = size - KEY_RANGE_BYTES
                    self._state = _State.KEYS
                    continue
                if cmd in (CMD_PUT, CMD_PUTA):
                    self._request = PutRequest
                    self._with_acq = cmd == CMD_PUTA
                    self._skip = size
                    self._state = _State.PUT_SKIP
                    return PutRequest(self._with_acq)
                self._request = None
                raise RemoteProtocolError(f"unknown command {cmd}")
            if state is _State.KEYS or state is _State.PUT_SKIP:
                if self._skip:
                    self._skip -= buf.skip(self._skip)
                    buf.commit()
                    if self._skip:
                        return NEED_DATA
                if state is _State.PUT_SKIP:
                    self._state = _State.BATCH_HEADER
                    continue
                keys_raw = buf.consume_exactly(KEY_RANGE_BYTES)
                if keys_raw is None:
                    return NEED_DATA
                buf.commit()
                kmin = Key(*KEY.unpack_from(keys_raw, 0))
                kmax = Key(*KEY.unpack_from(keys_raw, KEY_BYTES))
                self._state = _State.IDLE
                self._get_started = False
                if self._cmd == CMD_GET:
                    return GetRequest(kmin, kmax)
                return GetAcqRequest(kmin, kmax)
            if state is _State.CLOSED:
                return NEED_DATA
            raise RemoteProtocolError(f"unexpected decoder state {state}")  # pragma: no cover

    def _take_deferred(self) -> RemoteProtocolError:
        error, self._deferred = self._deferred, None
        assert error is not None
        return error

    def _end_put(self) -> PutEnd:
        """Consume the end guard the buffer starts with; the PUT/PUTA request is complete."""
        self._buf.skip(4)
        self._buf.commit()
        self._state = _State.IDLE
        self._request = None
        self._window = _MIN_RUN_WINDOW
        return PutEnd()

    def send(self, event: Event) -> bytes:
        """Bytes of one response event.

        Raises:
            LocalProtocolError: ``event`` is not a response event, or a value is out of range.
        """
        try:
            if isinstance(event, GetRecords):
                return encode_get_records(event.block)
            if isinstance(event, GetStart):
                self._get_started = True
                return HEADER.pack(event.status, 0)
            if isinstance(event, GetEnd):
                self._get_started = False
                self._request = None  # answered whole: an error now belongs to the next one
                if event.status == 0:
                    return _TERMINATOR + HEADER.pack(0, 8) + INT64.pack(event.acq)
                return _TERMINATOR + HEADER.pack(event.status, 0) + _ZERO8
            if isinstance(event, AcqResult):
                self._request = None
                if event.status == 0:
                    return HEADER.pack(0, 8) + INT64.pack(event.acq)
                return HEADER.pack(event.status, 0) + _ZERO8
            if isinstance(event, PutResult):
                if event.status == 0:
                    return HEADER.pack(0, 16) + ACQ_PAIR.pack(event.acq_min, event.acq_max)
                return HEADER.pack(event.status, 0)
            if isinstance(event, ErrorResponse):
                return HEADER.pack(event.status, 0)
        except struct.error as exc:
            raise LocalProtocolError(f"cannot encode {event!r}: {exc}") from exc
        raise LocalProtocolError(f"a server cannot send {type(event).__name__}")

    def send_error(self, status: int = -1) -> bytes:
        """The recommended error response for the request being served (then close).

        GET: ``(0,0)`` (unless already sent), terminator, ``(status,0)`` + 8 zero bytes;
        GET_ACQ: ``(status,0)`` + 8 zero bytes; PUT/PUTA and anything else: ``(status,0)``.
        """
        if self._request is GetRequest:
            start = b"" if self._get_started else HEADER.pack(0, 0)
            self._get_started = False
            return start + self.send(GetEnd(status=status))
        if self._request is GetAcqRequest:
            return self.send(AcqResult(status=status))
        return HEADER.pack(status, 0)
