"""Client role: decoding GET response records into objects or numpy arrays."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import MemoryLimitExceeded, UnparseableRecord
from ..record import make_record
from .wire import INT32, KEY_BYTES, SIZE_AND_KEY, _np

if TYPE_CHECKING:
    import numpy as np

    from ..payload_type import PayloadType

T = TypeVar("T")


class RecordDecoder(Generic[T]):
    """Turns complete GET records at the start of a byte string into result items."""

    def decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        """Decode complete records.

        Args:
            raw: Buffered bytes, starting at a record size field.
            max_record_bytes: Largest ``4 + n`` allowed for a record (memory limit) or None.

        Returns:
            ``(items, consumed, need, finished)``: decoded items, bytes used, bytes needed
            from the start of ``raw`` before decoding more (0 when not known), and whether
            the terminator was consumed.

        Raises:
            UnparseableRecord: The next record cannot be decoded (items before it are
                returned first; the error comes on the following call).
            MemoryLimitExceeded: The next record is larger than ``max_record_bytes``.
        """
        raise NotImplementedError

    #: Bytes of every wire record when all have one fixed size (records can then be
    #: received in place, see :meth:`ClientConnection.receive_buffer`), else None.
    record_bytes: int | None = None

    def count_valid(self, region: Any, start: int, count: int) -> int:
        """How many of ``count`` complete records at ``region[start:]`` decode as they are.

        Only for decoders with :attr:`record_bytes`.
        """
        raise NotImplementedError

    def view(self, region: Any) -> Any:
        """The records filling ``region`` (validated by :meth:`count_valid`), not copied."""
        raise NotImplementedError


class ObjectRecordDecoder(RecordDecoder[T]):
    """Decodes GET records into :class:`~tstorage_client.record.Record` objects.

    Args:
        payload_type: Decodes each payload; ``from_bytes`` returning None makes the record
            unparseable.
    """

    def __init__(self, payload_type: PayloadType[T]) -> None:
        self.payload_type = payload_type
        self._run: struct.Struct | None = None
        self._run_values = 1
        # Fixed-size struct payloads: one struct unpacks size, key and value of a whole
        # run of records (``iter_unpack``), skipping a call and a slice per record.
        from ..payload_type import StructPayloadType, TuplePayloadType

        kind = type(payload_type)
        if kind is StructPayloadType or kind is TuplePayloadType:
            fmt = payload_type.format  # type: ignore[attr-defined]
            if fmt.startswith("<") and struct.Struct(fmt).unpack(bytes(struct.calcsize(fmt))):
                self._run = struct.Struct("<iiqiqq" + fmt[1:])
                self._run_values = 0 if kind is TuplePayloadType else 1

    def decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        from_bytes = self.payload_type.from_bytes
        unpack = SIZE_AND_KEY.unpack_from
        unpack_size = INT32.unpack_from
        mv = memoryview(raw)
        avail = len(raw)
        out: list[Any] = []
        append = out.append
        off = 0
        run = self._run
        if run is not None:
            rec = run.size
            expected = rec - 4
            single = self._run_values == 1
        while off + 4 <= avail:
            if run is not None and (k := (avail - off) // rec):
                done = 0
                for row in run.iter_unpack(mv[off : off + k * rec]):
                    if row[0] != expected or row[1] < 0:
                        break
                    append(
                        make_record(
                            row[1], row[2], row[3], row[4], row[5], row[6] if single else row[6:]
                        )
                    )
                    done += 1
                off += done * rec
                if done == k:
                    continue
            if off + 36 <= avail:
                n, cid, mid, moid, cap, acq = unpack(raw, off)
            else:
                n = unpack_size(raw, off)[0]
                cid = 0
            if n == 0:
                return out, off + 4, 0, True
            end = off + 4 + n
            if end > avail:
                if max_record_bytes is not None and 4 + n > max_record_bytes:
                    if out:
                        return out, off, 0, False
                    raise MemoryLimitExceeded(f"record of {4 + n} bytes exceeds the memory limit")
                return out, off, end, False
            if n < KEY_BYTES or cid < 0:
                if out:
                    return out, off, 0, False
                if n < KEY_BYTES:
                    raise UnparseableRecord(f"record size {n} is smaller than a key")
                raise UnparseableRecord(f"record key has negative cid {cid}")
            value = from_bytes(mv[off + 36 : end])  # type: ignore[arg-type]
            if value is None:
                if out:
                    return out, off, 0, False
                raise UnparseableRecord("payload type could not decode a record payload")
            append(make_record(cid, mid, moid, cap, acq, value))
            off = end
        return out, off, off + 4, False


class NumpyRecordDecoder(RecordDecoder[Any]):
    """Decodes GET records of one fixed payload size into structured numpy arrays.

    Args:
        parsing_dtype: Packed dtype ``_size, cid, mid, moid, cap, acq, payload fields``,
            whose itemsize is exactly one wire record. Every record's size field must be
            ``itemsize - 4``, else the record is unparseable (never silently misread).
    """

    def __init__(self, parsing_dtype: np.dtype[Any]) -> None:
        self.dtype = parsing_dtype
        self.itemsize = parsing_dtype.itemsize
        self.record_bytes = parsing_dtype.itemsize

    def count_valid(self, region: Any, start: int, count: int) -> int:
        """Leading records of ``count`` at ``region[start:]`` with the right size and cid >= 0."""
        np = _np()
        item = self.itemsize
        sizes = np.ndarray((count,), "<i4", region, start, (item,))
        cids = np.ndarray((count,), "<i4", region, start + 4, (item,))
        good = (sizes == item - 4) & (cids >= 0)
        return count if bool(good.all()) else int(np.argmin(good))

    def view(self, region: Any) -> Any:
        """``region`` (whole records) as an array of the parsing dtype, sharing its memory."""
        return region.view(self.dtype)

    def decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        np = _np()
        item = self.itemsize
        expected = item - 4
        avail = len(raw)
        count = avail // item
        out: list[Any] = []
        consumed = 0
        if count:
            sizes = np.ndarray((count,), dtype="<i4", buffer=raw, offset=0, strides=(item,))
            cids = np.ndarray((count,), dtype="<i4", buffer=raw, offset=4, strides=(item,))
            good = (sizes == expected) & (cids >= 0)
            ok = count if bool(good.all()) else int(np.argmin(good))
            if ok:
                out.append(np.frombuffer(raw, dtype=self.dtype, count=ok).copy())
                consumed = ok * item
        if avail - consumed < 4:
            return out, consumed, consumed + 4, False
        n = INT32.unpack_from(raw, consumed)[0]
        if n == 0:
            return out, consumed + 4, 0, True
        if n != expected:
            if out:
                return out, consumed, 0, False
            raise UnparseableRecord(f"record size {n} differs from the dtype's {expected}")
        if avail - consumed >= item:  # complete but bad cid
            if out:
                return out, consumed, 0, False
            raise UnparseableRecord("record key has a negative cid")
        if max_record_bytes is not None and item > max_record_bytes:
            raise MemoryLimitExceeded(f"record of {item} bytes exceeds the memory limit")
        return out, consumed, consumed + item, False
