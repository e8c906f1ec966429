"""The acquisition clock: strictly increasing TStorage nanoseconds from the wall clock."""

from __future__ import annotations

import time

from tstorage_client.timestamp import EPOCH_OFFSET_NS


def now_tstorage_ns() -> int:
    """The wall clock in TStorage nanoseconds."""
    return time.time_ns() - EPOCH_OFFSET_NS


class AcqClock:
    """``tick() = max(now, previous + 1)``: unique, increasing acq values close to wall time.

    Not thread-safe by itself: the store calls it under its commit lock, which is what makes
    assigned acq values and watermark readings one total order.

    Args:
        floor: the largest value handed out before (restored from disk on restart).
    """

    def __init__(self, floor: int = -(2**63)) -> None:
        self._previous = floor

    @property
    def previous(self) -> int:
        """The last value handed out."""
        return self._previous

    def tick(self) -> int:
        """One new value, larger than every value handed out before."""
        return self.reserve(1)

    def reserve(self, count: int) -> int:
        """``count`` consecutive new values; returns the first of them.

        Raises:
            OverflowError: the clock would pass the largest int64 (never in practice).
        """
        start = max(now_tstorage_ns(), self._previous + 1)
        last = start + count - 1
        if last >= 2**63 - 1:
            raise OverflowError("acquisition clock exhausted")
        self._previous = last
        return start
