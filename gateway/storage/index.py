"""The records of one chunk of a series held in memory: its sorted distinct caps and, for
fixed-size codecs, the newest payload of each.

A :class:`CapIndex` is a growable numpy ``int64`` array (8 bytes per record); appends at the
end are amortised O(1), a late record in the middle costs one merge. A series is many such
chunks, summarised and read on demand (:mod:`gateway.storage.summaries`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

_MIN_CAPACITY = 16


class CapIndex:
    """Sorted distinct capture times of one series, optionally with their payloads.

    With ``payload_size`` (rules whose codec has fixed-size payloads, e.g. ``struct:<d``),
    the index also keeps, per cap, the newest payload and its acq in numpy columns
    (``payload_size + 8`` more bytes per record), so reads need no GET at all. A payload of
    another size (written by some other program) turns the columns off for this series;
    reads then fetch from TStorage.
    """

    def __init__(self, payload_size: int | None = None) -> None:
        self._buf: npt.NDArray[np.int64] = np.empty(_MIN_CAPACITY, dtype=np.int64)
        self._n = 0
        self.payload_size = payload_size
        #: Records of this gateway's own writes are held whose acq TStorage has not told
        #: yet (cleared when the change feed brings them back).
        self.unsettled = False
        self._acq: npt.NDArray[np.int64] | None = None
        self._pay: npt.NDArray[np.uint8] | None = None
        if payload_size is not None:
            self._acq = np.empty(_MIN_CAPACITY, dtype=np.int64)
            self._pay = np.empty((_MIN_CAPACITY, payload_size), dtype=np.uint8)

    def __len__(self) -> int:
        return self._n

    @property
    def columnar(self) -> bool:
        """True when payloads are held in memory."""
        return self._pay is not None

    @property
    def caps(self) -> npt.NDArray[np.int64]:
        """A read-only view of the caps, ascending."""
        view = self._buf[: self._n]
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        """Memory held by the index."""
        extra = 0 if self._pay is None or self._acq is None else self._pay.nbytes + self._acq.nbytes
        return int(self._buf.nbytes) + int(extra)

    def last(self) -> int | None:
        """The largest cap, or ``None`` when empty."""
        return int(self._buf[self._n - 1]) if self._n else None

    def position(self, cap: int) -> int | None:
        """Index of ``cap`` in :attr:`caps`, or ``None``."""
        i = int(np.searchsorted(self._buf[: self._n], cap))
        return i if i < self._n and int(self._buf[i]) == cap else None

    def contains(self, cap: int) -> bool:
        """True when a record with this cap exists."""
        return self.position(cap) is not None

    def payload(self, cap: int) -> bytes | None:
        """The newest payload of ``cap`` when payloads are held, else ``None``."""
        if self._pay is None:
            return None
        i = self.position(cap)
        return None if i is None else self._pay[i].tobytes()

    def last_payload(self) -> bytes | None:
        """The newest payload of the largest cap when payloads are held, else ``None``."""
        if self._pay is None or self._n == 0:
            return None
        return self._pay[self._n - 1].tobytes()

    def payload_block(self, positions: Sequence[int] | range) -> bytes:
        """The payloads at positions of :attr:`caps`, concatenated (columns must be held)."""
        assert self._pay is not None
        if isinstance(positions, range) and positions.step == 1:
            return self._pay[positions.start : positions.stop].tobytes()
        return self._pay[np.asarray(positions, dtype=np.int64)].tobytes()

    def payload_rows(self, start: int, stop: int) -> npt.NDArray[np.uint8]:
        """Payloads of positions ``start..stop-1`` as a read-only ``n x payload_size`` view."""
        assert self._pay is not None
        view = self._pay[start:stop]
        view.flags.writeable = False
        return view

    def acqs(self, start: int, stop: int) -> npt.NDArray[np.int64] | None:
        """Acqs of the held payloads at positions ``start..stop-1`` (``None`` without columns)."""
        return None if self._acq is None else self._acq[start:stop].copy()

    def payloads_at(self, positions: Sequence[int] | range) -> list[bytes]:
        """Payloads at positions of :attr:`caps` (payload columns must be held)."""
        assert self._pay is not None
        size = self._pay.shape[1]
        block = self._pay[np.asarray(positions, dtype=np.int64)].tobytes()
        return (
            [block[i : i + size] for i in range(0, len(block), size)]
            if size
            else [b""] * len(positions)
        )

    def add(self, caps: Iterable[int] | npt.NDArray[np.int64]) -> None:
        """Add caps without payloads (any order; repeats and known caps allowed).

        Only for indexes without payload columns.
        """
        assert self._pay is None, "an index with payload columns takes records"
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

    def add_records(
        self,
        caps: Sequence[int],
        acqs: Sequence[int],
        payloads: Sequence[bytes],
        *,
        own: bool = False,
    ) -> None:
        """Add records; for a cap already held, the newest acq wins.

        Args:
            caps, acqs, payloads: the records (any order).
            own: records this gateway just wrote: TStorage has not told their acq, so they
                replace what is held at once but keep its acq, and the change feed (which
                brings them back with their real acq) settles the entry.
        """
        if not caps:
            return
        if self._pay is None:
            self.add(caps)
            return
        size = self.payload_size
        if any(len(p) != size for p in payloads):
            self._drop_columns()
            self.add(caps)
            return
        n = self._n
        if len(caps) == 1 and (n == 0 or caps[0] > int(self._buf[n - 1])):
            # one record after the last: a List.append (the numpy path costs more per call)
            self._reserve(n + 1)
            assert self._acq is not None and self._pay is not None
            self._buf[n] = caps[0]
            self._acq[n] = acqs[0]
            self._pay[n] = np.frombuffer(payloads[0], dtype=np.uint8)
            self._n = n + 1
            return
        self.add_arrays(
            np.asarray(caps, dtype=np.int64),
            np.asarray(acqs, dtype=np.int64),
            np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(payloads), size or 0),
            own=own,
        )

    def add_arrays(
        self,
        cap_a: npt.NDArray[np.int64],
        acq_a: npt.NDArray[np.int64],
        pay_a: npt.NDArray[np.uint8],
        *,
        own: bool = False,
    ) -> None:
        """:meth:`add_records` for columns (payloads as an ``n x payload_size`` array)."""
        if cap_a.size == 0:
            return
        if self._pay is None:
            self.add(cap_a)
            return
        n = self._n
        # a batch read from TStorage (sorted) is the common case: no order check before it
        if not own and self._append_sorted(cap_a, acq_a, pay_a):
            return
        increasing = cap_a.size == 1 or bool((cap_a[1:] > cap_a[:-1]).all())
        if own and increasing and (n == 0 or int(cap_a[0]) > int(self._buf[n - 1])):
            # own records after the last one (a bulk append): no acq to compare
            self._append(cap_a, acq_a, pay_a)
            return
        size = self.payload_size
        if not increasing:  # else already one record per cap, in order
            # newest acq per cap within the batch
            order = np.lexsort((acq_a, cap_a))
            cap_a, acq_a, pay_a = cap_a[order], acq_a[order], pay_a[order]
            keep = np.append(cap_a[1:] != cap_a[:-1], True)
            cap_a, acq_a, pay_a = cap_a[keep], acq_a[keep], pay_a[keep]
        if n == 0 or int(cap_a[0]) > int(self._buf[n - 1]):
            self._append(cap_a, acq_a, pay_a)
            return
        assert self._acq is not None and self._pay is not None
        # caps are strictly increasing here: a run of held ones if the first one's run matches
        p0 = int(np.searchsorted(self._buf[:n], cap_a[0]))
        p1 = p0 + cap_a.size
        if p1 <= n and bool((self._buf[p0:p1] == cap_a).all()):
            # a run of held records again (the feed bringing own writes back): slices
            if own:
                self._pay[p0:p1] = pay_a
            else:
                newer = acq_a >= self._acq[p0:p1]
                if bool(newer.all()):
                    self._acq[p0:p1] = acq_a
                    self._pay[p0:p1] = pay_a
                else:
                    self._acq[p0:p1][newer] = acq_a[newer]
                    self._pay[p0:p1][newer] = pay_a[newer]
            return
        pos = np.searchsorted(self._buf[:n], cap_a)
        inside = pos < n
        known = np.zeros(cap_a.size, dtype=bool)
        known[inside] = self._buf[pos[inside]] == cap_a[inside]
        if known.any():
            p = pos[known]
            if own:
                self._pay[p] = pay_a[known]
            else:
                newer = acq_a[known] >= self._acq[p]
                self._acq[p[newer]] = acq_a[known][newer]
                self._pay[p[newer]] = pay_a[known][newer]
        fresh = ~known
        if fresh.any():
            caps_all = np.concatenate([self._buf[:n], cap_a[fresh]])
            acqs_all = np.concatenate([self._acq[:n], acq_a[fresh]])
            pays_all = np.concatenate([self._pay[:n], pay_a[fresh]])
            order = np.argsort(caps_all, kind="stable")
            total = caps_all.size
            cap_cap = max(_MIN_CAPACITY, total * 2)
            self._buf = np.empty(cap_cap, dtype=np.int64)
            self._acq = np.empty(cap_cap, dtype=np.int64)
            self._pay = np.empty((cap_cap, size or 0), dtype=np.uint8)
            self._buf[:total] = caps_all[order]
            self._acq[:total] = acqs_all[order]
            self._pay[:total] = pays_all[order]
            self._n = total

    def _append_sorted(
        self,
        cap_a: npt.NDArray[np.int64],
        acq_a: npt.NDArray[np.int64],
        pay_a: npt.NDArray[np.uint8],
    ) -> bool:
        """The common case of a streamed build, in O(batch): records sorted by (cap, acq)
        whose caps do not precede the last held one. False (nothing done) otherwise."""
        assert self._acq is not None and self._pay is not None
        n = self._n
        last = int(self._buf[n - 1]) if n else None
        first = int(cap_a[0])
        if last is not None and first < last:
            return False
        if cap_a.size > 1:
            later = cap_a[1:] > cap_a[:-1]
            if not later.all():
                same = ~later
                if (cap_a[1:][same] != cap_a[:-1][same]).any():
                    return False  # not sorted by cap
                if (acq_a[1:][same] < acq_a[:-1][same]).any():
                    return False  # equal caps not sorted by acq
                keep = np.append(later, True)  # the newest acq of each cap
                cap_a, acq_a, pay_a = cap_a[keep], acq_a[keep], pay_a[keep]
        if first == last:  # the same cap as the last held one (e.g. across batches)
            if int(acq_a[0]) >= int(self._acq[n - 1]):
                self._acq[n - 1] = acq_a[0]
                self._pay[n - 1] = pay_a[0]
            cap_a, acq_a, pay_a = cap_a[1:], acq_a[1:], pay_a[1:]
        self._append(cap_a, acq_a, pay_a)
        return True

    def _append(
        self,
        cap_a: npt.NDArray[np.int64],
        acq_a: npt.NDArray[np.int64],
        pay_a: npt.NDArray[np.uint8],
    ) -> None:
        # records whose caps all follow the last held one, one per cap, ascending
        n, k = self._n, cap_a.size
        self._reserve(n + k)
        assert self._acq is not None and self._pay is not None
        self._buf[n : n + k] = cap_a
        self._acq[n : n + k] = acq_a
        self._pay[n : n + k] = pay_a
        self._n = n + k

    def slice(self, start: int, stop: int) -> CapIndex:
        """A new index holding positions ``start..stop-1`` of this one (a chunk split)."""
        out = CapIndex(self.payload_size)
        n = stop - start
        # copies of exactly the rows (arrays of their own, which appends may grow in place)
        out._buf = self._buf[start:stop].copy()
        if self._acq is not None and self._pay is not None:
            out._acq = self._acq[start:stop].copy()
            out._pay = self._pay[start:stop].copy()
        out._n = n
        out.unsettled = self.unsettled
        return out

    def reserve(self, n: int) -> None:
        """Make room for ``n`` records in all (e.g. the count a summary expects of a chunk
        about to be read), so that the appends of a read grow no array."""
        self._reserve(n)

    def _drop_columns(self) -> None:
        self._acq = self._pay = None
        self.payload_size = None

    def _reserve(self, n: int) -> None:
        if n <= self._buf.shape[0]:
            return
        size = max(n, self._buf.shape[0] * 2)
        self._buf = _grown(self, "_buf", self._n, size)
        if self._acq is not None:
            self._acq = _grown(self, "_acq", self._n, size)
        if self._pay is not None:
            self._pay = _grown(self, "_pay", self._n, size)


def _refs(holder: object, name: str) -> int:
    return sys.getrefcount(getattr(holder, name))


def _calibrate() -> int | None:
    """References :func:`_refs` counts for an array nobody else holds; None when a view
    would not show in the count (then arrays are never resized in place)."""

    class Holder:
        arr: Any = None

    holder = Holder()
    holder.arr = np.empty(1)
    alone = _refs(holder, "arr")
    view = holder.arr[:]
    shared = _refs(holder, "arr")
    del view
    return alone if shared > alone else None


_UNSHARED_REFS = _calibrate()


def _grown(holder: object, name: str, n: int, rows: int) -> npt.NDArray[Any]:
    """``holder.name`` with room for ``rows`` rows, its first ``n`` rows kept.

    An array that nothing else references (no reader holds a view of it) is resized in
    place: ``ndarray.resize`` reallocates, which moves a large array's pages (mremap)
    instead of copying them, so a series of 10M records touches its memory about once
    instead of twice (first touches of memory are a large part of a cold index build).
    It is read-only during the call, so numpy does not zero-fill the new rows (they are
    written later). Otherwise the rows are copied into a new array.
    """
    if _UNSHARED_REFS is not None and _refs(holder, name) <= _UNSHARED_REFS:
        arr = getattr(holder, name)
        arr.flags.writeable = False
        try:
            arr.resize((rows, *arr.shape[1:]), refcheck=False)
            return arr
        except ValueError:  # e.g. it does not own its memory
            pass
        finally:
            arr.flags.writeable = True
        del arr
    return _copied(getattr(holder, name), n, rows)


def _copied(arr: npt.NDArray[Any], n: int, rows: int) -> npt.NDArray[Any]:
    """A new array of ``rows`` rows holding the first ``n`` rows of ``arr``."""
    out = np.empty((rows, *arr.shape[1:]), dtype=arr.dtype)
    out[:n] = arr[:n]
    return out
