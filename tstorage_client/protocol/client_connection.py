"""Client role: the state machine of one connection (requests out, responses in)."""

from __future__ import annotations

from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from ..events import (
    NEED_DATA,
    AcqResult,
    Event,
    GetAcqRequest,
    GetEnd,
    GetRequest,
    GetStart,
    NeedData,
    PutBatch,
    PutEnd,
    PutRequest,
    PutResult,
    RecordsBatch,
)
from .connection import _Connection, _State
from .get_decode import RecordDecoder
from .put_encode import encode_put_block
from .wire import (
    _GUARD,
    ACQ_PAIR,
    CMD_GET,
    CMD_GET_ACQ,
    CMD_PUT,
    CMD_PUTA,
    HEADER,
    INT32,
    INT64,
    MAX_RESPONSE_HEADER_EXTRA,
    RECV_BYTES_MAX,
    RECV_BYTES_MIN,
    _np,
    key_range_bytes,
)


class ClientConnection(_Connection):
    """Client side of one TStorage connection: encodes requests, decodes responses.

    Args:
        decoder: How GET records become items (objects or numpy arrays).
        max_buffer_size: Most bytes buffered without a complete record/header.
    """

    def __init__(
        self, decoder: RecordDecoder[Any] | None = None, max_buffer_size: int | None = None
    ) -> None:
        super().__init__(max_buffer_size)
        self.decoder = decoder
        #: Largest ``4 + n`` a GET record may have (the memory limit), or None.
        self.max_record_bytes: int | None = None
        #: Size of the next :meth:`receive_buffer` (grows while the peer fills it).
        self.recv_size = RECV_BYTES_MIN
        self._with_acq = False
        # Fixed-size GET records are received in place, into a numpy uint8 region whose
        # whole records become the result arrays (no copy after the socket's). The region
        # holds records from its start; _checked bytes of them are validated.
        self._region: Any = None
        self._filled = 0
        self._checked = 0
        self._region_size = RECV_BYTES_MIN
        self._scratch = bytearray()
        self._lent = 0  # size of the memory lent by the last receive_buffer (0: none)
        self._lent_region = False

    def send(self, event: Event) -> bytes:
        """Bytes of a request event and expect its response.

        ``PutBatch`` events are encoded with :func:`encode_put_block`; object records use
        :func:`encode_put_batches` directly between ``PutRequest`` and ``PutEnd``.

        Raises:
            LocalProtocolError: A key is out of range or the event is not a request.
        """
        if isinstance(event, GetRequest):
            self._expect(_State.GET_HEADER)
            return key_range_bytes(CMD_GET, event.key_min, event.key_max)
        if isinstance(event, GetAcqRequest):
            self._expect(_State.ACQ)
            return key_range_bytes(CMD_GET_ACQ, event.key_min, event.key_max)
        if isinstance(event, PutRequest):
            self._with_acq = event.with_acq
            self._expect(_State.PUT_RESULT)
            return HEADER.pack(CMD_PUTA if event.with_acq else CMD_PUT, 0)
        if isinstance(event, PutBatch):
            return b"".join(encode_put_block(event.block, self._with_acq))
        if isinstance(event, PutEnd):
            return _GUARD
        raise LocalProtocolError(f"a client cannot send {type(event).__name__}")

    def receive_buffer(self, max_bytes: int | None = None) -> memoryview:
        """Writable memory for the next received bytes (at most ``max_bytes``).

        Write received bytes to the start of the returned view, then call
        :meth:`received` with their count. While fixed-size GET records arrive (numpy
        decoders), the memory is the one the result arrays will use, so each byte is copied
        once, from the socket; otherwise received bytes are buffered as by
        :meth:`receive_data`. Call :meth:`next_event` until it gives
        :data:`NEED_DATA` before asking for more memory.

        Raises:
            LocalProtocolError: the previous memory was not handed back with
                :meth:`received`, or events are still waiting.
        """
        if self._lent:
            raise LocalProtocolError("received() was not called for the last receive_buffer()")
        if max_bytes is not None and max_bytes < 1:
            raise LocalProtocolError(f"cannot receive {max_bytes} bytes")
        if self._region is None and self._in_place():
            self._open_region(max_bytes)
        region = self._region
        if region is not None:
            free = len(region) - self._filled
            if free == 0:
                raise LocalProtocolError("next_event() must run until NEED_DATA first")
            n = free if max_bytes is None else min(free, max_bytes)
            self._lent, self._lent_region = n, True
            return memoryview(region)[self._filled : self._filled + n]
        n = self.recv_size if max_bytes is None else min(self.recv_size, max_bytes)
        if len(self._scratch) < n:
            self._scratch = bytearray(n)
        self._lent, self._lent_region = n, False
        return memoryview(self._scratch)[:n]

    def received(self, count: int) -> None:
        """``count`` bytes were written into the memory of :meth:`receive_buffer`; 0 = EOF.

        Raises:
            LocalProtocolError: more bytes than the memory held, or no memory was lent.
        """
        lent, self._lent = self._lent, 0
        if not lent or not 0 <= count <= lent:
            raise LocalProtocolError(f"received({count}) after lending {lent} bytes")
        if count == 0:
            self.receive_data(b"")
        elif self._lent_region:
            self._filled += count
        else:
            if count == lent and self.recv_size < RECV_BYTES_MAX:
                self.recv_size *= 2
            with memoryview(self._scratch) as view:
                self.receive_data(view[:count])

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Hand received bytes to the decoder; ``b""`` means the peer closed (EOF)."""
        region = self._region
        if region is None or not data:
            super().receive_data(data)
            return
        # records are being received in place: these bytes follow them there
        np = _np()
        end = self._filled + len(data)
        if end > len(region):
            grown = np.empty(end, dtype=np.uint8)
            grown[: self._filled] = region[: self._filled]
            region = self._region = grown
        region[self._filled : end] = np.frombuffer(data, dtype=np.uint8)
        self._filled = end

    def _in_place(self) -> bool:
        dec = self.decoder
        size = None if dec is None else dec.record_bytes
        return (
            size is not None
            and self._state is _State.GET_RECORDS
            and self._error is None
            and not self._eof
            and (self.max_record_bytes is None or size <= self.max_record_bytes)
            and len(self._buf) < size  # only part of one record is buffered
        )

    def _open_region(self, max_bytes: int | None) -> None:
        np = _np()
        buf = self._buf
        head = buf.consume_at_most(len(buf))
        buf.commit()
        want = self._region_size if max_bytes is None else min(self._region_size, max_bytes)
        # Regions grow per response, so a small GET does not pin megabytes.
        self._region_size = min(2 * self._region_size, RECV_BYTES_MAX)
        region = np.empty(len(head) + want, dtype=np.uint8)
        region[: len(head)] = np.frombuffer(head, dtype=np.uint8)
        self._region, self._filled, self._checked, self._need = region, len(head), 0, 0

    def _next_in_region(self) -> Event | NeedData | None:
        # Validate the records received since the last call; hand the region out as one
        # array once it is full, or when something other than a record of the expected
        # size follows (terminator, another size, a bad cid, EOF): those bytes go back to
        # the buffer, for the decoder to handle (it reports errors after the records).
        region, decoder = self._region, self.decoder
        assert decoder is not None and decoder.record_bytes is not None
        item = decoder.record_bytes
        filled, checked = self._filled, self._checked
        count = (filled - checked) // item
        stop = self._eof
        if count:
            ok = decoder.count_valid(region, checked, count)
            checked = self._checked = checked + ok * item
            stop = stop or ok < count
        if not stop and filled - checked >= 4:
            stop = INT32.unpack_from(region, checked)[0] != item - 4
        if not stop and filled < len(region):
            return NEED_DATA
        self._region = None
        if filled > checked:
            self._buf.feed(region[checked:filled].tobytes())
        if not checked:
            return None
        records = region[:checked]
        if 2 * checked < len(region):  # mostly empty: do not pin the whole region
            records = records.copy()
        return RecordsBatch([decoder.view(records)])

    def _expect(self, state: _State) -> None:
        self._state = state
        self._error = None
        self._need = 0
        self._region = None
        self._lent = 0
        self._buf.commit()
        self._buf.skip(len(self._buf))  # stale bytes of an earlier response
        self._buf.commit()

    def next_event(self) -> Event | NeedData:
        """The next response event, or :data:`NEED_DATA`.

        Raises:
            RemoteProtocolError: The server broke the protocol.
            UnparseableRecord: A GET record cannot be decoded.
            MemoryLimitExceeded: A GET record is larger than ``max_record_bytes``.
        """
        if self._error is not None:
            raise self._stored_error()
        try:
            return self._next()
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None

    def _next(self) -> Event | NeedData:
        buf = self._buf
        state = self._state
        if state is _State.GET_RECORDS:
            if self._region is not None:
                event = self._next_in_region()
                if event is not None:
                    return event
            if len(buf) < self._need:
                return NEED_DATA
            assert self.decoder is not None
            raw = buf.peek_all()
            items, used, need, finished = self.decoder.decode(raw, self.max_record_bytes)
            buf.skip(used)
            buf.commit()
            self._need = need - used if need else 0
            if finished:
                self._state = _State.GET_TRAILER
            if items:
                return RecordsBatch(items)
            if not finished:
                return NEED_DATA
            state = self._state
        if state in (_State.GET_HEADER, _State.GET_TRAILER, _State.ACQ, _State.PUT_RESULT):
            header = self._header()
            if header is None:
                return NEED_DATA
            status, size = header
            if size > MAX_RESPONSE_HEADER_EXTRA:
                raise RemoteProtocolError(f"response header size {size} is implausible")
            body = buf.consume_exactly(size) if size else b""
            if body is None:
                buf.rollback()
                return NEED_DATA
            buf.commit()
            if state is _State.GET_HEADER:
                if status == 0:
                    self._state = _State.GET_RECORDS
                else:
                    self._state = _State.IDLE
                return GetStart(status)
            self._state = _State.IDLE
            if state is _State.GET_TRAILER:
                if status:
                    return GetEnd(-1, status)
                if size < 8:
                    raise RemoteProtocolError(f"GET trailer size {size} < 8")
                return GetEnd(INT64.unpack_from(body)[0], 0)
            if state is _State.ACQ:
                if status:
                    return AcqResult(-1, status)
                if size < 8:
                    raise RemoteProtocolError(f"GET_ACQ result size {size} < 8")
                return AcqResult(INT64.unpack_from(body)[0], 0)
            if status:
                return PutResult(-1, -1, status)
            if size < 16:
                raise RemoteProtocolError(f"PUT result size {size} < 16")
            acq_min, acq_max = ACQ_PAIR.unpack_from(body)
            return PutResult(acq_min, acq_max, 0)
        if state is _State.IDLE:
            return NEED_DATA
        raise RemoteProtocolError(f"unexpected decoder state {state}")  # pragma: no cover
