"""Time-window reads of mapped series: info, range, downsampled range, latest, as-of, resume.

The Python API behind the ``ts:*`` events (``docs/time-series-events.md``); other parts of
the gateway (e.g. the dashboard) call it directly. Current reads come from the series'
in-memory index (numpy columns of caps and, for fixed-size codecs, payloads), caught up
with TStorage first, so their watermark is exact: every record with ``acq < watermark`` is
in the answer and nothing else. As-of reads and resumes are one acq-bounded TStorage GET.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.codecs import JSONValue
from gateway.errors import KeyMappingError
from gateway.keymap import CAP_RANGE, KeyTuple, ListTarget
from gateway.storage import GatewayStorage
from gateway.storage.index import CapIndex
from gateway.storage.link import Fetched
from gateway.timeseries.catalog import SeriesCatalog, listed_keys
from gateway.timeseries.downsample import Buckets, downsample, interval_slices, numeric_dtype
from gateway.timeseries.shared import SharedReads
from znsocket.exceptions import DataError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_BUCKETS",
    "MAX_LIMIT",
    "MAX_MANY_POINTS",
    "BucketWindow",
    "Changes",
    "RawWindow",
    "TimeSeriesReads",
    "list_key",
]

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
MAX_BUCKETS = 10_000
MAX_RESUME_KEYS = 100
#: records (raw) or slices (downsampled) of all the series of one ``many`` read together
MAX_MANY_POINTS = 100_000
MAX_RESUME_RECORDS = 1_000_000
MAX_AS_OF_RECORDS = 1_000_000
_ACQ_MIN, _ACQ_MAX = -(2**63), 2**63 - 1
_CAP_END = CAP_RANGE[1] + 1
_LIST_PREFIX = "znsocket.List:"


def list_key(key: Any) -> str:
    """The full List key for a user key (``meters/7/3``) or a full one.

    Raises:
        KeyMappingError: not a string.
    """
    if not isinstance(key, str) or not key:
        raise KeyMappingError(f"a series key is a non-empty string, got {key!r}")
    return key if key.startswith("znsocket.") else _LIST_PREFIX + key


def user_key(full_key: str) -> str:
    """The key without the ``znsocket.List:`` prefix."""
    return full_key.removeprefix(_LIST_PREFIX)


@dataclass(frozen=True)
class RawWindow:
    """Records of a window, oldest first.

    Attributes:
        caps: capture times (TStorage ns).
        values: their values as the rule's codec decodes them.
        count: records in the window (more than ``len(caps)`` when truncated).
        next_cap: where a read continuing a truncated window starts, else ``None``.
        watermark: every record with ``acq`` below it was considered.
    """

    caps: npt.NDArray[np.int64]
    values: list[JSONValue] | npt.NDArray[Any]
    count: int
    next_cap: int | None
    watermark: int

    @property
    def truncated(self) -> bool:
        """True when the window holds more records than returned."""
        return self.next_cap is not None


@dataclass(frozen=True)
class BucketWindow:
    """A downsampled window: ``slices`` equal slices, empty ones left out."""

    count: int
    slices: int
    buckets: Buckets
    watermark: int
    #: the slices' duration in ns when cut by interval, else ``None``
    every: int | None = None


@dataclass(frozen=True)
class Changes:
    """Records of one series acquired in ``[since, upto)``, by cap then acq."""

    caps: npt.NDArray[np.int64]
    acqs: npt.NDArray[np.int64]
    payloads: list[bytes]
    upto: int

    def before(self, watermark: int) -> Changes:
        """Only the records with ``acq < watermark``."""
        if watermark >= self.upto:
            return self
        keep = np.flatnonzero(self.acqs < watermark)
        return Changes(
            self.caps[keep], self.acqs[keep], [self.payloads[i] for i in keep], watermark
        )


def _over(total: int, what: str, asked: str, series: int) -> None:
    if total > MAX_MANY_POINTS:
        raise DataError(
            f"{asked} over {series} series makes {total:,} {what}; at most "
            f"{MAX_MANY_POINTS:,} per request: ask for fewer or narrow the window"
        )


def _bounded(value: Any, name: str, default: int, top: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{name}: expected a positive integer, got {value!r}")
    if value > top:
        raise DataError(f"{name}={value} is over the limit of {top:,} per request")
    return value


class TimeSeriesReads:
    """Reads of mapped series for the ``ts:*`` events and other Python callers.

    Args:
        storage: the gateway's storage (its key map, indexes and TStorage link).
        reuse_s: how long a resume answer is reused for identical resumes.
    """

    def __init__(self, storage: GatewayStorage, reuse_s: float = 2.0) -> None:
        self.storage = storage
        self.series = storage.series
        self.link = storage.link
        self.resumes: SharedReads[Changes] = SharedReads(reuse_s)
        #: series discovery, shared by ``ts:mrange`` and the dashboard's listing
        self.catalog = SeriesCatalog(storage)

    def series_keys(self) -> list[str]:
        """Every full List key that holds a series (or is fixed by the configuration).

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        return list(listed_keys(self.storage, self.catalog))

    # ------------------------------------------------------------------ keys
    def target(self, key: Any) -> ListTarget:
        """The series a key names.

        Raises:
            KeyMappingError: no ``list`` rule maps the key.
        """
        full = list_key(key)
        t = self.storage.keymap.resolve(full)
        if not isinstance(t, ListTarget):
            raise KeyMappingError(
                f"{user_key(full)!r} is not a series: no list map rule matches it"
            )
        return t

    @contextlib.contextmanager
    def _snapshot(self, t: ListTarget) -> Iterator[tuple[CapIndex, int]]:
        # Read under the series lock, caught up at once if own writes are held without
        # their acq: the index then holds exactly the records with acq < acq0, so a
        # resume from acq0 repeats nothing. (Otherwise it lags at most max_staleness.)
        with self.series.series_lock(t):
            box, _, idx = self.series.series_index(t, settled=True)
            yield idx, box.acq0

    # ------------------------------------------------------------------ reads
    def info(self, t: ListTarget) -> tuple[int, int | None, int | None, int]:
        """``(count, first cap, last cap, watermark)`` of the series."""
        with self._snapshot(t) as (idx, watermark):
            n = len(idx)
            caps = idx.caps
            return (
                n,
                int(caps[0]) if n else None,
                int(caps[n - 1]) if n else None,
                watermark,
            )

    def range(
        self,
        t: ListTarget,
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        as_of: int | None = None,
    ) -> RawWindow:
        """Records with ``start <= cap < end`` (``None``: unbounded), at most ``limit``.

        Args:
            t: the series.
            start, end: the window in TStorage ns.
            limit: records returned at most (default 10,000, at most 100,000); the oldest
                ones of the window are returned first.
            as_of: the series as known when TStorage's acq clock read this value.

        Raises:
            DataError: ``start > end`` or a limit out of bounds.
            TStorageUnavailable: TStorage did not answer.
        """
        limit = _bounded(limit, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        return self._range(t, start, end, limit, as_of, None)

    def range_array(
        self,
        t: ListTarget,
        dtype: np.dtype[Any],
        start: int | None = None,
        end: int | None = None,
        limit: int | None = None,
        as_of: int | None = None,
        max_limit: int = MAX_LIMIT,
    ) -> RawWindow:
        """:meth:`range` with the values as one numpy array of ``dtype`` (the codec's, from
        :func:`~gateway.timeseries.downsample.numeric_dtype`) and ``limit`` up to
        ``max_limit``: held payloads are viewed, not decoded one by one."""
        limit = _bounded(limit, "limit", DEFAULT_LIMIT, max_limit)
        return self._range(t, start, end, limit, as_of, dtype)

    def _range(
        self,
        t: ListTarget,
        start: int | None,
        end: int | None,
        limit: int,
        as_of: int | None,
        dtype: np.dtype[Any] | None,
    ) -> RawWindow:
        lo, hi = self._window(start, end)
        if as_of is not None:
            caps, payloads, wm = self._as_of(t, lo, hi, as_of)
            shown = caps[:limit]
            nxt = int(caps[limit]) if len(caps) > limit else None
            values = self._decode(t, payloads[:limit])
            return RawWindow(shown, _array(values, dtype), len(caps), nxt, wm)
        with self._snapshot(t) as (idx, wm):
            all_caps = idx.caps
            i0, i1 = (int(x) for x in np.searchsorted(all_caps, [lo, hi]))
            j1 = min(i1, i0 + limit)
            caps = all_caps[i0:j1].copy()
            nxt = int(all_caps[j1]) if j1 < i1 else None
            if dtype is not None and idx.columnar and j1 > i0:
                # a copy: the index's payload rows change under corrections
                rows = idx.payload_rows(i0, j1)
                return RawWindow(caps, rows.reshape(-1).view(dtype).copy(), i1 - i0, nxt, wm)
            values = _array(self._values(t, idx, i0, j1), dtype)
            return RawWindow(caps, values, i1 - i0, nxt, wm)

    def latest(self, t: ListTarget, n: int | None = None, as_of: int | None = None) -> RawWindow:
        """The newest ``n`` records (default 1, at most 100,000), oldest first."""
        n = _bounded(n, "n", 1, MAX_LIMIT)
        with self._snapshot(t) as (idx, wm):
            all_caps = idx.caps.copy()
            total = len(all_caps)
            if as_of is None:
                i0 = max(total - n, 0)
                values = self._values(t, idx, i0, total)
                return RawWindow(all_caps[i0:], values, total - i0, None, wm)
        # As of a past acq the series holds a subset of today's caps: widen a suffix of
        # them until it holds n records as of then (or is the whole series).
        m = n
        while True:
            i0 = max(total - m, 0)
            lo = int(all_caps[i0]) if total else CAP_RANGE[0]
            caps, payloads, wm = self._as_of(t, lo, _CAP_END, as_of)
            if len(caps) >= n or i0 == 0:
                break
            m *= 4
        caps, payloads = caps[-n:], payloads[-n:]
        return RawWindow(caps, self._decode(t, payloads), len(caps), None, wm)

    def downsampled(
        self,
        t: ListTarget,
        buckets: int | None,
        start: int | None = None,
        end: int | None = None,
        as_of: int | None = None,
        *,
        every: int | None = None,
    ) -> BucketWindow:
        """The window cut into time slices with min/max/mean/last each.

        Either ``buckets`` slices of equal duration, or (``every``, ``buckets`` ``None``)
        slices of ``every`` ns aligned to the unix epoch (whole minutes, hours, UTC days;
        the first and last may hold only part of the window). An unbounded side of the
        window ends at the first/last record. Values must be numbers.

        Raises:
            DataError: bad bounds, both or neither of ``buckets`` and ``every``, more than
                10,000 slices, or values that are not numbers.
        """
        if (buckets is None) == (every is None):
            raise DataError("downsampling takes buckets (a count) or every (an interval), one")
        if every is None:
            buckets = _bounded(buckets, "buckets", 1, MAX_BUCKETS)
        elif isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise DataError(f"every: expected a positive number of nanoseconds, got {every!r}")
        lo, hi = self._window(start, end)
        if as_of is not None:
            caps, payloads, wm = self._as_of(t, lo, hi, as_of)
            values = _as_floats(self._decode(t, payloads))
            return self._bucketed(caps, values, lo, hi, start, end, buckets, wm, every)
        with self._snapshot(t) as (idx, wm):
            # Under the series lock: the values may be a view of the index's payloads
            # (no copy of the window), which a correction could change in place.
            all_caps = idx.caps
            i0, i1 = (int(x) for x in np.searchsorted(all_caps, [lo, hi]))
            values = self._floats(t, idx, i0, i1)
            return self._bucketed(all_caps[i0:i1], values, lo, hi, start, end, buckets, wm, every)

    @staticmethod
    def _bucketed(
        caps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        lo: int,
        hi: int,
        start: int | None,
        end: int | None,
        buckets: int | None,
        wm: int,
        every: int | None = None,
    ) -> BucketWindow:
        if len(caps):
            lo = int(caps[0]) if start is None else lo
            hi = int(caps[-1]) + 1 if end is None else hi
        if every is None:
            assert buckets is not None
            return BucketWindow(len(caps), buckets, downsample(caps, values, lo, hi, buckets), wm)
        if not len(caps) and (start is None or end is None):
            lo, hi = (start, start) if start is not None else (end or 0, end or 0)
        # interval slices are equal slices of the window widened to whole intervals
        a_lo, a_hi, count = interval_slices(lo, hi, every, MAX_BUCKETS)
        return BucketWindow(
            len(caps), count, downsample(caps, values, a_lo, a_hi, count), wm, every
        )

    # ------------------------------------------------------------------ many series
    def many(
        self,
        targets: Sequence[ListTarget],
        start: int | None = None,
        end: int | None = None,
        *,
        limit: int | None = None,
        buckets: int | None = None,
        every: int | None = None,
        as_of: int | None = None,
    ) -> list[RawWindow] | list[BucketWindow]:
        """One window of each series: raw (:meth:`range`) or downsampled (:meth:`downsampled`).

        Downsampled windows share their slices: an unbounded side of the window ends at the
        first/last record of all the series. Each series is read as it is when its turn
        comes (each window's watermark is exact for that window).

        Args:
            targets: the series.
            start, end, as_of: as for :meth:`range`.
            limit: raw records per series (default 10,000, or fewer so that all the series
                together stay within 100,000).
            buckets, every: downsample (as :meth:`downsampled`).

        Raises:
            DataError: more than :data:`MAX_MANY_POINTS` records or slices in all.
        """
        n = max(len(targets), 1)
        if buckets is None and every is None:
            if limit is None:
                limit = max(1, min(DEFAULT_LIMIT, MAX_MANY_POINTS // n))
            limit = _bounded(limit, "limit", DEFAULT_LIMIT, MAX_LIMIT)
            _over(limit * n, "records", f"limit={limit}", n)
            return [self.range(t, start, end, limit, as_of) for t in targets]
        if start is None or end is None:
            firsts, lasts = [], []
            for t in targets:
                count, first, last, _ = self.info(t)
                if count and first is not None and last is not None:
                    firsts.append(first)
                    lasts.append(last)
            if firsts:  # one set of slices for all: the extent of every series together
                start = min(firsts) if start is None else start
                end = max(lasts) + 1 if end is None else end
        if every is not None and start is not None and end is not None:
            _over(interval_slices(*self._window(start, end), every, MAX_BUCKETS)[2] * n,
                  "buckets", f"every={every} ns", n)  # fmt: skip
        elif buckets is not None:
            _over(_bounded(buckets, "buckets", 1, MAX_BUCKETS) * n, "buckets",
                  f"buckets={buckets}", n)  # fmt: skip
        return [self.downsampled(t, buckets, start, end, as_of, every=every) for t in targets]

    # ------------------------------------------------------------------ resume
    def resume(
        self, targets: Sequence[ListTarget], since: Sequence[int]
    ) -> tuple[int, list[Changes]]:
        """Records acquired since each watermark, up to one common new watermark.

        Concurrent (and, for ``reuse_s``, later) resumes of one series from one watermark
        share one TStorage read.

        Returns:
            ``(watermark, changes per target)``: the records with
            ``since[i] <= acq < watermark`` of each target.

        Raises:
            DataError: too many keys or records.
        """
        if len(targets) > MAX_RESUME_KEYS:
            raise DataError(f"at most {MAX_RESUME_KEYS} keys per resume, got {len(targets)}")
        found: list[Changes] = []
        for t, w in zip(targets, since, strict=True):
            self.series.series_index(t)  # the client watches it from now on
            s = t.series
            found.append(
                self.resumes.get(((s.cid, s.mid, s.moid), w), functools.partial(self._since, t, w))
            )
        if not found:
            return 0, []
        upto = min(c.upto for c in found)
        return upto, [c.before(upto) for c in found]

    def _since(self, t: ListTarget, since: int) -> Changes:
        s = t.series
        lo: KeyTuple = (s.cid, s.mid, s.moid, CAP_RANGE[0], since)
        hi: KeyTuple = (s.cid + 1, s.mid + 1, s.moid + 1, _CAP_END, _ACQ_MAX)
        records = self._get(lo, hi, MAX_RESUME_RECORDS, "records to resume")
        upto = records[1]
        got = [(k.cap, k.acq, p) for k, p in records[0] if k.moid == s.moid and k.acq < upto]
        got.sort(key=lambda r: (r[0], r[1]))
        return Changes(
            np.asarray([r[0] for r in got], dtype=np.int64),
            np.asarray([r[1] for r in got], dtype=np.int64),
            [r[2] for r in got],
            upto,
        )

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _window(start: int | None, end: int | None) -> tuple[int, int]:
        lo = CAP_RANGE[0] if start is None else start
        hi = _CAP_END if end is None else end
        if lo > hi:
            raise DataError(f"start ({start}) lies after end ({end})")
        return lo, hi

    def _get(self, lo: KeyTuple, hi: KeyTuple, top: int, what: str) -> tuple[list[Fetched], int]:
        out: list[Fetched] = []

        def take(batch: list[Fetched]) -> None:
            out.extend(batch)
            if len(out) > top:
                raise DataError(f"more than {top:,} {what}: ask for a narrower window")

        acq = self.link.stream(lo, hi, take)
        return out, acq

    def _as_of(
        self, t: ListTarget, lo: int, hi: int, as_of: int
    ) -> tuple[npt.NDArray[np.int64], list[bytes], int]:
        with self._snapshot(t) as (idx, wm):
            held = np.searchsorted(idx.caps, [lo, hi])
        if int(held[1] - held[0]) > MAX_AS_OF_RECORDS:
            raise DataError(
                f"an as-of read covers at most {MAX_AS_OF_RECORDS:,} records: narrow the window"
            )
        s = t.series
        # acq below as_of: the versions TStorage had acquired by then
        box_lo: KeyTuple = (s.cid, s.mid, s.moid, lo, _ACQ_MIN)
        box_hi: KeyTuple = (s.cid + 1, s.mid + 1, s.moid + 1, hi, as_of)
        records, _ = self._get(box_lo, box_hi, 4 * MAX_AS_OF_RECORDS, "record versions")
        newest: dict[int, tuple[int, bytes]] = {}
        for k, p in records:
            if k.moid != s.moid:
                continue
            prev = newest.get(k.cap)
            if prev is None or k.acq > prev[0]:
                newest[k.cap] = (k.acq, p)
        caps = np.asarray(sorted(newest), dtype=np.int64)
        return caps, [newest[int(c)][1] for c in caps], wm

    def _decode(self, t: ListTarget, payloads: list[bytes]) -> list[JSONValue]:
        return self.series.view(t.rule.index).shape.codec.decode_many(payloads)

    def _values(self, t: ListTarget, idx: CapIndex, i0: int, i1: int) -> list[JSONValue]:
        if i1 <= i0:
            return []
        codec = self.series.view(t.rule.index).shape.codec
        if idx.columnar:
            return codec.decode_block(idx.payload_block(range(i0, i1)), i1 - i0)
        caps = [int(c) for c in idx.caps[i0:i1]]
        got = self.series.fetch(t, caps)
        return codec.decode_many([got[c] for c in caps if c in got])

    def _floats(self, t: ListTarget, idx: CapIndex, i0: int, i1: int) -> npt.NDArray[np.float64]:
        codec = self.series.view(t.rule.index).shape.codec
        dtype = numeric_dtype(codec)
        if idx.columnar and dtype is not None and i1 > i0:
            # a view when the payloads are native float64 already (no copy of the window)
            rows = idx.payload_rows(i0, i1).reshape(-1).view(dtype)
            return rows.astype(np.float64, copy=False)
        return _as_floats(self._values(t, idx, i0, i1))


def _array(values: list[JSONValue], dtype: np.dtype[Any] | None) -> Any:
    # None (a codec's NaN or infinity) is NaN in a float column
    if dtype is None:
        return values
    if dtype.kind == "f":
        return np.asarray([np.nan if v is None else v for v in values], dtype=dtype)
    return np.asarray(values, dtype=dtype)


def _as_floats(values: list[JSONValue]) -> npt.NDArray[np.float64]:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan  # codecs show NaN and infinities as null
        elif isinstance(v, (int, float)):
            out[i] = float(v)
        else:
            raise DataError(
                f"downsampling needs numbers; a record holds {type(v).__name__} {v!r:.40}"
            )
    return out
