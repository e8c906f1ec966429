"""Names the official client keeps in ``_channel_common`` (its unit tests import them).

The channels do not use these helpers: they run on the sans-IO core
(:mod:`tstorage_client.protocol`) through :mod:`tstorage_client._commands`. The helpers
are thin adapters over that core, kept so code and tests written against the official
client's private module keep working.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, ClassVar, Literal, TypeVar

from ._commands import ChannelCommands
from ._gc_paused import GcPausedRecordDecoder
from .errors import MemoryLimitExceeded, UnparseableRecord
from .payload_type import PayloadType
from .protocol import encode_put_batches
from .record import Key, Record
from .records_set import RecordsSet

__all__ = [
    "ACQS_PAIR_SIZE",
    "ACQ_SIZE",
    "FULL_KEY_SIZE",
    "HEADER_AUX_SIZE",
    "PUT_END_GUARD",
    "RESPONSE_HEADER_SIZE",
    "GetRequestState",
    "ReceiveBuffer",
    "RecordsParsingStatus",
    "RequestHeader",
    "_ChannelMixin",
    "_CommandType",
]

T = TypeVar("T")


class _CommandType(IntEnum):
    NULL = 0
    GET = 1
    PUTSAFE = 5
    PUTASAFE = 6
    GETACQ = 7


ACQS_PAIR_SIZE: Literal[16] = 16
ACQ_SIZE: Literal[8] = 8
FULL_KEY_SIZE: Literal[32] = 32
HEADER_AUX_SIZE: Literal[0] = 0
PUT_END_GUARD: Literal[-1] = -1
RESPONSE_HEADER_SIZE: Literal[12] = 12


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The 12-byte header of both directions: ``int32 status/cmd, uint64 size``."""

    status: int
    size: int

    _format: ClassVar[struct.Struct] = struct.Struct("<iQ")

    def to_bytes(self) -> bytes:
        """Pack as on the wire."""
        return self._format.pack(self.status, self.size)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> RequestHeader:
        """Unpack 12 bytes."""
        status, size = cls._format.unpack(data)
        return cls(status, size)

    @classmethod
    def bytes_count(cls) -> int:
        """12."""
        return cls._format.size

    def has_expected_size(self, size: int) -> bool:
        """True when at least ``size`` bytes follow the header."""
        return self.size >= size

    def is_ok(self) -> bool:
        """True when the status is 0."""
        return self.status == 0


class GetRequestState(Enum):
    INITIAL_HEADER = 0
    RECORDS_PARSING = 1
    FINAL_HEADER = 2


class RecordsParsingStatus(Enum):
    FINISHED = 0
    UNPARSEABLE = 1
    NEEDS_MORE_BYTES = 2
    RECORD_TOO_BIG = 3


