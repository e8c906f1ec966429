"""Time-window reads of mapped series: info, range, downsampled range, latest, as-of, resume.

The Python API behind the ``ts:*`` events (``docs/time-series-events.md``); other parts of
the gateway (e.g. the dashboard) call it directly. Current reads come from the series'
in-memory index (numpy columns of caps and, for fixed-size codecs, payloads), caught up
with TStorage first, so their watermark is exact: every record with ``acq < watermark`` is
in the answer and nothing else. As-of reads and resumes are one acq-bounded TStorage GET.

A numeric window read (:meth:`TimeSeriesReads.range_array`) whose chunks are mostly not
cached (at least :data:`STREAM_CHUNKS` chunks' worth of records) streams its records
straight from TStorage in numpy batches instead, bounded by the same watermark, and leaves
the chunk cache as it was: paging through a series larger than ``index_budget_bytes`` would
otherwise read every chunk into the cache and evict it again before the next page.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.codecs import JSONValue
from gateway.errors import KeyMappingError
from gateway.keymap import CAP_END, CAP_RANGE, LIST_PREFIX, KeyTuple, ListTarget, user_key
from gateway.storage import GatewayStorage
from gateway.storage.link import ColumnsUnavailable, Fetched
from gateway.storage.summaries import SeriesIndex
from gateway.timeseries.catalog import SeriesCatalog, listed_keys
from gateway.timeseries.downsample import (
    Buckets,
    Part,
    downsample,
    interval_slices,
    rollup_at,
    slice_edges,
    snap_edges,
)
from gateway.timeseries.shared import SharedReads
from znsocket.exceptions import DataError

__all__ = [
    "ALIGNS",
    "ALIGN_SHIFT",
    "DEFAULT_LIMIT",
    "MAX_BUCKETS",
    "MAX_LIMIT",
    "MAX_MANY_POINTS",
    "BucketWindow",
    "Changes",
    "RawWindow",
    "TimeSeriesReads",
    "aligns",
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
#: a numeric window read streams from TStorage when its chunks not cached hold at least
#: this many chunks' records (``index_chunk`` records each); the cache path reads 64 at a time
STREAM_CHUNKS = 64
#: the bucket alignments of :meth:`TimeSeriesReads.downsampled`: ``"equal"`` (equal
#: slices), ``"rows"`` (inner edges moved to the nearest summary row boundary) or
#: ``"auto"`` (``None``: rows for a window long enough that equal edges would each cost
#: a read, see :func:`aligns`)
ALIGNS = (None, "auto", "rows", "equal")
#: how far an aligned inner edge may move, as a fraction of the narrowest slice: slices stay
#: between half and one and a half times their nominal width
ALIGN_SHIFT = 0.25


def list_key(key: Any) -> str:
    """The full List key for a user key (``meters/7/3``) or a full one.

    Raises:
        KeyMappingError: not a string.
    """
    if not isinstance(key, str) or not key:
        raise KeyMappingError(f"a series key is a non-empty string, got {key!r}")
    return key if key.startswith("znsocket.") else LIST_PREFIX + key


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
    """A downsampled window: ``slices`` equal slices (or, aligned, slices whose inner edges
    may have moved to summary row boundaries: ``buckets.start``/``end`` say where), empty
    ones left out."""

    count: int
    slices: int
    buckets: Buckets
    watermark: int
    #: the slices' duration in ns when cut by interval, else ``None``
    every: int | None = None
    #: ``"rows"`` when the edges could move (asked, or chosen by ``"auto"``), else ``None``
    align: str | None = None


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


_NO_CAPS = np.empty(0, dtype=np.int64)
_NO_VALUES = np.empty(0, dtype=np.float64)


def _slices(lo: int, hi: int, buckets: int | None, every: int | None) -> tuple[int, int, int]:
    # (lo', hi', count) cut into equal slices: [lo, hi) in `buckets`, or the whole
    # intervals of `every` around it (the same path then gives interval slices)
    if every is None:
        assert buckets is not None
        return lo, hi, buckets
    return interval_slices(lo, hi, every, MAX_BUCKETS)


def _chunks(idx: SeriesIndex, i0: int, i1: int) -> int:
    # how many chunks hold the records i0..i1-1
    return idx.chunk_of_position(i1 - 1) + 1 - idx.chunk_of_position(i0)


def _shift(edges: npt.NDArray[np.int64]) -> int:
    # the most an aligned edge may move: a fraction of the narrowest slice
    if edges.size < 2:
        return 0
    return int(int(np.diff(edges).min()) * ALIGN_SHIFT)


def fine_enough(records: int, slices: int, fine: int) -> bool:
    """Whether a fine row (``fine`` records) lies within a quarter slice of every edge of
    ``slices`` slices over ``records`` records: a fine row at most half a slice wide."""
    return 2 * fine * slices <= records


def aligns(align: str | None, every: int | None, records: int, slices: int, fine: int) -> bool:
    """Whether the inner edges of ``slices`` slices over a window of ``records`` records may
    move to row ends (``fine``: records per fine row). ``"auto"`` (or ``None``) moves them
    for slices by count (never by interval: those are whole minutes, days) once the window
    holds ``2 * fine`` records per slice: then a fine row lies within a quarter slice of
    every edge, and equal edges would cost a chunk read each. Shorter windows keep equal
    slices, their records being read either way. The choice follows from counts alone,
    not from what is cached."""
    if align in (None, "auto"):
        return every is None and fine_enough(records, slices, fine)
    return align == "rows"


def _inside(
    first: npt.NDArray[np.int64],
    last: npt.NDArray[np.int64],
    lo: int,
    hi: int,
    edges: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Rows (first to last cap) inside ``[lo, hi)`` and inside one slice of ``edges``."""
    same = np.searchsorted(edges, first, "right") == np.searchsorted(edges, last, "right")
    return (first >= lo) & (last < hi) & same


