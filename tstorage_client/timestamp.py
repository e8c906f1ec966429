"""Utilities for storing and converting TStorage and unix timestamps.

TStorage time counts nanoseconds since 2001-01-01T00:00:00 UTC, i.e. Unix time minus
978307200 seconds.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import overload

__all__ = [
    "Tstoragedatetime",
    "from_unix",
    "from_unix_ns",
    "now",
    "now_ns",
    "to_unix",
    "to_unix_ns",
]

#: Seconds from the Unix epoch to the TStorage epoch.
EPOCH_OFFSET_S = 978307200
#: Nanoseconds from the Unix epoch to the TStorage epoch.
EPOCH_OFFSET_NS = EPOCH_OFFSET_S * 10**9
#: TStorage time 0 as an aware datetime.
EPOCH = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)

_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(order=True)
class Tstoragedatetime:
    """Tstoragedatetime stores nanosecond precise time in friendly manner.

    Attributes:
        datetime: Python datetime part of nanosecond precise time (microsecond precision).
        nanoseconds: Remaining nanoseconds in range 0-999.
    """

    datetime: dt.datetime
    nanoseconds: int

    def to_unix(self) -> float:
        """Convert to unix seconds with nanosecond precise fractions."""
        return self.to_unix_ns() / 10**9

    def to_unix_ns(self) -> int:
        """Convert to unix nanoseconds (a naive datetime is taken as local time)."""
        moment = self.datetime
        if moment.tzinfo is None:
            moment = moment.astimezone(dt.timezone.utc)
        micros = (moment - _UNIX_EPOCH) // _MICROSECOND
        return micros * 1000 + self.nanoseconds

    @classmethod
    def from_unix(
        cls, timestamp: int | float, *, tzinfo: dt.tzinfo = dt.timezone.utc
    ) -> Tstoragedatetime:
        """Create Tstoragedatetime from unix seconds."""
        ns = timestamp * 10**9 if isinstance(timestamp, int) else int(timestamp * 10**9)
        return cls.from_unix_ns(ns, tzinfo=tzinfo)

    @classmethod
    def from_unix_ns(
        cls, timestamp: int, *, tzinfo: dt.tzinfo = dt.timezone.utc
    ) -> Tstoragedatetime:
        """Create Tstoragedatetime from unix nanoseconds."""
        micros, nanos = divmod(timestamp, 1000)
        moment = (_UNIX_EPOCH + micros * _MICROSECOND).astimezone(tzinfo)
        return cls(moment, nanos)

    def to_tstorage(self) -> float:
        """Convert to TStorage seconds with nanosecond precise fractions."""
        return from_unix(self.to_unix())

    def to_tstorage_ns(self) -> int:
        """Convert to TStorage nanoseconds."""
        return from_unix_ns(self.to_unix_ns())

    @classmethod
    def from_tstorage(
        cls, timestamp: int | float, *, tzinfo: dt.tzinfo = dt.timezone.utc
    ) -> Tstoragedatetime:
        """Create Tstoragedatetime from TStorage seconds."""
        return cls.from_unix(to_unix(timestamp), tzinfo=tzinfo)

    @classmethod
    def from_tstorage_ns(
        cls, timestamp: int, *, tzinfo: dt.tzinfo = dt.timezone.utc
    ) -> Tstoragedatetime:
        """Create Tstoragedatetime from TStorage nanoseconds.

        This function directly converts cap and acq values to user friendly format.
        """
        return cls.from_unix_ns(to_unix_ns(timestamp), tzinfo=tzinfo)


@overload
def to_unix(timestamp: int) -> int: ...
@overload
def to_unix(timestamp: float) -> float: ...
def to_unix(timestamp: int | float) -> int | float:
    """Converts TStorage second timestamp to unix second timestamp.

    Args:
        timestamp: TStorage timestamp in seconds.

    Returns:
        Unix timestamp in seconds.
    """
    return timestamp + EPOCH_OFFSET_S


def to_unix_ns(timestamp: int) -> int:
    """Converts TStorage nanosecond timestamp to unix nanosecond timestamp.

    Args:
        timestamp: TStorage timestamp in nanoseconds.

    Returns:
        Unix timestamp in nanoseconds.
    """
    return timestamp + EPOCH_OFFSET_NS


@overload
def from_unix(timestamp: int) -> int: ...
@overload
def from_unix(timestamp: float) -> float: ...
def from_unix(timestamp: int | float) -> int | float:
    """Converts unix second timestamp to TStorage second timestamp.

    Args:
        timestamp: Unix timestamp in seconds.

    Returns:
        TStorage timestamp in seconds.
    """
    return timestamp - EPOCH_OFFSET_S


def from_unix_ns(timestamp: int) -> int:
    """Converts unix nanosecond timestamp to TStorage nanosecond timestamp.

    Args:
        timestamp: Unix timestamp in nanoseconds.

    Returns:
        TStorage timestamp in nanoseconds.
    """
    return timestamp - EPOCH_OFFSET_NS


def now() -> float:
    """Get current TStorage timestamp in seconds."""
    return from_unix(time.time())


def now_ns() -> int:
    """Get current TStorage timestamp in nanoseconds."""
    return from_unix_ns(time.time_ns())
