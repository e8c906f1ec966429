"""TStorage commands written once, as generator flows both channels drive.

A flow is a generator that yields I/O instructions and receives their results:

* ``_Send(data)``: write all of ``data``; resumes with None;
* ``_Recv(max_bytes)``: read up to ``max_bytes``; resumes with the bytes (``b""`` = EOF);
* ``_RecvInto(buffer)``: read into the start of ``buffer`` (memory the protocol core
  lends, so GET records are copied once); resumes with the count (0 = EOF);
* ``_Emit(items)``: hand items to the caller of ``get_iter``; resumes with None;
* ``_Close()``: close the channel; resumes with None.

When the I/O fails the driver throws a :class:`~tstorage_client.errors.TransportError`
into the flow at the yield point. The flow's return value is the command's
:class:`~tstorage_client.response.Response`. ``Channel`` (blocking sockets) and
``AsyncChannel`` (asyncio streams) each implement only the ~20-line driver loop (httpx's
``auth_flow`` pattern); every status, limit and closing rule lives here.

Strategy for ``memory_limit`` (reproducing the official client, independent of how the
bytes are split by the network): received bytes are fed to the decoder only up to the
limit. ``get``/``get_iter`` fail with NO_MEMORY as soon as the decoder needs a byte beyond
the limit (the whole response must fit). ``get_stream`` counts the limit per batch: when
the decoder needs more bytes and the batch's bytes reached the limit, the records decoded
so far go to the callback and a new batch starts (NO_MEMORY if there are none); the
trailer after the terminator is not limited.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._gc_paused import GcPausedRecordDecoder
from .errors import (
    LocalProtocolError,
    MemoryLimitExceeded,
    RemoteProtocolError,
    TransportError,
    UnparseableRecord,
)
from .events import (
    NEED_DATA,
    AcqResult,
    GetAcqRequest,
    GetEnd,
    GetRequest,
    GetStart,
    PutEnd,
    PutRequest,
    PutResult,
    RecordsBatch,
)
from .payload_type import NumpyPayloadType, PayloadType
from .protocol import (
    INT32_MAX,
    RECV_BYTES_MAX,
    ClientConnection,
    NumpyRecordDecoder,
    RecordDecoder,
    encode_put_batches,
)
from .record import Key
from .response import Response, ResponseAcq, ResponseGet, ResponseStatus

__all__ = ["ChannelCommands", "GetMode"]

T = TypeVar("T")
R = TypeVar("R")

#: Sends are coalesced up to this many bytes (fewer syscalls, no Nagle stalls).
SEND_CHUNK_BYTES = 1 << 20
#: Reads grow up to this size while the peer keeps filling them.
MAX_RECV_BYTES = RECV_BYTES_MAX


@dataclass(frozen=True, slots=True)
class _Send:
    data: bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class _Recv:
    max_bytes: int


@dataclass(frozen=True, slots=True)
class _RecvInto:
    buffer: memoryview


@dataclass(frozen=True, slots=True)
class _Emit:
    items: list[Any]


@dataclass(frozen=True, slots=True)
class _Close:
    pass


_Op = _Send | _Recv | _RecvInto | _Emit | _Close
Flow = Generator[_Op, Any, R]


class GetMode(enum.Enum):
    """Which GET-family method a flow serves."""

    GET = "get"
    STREAM = "get_stream"
    ITER = "get_iter"


class ChannelCommands(Generic[T]):
    """The command flows shared by :class:`Channel` and :class:`AsyncChannel`."""

    _payload_type: PayloadType[T]
    _memory_limit: int | None
    #: the last PUT/PUTA/GET_ACQ got a well-formed answer from the server (an ERROR status
    #: is then the server's refusal, not a garbled answer or a lost connection)
    answered: bool = False

    def _is_connected(self) -> bool:
        raise NotImplementedError

    def _record_decoder(self) -> RecordDecoder[Any]:
        payload_type = self._payload_type
        if isinstance(payload_type, NumpyPayloadType):
            return NumpyRecordDecoder(payload_type.parsing_dtype)
        return GcPausedRecordDecoder(payload_type)

    # --- PUT / PUTA ---------------------------------------------------------------------

    def _put_flow(
        self, data: Any, with_acq: bool, max_batch_size: int, skip_invalid: bool
    ) -> Flow[Response]:
        if not self._is_connected():
            return Response(ResponseStatus.DISCONNECTED)
        if not 0 < max_batch_size <= INT32_MAX:
            raise ValueError(f"max_batch_size must be in 1..{INT32_MAX}, got {max_batch_size}")
        conn = ClientConnection()
        payload_type = self._payload_type
        if isinstance(payload_type, NumpyPayloadType):
            from ._numpy_path import numpy_put_batches

            batches = numpy_put_batches(data, with_acq, payload_type, max_batch_size, skip_invalid)
        else:
            batches = encode_put_batches(
                data, with_acq, payload_type.to_bytes, max_batch_size, skip_invalid
            )
        parts: list[bytes | bytearray | memoryview] = [conn.send(PutRequest(with_acq))]
        size = len(parts[0])
        sending = True
        started = False  # part of the request is on the wire
        try:
            for batch in batches:
                parts.append(batch)
                size += len(batch)
                if size >= SEND_CHUNK_BYTES:
                    if sending:
                        started = True
                        try:
                            yield _Send(b"".join(parts))
                        except TransportError:
                            sending = False  # the server may have answered already: read it
                    parts.clear()
                    size = 0
        except LocalProtocolError:
            if started:
                # Half a request is on the wire: the only way to abandon it is to close.
                yield _Close()
            raise
        parts.append(conn.send(PutEnd()))
        if sending:
            with contextlib.suppress(TransportError):
                yield _Send(b"".join(parts))
        result = yield from self._read_result(conn)
        if isinstance(result, PutResult):
            return Response(ResponseStatus.OK if result.status == 0 else ResponseStatus.ERROR)
        return Response(result)

    # --- GET_ACQ ------------------------------------------------------------------------

    def _get_acq_flow(self, key_min: Key, key_max: Key) -> Flow[ResponseAcq]:
        if not self._is_connected():
            return ResponseAcq(ResponseStatus.DISCONNECTED)
        conn = ClientConnection()
        request = conn.send(GetAcqRequest(key_min, key_max))
        try:
            yield _Send(request)
        except TransportError:
            yield _Close()
            return ResponseAcq(ResponseStatus.DISCONNECTED)
        result = yield from self._read_result(conn)
        if isinstance(result, AcqResult):
            if result.status == 0:
                return ResponseAcq(ResponseStatus.OK, result.acq)
            return ResponseAcq(ResponseStatus.ERROR)
        return ResponseAcq(result)

    def _read_result(self, conn: ClientConnection) -> Flow[Any]:
        """Read one fixed-shape result; returns the event or a failure status."""
        self.answered = False
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError:
                yield _Close()
                return ResponseStatus.ERROR
            if event is not NEED_DATA:
                self.answered = True
                return event
            try:
                data = yield _Recv(64)
            except TransportError:
                # A timeout or reset leaves the stream out of step: close.
                yield _Close()
                return ResponseStatus.DISCONNECTED
            if not data:
                return ResponseStatus.DISCONNECTED
            conn.receive_data(data)

    # --- GET family ---------------------------------------------------------------------

    def _get_flow(
        self,
        key_min: Key,
        key_max: Key,
        recv_buffer_size: int,
        mode: GetMode,
        callback: Callable[[Any], None] | None = None,
    ) -> Flow[Any]:
        def finish(status: ResponseStatus, acq: int = -1) -> ResponseAcq:
            if mode is GetMode.GET:
                return ResponseGet(status, acq, collected)
            return ResponseAcq(status, acq)

        collected: list[Any] = []

        def flush() -> None:
            nonlocal collected
            if mode is GetMode.STREAM and collected:
                batch, collected = collected, []
                assert callback is not None
                callback(batch)

        if not self._is_connected():
            return finish(ResponseStatus.DISCONNECTED)
        limit = self._memory_limit
        conn = ClientConnection(self._record_decoder())
        conn.max_record_bytes = limit
        request = conn.send(GetRequest(key_min, key_max))
        try:
            yield _Send(request)
        except TransportError:
            yield _Close()
            return finish(ResponseStatus.DISCONNECTED)
        conn.recv_size = max(
            32, recv_buffer_size if limit is None else min(recv_buffer_size, limit)
        )
        total = 0  # bytes fed in the current batch (get_stream) or response

        def drain() -> list[Any]:
            # The stream broke: the records complete in what arrived still count (the
            # core may hold them back while it receives records in place).
            conn.received(0)
            items: list[Any] = []
            with contextlib.suppress(RemoteProtocolError, UnparseableRecord, MemoryLimitExceeded):
                while isinstance(event := conn.next_event(), RecordsBatch):
                    items.extend(event.records)
            return items

        while True:
            try:
                event = conn.next_event()
            except UnparseableRecord:
                flush()
                yield _Close()
                return finish(ResponseStatus.UNPARSEABLE_ENTITY)
            except MemoryLimitExceeded:
                flush()
                yield _Close()
                return finish(ResponseStatus.NO_MEMORY)
            except RemoteProtocolError:
                flush()
                yield _Close()
                return finish(ResponseStatus.ERROR)
            if event is NEED_DATA:
                limited = limit is not None and (
                    mode is not GetMode.STREAM or conn.state != "get-trailer"
                )
                if limited and total >= limit:  # type: ignore[operator]
                    if mode is GetMode.STREAM and conn.state == "get-records" and collected:
                        flush()
                        total = 0
                    else:
                        yield _Close()
                        return finish(ResponseStatus.NO_MEMORY)
                room = limit - total if limited else None  # type: ignore[operator]
                try:
                    count = yield _RecvInto(conn.receive_buffer(room))
                except TransportError:
                    count = 0
                if not count:
                    late = drain()
                    if mode is GetMode.ITER and late:
                        yield _Emit(late)
                    else:
                        collected.extend(late)
                    flush()
                    yield _Close()
                    return finish(ResponseStatus.DISCONNECTED)
                total += count
                conn.received(count)
                continue
            if isinstance(event, RecordsBatch):
                if mode is GetMode.ITER:
                    yield _Emit(event.records)
                else:
                    collected.extend(event.records)
            elif isinstance(event, GetStart):
                if event.status != 0:
                    yield _Close()
                    return finish(ResponseStatus.BAD_REQUEST)
            elif isinstance(event, GetEnd):
                flush()
                if event.status == 0:
                    return finish(ResponseStatus.OK, event.acq)
                yield _Close()
                return finish(ResponseStatus.ERROR)
