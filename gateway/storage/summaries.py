"""Chunk summaries of a series: its length and positions without holding every cap.

Strategy
--------
A series is cut into chunks, consecutive cap ranges ``[lo[k], lo[k+1])`` (the first chunk
starts at the smallest cap TStorage allows, the last one is open-ended), so every record,
late or early, belongs to exactly one chunk. A chunk holds about ``chunk_records`` distinct
caps: appends fill the last chunk and start a new one when it is full; a chunk grown past
twice that by late records is split when next touched.

Per chunk the gateway keeps a summary row (numpy columns): its record count, first and last
cap, and for numeric codecs the min/max/sum/first/last value. Prefix sums of the counts give
``len`` and the chunk that holds position ``i`` (an order-statistics index); only that
chunk's records are read from TStorage (one narrow GET, acq below the box's watermark, so a
loaded chunk agrees with the summaries), and kept in a least-recently-used cache shared by
every series. Memory is then summaries (one row per ``chunk_records`` records) plus cached
chunks, whatever the length of the series.

A chunk's data is a :class:`~gateway.storage.index.CapIndex` (caps, and for fixed-size codecs
the newest payload of each cap), so corrections and late records update it exactly as they
updated the whole-series index before. Records added after a chunk's last one (appends)
update its summary row by themselves (the sum adds values in cap order, so the row has the
bits a recount gives); any other change recounts the row from the chunk (a chunk is small).

Each row also holds a digest of its chunk's records, which tells whether the chunk's fine
rows (:mod:`gateway.storage.fine_rows`: 16 per chunk, for aligned rollups) still describe
it. Fine rows are made when a chunk is completed (cut by a split) or leaves the cache, wait
in :attr:`SeriesIndex.fine_pending` until their page is written, and are read back from
their persisted page only for the chunks a rollup needs.

A :class:`BoxIndex` holds the summaries of every series of one key box (a List's series, a
Dict's meter) with the box's change-feed watermark; :class:`ChunkCache` is the cache the
chunks of all series share.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from gateway.keymap import CAP_RANGE, KeyTuple, box_since
from gateway.storage.fine_rows import (
    FINE_PER_CHUNK,
    PAGE_CHUNKS,
    PENDING_OVERHEAD,
    FineRows,
    PendingFine,
    add_digests,
    digest,
    digest_one,
    digests,
    fine_size,
    pending_bytes,
)
from gateway.storage.index import CapIndex
from gateway.timeseries.downsample import Part

#: A summary row counts as this many held records in ``index_budget`` (about its bytes
#: over the 8 bytes of a cap).
SUMMARY_WEIGHT = 8
#: Bytes a cached chunk costs beyond its arrays, counted in ``index_budget_bytes`` (its
#: Python objects and cache entries; matters for tiny chunks only).
CHUNK_OVERHEAD = 1024
DEFAULT_CHUNK_RECORDS = 4096
#: Default of ``index_budget_bytes``: summaries plus cached chunks of every series.
DEFAULT_BUDGET_BYTES = 128 * 1024 * 1024

_COLUMNS = ("lo", "count", "first_cap", "last_cap", "numeric", "vmin", "vmax", "vsum",
            "vfirst", "vlast", "digest", "fine")  # fmt: skip

#: Bytes of one summary row (the columns above: 8 bytes each, 1 for ``numeric``)
_ROW_BYTES = 8 * (len(_COLUMNS) - 1) + 1

#: Records per block row of a cached chunk: a rollup reads the records only of the blocks
#: that a slice edge cuts, and takes the others' rows.
BLOCK_RECORDS = 64

Loader = Callable[[int, int, int], CapIndex]
"""Reads the records of caps ``[lo, hi)`` of a series from TStorage (below its watermark);
the third argument is how many the summaries expect (room is made for them up front)."""

FineLoader = Callable[["SeriesIndex", int], "dict[int, FineRows] | None"]
"""Reads a persisted page of a series' fine rows (by page number; ``None``: not readable)."""

#: Chunks not cached a rollup needs the fine rows of, at least, to read their page
#: rather than the chunks themselves
FINE_PAGE_USE = 4
#: Chunks whose fine rows a series keeps waiting for their page to be written (about
#: 2 KB each); past it, or past the gateway's room for them (:attr:`SummaryTally.fine_limit`),
#: rows are not kept (they are made again when the chunk is next read and let go). A
#: streamed build writes the pages it completed at half of either.
FINE_PENDING_CHUNKS = 4096
#: the share of ``index_budget_bytes`` fine rows waiting for their pages may take
FINE_PENDING_SHARE = 8


@dataclass(frozen=True)
class Summary:
    """One chunk's summary row (values are NaN when the chunk has no numeric payloads)."""

    lo: int
    count: int
    first: int
    last: int
    numeric: bool
    min: float
    max: float
    sum: float
    first_value: float
    last_value: float


@dataclass(frozen=True)
class Blocks(Part):
    """Rows of a cached chunk's numbers, one per :data:`BLOCK_RECORDS` records, and where
    each block starts in the chunk."""

    start: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the rows: nine 8-byte columns of equal length."""
        return 9 * self.start.nbytes

    @classmethod
    def of(cls, caps: npt.NDArray[np.int64], values: npt.NDArray[np.float64], size: int) -> Blocks:
        """The block rows of a chunk's records, ``size`` records a block."""
        start = np.arange(0, len(caps), size, dtype=np.int64)
        return replace(cls.runs(caps, values, start), start=start)


def record_bytes(payload_size: int | None) -> int:
    """Bytes a cached record takes (its cap, and with payload columns of ``payload_size``
    its acq and payload), without the spare room of a growing chunk."""
    return 8 if payload_size is None else 16 + payload_size


class SummaryTally:
    """Running totals of the summary rows and series a gateway holds, kept by the series
    as their rows change: the budget is checked before every chunk read, and summing the
    rows of every series held each time would cost O(series) (100,000 series: tens of ms)."""

    def __init__(self, fine_limit: int = 2**62) -> None:
        self.rows = 0
        self.series = 0
        #: bytes of the fine rows the series hold until their pages are written, and at
        #: most how many they keep
        self.fine_bytes = 0
        self.fine_limit = fine_limit
        #: held while a series changes the totals (and its own rows with them)
        self.lock = threading.Lock()

    @property
    def size(self) -> int:
        """Summary rows weighted as records (what ``index_budget`` counts)."""
        return self.rows * SUMMARY_WEIGHT

    @property
    def nbytes(self) -> int:
        """Bytes of the summary rows and their prefix counts
        (:meth:`SeriesIndex.summary_bytes` summed over every series)."""
        return self.rows * (_ROW_BYTES + 8) + 8 * self.series

    def fine_room(self) -> int:
        """Bytes more fine rows may take while they wait for their pages (read without
        the lock: a soft bound)."""
        return self.fine_limit - self.fine_bytes

    @property
    def held_bytes(self) -> int:
        """:attr:`nbytes` and the fine rows waiting for their pages: what the series hold
        besides their cached chunks."""
        return self.nbytes + self.fine_bytes