def _whole_rows(
    idx: SeriesIndex,
    k0: int,
    whole: npt.NDArray[np.bool_],
    read: npt.NDArray[np.bool_],
    edges: npt.NDArray[np.int64],
) -> Part:
    """The summary rows of the chunks ``k0 + j`` that count ``whole``, one row per run of
    them in one slice with no chunk to ``read`` between them: a long window's rows shrink
    to about one per slice, one column at a time, before anything copies them all (each
    copy of a long series' rows would add to the memory the budget bounds)."""
    at = np.flatnonzero(whole)
    if at.size == 0:
        return Part.raw(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    sel = at + k0
    slice_of = np.searchsorted(edges, idx.first_cap[sel], "right")
    passed = np.cumsum(read)  # chunks read up to each one: a run must not pass one
    starts = np.flatnonzero(
        np.r_[True, (slice_of[1:] != slice_of[:-1]) | (passed[at[1:]] != passed[at[:-1]])]
    )
    del slice_of, passed
    ends = np.r_[starts[1:], sel.size] - 1
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in numpy
        return Part(
            idx.first_cap[sel[starts]],
            idx.last_cap[sel[ends]],
            np.add.reduceat(idx.count[sel], starts).astype(np.int64, copy=False),
            np.minimum.reduceat(idx.vmin[sel], starts),
            np.maximum.reduceat(idx.vmax[sel], starts),
            np.add.reduceat(idx.vsum[sel], starts),
            idx.vfirst[sel[starts]],
            idx.vlast[sel[ends]],
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
        stream_from: records not cached from which a numeric window read streams straight
            from TStorage (default: :data:`STREAM_CHUNKS` chunks of ``index_chunk``).
    """

    def __init__(
        self, storage: GatewayStorage, reuse_s: float = 2.0, stream_from: int | None = None
    ) -> None:
        self.storage = storage
        self.series = storage.series
        self.link = storage.link
        self.stream_from = (
            STREAM_CHUNKS * storage.series.index_chunk if stream_from is None else stream_from
        )
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
    def _snapshot(self, t: ListTarget) -> Iterator[tuple[SeriesIndex, int]]:
        # Read under the series lock, caught up at once if own writes are held without
        # their acq: the index then counts exactly the records with acq < acq0, so a
        # resume from acq0 repeats nothing. (Otherwise it lags at most max_staleness.)
        with self.series.series_lock(t):
            box, _, idx = self.series.series_index(t, settled=True)
            yield idx, box.acq0

    # ------------------------------------------------------------------ reads
    def info(self, t: ListTarget) -> tuple[int, int | None, int | None, int]:
        """``(count, first cap, last cap, watermark)`` of the series."""
        with self._snapshot(t) as (idx, watermark):
            return len(idx), idx.first(), idx.last(), watermark

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
        ``max_limit``: held payloads are viewed, not decoded one by one.

        A window whose chunks not cached hold at least ``stream_from`` records is one
        streamed TStorage GET of the records with ``acq`` below the watermark (the newest
        version per cap kept), the cache untouched: memory while it runs is at most about
        48 bytes per record version of the window (cap, acq and an 8-byte value, gathered
        then joined) plus one stream batch (the link's ``memory_limit``)."""
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
        stream: bool = True,
    ) -> RawWindow:
        lo, hi = self._window(start, end)
        if as_of is not None:
            caps, payloads, wm = self._as_of(t, lo, hi, as_of)
            shown = caps[:limit]
            nxt = int(caps[limit]) if len(caps) > limit else None
            values = self._decode(t, payloads[:limit])
            return RawWindow(shown, _array(values, dtype), len(caps), nxt, wm)
        with self._snapshot(t) as (idx, wm):
            i0, i1 = idx.searchsorted(lo), idx.searchsorted(hi)
            j1 = min(i1, i0 + limit)
            nxt = idx.cap_at(j1) if j1 < i1 else None
            if dtype is None or not stream or j1 <= i0 or idx.uncached(i0, j1) < self.stream_from:
                caps, values = self._elements(t, idx, i0, j1, dtype)
                return RawWindow(caps, values, i1 - i0, nxt, wm)
        # Out of the lock: records with acq below wm no longer change. [lo, nxt) holds the
        # same records as positions i0..j1-1 (no chunk is read to find their caps).
        got = self._streamed(t, lo, hi if nxt is None else nxt, wm, dtype)
        if got is None:  # a payload of another size: through the cache, record by record
            return self._range(t, start, end, limit, as_of, dtype, stream=False)
        return RawWindow(got[0], got[1], i1 - i0, nxt, wm)

    def latest(self, t: ListTarget, n: int | None = None, as_of: int | None = None) -> RawWindow:
        """The newest ``n`` records (default 1, at most 100,000), oldest first."""
        n = _bounded(n, "n", 1, MAX_LIMIT)
        with self._snapshot(t) as (idx, wm):
            total = len(idx)
            if as_of is None:
                i0 = max(total - n, 0)
                caps, values = self._elements(t, idx, i0, total)
                return RawWindow(caps, values, len(caps), None, wm)
        # As of a past acq the series holds a subset of today's caps: widen a suffix of
        # them until it holds n records as of then (or is the whole series).
        m = n
        while True:
            i0 = max(total - m, 0)
            with self._snapshot(t) as (idx, _):
                lo = idx.cap_at(i0) if total and i0 < len(idx) else CAP_RANGE[0]
            caps, payloads, wm = self._as_of(t, lo, CAP_END, as_of)
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
        align: str | None = None,
    ) -> BucketWindow:
        """The window cut into time slices with min/max/mean/last each.

        Either ``buckets`` slices of equal duration (aligned by default over a long window,
        below), or (``every``, ``buckets`` ``None``)
        slices of ``every`` ns aligned to the unix epoch (whole minutes, hours, UTC days;
        the first and last may hold only part of the window). An unbounded side of the
        window ends at the first/last record. Values must be numbers.

        Aligned (``align="rows"``, and by default, ``"auto"``, for slices by count over a
        window long enough, see :func:`aligns`) each inner edge that would cut a chunk's
        summary row moves to the nearer end of that row when that moves it by at most
        :data:`ALIGN_SHIFT` of a slice (else to the nearer end of one of the chunk's fine
        rows, persisted with the summaries, or of its block rows, if as close; else it
        stays). Whole rows count by their summaries, so only the chunks at the window's two
        ends and those an edge could not leave are read: a long series costs about the
        summaries of the window, not one chunk read per bucket. The answer is exact for the
        edges it reports (``buckets.start``/``end``, and ``align`` ``"rows"``); the window's
        own ends do not move. ``align="equal"`` keeps equal slices whatever they cost.

        Raises:
            DataError: bad bounds, both or neither of ``buckets`` and ``every``, more than
                10,000 slices, an unknown ``align``, or values that are not numbers.
        """
        if (buckets is None) == (every is None):
            raise DataError("downsampling takes buckets (a count) or every (an interval), one")
        if every is None:
            buckets = _bounded(buckets, "buckets", 1, MAX_BUCKETS)
        elif isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise DataError(f"every: expected a positive number of nanoseconds, got {every!r}")
        if align not in ALIGNS:
            raise DataError(f"align: expected 'auto', 'rows', 'equal' or null, got {align!r}")
        lo, hi = self._window(start, end)
        # reads of the records themselves (as-of, empty windows): edges stay where they are
        asked = "rows" if align == "rows" else None
        if as_of is not None:
            caps, payloads, wm = self._as_of(t, lo, hi, as_of)
            values = _as_floats(self._decode(t, payloads))
            return self._bucketed(caps, values, lo, hi, start, end, buckets, wm, every, asked)
        with self._snapshot(t) as (idx, wm):
            # Under the series lock: values may be views of cached chunks' payloads,
            # which a correction could change in place.
            i0, i1 = idx.searchsorted(lo), idx.searchsorted(hi)
            if i1 <= i0:
                return self._bucketed(
                    _NO_CAPS, _NO_VALUES, lo, hi, start, end, buckets, wm, every, asked
                )
            # an open side ends at the first/last record, known from the summaries
            first, last = idx.first(), idx.last()
            assert first is not None and last is not None  # the window holds records
            lo = first if start is None else lo
            hi = last + 1 if end is None else hi
            # the records of [lo, hi); the slices may reach past it (whole intervals)
            s_lo, s_hi, count = _slices(lo, hi, buckets, every)
            edges = slice_edges(s_lo, s_hi, count)
            # Edges move to spare chunk reads: to chunk ends when there are more chunks
            # than slices, else (each chunk about a slice wide or wider) to the ends of
            # the chunks' fine rows (persisted with the summaries) or block rows.
            rows = aligns(align, every, i1 - i0, count, idx.fine_size)
            chunky = rows and _chunks(idx, i0, i1) > count
            shift = _shift(edges) if rows else 0
            fine = fine_enough(i1 - i0, count, idx.fine_size)
            parts, edges = self._parts(t, idx, lo, hi, edges, shift, chunky, fine)
            return BucketWindow(
                i1 - i0, count, rollup_at(parts, edges), wm, every, "rows" if rows else None
            )

    def _parts(
        self,
        t: ListTarget,
        idx: SeriesIndex,
        lo: int,
        hi: int,
        edges: npt.NDArray[np.int64],
        shift: int = 0,
        chunky: bool = True,
        fine: bool = True,
    ) -> tuple[list[Part], npt.NDArray[np.int64]]:
        # Whole chunks inside one slice count by their summary rows; the chunks that
        # straddle a slice edge (or hold no numbers) are read, and counted by their block
        # rows and the records of the blocks an edge cuts (one numpy pass over those).
        # With a shift, edges first move off the chunks inside the window where they may
        # (if ``chunky``: more chunks than slices), then (if ``fine``: fine rows at most
        # half a slice wide) off the fine rows of the chunks left (one left whole by every
        # edge counts by its fine rows, unread when its persisted ones are valid), then
        # off the block rows of the chunks read; returns the edges as moved. Which rows an edge may move to follows from the chunks'
        # records alone, not from what is cached or persisted.
        nominal = edges
        k0, k1 = idx.chunk_of_cap(lo), idx.chunk_of_cap(hi - 1) + 1
        counts = idx.count[k0:k1]
        first, last = idx.first_cap[k0:k1], idx.last_cap[k0:k1]
        if shift and chunky:
            inside = np.flatnonzero((counts > 0) & (first >= lo) & (last < hi))
            edges = snap_edges(edges, first[inside], last[inside], shift)
        whole = (counts > 0) & idx.numeric[k0:k1] & _inside(first, last, lo, hi, edges)
        read_mask = ~whole & (counts > 0)
        parts = [_whole_rows(idx, k0, whole, read_mask, edges)]
        read = (np.flatnonzero(read_mask) + k0).tolist()
        del whole, read_mask
        if read and shift and fine:
            fine_parts, read, edges = self._fine_parts(idx, read, lo, hi, edges, shift, nominal)
            parts.extend(fine_parts)
        # The chunks left are read and reduced a run of neighbours at a time, each let go
        # before the next is read: equal slices cut a chunk at every edge, and a thousand
        # edges' chunks held at once would take about as much again as the budget. An edge
        # moves only off rows it cuts, and rows of different chunks are disjoint: runs move
        # the same edges.
        step = idx.run_chunks()
        for at in range(0, len(read), step):
            run = read[at : at + step]
            more, edges = self._edge_parts(t, idx, run, lo, hi, edges, shift, nominal)
            parts.extend(more)
        return [Part.merged(parts)], edges

    @staticmethod
    def _fine_parts(
        idx: SeriesIndex,
        ks: list[int],
        lo: int,
        hi: int,
        edges: npt.NDArray[np.int64],
        shift: int,
        nominal: npt.NDArray[np.int64],
    ) -> tuple[list[Part], list[int], npt.NDArray[np.int64]]:
        # Of the chunks to read, those with numbers: edges move off their fine rows where
        # they may; a chunk none of whose fine rows an edge (or an end of the window) then
        # cuts counts by them, and is not read if it was not cached and its persisted fine
        # rows are valid. Returns those parts, the chunks whose records are still needed,
        # and the edges as moved.
        # (a chunk an end of the window cuts is read whatever its fine rows)
        inner = [k for k in ks if int(idx.first_cap[k]) >= lo and int(idx.last_cap[k]) < hi]
        fine = idx.fine_rows_read(inner)
        if not fine:
            return [], ks, edges
        owned = sorted(fine)
        rows = [fine[k] for k in owned]
        joined = Part.joined(rows)
        first, last = joined.cap, joined.cap_last
        within = (first >= lo) & (last < hi)
        edges = snap_edges(edges, first[within], last[within], shift, nominal)
        inside = _inside(first, last, lo, hi, edges)
        owner = np.repeat(np.arange(len(rows)), [len(r.n) for r in rows])
        spared = np.ones(len(rows), dtype=bool)
        spared[owner[~inside]] = False
        keep = spared[owner]
        if not keep.any():
            return [], ks, edges
        part = joined.take(keep)
        done = {owned[j] for j in np.flatnonzero(spared).tolist()}
        return [part], [k for k in ks if k not in done], edges

    def _edge_parts(
        self,
        t: ListTarget,
        idx: SeriesIndex,
        ks: list[int],
        lo: int,
        hi: int,
        edges: npt.NDArray[np.int64],
        shift: int = 0,
        nominal: npt.NDArray[np.int64] | None = None,
    ) -> tuple[list[Part], npt.NDArray[np.int64]]:
        # The chunks that straddle a slice edge or an end of the window: of their blocks,
        # those inside one slice count by their rows, the records of the others are read
        # (one gather per chunk, no Python per block or per record). With a shift, edges
        # first move off the blocks inside the window where they may.
        got = idx.rollup_of(ks)
        numeric = [(d, b) for d, b in got if b is not None]
        caps_of: list[npt.NDArray[np.int64]] = []
        values_of: list[npt.NDArray[np.float64]] = []
        pieces: list[npt.NDArray[np.int64]] = []  # which block each record read came from
        parts: list[Part] = []
        if numeric:
            blocks = [b for _, b in numeric]
            sizes = [len(b.start) for b in blocks]
            joined = Part.joined(blocks)
            first, last = joined.cap, joined.cap_last
            if shift:
                within = np.flatnonzero((first >= lo) & (last < hi))
                edges = snap_edges(edges, first[within], last[within], shift, nominal)
            inside = _inside(first, last, lo, hi, edges)
            keep = np.flatnonzero(inside)
            if keep.size:
                parts.append(joined.take(keep))
            # the blocks cut by an edge or by an end of the window
            owner = np.repeat(np.arange(len(blocks)), sizes)
            cut = np.flatnonzero(~inside & (last >= lo) & (first < hi))
            owners = owner[cut]
            size = idx.block_records
            at = (cut - np.r_[0, np.cumsum(sizes)][owners]) * size
            if cut.size:
                # records per cut block (only a chunk's last block may hold fewer)
                lens = np.asarray([len(d) for d, _ in numeric], dtype=np.int64)
                n_cut = np.minimum(size, lens[owners] - at)
                runs = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1], True])
                ends = np.r_[0, np.cumsum(n_cut)][runs].tolist()
                step = np.arange(size)
                for (r0, r1), (e0, e1) in zip(
                    itertools.pairwise(runs.tolist()), itertools.pairwise(ends), strict=True
                ):
                    data = numeric[int(owners[r0])][0]
                    v = idx.numbers(data)
                    assert v is not None  # the chunk has block rows
                    take = (at[r0:r1, None] + step).ravel()[: e1 - e0]
                    caps_of.append(data.caps[take])
                    values_of.append(v[take])
                pieces.append(np.repeat(cut, n_cut))
        extra = int(owner.size) if numeric else 0
        for k, (_, b) in zip(ks, got, strict=True):
            if b is None:  # no numeric payloads held: decode the records
                i0 = idx.searchsorted(max(lo, int(idx.first_cap[k])))
                i1 = idx.searchsorted(min(hi, int(idx.last_cap[k]) + 1))
                caps, decoded = self._elements(t, idx, i0, i1)
                caps_of.append(caps)
                values_of.append(_as_floats(decoded))
                pieces.append(np.full(len(caps), extra + k, dtype=np.int64))
        if caps_of:
            # a row starts at each block's first record: rows of other parts may lie between
            caps, values = np.concatenate(caps_of), np.concatenate(values_of)
            piece = np.concatenate(pieces)
            mine = (caps >= lo) & (caps < hi)
            caps, values, piece = caps[mine], values[mine], piece[mine]
            cuts = np.flatnonzero(piece[1:] != piece[:-1]) + 1
            parts.append(Part.reduced(caps, values, edges, cuts))
        return parts, edges

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
        align: str | None = None,
    ) -> BucketWindow:
        # as-of reads (the records themselves: aligned edges stay where they are) and
        # empty windows
        if len(caps):
            lo = int(caps[0]) if start is None else lo
            hi = int(caps[-1]) + 1 if end is None else hi
        if every is not None and not len(caps) and (start is None or end is None):
            lo, hi = (start, start) if start is not None else (end or 0, end or 0)
        s_lo, s_hi, count = _slices(lo, hi, buckets, every)
        got = downsample(caps, values, s_lo, s_hi, count)
        return BucketWindow(len(caps), count, got, wm, every, align)

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
        align: str | None = None,
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
            buckets, every, align: downsample (as :meth:`downsampled`, but ``align``
                ``None`` is ``"equal"``: the series share their slices; aligned, each
                series' edges move on its own rows).

        Raises:
            DataError: more than :data:`MAX_MANY_POINTS` records or slices in all.
        """
        n = max(len(targets), 1)
        if buckets is None and every is None:
            if align is not None:
                raise DataError("align applies to downsampled reads (buckets or every)")
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
        return [
            self.downsampled(
                t,
                buckets,
                start,
                end,
                as_of,
                every=every,
                align="equal" if align is None else align,
            )
            for t in targets
        ]

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
        lo, hi = s.key_range(acq_min=since)
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
        hi = CAP_END if end is None else end
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
            held = idx.searchsorted(hi) - idx.searchsorted(lo)
        if held > MAX_AS_OF_RECORDS:
            raise DataError(
                f"an as-of read covers at most {MAX_AS_OF_RECORDS:,} records: narrow the window"
            )
        s = t.series
        # acq below as_of: the versions TStorage had acquired by then
        box_lo, box_hi = s.key_range(lo, hi, acq_max=as_of)
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

    def _streamed(
        self, t: ListTarget, c0: int, c1: int, wm: int, dtype: np.dtype[Any]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]] | None:
        # The records with c0 <= cap < c1 and acq < wm, newest version per cap, as columns;
        # None when a payload is not dtype-sized (the caller reads through the cache).
        caps_of: list[npt.NDArray[np.int64]] = []
        acqs_of: list[npt.NDArray[np.int64]] = []
        values_of: list[npt.NDArray[Any]] = []

        def take(arr: Any) -> None:
            caps_of.append(arr["cap"].astype(np.int64))  # copies: the batch is reused
            acqs_of.append(arr["acq"].astype(np.int64))
            values_of.append(arr["v0"].copy().view(dtype))

        box_lo, box_hi = t.series.key_range(c0, c1, acq_max=wm)
        try:
            self.link.stream_columns(box_lo, box_hi, dtype.itemsize, take)
        except ColumnsUnavailable:
            return None
        if not caps_of:
            return _NO_CAPS, np.empty(0, dtype=dtype)
        caps, values = np.concatenate(caps_of), np.concatenate(values_of)
        acqs = np.concatenate(acqs_of)
        for parts in (caps_of, acqs_of, values_of):
            parts.clear()  # the batches: no second copy held
        if caps.size > 1 and not bool((caps[1:] >= caps[:-1]).all()):
            order = np.lexsort((acqs, caps))  # TStorage's key order is (cap, acq) already
            caps, values = caps[order], values[order]
        # corrections: several versions of a cap, oldest first; the last one counts
        newest = np.r_[caps[1:] != caps[:-1], True]
        if bool(newest.all()):
            return caps, values
        return caps[newest], values[newest]

    def _decode(self, t: ListTarget, payloads: list[bytes]) -> list[JSONValue]:
        return t.rule.shape.codec.decode_many(payloads)

    def _elements(
        self,
        t: ListTarget,
        idx: SeriesIndex,
        i0: int,
        i1: int,
        dtype: np.dtype[Any] | None = None,
    ) -> tuple[npt.NDArray[np.int64], Any]:
        # caps and values at positions i0..i1-1 (a record that vanished meanwhile is left
        # out of both): decoded values, or with a dtype one array in which chunks holding
        # fixed-size payloads are taken as stored, not decoded one by one
        codec = t.rule.shape.codec
        caps: list[npt.NDArray[np.int64]] = []
        values: list[JSONValue] = []
        arrays: list[npt.NDArray[Any]] = []
        for seg_caps, block, got in self.series.records(t, idx, i0, i1):
            if block is not None:
                caps.append(seg_caps.copy())
                if dtype is not None:
                    arrays.append(np.frombuffer(block, dtype=dtype))
                else:
                    values.extend(codec.decode_block(block, len(seg_caps)))
            else:
                assert got is not None
                kept = [c for c in seg_caps.tolist() if c in got]
                caps.append(np.asarray(kept, dtype=np.int64))
                decoded = codec.decode_many([got[c] for c in kept])
                if dtype is not None:
                    arrays.append(_array(decoded, dtype))
                else:
                    values.extend(decoded)
        held = np.concatenate(caps) if caps else np.empty(0, dtype=np.int64)
        if dtype is None:
            return held, values
        # concatenate copies: the chunks' payload rows change under corrections
        return held, (np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype))


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
