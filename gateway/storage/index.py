"""In-memory indexes of capture times, the basis of List/Dict views over series.

Strategy
--------
TStorage answers a GET with every record of a box and no count, so ``len(lst)`` and
``lst[i]`` need the sorted distinct caps of the series held by the gateway. A
:class:`CapIndex` is a growable numpy ``int64`` array (8 bytes per record); appends at the
end are amortised O(1), a late record in the middle costs one merge. A :class:`BoxIndex`
holds the caps of every moid in one ``(cid, mid, moid range)`` box plus the box's
watermark ``acq0``: every record with ``acq < acq0`` is already in the index, and re-reading
the box with ``acq >= acq0`` brings it up to date (the change feed).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from gateway.keymap import KeyTuple

_MIN_CAPACITY = 16


class CapIndex:
    """Sorted distinct capture times of one series."""

    def __init__(self) -> None:
        self._buf: npt.NDArray[np.int64] = np.empty(_MIN_CAPACITY, dtype=np.int64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def caps(self) -> npt.NDArray[np.int64]:
        """A read-only view of the caps, ascending."""
        view = self._buf[: self._n]
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        """Memory held by the index."""
        return int(self._buf.nbytes)

    def last(self) -> int | None:
        """The largest cap, or ``None`` when empty."""
        return int(self._buf[self._n - 1]) if self._n else None

    def contains(self, cap: int) -> bool:
        """True when a record with this cap exists."""
        i = int(np.searchsorted(self._buf[: self._n], cap))
        return i < self._n and int(self._buf[i]) == cap

    def add(self, caps: Iterable[int] | npt.NDArray[np.int64]) -> None:
        """Add caps (any order, repeats and known caps allowed)."""
        new = np.unique(
            np.fromiter(caps, dtype=np.int64) if not isinstance(caps, np.ndarray) else caps
        )
        if new.size == 0:
            return
        if self._n == 0 or int(new[0]) > int(self._buf[self._n - 1]):
            self._reserve(self._n + new.size)
            self._buf[self._n : self._n + new.size] = new
            self._n += new.size
            return
        merged = np.union1d(self._buf[: self._n], new)
        self._buf = np.empty(max(_MIN_CAPACITY, merged.size * 2), dtype=np.int64)
        self._buf[: merged.size] = merged
        self._n = merged.size

    def _reserve(self, n: int) -> None:
        if n <= self._buf.size:
            return
        grown = np.empty(max(n, self._buf.size * 2), dtype=np.int64)
        grown[: self._n] = self._buf[: self._n]
        self._buf = grown


class BoxIndex:
    """Caps of every moid of one box, with the box's change-feed watermark.

    Attributes:
        lo: inclusive lower key of the box (cap and acq at their minima).
        hi: exclusive upper key of the box.
        acq0: every record of the box with ``acq < acq0`` is in the index.
        refreshed_at: monotonic time of the last catch-up with TStorage.
    """

    def __init__(self, lo: KeyTuple, hi: KeyTuple) -> None:
        self.lo = lo
        self.hi = hi
        self.acq0 = lo[4]
        self.refreshed_at = float("-inf")
        self.moids: dict[int, CapIndex] = {}

    def series(self, moid: int) -> CapIndex:
        """The index of one moid (empty if the moid has no record yet)."""
        idx = self.moids.get(moid)
        if idx is None:
            idx = self.moids[moid] = CapIndex()
        return idx

    def add_records(self, keys: Iterable[tuple[int, int]]) -> None:
        """Add ``(moid, cap)`` pairs."""
        by_moid: dict[int, list[int]] = {}
        for moid, cap in keys:
            by_moid.setdefault(moid, []).append(cap)
        for moid, caps in by_moid.items():
            self.series(moid).add(caps)

    def feed_box(self) -> tuple[KeyTuple, KeyTuple]:
        """The box that returns exactly the records that arrived since ``acq0``."""
        lo = (*self.lo[:4], self.acq0)
        return lo, self.hi

    @property
    def size(self) -> int:
        """Number of caps held (the memory budget counts these)."""
        return sum(len(c) for c in self.moids.values())