class ChunkCache:
    """The least-recently-used chunk data of every series (bounded by the owner's budget).

    What each chunk holds (records, and bytes: its arrays as allocated, its block rows and
    :data:`CHUNK_OVERHEAD`) is counted when it is touched (every change to a chunk's
    records or block rows touches it), so :meth:`records` and :meth:`nbytes` are running
    totals: the budget is checked after every batch of a streamed build and before every
    chunk read, and summing thousands of cached chunks each time would cost more than
    the batch.

    Args:
        run_bytes: most bytes one read of neighbouring chunks brings in at once (see
            :meth:`SeriesIndex.preload`): a read's working set beyond the budget.
        tally, budget_bytes: the owner's summaries and its byte budget: the chunks may
            hold the budget less what the summaries hold at each touch (fine rows that
            wait for their page grow as chunks leave).
    """

    def __init__(
        self,
        run_bytes: int = 16 * 1024 * 1024,
        tally: SummaryTally | None = None,
        budget_bytes: int = 2**62,
    ) -> None:
        self.run_bytes = run_bytes
        self._tally = tally
        self._budget_bytes = budget_bytes
        #: Records the chunks may hold: the owner's record budget less what summaries took
        #: when it last looked (bytes: the byte budget less what the tally holds now). A
        #: touch that leaves more evicts at once, so the budget holds after reads that load
        #: nothing but grow a chunk (its block rows).
        self.room_records = 2**62
        self._lru: OrderedDict[tuple[int, int], SeriesIndex] = OrderedDict()
        self._held: dict[tuple[int, int], tuple[int, int]] = {}
        self._records = 0
        self._bytes = 0
        self._lock = threading.Lock()
        # Eviction may stop finding anything: every chunk cached belongs to a series whose
        # chunks all stay (own writes unsettled, a feed being applied), as during a bulk
        # write. Then, until a chunk that may go is touched or such a series lets go
        # (:meth:`unpinned`), another pass would scan the whole cache for nothing.
        self._candidates = 0  # counts events that may have made a chunk evictable
        self._futile_at = -1  # _candidates when a pass last found nothing to drop

    def touch(self, series: SeriesIndex, lo: int, *, cold: bool = False) -> None:
        """Mark a chunk of ``series`` as just used (and count what it holds now).

        ``cold``: a chunk read only because it lay between chunks a read asked for (one
        GET for all of them): it is the first to go when room is needed.
        """
        key = (id(series), lo)
        held = (series.held(lo), series.held_bytes(lo))
        with self._lock:
            if not held[1]:  # evicted meanwhile (by a read of others after it)
                if key in self._lru:
                    self._remove(key)
                return
            self._lru[key] = series
            self._lru.move_to_end(key, last=not cold)
            if not (series.unsettled or series.feeding):  # it may go (now or soon)
                self._candidates += 1
            before = self._held.get(key, (0, 0))
            self._records += held[0] - before[0]
            self._bytes += held[1] - before[1]
            self._held[key] = held
            held_elsewhere = 0 if self._tally is None else self._tally.held_bytes
            over = (
                self._records - self.room_records,
                self._bytes + held_elsewhere - self._budget_bytes,
            )
        if over[0] > 0 or over[1] > 0:
            self.evict(*over)

    def _remove(self, key: tuple[int, int]) -> None:
        del self._lru[key]
        records, nbytes = self._held.pop(key, (0, 0))
        self._records -= records
        self._bytes -= nbytes

    def forget(self, series: SeriesIndex, lo: int | None = None) -> None:
        """Drop one chunk of ``series`` (or all of them) from the bookkeeping."""
        with self._lock:
            if lo is not None:
                if (id(series), lo) in self._lru:
                    self._remove((id(series), lo))
                return
            for key in [k for k, s in self._lru.items() if s is series]:
                self._remove(key)

    def records(self) -> int:
        """Records held by cached chunks."""
        return self._records

    def nbytes(self) -> int:
        """Bytes held by cached chunks (their arrays, block rows and bookkeeping)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._lru)

    def evict(self, records: int, nbytes: int = 0) -> tuple[int, int]:
        """Drop least-recently-used chunks (not pinned) until ``records`` records and
        ``nbytes`` bytes are freed (each bound alone suffices to stop when the other is
        met already).

        Returns the records and bytes freed: a chunk that leaves may keep its fine rows
        (until their page is written), which count against what it frees.
        """
        freed_r = freed_b = 0
        dropped: list[tuple[int, int]] = []
        with self._lock:
            if self._futile_at == self._candidates:
                return 0, 0
            busy = False
            # from the oldest on, only as far as needed: a full cache evicts on every chunk
            # read, and copying the whole LRU order each time would cost more than the read
            for key, series in self._lru.items():
                if freed_r >= records and freed_b >= nbytes:
                    break
                if series.pinned(key[1]):
                    continue
                # a series being read or changed right now keeps its chunks this time
                if not series.lock.acquire(blocking=False):
                    busy = True
                    continue
                try:
                    kept = series.fine_pending_bytes
                    series.drop(key[1])
                    kept = series.fine_pending_bytes - kept
                finally:
                    series.lock.release()
                held_r, held_b = self._held.get(key, (0, 0))
                freed_r += held_r
                freed_b += held_b - kept
                dropped.append(key)
            for key in dropped:
                self._remove(key)
            if not dropped and not busy:
                self._futile_at = self._candidates
        return freed_r, freed_b

    def unpinned(self) -> None:
        """A series let go of its chunks (:meth:`SeriesIndex.pinned` turned false)."""
        with self._lock:
            self._candidates += 1


def _empty_f() -> npt.NDArray[np.float64]:
    return np.full(1, np.nan)


def _sum_in_order(vals: npt.NDArray[np.float64]) -> float:
    """The sum of ``vals`` added one after the other, first to last: what a chunk's running
    sum reaches when its records are appended one at a time, to the bit (numpy's ``sum``
    adds pairwise, in another order)."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in numpy
        return float(np.add.accumulate(vals)[-1])