class ReceiveBuffer:
    """Fixed-capacity receive buffer with read/write cursors (official client's shape)."""

    def __init__(self, initial_capacity: int = 65536) -> None:
        self._buffer: bytearray | memoryview = bytearray(max(initial_capacity, 32))
        self._current = 0
        self._available = 0

    def __len__(self) -> int:
        return self._available - self._current

    @property
    def capacity(self) -> int:
        """Size of the underlying array."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget every byte (keeps the capacity)."""
        self._current = self._available = 0

    def free_len(self) -> int:
        """Bytes that can still be fed."""
        return len(self._buffer) - self._available

    def free_space(self) -> memoryview:
        """The writable tail (for ``recv_into``)."""
        return memoryview(self._buffer)[self._available :]

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes (they must fit)."""
        end = self._available + len(data)
        if end > len(self._buffer):
            raise ValueError("data does not fit into the buffer")
        self._buffer[self._available : end] = data
        self._available = end

    def peek(self, size: int, offset: int = 0) -> memoryview:
        """Up to ``size`` unread bytes at ``offset``."""
        start = self._current + offset
        return memoryview(self._buffer)[start : min(start + size, self._available)]

    def increase(self, size: int) -> None:
        """Consume ``size`` bytes."""
        self._current += size

    def rewind(self, size: int) -> None:
        """Un-consume ``size`` bytes."""
        self._current -= size

    def increase_available(self, size: int) -> None:
        """Account for ``size`` bytes written into :meth:`free_space`."""
        self._available += size

    def fits(self, size: int) -> bool:
        """True when ``size`` unread bytes are present."""
        return self._current + size <= self._available

    def fits_eventually(self, size: int) -> bool:
        """True when ``size`` bytes from the cursor fit into the capacity."""
        return self._current + size <= len(self._buffer)

    def truncate(self) -> None:
        """Move the unread bytes to the front."""
        if self._current:
            self._buffer[: len(self)] = self._buffer[self._current : self._available]
            self._available -= self._current
            self._current = 0

    def grow_buffer(self, size: int) -> None:
        """Enlarge the capacity to ``size`` bytes."""
        if size > len(self._buffer):
            if not isinstance(self._buffer, bytearray):
                raise ValueError("lent memory cannot grow")
            self._buffer.extend(bytes(size - len(self._buffer)))


class LentMemory(ReceiveBuffer):
    """Memory lent by the protocol core, in :class:`ReceiveBuffer`'s shape.

    The channels fill it through ``_feed_buffer``, the official client's receive seam, so
    code (and the official unit tests) that patches that seam also feeds the in-place
    receive path; the socket still writes straight into the lent memory.
    """

    def __init__(self, memory: memoryview) -> None:
        self._buffer = memory
        self._current = 0
        self._available = 0


class _ChannelMixin(ChannelCommands[T]):
    """Base of both channels: the command flows plus the official static helpers."""

    @staticmethod
    def _prepare_keyrange_request(
        cmd: _CommandType, key_min: Key, key_max: Key, aux_size: int = 0
    ) -> bytes:
        return RequestHeader(cmd, aux_size).to_bytes() + key_min.to_bytes() + key_max.to_bytes()

    @staticmethod
    def _parse_record(
        buffer: bytes | memoryview, offset: int, size: int, payload_type: PayloadType[T]
    ) -> Record[T] | None:
        key = Key.from_bytes(buffer, offset)
        if key is None:
            return None
        value = payload_type.from_bytes(buffer[offset + FULL_KEY_SIZE : offset + size])  # type: ignore[arg-type]
        return None if value is None else Record(key, value)

    @staticmethod
    def _group_records_by_cid(data: RecordsSet[T]) -> dict[int, list[Record[T]]]:
        groups: dict[int, list[Record[T]]] = {}
        for record in data:
            groups.setdefault(record.key.cid, []).append(record)
        return groups

    @staticmethod
    def _serialize_records_batches_iter(
        data: RecordsSet[T],
        with_acq: bool,
        payload_type: PayloadType[T],
        max_batch_size: int = 2147483647,
        skip_invalid: bool = False,
    ) -> Iterable[bytes]:
        return encode_put_batches(
            data, with_acq, payload_type.to_bytes, max_batch_size, skip_invalid
        )

    @staticmethod
    def _handle_response(
        buffer: ReceiveBuffer, format: str = ""
    ) -> tuple[RequestHeader, tuple[Any, ...]] | None:
        if not buffer.fits(RESPONSE_HEADER_SIZE):
            return None
        header = RequestHeader.from_bytes(buffer.peek(RESPONSE_HEADER_SIZE))
        if not buffer.fits(RESPONSE_HEADER_SIZE + header.size):
            return None
        parser = struct.Struct(format)
        values = (
            parser.unpack(buffer.peek(parser.size, RESPONSE_HEADER_SIZE)) if header.is_ok() else ()
        )
        buffer.increase(RESPONSE_HEADER_SIZE + header.size)
        return header, values

    @staticmethod
    def _parse_records(
        buffer: ReceiveBuffer,
        records: RecordsSet[T],
        payload_type: PayloadType[T],
        max_size: int | None,
    ) -> RecordsParsingStatus:
        decoder = GcPausedRecordDecoder(payload_type)
        raw = bytes(buffer.peek(len(buffer)))
        offset = 0
        while True:
            try:
                items, used, need, finished = decoder.decode(raw[offset:], max_size)
            except UnparseableRecord:
                buffer.increase(offset)
                return RecordsParsingStatus.UNPARSEABLE
            except MemoryLimitExceeded:
                buffer.increase(offset)
                return RecordsParsingStatus.RECORD_TOO_BIG
            for item in items:
                records.append(item)
            offset += used
            if finished:
                buffer.increase(offset)
                buffer.truncate()
                return RecordsParsingStatus.FINISHED
            if not need:
                continue  # an unparseable record follows: report it on the next pass
            buffer.increase(offset)
            buffer.truncate()
            if not buffer.fits_eventually(need - used):
                buffer.grow_buffer(need - used)
            return RecordsParsingStatus.NEEDS_MORE_BYTES

    @staticmethod
    def _group_numpy_by_cid(data: Any, dtype: Any) -> Iterable[tuple[Any, Any]]:
        import numpy

        cids = numpy.asarray(data["cid"])
        for cid in dict.fromkeys(cids.tolist()):
            index = numpy.flatnonzero(cids == cid)
            columns = [
                numpy.full(len(index), dtype.itemsize - 4, dtype=numpy.int32)
                if name == "_size"
                else numpy.asarray(data[name])[index]
                for name in dtype.names
            ]
            yield numpy.int32(cid), numpy.rec.fromarrays(columns, dtype=dtype)
