"""Times in time-series requests and answers: parsing and units.

A request names a time as TStorage nanoseconds (an integer, or a string of digits so that
JavaScript can send exact values) or as an ISO-8601 string; answers give times in the unit
the client asks for, Unix nanoseconds (:data:`DEFAULT_UNIT`, as in the CSV files of
``gateway export``) unless it asks. Watermarks are TStorage acquisition times, sent as
decimal strings.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gateway.keymap import CAP_END, CAP_RANGE
from tstorage_client.timestamp import EPOCH, EPOCH_OFFSET_NS
from znsocket.exceptions import DataError

Unit = Literal["tstorage_ns", "unix_ns", "unix_ms", "unix_s"]
UNITS: tuple[Unit, ...] = ("tstorage_ns", "unix_ns", "unix_ms", "unix_s")
#: the unit of answers whose request names none: the one users meet elsewhere (CSV files,
#: map rules' default ``time``); ``tstorage_ns`` stays available by asking
DEFAULT_UNIT: Unit = "unix_ns"

_DIGITS = re.compile(r"-?[0-9]{1,20}")


def parse_time(value: Any, name: str) -> int | None:
    """A request time as TStorage nanoseconds (``None`` for null).

    Args:
        value: an int (TStorage ns), a string of digits (TStorage ns), an ISO-8601 string
            (no zone = UTC), or ``None``.
        name: the argument's name, for messages.

    Raises:
        DataError: anything else, or a time outside TStorage's range.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(
            f"{name}: expected an ISO-8601 string or TStorage nanoseconds, got {value!r}"
        )
    if isinstance(value, int):
        ns = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        ns = int(value.strip())
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        fraction = 0
        m = re.search(r"\.([0-9]+)(?=[+-][0-9]{2}:?[0-9]{2}$|$)", text)
        if m:  # datetime keeps microseconds only: keep the nanoseconds ourselves
            digits = m.group(1)
            fraction = int(digits[:9].ljust(9, "0"))
            text = text[: m.start()] + text[m.end() :]
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise DataError(
                f"{name}: {value!r} is neither an ISO-8601 time nor TStorage nanoseconds"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        delta = when - EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * 10**9 + fraction
    else:
        raise DataError(
            f"{name}: expected an ISO-8601 string or TStorage nanoseconds, "
            f"got {type(value).__name__}"
        )
    if not CAP_RANGE[0] <= ns <= CAP_END:
        raise DataError(f"{name}: {value!r} is outside TStorage's time range")
    return ns


def parse_unit(value: Any) -> Unit:
    """The ``unit`` argument (absent: :data:`DEFAULT_UNIT`, Unix nanoseconds).

    Raises:
        DataError: not one of :data:`UNITS`.
    """
    if value is None:
        return DEFAULT_UNIT
    if value not in UNITS:
        raise DataError(f"unit: expected one of {', '.join(UNITS)}, got {value!r}")
    return value


def caps_in_unit(caps: npt.NDArray[np.int64], unit: Unit) -> list[int] | list[float]:
    """Capture times (TStorage ns) as JSON numbers of ``unit``."""
    if unit == "tstorage_ns":
        return caps.tolist()
    unix = caps + np.int64(EPOCH_OFFSET_NS)
    if unit == "unix_ns":
        return unix.tolist()
    if unit == "unix_ms":
        return (unix / 1e6).tolist()
    return (unix / 1e9).tolist()


def cap_in_unit(cap: int | None, unit: Unit) -> int | float | None:
    """One capture time in ``unit`` (``None`` stays ``None``)."""
    if cap is None:
        return None
    return caps_in_unit(np.asarray([cap], dtype=np.int64), unit)[0]


def cap_text(cap: int) -> str:
    """A capture time for a message to a user: UTC ISO-8601 to the nanosecond and unix ns
    (the times ``TimeSeries`` and the CSV files use), not TStorage's own ns."""
    unix = int(cap) + EPOCH_OFFSET_NS
    return f"{np.datetime64(unix, 'ns')}Z (unix ns {unix})"


def watermark_text(acq: int) -> str:
    """A watermark as sent to clients: a decimal string (exact in JavaScript too)."""
    return str(int(acq))


_DURATION_UNITS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "min": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86_400 * 10**9,
    "w": 7 * 86_400 * 10**9,
}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(ns|us|µs|ms|min|s|m|h|d|w)")


def parse_duration(value: Any, name: str) -> int:
    """A positive duration as nanoseconds.

    Args:
        value: an int (nanoseconds), or a string of number-unit parts with units ``ns``,
            ``us``, ``ms``, ``s``, ``m``/``min``, ``h``, ``d``, ``w``: ``"30s"``,
            ``"5min"``, ``"1h30min"``, ``"1.5h"``.
        name: the argument's name, for messages.

    Raises:
        DataError: anything else, zero, or a fraction of a nanosecond.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        ns = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, total = 0, 0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            number, unit = m.group(1), m.group(2)
            whole, _, frac = number.partition(".")
            scale = _DURATION_UNITS[unit]
            part = int(whole) * scale + int(frac or "0") * scale // 10 ** len(frac)
            if frac and int(frac) * scale % 10 ** len(frac):
                raise DataError(f"{name}: {value!r} is not a whole number of nanoseconds")
            total += part
            pos = m.end()
        if pos != len(text) or not text:
            raise DataError(
                f'{name}: {value!r} is not a duration (e.g. "30s", "5min", "1h", "7d", '
                "or integer nanoseconds)"
            )
        ns = total
    else:
        raise DataError(
            f'{name}: expected a duration string (e.g. "1min") or integer nanoseconds, '
            f"got {type(value).__name__}"
        )
    if ns <= 0:
        raise DataError(f"{name}: a duration must be positive, got {value!r}")
    return ns