class _PinFlag:
    """A flag of :class:`SeriesIndex` that keeps chunks cached while set; clearing it tells
    the cache that chunks may go again (:meth:`ChunkCache.unpinned`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = f"_{name}"

    def __get__(self, index: SeriesIndex, owner: type | None = None) -> bool:
        return bool(getattr(index, self.attr))

    def __set__(self, index: SeriesIndex, value: bool) -> None:
        if getattr(index, self.attr) and not value:
            index.cache.unpinned()
        setattr(index, self.attr, value)


class SeriesIndex:
    """Chunk summaries of one series, with its chunks' records read on demand.

    Args:
        payload_size: fixed payload size of the rule's codec (payloads are held next to the
            caps in loaded chunks), or ``None``.
        dtype: numpy dtype of a payload holding one number (summaries then keep value
            statistics), or ``None``.
        chunk_records: caps per chunk.
        cache: the shared chunk cache.
        loader: reads a chunk's records from TStorage.
        lock: the lock of the series' box (a new one if not given).
        tally: the gateway's running totals of summary rows, told of every change to
            this series' rows (none: not counted).
        fine_loader: reads a persisted page of this series' fine rows (none: fine rows
            are only those made from chunks this gateway read).
    """

    #: Records of this gateway's own writes are held whose acq TStorage has not told yet
    #: (their chunks stay cached until the change feed brings them back).
    unsettled = _PinFlag()
    #: A streamed build is running: its last chunk stays cached.
    building = _PinFlag()
    #: A change feed is being applied (:meth:`BoxIndex.feeding`): the records it added are
    #: above the box's watermark until it ends, so a chunk dropped meanwhile would be read
    #: again without them; every chunk stays.
    feeding = _PinFlag()

    def __init__(
        self,
        payload_size: int | None,
        dtype: np.dtype[Any] | None,
        chunk_records: int,
        cache: ChunkCache,
        loader: Loader,
        lock: threading.RLock | None = None,
        tally: SummaryTally | None = None,
        fine_loader: FineLoader | None = None,
    ) -> None:
        self.tally = tally
        self.fine_loader = fine_loader
        #: counted in :attr:`tally` (from :meth:`tally_in` to :meth:`untally`)
        self._tallied = False
        self._lo: npt.NDArray[np.int64] = np.asarray([CAP_RANGE[0]], dtype=np.int64)
        self.payload_size = payload_size
        self.dtype = dtype
        self.chunk_records = chunk_records
        #: records per block row (:class:`Blocks`)
        self.block_records = BLOCK_RECORDS
        self.cache = cache
        self.loader = loader
        self.count: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self.first_cap: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self.last_cap: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self.numeric: npt.NDArray[np.bool_] = np.zeros(1, dtype=bool)
        self.vmin, self.vmax, self.vsum = _empty_f(), _empty_f(), _empty_f()
        self.vfirst, self.vlast = _empty_f(), _empty_f()
        #: digest of each chunk's records (:func:`~gateway.storage.fine_rows.digest`; 0
        #: for chunks with no numbers), and the digest its persisted fine rows were made
        #: for (0: none persisted)
        self.digest: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self.fine: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        #: records per fine row
        self.fine_size = fine_size(chunk_records)
        #: fine rows made here whose page is not written yet (by chunk lo); kept only
        #: when fine rows are persisted (:attr:`fine_loader` given); their bytes are
        #: :attr:`fine_pending_bytes`, counted in :attr:`tally`
        self.fine_pending = PendingFine(self._fine_moved)
        self.fine_pending_bytes = 0
        self._fine_lock = threading.Lock()
        #: the persisted pages of fine rows: ``(generation, length, crc32, first lo)`` of
        #: each page (``None``: not written)
        self.fine_pages: list[tuple[int, int, int, int] | None] = []
        self._data: dict[int, CapIndex] = {}
        #: block rows of cached chunks (by lo), made when a rollup first needs them
        self._blocks: dict[int, Blocks] = {}
        #: fine rows of cached chunks (by lo), made when a rollup first needs them
        self._fines: dict[int, FineRows] = {}
        self._starts: npt.NDArray[np.int64] | None = None
        #: chunks (by lo) whose summary must be recounted from TStorage
        self.stale: set[int] = set()
        self._unsettled = False
        self._building = False
        self._feeding = False
        #: summaries changed since they were last persisted
        self.dirty = False
        #: the persisted summaries this index last loaded or saved, and when (monotonic)
        self.persisted: Any = None
        self.persisted_at = float("-inf")
        #: held while chunks are read or changed (the box's lock: writes and catch-ups)
        self.lock = lock or threading.RLock()

    # ------------------------------------------------------------ summary rows
    @property
    def lo(self) -> npt.NDArray[np.int64]:
        """Lower cap of each chunk (the first is the smallest cap TStorage allows)."""
        return self._lo

    @lo.setter
    def lo(self, lo: npt.NDArray[np.int64]) -> None:
        tally = self.tally
        if tally is None:
            self._lo = lo
            return
        with tally.lock:  # with untally(): the rows counted are the rows held
            if self._tallied:
                tally.rows += lo.size - self._lo.size
            self._lo = lo

    def _fine_room(self) -> int:
        # bytes more fine rows may take while they wait for their page
        return 2**62 if self.tally is None else self.tally.fine_room()

    def _fine_moved(self, delta: int) -> None:
        # (under _fine_lock, which every change to fine_pending holds)
        tally = self.tally
        if tally is None:
            self.fine_pending_bytes += delta
            return
        with tally.lock:  # with tally_in()/untally(): the bytes counted are those held
            self.fine_pending_bytes += delta
            if self._tallied:
                tally.fine_bytes += delta

    def tally_in(self) -> None:
        """Count this series in its tally (its box holds it now)."""
        if self.tally is not None:
            with self.tally.lock:
                if not self._tallied:
                    self.tally.rows += self._lo.size
                    self.tally.series += 1
                    self.tally.fine_bytes += self.fine_pending_bytes
                    self._tallied = True

    def untally(self) -> None:
        """Stop counting this series in its tally (it is no longer held)."""
        if self.tally is not None:
            with self.tally.lock:
                if self._tallied:
                    self.tally.rows -= self._lo.size
                    self.tally.series -= 1
                    self.tally.fine_bytes -= self.fine_pending_bytes
                    self._tallied = False

    @property
    def chunks(self) -> int:
        """Number of chunks (summary rows)."""
        return int(self.lo.size)

    def starts(self) -> npt.NDArray[np.int64]:
        """Position of each chunk's first record, then the length (prefix counts)."""
        s = self._starts
        if s is None:
            with self.lock:  # not from counts a concurrent change is replacing
                s = self._starts
                if s is None:
                    s = np.concatenate(([0], np.cumsum(self.count))).astype(np.int64)
                    self._starts = s
        return s

    def __len__(self) -> int:
        return int(self.starts()[-1])

    def summary(self, k: int) -> Summary:
        """The summary row of chunk ``k``."""
        return Summary(
            int(self.lo[k]), int(self.count[k]), int(self.first_cap[k]), int(self.last_cap[k]),
            bool(self.numeric[k]), float(self.vmin[k]), float(self.vmax[k]),
            float(self.vsum[k]), float(self.vfirst[k]), float(self.vlast[k]),
        )  # fmt: skip

    def chunk_of_cap(self, cap: int) -> int:
        """The chunk whose cap range holds ``cap``."""
        return int(np.searchsorted(self.lo, cap, side="right")) - 1

    def chunk_of_position(self, i: int) -> int:
        """The chunk that holds position ``i`` (``0 <= i < len``)."""
        return int(np.searchsorted(self.starts(), i, side="right")) - 1

    def first(self) -> int | None:
        """The smallest cap, or ``None`` when empty."""
        nonempty = np.flatnonzero(self.count)
        return int(self.first_cap[nonempty[0]]) if nonempty.size else None

    def last(self) -> int | None:
        """The largest cap, or ``None`` when empty."""
        if self.count[-1]:  # the last chunk holds it (an append asks for it every time)
            return int(self.last_cap[-1])
        nonempty = np.flatnonzero(self.count)
        return int(self.last_cap[nonempty[-1]]) if nonempty.size else None

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """The summary columns by name (what is persisted)."""
        return {name: getattr(self, name) for name in _COLUMNS}

    def restore(self, columns: dict[str, npt.NDArray[Any]]) -> None:
        """Take summary columns (persisted ones); no chunk is cached after this."""
        with self.lock:
            self.drop_all()
            for name in _COLUMNS:
                setattr(self, name, np.array(columns[name], dtype=getattr(self, name).dtype))
            self._starts = None
            self.stale.clear()
            self.dirty = False
            with self._fine_lock:
                self.fine_pending.clear()

    def _row(self, k: int) -> tuple[bytes, ...]:
        return tuple(getattr(self, name)[k].tobytes() for name in _COLUMNS[1:])

    def _recount(self, k: int, data: CapIndex) -> None:
        self._blocks.pop(int(self.lo[k]), None)  # the chunk's records changed
        self._fines.pop(int(self.lo[k]), None)
        before = self._row(k)
        self._count_row(k, data)
        if self._row(k) != before:
            self.dirty = True

    def _count_row(self, k: int, data: CapIndex) -> None:
        n = len(data)
        if self.count[k] != n:  # else the prefix counts (and len) stay as they are
            self.count[k] = n
            self._starts = None
        if n == 0:
            self.numeric[k] = False
            self.digest[k] = 0
            return
        caps = data.caps
        self.first_cap[k], self.last_cap[k] = caps[0], caps[n - 1]
        vals = self._numbers(data, 0, n)
        if vals is None:
            self.numeric[k] = False
            self.vmin[k] = self.vmax[k] = self.vsum[k] = self.vfirst[k] = self.vlast[k] = np.nan
            self.digest[k] = 0
            return
        self.numeric[k] = True
        self.vmin[k], self.vmax[k] = np.min(vals), np.max(vals)
        self.vsum[k] = _sum_in_order(vals)
        self.vfirst[k], self.vlast[k] = vals[0], vals[n - 1]
        self.digest[k] = digest(caps[:n], vals)

    def _extend_row(self, k: int, data: CapIndex, n0: int) -> bool:
        # Row k after records were added past the chunk's last one (positions n0.. of
        # data; the rest as counted): updated by the new records alone, to the same bits
        # a recount gives. False when it must be recounted instead.
        n = len(data)
        if n0 == 0 or n <= n0 or int(self.count[k]) != n0:
            return False
        numeric = bool(self.numeric[k])
        vals = self._numbers(data, n0, n) if numeric else None
        if (numeric and vals is None) or (not numeric and self.dtype is not None and data.columnar):
            return False  # the chunk's kind of payloads changed
        self.count[k] = n
        s = self._starts
        if s is not None and k + 2 == s.size:
            # the last chunk: only the length moves, one store a reader holding the array
            # outside the lock sees whole (it only grows); no copy of every chunk's start
            s[k + 1] += n - n0
        elif s is not None:  # a new array: a reader may hold the old one outside the lock
            s = s.copy()
            s[k + 1 :] += n - n0
            self._starts = s
        self.last_cap[k] = data.caps[n - 1]
        if vals is not None:
            if vals.size == 1:  # a List.append: Python floats add as float64 does
                v = float(vals[0])
                low, high = float(self.vmin[k]), float(self.vmax[k])
                # NaN wins, as in np.min/np.max (a comparison with NaN is False)
                self.vmin[k] = v if v < low or v != v else low
                self.vmax[k] = v if v > high or v != v else high
                self.vsum[k] = float(self.vsum[k]) + v
                self.vlast[k] = v
                self.digest[k] = add_digests(int(self.digest[k]), digest_one(int(data.caps[n0]), v))
            else:
                self.vmin[k] = np.min(np.r_[self.vmin[k], vals])
                self.vmax[k] = np.max(np.r_[self.vmax[k], vals])
                self.vsum[k] = _sum_in_order(np.r_[self.vsum[k], vals])
                self.vlast[k] = vals[-1]
                self.digest[k] = add_digests(int(self.digest[k]), digest(data.caps[n0:n], vals))
        self.dirty = True
        return True

    def _numbers(self, data: CapIndex, j0: int, j1: int) -> npt.NDArray[np.float64] | None:
        if self.dtype is None or not data.columnar:
            return None
        rows = data.payload_rows(j0, j1).reshape(-1).view(self.dtype)
        return rows.astype(np.float64, copy=False)

    # ------------------------------------------------------------ chunk data
    def held(self, lo: int) -> int:
        """Records of chunk ``lo`` held in memory (0 if not cached)."""
        data = self._data.get(lo)
        return len(data) if data is not None else 0

    def held_bytes(self, lo: int) -> int:
        """Bytes chunk ``lo`` holds in memory: its arrays as allocated, its block rows,
        and :data:`CHUNK_OVERHEAD` (0 if not cached)."""
        data = self._data.get(lo)
        if data is None:
            return 0
        blocks, fines = self._blocks.get(lo), self._fines.get(lo)
        extra = (0 if blocks is None else blocks.nbytes) + (0 if fines is None else fines.nbytes)
        return data.nbytes + extra + CHUNK_OVERHEAD

    def record_bytes(self) -> int:
        """Bytes a cached record of this series takes (:func:`record_bytes`)."""
        return record_bytes(self.payload_size)

    def summary_bytes(self) -> int:
        """Bytes the summary rows and their prefix counts take (by arithmetic: the budget
        check sums this over every series held)."""
        return self.chunks * (_ROW_BYTES + 8) + 8

    def cached_chunks(self, ks: Sequence[int]) -> set[int]:
        """The chunks of ``ks`` whose records are cached."""
        los = self.lo[list(ks)].tolist()
        return {k for k, lo in zip(ks, los, strict=True) if lo in self._data}

    def uncached(self, i0: int, i1: int) -> int:
        """Records of the chunks holding positions ``i0..i1-1`` that are not cached (what a
        read of those positions through the cache would fetch from TStorage)."""
        if i1 <= i0:
            return 0
        k0, k1 = self.chunk_of_position(i0), self.chunk_of_position(i1 - 1) + 1
        return sum(int(self.count[k]) for k in range(k0, k1) if int(self.lo[k]) not in self._data)

    def pinned(self, lo: int) -> bool:
        """True when chunk ``lo`` must stay cached (own writes unsettled, a change feed
        being applied, build tail)."""
        return self.unsettled or self.feeding or (self.building and lo == int(self.lo[-1]))

    def drop(self, lo: int) -> int:
        """Forget the cached records of chunk ``lo`` (keeping its fine rows); returns how
        many."""
        self._blocks.pop(lo, None)
        fines = self._fines.pop(lo, None)
        data = self._data.pop(lo, None)
        if data is None:
            return 0
        self._leave_fine(lo, data, fines)
        return len(data)

    def drop_all(self) -> None:
        """Forget every cached chunk (the summaries stay)."""
        self._data.clear()
        self._blocks.clear()
        self._fines.clear()
        self.cache.forget(self)

    def chunk(self, k: int) -> CapIndex:
        """The records of chunk ``k``, read from TStorage if not cached."""
        with self.lock:
            lo = int(self.lo[k])
            data = self._data.get(lo)
            if data is None:
                hi = int(self.lo[k + 1]) if k + 1 < self.chunks else CAP_RANGE[1] + 1
                data = self._data[lo] = self.loader(lo, hi, self._expected(k, k + 1))
                self.stale.discard(lo)
                self._recount(k, data)
            self.cache.touch(self, lo)
            return data

    def _expected(self, a: int, b: int) -> int:
        # a hint only: summaries not yet recounted may be off, so no chunk counts for more
        # than twice its size
        return int(np.minimum(self.count[a:b], 2 * self.chunk_records).sum())

    def run_chunks(self, most: int = 256) -> int:
        """Chunks one read brings in (or holds) at once: at most ``most``, and fewer when
        that many would hold more than the cache's ``run_bytes``; at least one."""
        per_chunk = max(1, self.chunk_records * self.record_bytes())
        return max(1, min(most, self.cache.run_bytes // per_chunk))

    def preload(self, ks: Sequence[int], most: int = 256, gap: int = 4) -> dict[int, CapIndex]:
        """Read the chunks ``ks`` that are not cached, neighbours by one GET instead of one
        each: a run spans at most ``most`` chunks (fewer when that many would hold more
        than the cache's ``run_bytes``) and bridges up to ``gap`` chunks not asked for
        (reading a few more records costs less than another GET). Bridged chunks are
        cached cold: they are the first to make room.

        Returns the chunks of ``ks`` it read, by their first cap: room made for later runs
        may drop them from the cache before the caller uses them."""
        read: dict[int, CapIndex] = {}
        most = self.run_chunks(most)
        with self.lock:
            asked = set(ks)
            missing = [k for k in sorted(asked) if int(self.lo[k]) not in self._data]
            runs: list[list[int]] = []
            for k in missing:
                if runs and k - runs[-1][-1] <= gap + 1 and k - runs[-1][0] < most:
                    runs[-1].append(k)
                else:
                    runs.append([k])
            for run in runs:
                if len(run) == 1:
                    read[int(self.lo[run[0]])] = self.chunk(run[0])
                    continue
                run = list(range(run[0], run[-1] + 1))
                a, b = run[0], run[-1] + 1
                hi = int(self.lo[b]) if b < self.chunks else CAP_RANGE[1] + 1
                data = self.loader(int(self.lo[a]), hi, self._expected(a, b))
                cuts = np.searchsorted(data.caps, self.lo[a + 1 : b]).tolist()
                for k, j0, j1 in zip(run, [0, *cuts], [*cuts, len(data)], strict=True):
                    piece = data.slice(j0, j1)
                    lo = int(self.lo[k])
                    self._data[lo] = piece
                    self.stale.discard(lo)
                    self._recount(k, piece)
                    self.cache.touch(self, lo, cold=k not in asked)
                    if k in asked:
                        read[lo] = piece
                del data  # the run's arrays go before the next run is read
        return read

    # ------------------------------------------------------------ positions
    def cap_at(self, i: int) -> int:
        """The cap at position ``i`` (``0 <= i < len``)."""
        k = self.chunk_of_position(i)
        return int(self.chunk(k).caps[i - int(self.starts()[k])])

    def searchsorted(self, cap: int, side: str = "left") -> int:
        """Position where ``cap`` would be inserted (numpy's ``searchsorted`` semantics)."""
        k = self.chunk_of_cap(cap)
        start = int(self.starts()[k])
        n = int(self.count[k])
        if n == 0:
            return start
        first, last = int(self.first_cap[k]), int(self.last_cap[k])
        if cap < first or (cap == first and side == "left"):
            return start
        if cap > last or (cap == last and side == "right"):
            return start + n
        caps = self.chunk(k).caps
        return start + int(np.searchsorted(caps, cap, side=side))  # type: ignore[call-overload]

    def position(self, cap: int) -> int | None:
        """Position of ``cap`` in the series, or ``None``."""
        k = self.chunk_of_cap(cap)
        if int(self.count[k]) == 0 or not self.first_cap[k] <= cap <= self.last_cap[k]:
            return None
        j = self.chunk(k).position(cap)
        return None if j is None else int(self.starts()[k]) + j

    def contains(self, cap: int) -> bool:
        """True when a record with this cap exists."""
        return self.position(cap) is not None

    def holds(self, caps: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which of ``caps`` (ascending) have a record: one lookup per chunk they fall in,
        chunks not cached read a run of neighbours at a time (:meth:`contains` per cap
        would cost a Python call each)."""
        out = np.zeros(len(caps), dtype=bool)
        if not len(caps) or not self.chunks:
            return out
        ks = np.searchsorted(self.lo, caps, side="right") - 1
        at = np.maximum(ks, 0)
        inside = (ks >= 0) & (self.count[at] > 0) & (caps >= self.first_cap[at])
        where = np.flatnonzero(inside & (caps <= self.last_cap[at]))
        groups = np.split(where, np.flatnonzero(np.diff(ks[where])) + 1) if where.size else []
        step = self.run_chunks()
        for b in range(0, len(groups), step):
            batch = groups[b : b + step]
            self.preload([int(ks[g[0]]) for g in batch])
            for g in batch:
                out[g] = np.isin(caps[g], self.chunk(int(ks[g[0]])).caps)
        return out

    def segments(self, i0: int, i1: int) -> Iterator[tuple[CapIndex, int, int]]:
        """``(chunk records, j0, j1)`` covering positions ``i0..i1-1`` in order."""
        if i1 <= i0:
            return
        k = self.chunk_of_position(i0)
        end = self.chunk_of_position(i1 - 1) + 1
        while k < end:
            if int(self.lo[k]) not in self._data:  # this and the next few by one GET
                self.preload(range(k, min(k + 64, end)))
            s = int(self.starts()[k])
            j0, j1 = max(i0 - s, 0), min(i1 - s, int(self.count[k]))
            if j1 > j0:
                yield self.chunk(k), j0, j1
            k += 1

    def caps_between(self, i0: int, i1: int) -> npt.NDArray[np.int64]:
        """The caps at positions ``i0..i1-1``."""
        parts = [data.caps[j0:j1] for data, j0, j1 in self.segments(i0, i1)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def payload(self, cap: int) -> bytes | None:
        """The newest payload of ``cap`` when its chunk holds payloads, else ``None``."""
        k = self.chunk_of_cap(cap)
        if int(self.count[k]) == 0:
            return None
        return self.chunk(k).payload(cap)

    def last_payload(self) -> bytes | None:
        """The newest payload of the largest cap when its chunk holds payloads."""
        nonempty = np.flatnonzero(self.count)
        if not nonempty.size:
            return None
        return self.chunk(int(nonempty[-1])).last_payload()

    def rollup_of(self, ks: Sequence[int]) -> list[tuple[CapIndex, Blocks | None]]:
        """Per chunk of ``ks``: its records and its block rows (``None`` when the chunk
        holds no numeric payloads; :meth:`numbers` gives its values). The chunks not cached
        are read together first.

        The records are the cached chunks themselves: use them under :attr:`lock`.
        """
        out: list[tuple[CapIndex, Blocks | None]] = []
        with self.lock:
            read = self.preload(ks)
            los = self.lo[ks].tolist()
            for k, key in zip(ks, los, strict=True):
                # a chunk this read brought in may have made room for the others already
                data = self._data.get(key)
                if data is None:
                    data = read.get(key)
                if data is None:
                    data = self.chunk(k)
                blocks = self._blocks.get(key)
                if blocks is None:
                    values = self.numbers(data)
                    if values is not None:
                        blocks = Blocks.of(data.caps, values, self.block_records)
                        self._blocks[key] = blocks
                out.append((data, blocks))
            for key in los:
                self.cache.touch(self, key)
        return out

    def numbers(self, data: CapIndex) -> npt.NDArray[np.float64] | None:
        """A chunk's values as float64 (a view when the payloads are float64), or ``None``
        when it holds no numeric payloads."""
        return self._numbers(data, 0, len(data))

    # ------------------------------------------------------------ fine rows
    def _make_fine(
        self,
        k: int,
        caps: npt.NDArray[np.int64],
        vals: npt.NDArray[np.float64],
        starts: npt.NDArray[np.int64],
        ends: npt.NDArray[np.int64],
        pieces: list[int],
    ) -> None:
        # Fine rows of chunks k + j (j in pieces), whose records are caps/vals[starts[j]:
        # ends[j]] (the runs cover caps/vals) and whose rows were just counted: one
        # reduceat over every run, then the rows of the pieces asked for.
        if self.fine_loader is None:
            return  # nowhere to write them: reads make them from cached chunks
        size = self.fine_size
        at = [
            np.arange(int(a), int(b), size, dtype=np.int64)
            for a, b in zip(starts, ends, strict=True)
        ]
        lens = [a.size for a in at]
        runs = FineRows.runs(caps, vals, np.concatenate(at))
        bounds = np.r_[0, np.cumsum(lens)].tolist()
        made = {}
        for j in pieces:
            a, b = bounds[j], bounds[j + 1]
            lo = int(self.lo[k + j])
            # copies: a view would keep the whole batch's rows alive while these wait
            rows = runs.take(np.arange(a, b))
            made[lo] = replace(rows, lo=lo, digest=int(self.digest[k + j]))
        with self._fine_lock:
            # the others are made again when next read and let go
            room, space = FINE_PENDING_CHUNKS - len(self.fine_pending), self._fine_room()
            for lo, rows in made.items():
                if room <= 0 or pending_bytes(rows) > space:
                    break
                self.fine_pending[lo] = rows
                room, space = room - 1, space - pending_bytes(rows)

    def _leave_fine(self, lo: int, data: CapIndex, made: FineRows | None = None) -> None:
        # A chunk leaves the cache: keep its fine rows if none valid are persisted or
        # waiting (and there is room), so they outlive the records they came from.
        k = self.chunk_of_cap(lo)
        if self.fine_loader is None or k == self.chunks - 1:  # the last one grows on
            return
        if int(self.lo[k]) != lo or lo in self.stale or not self.numeric[k]:
            return
        n = len(data)
        want = int(self.digest[k])
        if n == 0 or n != int(self.count[k]) or int(self.fine[k]) == want:
            return
        with self._fine_lock:
            held = self.fine_pending.get(lo)
            if held is not None and held.digest == want:
                return
            if len(self.fine_pending) >= FINE_PENDING_CHUNKS:
                return
        space = self._fine_room()
        if space < 8 * 8 * FINE_PER_CHUNK + PENDING_OVERHEAD:  # not even one chunk's rows
            return
        rows = made if made is not None and made.digest == want else None
        if rows is None:
            vals = self.numbers(data)
            if vals is None:
                return
            caps = data.caps[:n]
            if digest(caps, vals) != want:  # the row does not count these records
                return
            rows = FineRows.of(lo, caps, vals, self.fine_size, want)
        if pending_bytes(rows) > space:
            return
        with self._fine_lock:
            self.fine_pending[lo] = rows
        self.dirty = True  # saved with the next save of the summaries

    def fine_from_cache(self) -> None:
        """Make the fine rows of cached chunks that have none valid persisted or waiting (a
        save is about to write them). Call with :attr:`lock` held."""
        if self.fine_loader is None:
            return
        owed = np.flatnonzero((self.fine != self.digest) & self.numeric & (self.count > 0))
        for k in owed.tolist():
            lo = int(self.lo[k])
            data = self._data.get(lo)
            if data is not None:
                self._leave_fine(lo, data, self._fines.get(lo))

    def fine_rows(
        self, ks: Sequence[int], *, pending: bool = True, per_page: int = 1
    ) -> dict[int, FineRows]:
        """The fine rows of the chunks ``ks`` that have valid ones (made here and not yet
        written, unless not ``pending``, or read from their persisted page), by chunk. A
        page is read only for at least ``per_page`` of the chunks asked for."""
        out: dict[int, FineRows] = {}
        # the pages written, by their first chunk's lo (unwritten ones have none)
        written = sorted((page[3], p) for p, page in enumerate(self.fine_pages) if page)
        firsts = np.asarray([f for f, _ in written], dtype=np.int64)
        wanted: dict[int, list[int]] = {}  # page -> chunks to look up in it
        for k in ks:
            lo, want, n = int(self.lo[k]), int(self.digest[k]), int(self.count[k])
            if not n or not self.numeric[k]:
                continue
            got = None
            if pending:
                with self._fine_lock:
                    got = self.fine_pending.get(lo)
            if self._fine_valid(got, k):
                out[k] = got
            elif want and int(self.fine[k]) == want and self.fine_loader is not None:
                j = int(np.searchsorted(firsts, lo, side="right")) - 1
                if j >= 0:
                    wanted.setdefault(written[j][1], []).append(k)
                else:
                    self._unclaim(k)
        for p, pks in wanted.items():
            if len(pks) < per_page or self.fine_loader is None:
                continue
            page = self.fine_loader(self, p)
            for k in pks:
                got = None if page is None else page.get(int(self.lo[k]))
                if self._fine_valid(got, k):
                    out[k] = got
                else:  # claimed, not held (a write that failed, a page lost)
                    self._unclaim(k)
        return out

    def _fine_valid(self, rows: FineRows | None, k: int) -> TypeGuard[FineRows]:
        # rows that describe chunk k's records as they are now (a numeric chunk's)
        return (
            rows is not None
            and bool(self.numeric[k])
            and rows.digest == int(self.digest[k])
            and int(rows.n.sum()) == int(self.count[k])
        )

    def _unclaim(self, k: int) -> None:
        # Chunk k's fine rows are not where its ``fine`` column says: they are made again
        # when its records are next at hand (the column is saved with the next save).
        self.fine[k] = 0
        self.dirty = True

    def fine_rows_read(self, ks: Sequence[int]) -> dict[int, FineRows]:
        """The fine rows of every chunk of ``ks`` that holds numbers, by chunk: made from
        the records of cached chunks, else persisted ones if valid, else made from the
        records of chunks read now (neighbours by one GET). The same rows whatever is
        cached or persisted: they follow from the chunk's records alone. Call with
        :attr:`lock` held."""
        want = [k for k in ks if int(self.count[k]) and bool(self.numeric[k])]
        cached = self.cached_chunks(want)
        # a page (256 chunks' rows) costs more than reading a few chunks it would spare
        out = self.fine_rows([k for k in want if k not in cached], per_page=FINE_PAGE_USE)
        missing = [k for k in want if k not in out]
        if missing:
            read = self.preload([k for k in missing if k not in cached])
            for k in missing:
                lo = int(self.lo[k])
                made = self._fines.get(lo)
                if made is None:
                    data = self._data.get(lo)
                    data = read.get(lo) if data is None else data
                    data = self.chunk(k) if data is None else data
                    vals = self.numbers(data)
                    if vals is None:  # its payloads are not numbers after all
                        continue
                    made = FineRows.of(
                        lo, data.caps[: len(data)], vals, self.fine_size, int(self.digest[k])
                    )
                    if lo in self._data:
                        self._fines[lo] = made
                        self.cache.touch(self, lo)
                out[k] = made
        return out

    def fine_owed(self, final: bool) -> list[int]:
        """Pages whose fine rows changed (rows made here for them), ascending; not
        ``final``: only pages of chunks that are complete (before the last chunk's page)."""
        with self._fine_lock:
            los = list(self.fine_pending)
        if not los:
            return []
        ks = np.searchsorted(self.lo, np.asarray(los, dtype=np.int64), side="right") - 1
        pages = set((ks // PAGE_CHUNKS).tolist())
        if not final:
            pages = {p for p in pages if (p + 1) * PAGE_CHUNKS < self.chunks}
        return sorted(pages)

    def fine_page(self, p: int) -> tuple[list[FineRows], dict[int, int], dict[int, FineRows]]:
        """Page ``p`` as it is to be written: for each of its chunks, the rows made here if
        they are valid, else the persisted ones if they are. Returns the entries, the
        ``fine`` column of its chunks once it is written (:meth:`fine_written`), and the
        rows made here it took from :attr:`fine_pending` (:meth:`fine_unwritten` puts them
        back). Call with :attr:`lock` held."""
        k0, k1 = p * PAGE_CHUNKS, min((p + 1) * PAGE_CHUNKS, self.chunks)
        top = int(self.lo[k1]) if k1 < self.chunks else CAP_RANGE[1] + 1
        with self._fine_lock:
            mine = {lo: e for lo, e in self.fine_pending.items() if int(self.lo[k0]) <= lo < top}
            for lo in mine:  # (rows made for chunks since cut otherwise go too)
                del self.fine_pending[lo]
        made: dict[int, FineRows] = {}
        for k in range(k0, k1):
            got = mine.get(int(self.lo[k]))
            if self._fine_valid(got, k):
                made[k] = got
        # (fine_rows gives only valid rows)
        kept = self.fine_rows([k for k in range(k0, k1) if k not in made], pending=False)
        entries: list[FineRows] = []
        column: dict[int, int] = {}
        for k in range(k0, k1):
            got = made.get(k) or kept.get(k)
            if got is not None:
                entries.append(got)
            column[k] = 0 if got is None else int(self.digest[k])
        return entries, column, mine

    def fine_written(self, column: dict[int, int]) -> None:
        """A page :meth:`fine_page` made is written: its chunks' ``fine`` column says so."""
        for k, value in column.items():
            if k < self.chunks and int(self.fine[k]) != value:
                self.fine[k] = value
                self.dirty = True

    def fine_forget(self) -> None:
        """Let go of the fine rows waiting for their pages (they are made again when their
        chunks are next read)."""
        with self._fine_lock:
            self.fine_pending.clear()

    def fine_unwritten(self, taken: dict[int, FineRows]) -> None:
        """A page :meth:`fine_page` made was not written: the rows it took wait again."""
        with self._fine_lock:
            for lo, rows in taken.items():
                self.fine_pending.setdefault(lo, rows)

    # ------------------------------------------------------------ updates
    def add(
        self,
        caps: Sequence[int] | npt.NDArray[np.int64],
        acqs: Sequence[int] | npt.NDArray[np.int64],
        payloads: Sequence[bytes] | npt.NDArray[np.uint8],
        *,
        own: bool = False,
    ) -> None:
        """Add records (any order; for a held cap the newest acq wins, see
        :meth:`CapIndex.add_records`). ``payloads`` is a list of bytes or, for fixed-size
        payloads, an ``n x payload_size`` array.

        During a build (:attr:`building`), a record for a chunk that is not cached marks
        the chunk stale instead of reading it (the stream is in flight).
        """
        cap_a = np.asarray(caps, dtype=np.int64)
        if cap_a.size == 0:
            return
        acq_a = np.asarray(acqs, dtype=np.int64)
        with self.lock:
            touched: dict[int, CapIndex] = {}
            after: dict[int, int] = {}  # chunk -> its records before, all new ones after them
            groups: list[tuple[int, npt.NDArray[Any] | slice | None]]
            least = int(cap_a[0]) if cap_a.size == 1 else int(cap_a.min())
            if least >= int(self.lo[-1]):  # appends (a streamed build): last chunk
                groups = [(self.chunks - 1, None)]
            elif cap_a.size > 1 and bool((cap_a[1:] >= cap_a[:-1]).all()):
                # records in cap order (a feed, a bulk write): each chunk's are one run,
                # found by a search per boundary of the chunks they span, not per record
                k0 = int(np.searchsorted(self.lo, cap_a[0], side="right")) - 1
                k1 = int(np.searchsorted(self.lo, cap_a[-1], side="right"))
                cuts = np.searchsorted(cap_a, self.lo[k0 + 1 : k1])
                starts, ends = np.r_[0, cuts], np.r_[cuts, cap_a.size]
                ks_run = np.flatnonzero(ends > starts).tolist()
                if len(ks_run) == 1:
                    groups = [(k0 + ks_run[0], None)]
                else:
                    groups = [(k0 + k, slice(int(starts[k]), int(ends[k]))) for k in ks_run]
            else:
                groups = self._groups(np.searchsorted(self.lo, cap_a, side="right") - 1)
            for k, sel in groups:
                lo = int(self.lo[k])
                data = self._data.get(lo)
                if data is None:
                    if self.building and int(self.count[k]) > 0:
                        self.stale.add(lo)
                        continue
                    data = self.chunk(k) if int(self.count[k]) > 0 else self._new_chunk(lo)
                if sel is None:
                    c, a, p = cap_a, acq_a, payloads
                elif isinstance(payloads, np.ndarray):
                    c, a, p = cap_a[sel], acq_a[sel], payloads[sel]
                elif isinstance(sel, slice):
                    c, a, p = cap_a[sel], acq_a[sel], list(payloads[sel])
                else:
                    c, a, p = cap_a[sel], acq_a[sel], [payloads[i] for i in sel.tolist()]
                n0 = len(data)
                if n0 and int(c[0] if c.size == 1 else c.min()) > int(data.caps[n0 - 1]):
                    after[k] = n0
                if isinstance(p, np.ndarray) and data.columnar:
                    data.add_arrays(c, a, p, own=own)
                else:
                    rows = [bytes(r) for r in p] if isinstance(p, np.ndarray) else list(p)
                    data.add_records(c.tolist(), a.tolist(), rows, own=own)
                self._blocks.pop(lo, None)  # its records changed
                self._fines.pop(lo, None)
                self.cache.touch(self, lo)
                touched[k] = data
            # from the last row back: a split inserts rows after its own
            for k in sorted(touched, reverse=True):
                data = touched[k]
                if self._split(k, data):  # a split counts its pieces' rows
                    continue
                # records only after the chunk's last (appends) update its row; others
                # (corrections, late records) recount it
                if not (k in after and self._extend_row(k, data, after[k])):
                    self._recount(k, data)

    @staticmethod
    def _groups(ks: npt.NDArray[np.int64]) -> list[tuple[int, npt.NDArray[Any] | slice | None]]:
        # (chunk, selection of the records) for records whose chunks are ks, in any order
        if bool((ks == ks[0]).all()):
            return [(int(ks[0]), None)]
        order = np.argsort(ks, kind="stable")
        ks_sorted = ks[order]
        cuts = np.flatnonzero(ks_sorted[1:] != ks_sorted[:-1]) + 1
        return [
            (int(ks_sorted[a]), order[a:b])
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, ks.size], strict=True)
        ]

    def _new_chunk(self, lo: int) -> CapIndex:
        data = self._data[lo] = CapIndex(self.payload_size)
        return data

    def _split(self, k: int, data: CapIndex) -> bool:
        # The last chunk is cut once full (appends start the next one); another chunk
        # only past twice the size (late records), so a chunk never splits into tiny ones.
        # True when it was cut (the rows of its pieces are counted).
        n = len(data)
        size = self.chunk_records
        last = k == self.chunks - 1
        if n <= size or (not last and n <= 2 * size):
            return False
        lo = int(self.lo[k])
        pieces = [data.slice(a, min(a + size, n)) for a in range(0, n, size)]
        los = [lo] + [int(p.caps[0]) for p in pieces[1:]]
        extra = len(pieces) - 1
        self.cache.forget(self, lo)
        self._data.pop(lo, None)
        self._blocks.pop(lo, None)
        self._fines.pop(lo, None)

        def spread(arr: Any, fill: Any) -> Any:
            return np.insert(arr, k + 1, np.full(extra, fill, dtype=arr.dtype))

        self.dirty = True
        self.lo = np.insert(self.lo, k + 1, np.asarray(los[1:], dtype=np.int64))
        self.count = spread(self.count, 0)
        self.first_cap = spread(self.first_cap, 0)
        self.last_cap = spread(self.last_cap, 0)
        self.numeric = spread(self.numeric, False)
        self.vmin, self.vmax = spread(self.vmin, np.nan), spread(self.vmax, np.nan)
        self.vsum = spread(self.vsum, np.nan)
        self.vfirst, self.vlast = spread(self.vfirst, np.nan), spread(self.vlast, np.nan)
        self.digest, self.fine = spread(self.digest, 0), spread(self.fine, 0)
        self._count_rows(k, data, pieces)
        for piece_lo, piece in zip(los, pieces, strict=True):
            self._data[piece_lo] = piece
            self.cache.touch(self, piece_lo)
        return True

    def _count_rows(self, k: int, data: CapIndex, pieces: list[CapIndex]) -> None:
        # The rows of the ``pieces`` a split cut ``data`` into (rows k, k + 1, ...), at
        # once: a streamed build splits off dozens of chunks per batch.
        ends = np.cumsum([len(p) for p in pieces])
        starts = np.concatenate(([0], ends[:-1]))
        n = int(ends[-1])
        rows = slice(k, k + starts.size)
        caps = data.caps
        self._starts = None
        self.count[rows] = ends - starts
        self.first_cap[rows], self.last_cap[rows] = caps[starts], caps[ends - 1]
        vals = self._numbers(data, 0, n)
        if vals is None:
            self.numeric[rows] = False
            for col in (self.vmin, self.vmax, self.vsum, self.vfirst, self.vlast):
                col[rows] = np.nan
            self.digest[rows] = 0
            return
        self.numeric[rows] = True
        self.vmin[rows] = np.minimum.reduceat(vals, starts)
        self.vmax[rows] = np.maximum.reduceat(vals, starts)
        # each piece summed as _count_row sums a chunk (reduceat adds in another order)
        self.vsum[rows] = [
            _sum_in_order(v) for p in pieces if (v := self._numbers(p, 0, len(p))) is not None
        ]
        self.vfirst[rows], self.vlast[rows] = vals[starts], vals[ends - 1]
        self.digest[rows] = digests(caps[:n], vals, starts)
        # A split is where chunks are completed (appends, a streamed build): their fine
        # rows are made now, all pieces at once, except the last chunk's (it grows on).
        last = self.chunks - 1
        done = [j for j in range(starts.size) if k + j != last]
        if done:
            self._make_fine(k, caps[:n], vals, starts, ends, done)

    def finish_build(self) -> None:
        """End a streamed build: recount chunks that late records reached while they were
        not cached (their records are read again, below the new watermark)."""
        with self.lock:
            self.building = False
            for lo in sorted(self.stale):
                self._data.pop(lo, None)
                self._blocks.pop(lo, None)
                self._fines.pop(lo, None)
                k = self.chunk_of_cap(lo)
                self._split(k, self.chunk(k))
            self.stale.clear()

    def settle(self) -> None:
        """The change feed brought back every own write: chunks may be evicted again."""
        self.unsettled = False


class BoxIndex:
    """Chunk summaries of every moid of one ``(cid, mid, moid range)`` box, with the box's
    change-feed watermark.

    Attributes:
        lo: inclusive lower key of the box (cap and acq at their minima).
        hi: exclusive upper key of the box.
        acq0: every record of the box with ``acq < acq0`` is counted in the summaries.
        refreshed_at: monotonic time of the last catch-up with TStorage.
    """

    def __init__(
        self,
        lo: KeyTuple,
        hi: KeyTuple,
        make: Callable[[BoxIndex, int], SeriesIndex],
        payload_size: int | None = None,
    ) -> None:
        self.lo = lo
        self.payload_size = payload_size
        self._building = False
        #: numpy dtype (``dtype.str``) of the numbers summarised, or None
        self.dtype: str | None = None
        self.hi = hi
        self.acq0 = lo[4]
        self.refreshed_at = float("-inf")
        self.used_at = float("-inf")
        self.moids: dict[int, SeriesIndex] = {}
        self.views: dict[str, Any] = {}  # full key -> ListTarget/DictTarget shown from this box
        self._make = make
        self._feeding = False
        self._forgotten = False
        self._insert = threading.Lock()

    @property
    def building(self) -> bool:
        """The first streamed read of the box is running."""
        return self._building

    @building.setter
    def building(self, on: bool) -> None:
        # A series made before the build began (e.g. by a read that asked whether it held
        # own writes) is built too: its last chunk must stay cached and records for its
        # evicted chunks must mark them stale, not read them (the box has no watermark yet).
        self._building = on
        if on:
            for idx in self.moids.values():
                idx.building = True

    @property
    def forgotten(self) -> bool:
        """The owner dropped this box (:meth:`drop`): a series made in it now is empty
        however many records it has, and is not counted; read through a box held."""
        return self._forgotten

    def series(self, moid: int) -> SeriesIndex:
        """The index of one moid (empty if the moid has no record yet)."""
        idx = self.moids.get(moid)
        if idx is None:
            with self._insert:  # one index per moid, counted once
                idx = self.moids.get(moid)
                if idx is None:
                    idx = self._make(self, moid)
                    idx.feeding = self._feeding
                    if not self._forgotten:
                        idx.tally_in()
                    self.moids[moid] = idx
        return idx

    @contextlib.contextmanager
    def feeding(self) -> Iterator[None]:
        """While a change feed's records are applied (until ``acq0`` covers them): every
        chunk of the box's series stays cached, as with own writes not settled yet. The
        cache may hold the chunks the feed changes beyond its budget meanwhile."""
        self._feeding = True
        for idx in list(self.moids.values()):
            idx.feeding = True
        try:
            yield
        finally:
            self._feeding = False
            for idx in list(self.moids.values()):
                idx.feeding = False

    def add_records(
        self, records: Iterable[tuple[int, int, int, bytes]], *, own: bool = False
    ) -> None:
        """Add ``(moid, cap, acq, payload)`` records (see :meth:`SeriesIndex.add`)."""
        by_moid: dict[int, tuple[list[int], list[int], list[bytes]]] = {}
        for moid, cap, acq, payload in records:
            caps, acqs, pays = by_moid.setdefault(moid, ([], [], []))
            caps.append(cap)
            acqs.append(acq)
            pays.append(payload)
        for moid, (caps, acqs, pays) in by_moid.items():
            self.series(moid).add(caps, acqs, pays, own=own)

    def add_columns(
        self,
        moid_a: npt.NDArray[np.int32],
        cap_a: npt.NDArray[np.int64],
        acq_a: npt.NDArray[np.int64],
        pay_a: npt.NDArray[np.uint8],
    ) -> None:
        """Add records given as columns (payloads as an ``n x payload_size`` array)."""
        if moid_a.size == 0:
            return
        first = moid_a[0]
        if bool((moid_a == first).all()):  # one series (a List's box): no selection
            self.series(int(first)).add(cap_a, acq_a, pay_a)
            return
        for moid in np.unique(moid_a):
            sel = moid_a == moid
            self.series(int(moid)).add(cap_a[sel], acq_a[sel], pay_a[sel])

    def feed_box(self) -> tuple[KeyTuple, KeyTuple]:
        """The box that returns exactly the records that arrived since ``acq0``."""
        return box_since((self.lo, self.hi), self.acq0)

    def forget(self) -> None:
        """Drop every series' cached chunks and summaries (the box is built again)."""
        with self._insert:
            for idx in self.moids.values():
                idx.drop_all()
                idx.untally()
            self.moids.clear()

    def drop(self) -> None:
        """:meth:`forget`, for a box its owner no longer holds: a read that took the box
        before must take it again (:attr:`forgotten`)."""
        with self._insert:
            self._forgotten = True
        self.forget()

    @property
    def size(self) -> int:
        """Summary rows held, weighted as records (the memory budget counts these)."""
        # a copy: other threads add series (a feed, a Dict's new field) without this lock
        return sum(i.chunks for i in list(self.moids.values())) * SUMMARY_WEIGHT

    @property
    def nbytes(self) -> int:
        """Bytes of the summary rows held and of the fine rows waiting for their pages
        (``index_budget_bytes`` counts these)."""
        return sum(i.summary_bytes() + i.fine_pending_bytes for i in list(self.moids.values()))
