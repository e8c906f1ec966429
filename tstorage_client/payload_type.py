"""Provides PayloadType interface and simple ready to use implementations.

A payload type turns a record's value into the payload bytes stored by TStorage and back.
``from_bytes`` returns None when the bytes do not decode; a GET then reports
``UNPARSEABLE_ENTITY``.

:class:`NumpyPayloadType` switches the channels to the columnar path: PUT takes
structured arrays (or dicts of arrays) and GET returns structured arrays. numpy is
imported only when it is constructed, so the object path works without numpy.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "BytesPayloadType",
    "NumpyPayloadType",
    "PayloadType",
    "StructPayloadType",
    "TuplePayloadType",
    "UnitPayloadType",
]

T = TypeVar("T")

_KEY_FIELDS: list[tuple[str, str]] = [
    ("cid", "<i4"),
    ("mid", "<i8"),
    ("moid", "<i4"),
    ("cap", "<i8"),
    ("acq", "<i8"),
]


class PayloadType(ABC, Generic[T]):
    """Interface for payload serializers."""

    @abstractmethod
    def to_bytes(self, value: T) -> bytes:
        """Converts provided value to bytes to be send to TStorage."""

    @abstractmethod
    def from_bytes(self, buffer: bytes) -> T | None:
        """Converts bytes to value or None in case of failure."""


class StructPayloadType(PayloadType[T]):
    """Class for simple struct module based serialization.

    Only 1 value formats are supported (e.g. ``"<i"``, ``"<d"``).

    Args:
        format: A :mod:`struct` format describing exactly one value.
    """

    def __init__(self, format: str) -> None:
        self._format = struct.Struct(format)
        self._pack = self._format.pack
        self._unpack = self._format.unpack

    @property
    def format(self) -> str:
        """The struct format."""
        return self._format.format

    def to_bytes(self, value: T) -> bytes:
        """Pack ``value`` with the format."""
        return self._pack(value)

    def from_bytes(self, buffer: bytes) -> T | None:
        """The unpacked value, or None when ``buffer`` has the wrong length."""
        try:
            return self._unpack(buffer)[0]
        except (struct.error, IndexError):  # wrong length, or a format without values
            return None


class TuplePayloadType(PayloadType[tuple[Any, ...]]):
    """Multi-field struct serialization: values are tuples (e.g. ``"<iqd"``).

    Args:
        format: A :mod:`struct` format; a value is the tuple of its fields.
    """

    def __init__(self, format: str) -> None:
        self._format = struct.Struct(format)

    @property
    def format(self) -> str:
        """The struct format."""
        return self._format.format

    def to_bytes(self, value: tuple[Any, ...]) -> bytes:
        """Pack the tuple's fields."""
        return self._format.pack(*value)

    def from_bytes(self, buffer: bytes) -> tuple[Any, ...] | None:
        """The unpacked tuple, or None when ``buffer`` has the wrong length."""
        try:
            return self._format.unpack(buffer)
        except struct.error:
            return None


class UnitPayloadType(PayloadType[tuple[()]]):
    """Serialization of empty payloads."""

    def to_bytes(self, _: Any) -> Literal[b""]:
        """Converts provided value to empty bytes object."""
        return b""

    def from_bytes(self, _: bytes) -> tuple[()]:
        """Returns empty tuple. It never fails so it never returns None."""
        return ()


class BytesPayloadType(PayloadType[bytes]):
    """Serialization of raw bytes-like payloads.

    Builtin bytearray and memoryview are considered by mypy to be bytes compatible so
    other type than bytes can be returned.
    """

    def to_bytes(self, value: bytes) -> bytes:
        """Returns value as is."""
        return value

    def from_bytes(self, buffer: bytes) -> bytes:
        """Returns the buffer as bytes."""
        return bytes(buffer)


class NumpyPayloadType(PayloadType[Any]):
    """Support for NumPy based data retrieval and processing.

    With NumpyPayloadType, ``(Async)Channel.put``/``puta`` accept:

    - a structured array or recarray with the key fields (``cid, mid, moid, cap`` and,
      for PUTA, ``acq``) plus the payload fields (an optional ``_size`` field is ignored);
    - a dict of 1-D arrays keyed by those field names.

    and the GET family returns structured arrays of :attr:`parsing_dtype` (``_size`` holds
    each record's wire size, e.g. 36 for an int32 payload).

    Args:
        dtype: The payload: None (empty payload), a list of ``(name, type)`` pairs, or
            anything ``numpy.dtype()`` accepts; a non-structured dtype becomes a single
            field ``v0``.

    Attributes:
        serializer_dtype_with_acq: ``_size, mid, moid, cap, acq`` + payload (PUTA record).
        serializer_dtype_no_acq: ``_size, mid, moid, cap`` + payload (PUT record).
        parsing_dtype: ``_size, cid, mid, moid, cap, acq`` + payload (GET record).
        record_dtype: ``cid, mid, moid, cap, acq`` + payload.
        payload_dtype: The payload fields alone.
    """

    def __init__(self, dtype: Any = None) -> None:
        try:
            import numpy
        except ImportError as exc:  # pragma: no cover - numpy is a dependency here
            raise RuntimeError("NumPy is not installed!") from exc
        if dtype is None:
            fields: list[tuple[str, Any]] = []
        elif isinstance(dtype, list):
            fields = list(dtype)
        else:
            wrapped = numpy.dtype(dtype)
            if wrapped.fields is None:
                fields = [("v0", wrapped)]
            else:
                fields = [(name, wrapped.fields[name][0]) for name in wrapped.names or ()]
        size = [("_size", "<i4")]
        self.payload_dtype = numpy.dtype(fields)
        self.serializer_dtype_with_acq = numpy.dtype(size + _KEY_FIELDS[1:] + fields)
        self.serializer_dtype_no_acq = numpy.dtype(size + _KEY_FIELDS[1:4] + fields)
        self.parsing_dtype = numpy.dtype(size + _KEY_FIELDS + fields)
        self.record_dtype = numpy.dtype(_KEY_FIELDS + fields)

    @property
    def payload_size(self) -> int:
        """Bytes of one payload."""
        return int(self.payload_dtype.itemsize)

    def to_bytes(self, array: Any) -> bytes:
        """The raw bytes of an array of payload values."""
        return array.tobytes()

    def from_bytes(self, buffer: bytes) -> Any | None:
        """Payload values of ``buffer`` as an array, or None when the size does not fit."""
        import numpy

        try:
            return numpy.frombuffer(buffer, dtype=self.payload_dtype)
        except ValueError:
            return None
