"""Records as binary columns on the wire: the bulk form of ``ts:extend`` and ``ts:range``.

A column is the raw little-endian bytes of a numpy array, sent as a Socket.IO binary
attachment (python-socketio and our clients encode ``bytes`` that way; JavaScript sees an
``ArrayBuffer``). Times are int64 nanoseconds (``unit`` ``unix_ns`` or ``tstorage_ns``);
values have the numpy dtype of the rule's codec (``struct:<d`` -> ``<f8``), named in the
message as ``dtype`` (numpy's ``dtype.str``). Only rules whose codec holds one number have
such a dtype (:func:`~gateway.timeseries.downsample.numeric_dtype`); other rules keep the
JSON forms.

Sizes: a column is ``points x 8`` bytes for the times and ``points x itemsize`` for the
values. The client sends at most :data:`EXTEND_CHUNK_POINTS` points per ``ts:extend`` (two
4 MiB attachments for float64 values), fewer when the server's message limit is lower
(:func:`extend_chunk`: each attachment, a message of its own, stays within it); the
gateway refuses an event of more than :data:`MAX_EXTEND_POINTS` points, and answers a ``ts:range`` with columns of at most
:data:`MAX_COLUMN_LIMIT` points (8 MiB per column for float64), so both sides hold a
bounded amount per request whatever the size of the whole transfer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.keymap import CAP_RANGE
from gateway.timeseries.times import Unit
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError

__all__ = [
    "COLUMN_UNITS",
    "EXTEND_CHUNK_POINTS",
    "MAX_COLUMN_LIMIT",
    "MAX_EXTEND_POINTS",
    "caps_column",
    "column_offset",
    "extend_chunk",
    "parse_extend",
    "values_column",
]

#: most points per ``ts:extend`` event sent by :meth:`gateway.TimeSeries.extend` by default
EXTEND_CHUNK_POINTS = 524_288
#: bytes of a message's limit left for the Engine.IO/Socket.IO framing of an attachment
_FRAMING_BYTES = 4096
#: most points one ``ts:extend`` event may carry
MAX_EXTEND_POINTS = 1_048_576
#: most points of one ``ts:range`` answer in columns (``limit`` may ask for up to this)
MAX_COLUMN_LIMIT = 1_048_576
#: time units a binary time column may have (int64 nanoseconds)
COLUMN_UNITS: tuple[Unit, ...] = ("tstorage_ns", "unix_ns")
_NUMERIC_KINDS = "biuf"


def extend_chunk(max_message_bytes: int | None, dtype: np.dtype[Any]) -> int:
    """Points per ``ts:extend`` event so that its columns together fit a message of the
    given size (the server bounds the bytes of one event's attachments by it too).

    Args:
        max_message_bytes: the server's limit per message (``None``: 1,000,000, the znsocket
            clients' default when the server does not say).
        dtype: the values' dtype.
    """
    limit = 1_000_000 if max_message_bytes is None else max_message_bytes
    width = 8 + dtype.itemsize  # an int64 time and a value per point
    return max(1, min(EXTEND_CHUNK_POINTS, (limit - _FRAMING_BYTES) // width))


def column_offset(unit: Unit, event: str) -> int:
    """The offset from TStorage ns to ``unit`` of a binary time column.

    Raises:
        DataError: ``unit`` is not an int64 nanosecond unit.
    """
    if unit not in COLUMN_UNITS:
        raise DataError(
            f"{event}: binary time columns are int64 nanoseconds: unit must be one of "
            f"{', '.join(COLUMN_UNITS)}, got {unit!r}"
        )
    return EPOCH_OFFSET_NS if unit == "unix_ns" else 0


def _bytes_arg(kwargs: dict[str, Any], name: str, event: str) -> bytes | bytearray:
    raw = kwargs.get(name)
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise DataError(
            f"{event}: {name} must be a binary column (bytes), got {type(raw).__name__}; not stored"
        )
    return bytes(raw) if isinstance(raw, memoryview) else raw


def parse_extend(
    kwargs: dict[str, Any], unit: Unit, target: np.dtype[Any], event: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Validate a ``ts:extend`` message: its caps (TStorage ns) and payload rows.

    Args:
        kwargs: the event's keyword arguments (``t``, ``v``, ``dtype``).
        unit: the unit of ``t``.
        target: the codec's dtype.
        event: the event name, for messages.

    Returns:
        ``(caps, payloads)``: caps as int64 TStorage ns, payloads as ``n x itemsize`` uint8.

    Raises:
        DataError: what is wrong with the message; nothing is stored.
    """
    offset = column_offset(unit, event)
    t_raw = _bytes_arg(kwargs, "t", event)
    v_raw = _bytes_arg(kwargs, "v", event)
    try:
        given = np.dtype(kwargs.get("dtype", target.str))
    except (TypeError, ValueError):
        raise DataError(f"{event}: dtype {kwargs.get('dtype')!r} is not a numpy dtype") from None
    if given.kind not in _NUMERIC_KINDS or given.fields is not None or given.subdtype:
        raise DataError(f"{event}: values must be numbers, got dtype {given.str}; not stored")
    if len(t_raw) % 8:
        raise DataError(f"{event}: t holds {len(t_raw)} bytes, not int64 times; not stored")
    n = len(t_raw) // 8
    if n > MAX_EXTEND_POINTS:
        raise DataError(
            f"{event}: {n:,} points in one event; at most {MAX_EXTEND_POINTS:,} "
            "(send several); not stored"
        )
    if len(v_raw) != n * given.itemsize:
        raise DataError(
            f"{event}: {n} times but {len(v_raw)} bytes of {given.str} values "
            f"({len(v_raw) / given.itemsize:g} values); not stored"
        )
    caps = np.frombuffer(t_raw, dtype="<i8")
    if offset:
        lo, hi = CAP_RANGE[0] + offset, CAP_RANGE[1] + offset
    else:
        lo, hi = CAP_RANGE
    if n and (int(caps.min()) < lo or int(caps.max()) > hi):
        bad = caps[(caps < lo) | (caps > hi)][0]
        raise DataError(
            f"{event}: time t={int(bad)} ({unit}) is outside TStorage's time range; not stored"
        )
    caps = caps - np.int64(offset) if offset else caps.astype(np.int64)
    values = np.frombuffer(v_raw, dtype=given)
    if given != target:
        cast = values.astype(target)
        back = cast.astype(given)
        same = back == values
        if given.kind == "f":
            same |= np.isnan(values) & np.isnan(back)
        if not bool(same.all()):
            i = int(np.flatnonzero(~same)[0])
            raise DataError(
                f"{event}: value {values[i]!r} (index {i}) of dtype {given.str} cannot be "
                f"stored exactly as the codec's {target.str}; not stored"
            )
        values = cast
    rows = np.ascontiguousarray(values).view(np.uint8).reshape(n, target.itemsize)
    return caps, rows


def caps_column(caps: npt.NDArray[np.int64], unit: Unit, event: str) -> bytes:
    """Capture times (TStorage ns) as a little-endian int64 column in ``unit``."""
    offset = column_offset(unit, event)
    out = caps.astype("<i8", copy=offset != 0)
    if offset:
        out += np.int64(offset)
    return out.tobytes()


def values_column(values: npt.NDArray[Any] | list[Any], dtype: np.dtype[Any]) -> bytes:
    """Values as a column of ``dtype`` (``None``, a codec's NaN/infinity, becomes NaN)."""
    if isinstance(values, np.ndarray):
        return values.astype(dtype, copy=False).tobytes()
    if dtype.kind == "f":
        return np.asarray([np.nan if v is None else v for v in values], dtype=dtype).tobytes()
    return np.asarray(values, dtype=dtype).tobytes()
