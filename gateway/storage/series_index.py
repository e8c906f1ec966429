"""The indexes behind mapped series: chunk summaries per box, caught up with TStorage.

:class:`SeriesIndexes` holds the boxes (one per List series or Dict meter: the key box of
the target, whose rule tells how its payloads are held), builds them by one streamed GET
or starts them from persisted summaries, catches them up through the change feed when
older than ``max_staleness``, announces what arrived from elsewhere, bounds their memory
by ``index_budget_bytes`` (and ``index_budget`` records if set) and reads the records a
read needs. It also holds what List and Dict writes share: the rule's read-only check, the
caps of appends, and own records entering the index at once. The summaries themselves
are :mod:`gateway.storage.summaries` (persisted by :mod:`gateway.storage.persisted`); the
List and Dict commands over them live in :mod:`gateway.storage.list_view` and
:mod:`gateway.storage.dict_view`; ``docs/data-model.md`` describes the model.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.cooperative import give_way
from gateway.elements import ElementShape
from gateway.errors import CodecError, GatewayError, TStorageUnavailable
from gateway.keymap import (
    ACQ_MIN,
    CAP_RANGE,
    DictTarget,
    KeyTuple,
    ListTarget,
    Rule,
    SeriesKey,
    Target,
)
from gateway.storage import persisted
from gateway.storage.background_build import Build
from gateway.storage.fine_rows import PAGE_CHUNKS, FineRows, encode_page, pending_bytes
from gateway.storage.heads import Head, HeadStore
from gateway.storage.index import CapIndex
from gateway.storage.link import ColumnsUnavailable, Fetched, PutRecord, TStorageLink
from gateway.storage.persisted import CorruptSummary, FinePage, Shape, Snapshot, SummaryStore
from gateway.storage.summaries import (
    DEFAULT_BUDGET_BYTES,
    DEFAULT_CHUNK_RECORDS,
    FINE_PENDING_CHUNKS,
    FINE_PENDING_SHARE,
    BoxIndex,
    ChunkCache,
    SeriesIndex,
    SummaryTally,
    record_bytes,
)
from gateway.storage.values import UNKNOWN_ACQ, ValueCache
from gateway.timeseries.downsample import numeric_dtype
from gateway.timeseries.times import cap_text
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError, ResponseError

log = logging.getLogger("gateway.index")
_STREAM_BATCH_BYTES = 4 * 1024 * 1024
# (cid, mid, moid_lo, moid_hi, payload size held per record or None, numeric dtype or None)
_BoxKey = tuple[int, int, int, int, int | None, str | None]
#: most bytes of persisted fine pages kept after a read (besides ``index_budget_bytes``)
FINE_CACHE_BYTES = 8 * 1024 * 1024


class _Progress:
    """Logs how a streamed build of a box's summaries goes, every few seconds."""

    EVERY_S = 5.0

    def __init__(self, box: BoxIndex) -> None:
        self.box = box
        self.started = self.logged = time.monotonic()
        self.records = 0

    def update(self, records: int) -> None:
        self.records = records
        now = time.monotonic()
        if now - self.logged >= self.EVERY_S:
            self.logged = now
            rate = records / max(now - self.started, 1e-9)
            log.info(
                "building summaries of %s: %d records read (%.0f/s)", self.what(), records, rate
            )

    def done(self, records: int) -> None:
        took = time.monotonic() - self.started
        if took >= self.EVERY_S or records >= 1_000_000:
            log.info("built summaries of %s: %d records in %.2f s", self.what(), records, took)

    def what(self) -> str:
        """The box being built, for messages."""
        lo, hi = self.box.lo, self.box.hi
        moids = str(lo[2]) if hi[2] - lo[2] == 1 else f"[{lo[2]}, {hi[2]})"
        return f"cid {lo[0]} mid {lo[1]} moid {moids}"


def tstorage_now_ns() -> int:
    """Now in TStorage time (ns since 2001-01-01 UTC), from this host's clock."""
    return time.time_ns() - EPOCH_OFFSET_NS


def _newest_per_cap(records: Sequence[Fetched]) -> dict[tuple[int, int], tuple[int, bytes]]:
    # (moid, cap) -> (acq, payload) of the newest version
    out: dict[tuple[int, int], tuple[int, bytes]] = {}
    for key, payload in records:
        k = (key.moid, key.cap)
        prev = out.get(k)
        if prev is None or key.acq > prev[0]:
            out[k] = (key.acq, payload)
    return out


#: times a read takes a box that other reads drop for room before it gives up
_BOX_TRIES = 64


def _dropped(key: str) -> GatewayError:
    return GatewayError(
        f"{key}: its index was dropped for room {_BOX_TRIES} times while this read waited "
        "([tstorage] index_budget_bytes is too small for the reads running at once); "
        "nothing was read"
    )


class SeriesIndexes:
    """Indexes of mapped series (the base of the List and Dict views)."""

    def __init__(
        self,
        link: TStorageLink,
        *,
        max_staleness: float = 0.1,
        index_budget: int | None = None,
        index_budget_bytes: int = DEFAULT_BUDGET_BYTES,
        index_chunk: int = DEFAULT_CHUNK_RECORDS,
        value_cache: int = 200_000,
        index_cid: int | None = None,
        index_save: float = 30.0,
        build_wait: float | None = 10.0,
        clock: Callable[[], int] = tstorage_now_ns,
    ) -> None:
        self.link = link
        #: where summaries are persisted (None: they are not)
        self.store = None if index_cid is None else SummaryStore(link, index_cid, clock)
        #: the series heads saved with the summaries (None: not persisted)
        self.heads = None if index_cid is None else HeadStore(link, index_cid, clock)
        self.index_save = index_save
        self.values = ValueCache(value_cache)
        #: ``(full_key, refresh_payload)`` callback for records that arrived from elsewhere.
        self.on_change: Callable[[str, dict[str, Any]], None] | None = None
        self.max_staleness = max_staleness
        #: records the indexes may hold (None: only the byte budget bounds them)
        self.index_budget = index_budget
        self.index_budget_bytes = index_budget_bytes
        self.index_chunk = index_chunk
        self.clock = clock
        self._boxes: OrderedDict[_BoxKey, BoxIndex] = OrderedDict()
        self._locks: dict[_BoxKey, threading.RLock] = {}
        self._guard = threading.Lock()
        #: summary rows and series of every box held
        self._tally = SummaryTally(fine_limit=index_budget_bytes // FINE_PENDING_SHARE)
        # one read of neighbouring chunks brings in at most an eighth of the budget at once
        self._chunks = ChunkCache(
            run_bytes=max(1, index_budget_bytes // 8),
            tally=self._tally,
            budget_bytes=index_budget_bytes,
        )
        #: series too long to persist, warned of once
        self._too_long: weakref.WeakSet[SeriesIndex] = weakref.WeakSet()
        #: when this gateway last saved the head of a series
        self._heads_saved: weakref.WeakKeyDictionary[SeriesIndex, float] = (
            weakref.WeakKeyDictionary()
        )
        #: boxes whose first build runs in the background
        self._building: dict[BoxIndex, Build] = {}
        #: how long a request waits for a build it started or joined (None: to the end)
        self.build_wait = build_wait
        #: fine pages read lately: (series, page, what the header lists) -> entries, bytes
        self._fine_cache: OrderedDict[
            tuple[int, int, int, int, FinePage], tuple[dict[int, FineRows], int]
        ] = OrderedDict()
        self._fine_cache_bytes = 0
        #: fine pages found missing or damaged (not asked for again)
        self._fine_bad: set[tuple[int, int, int, int, FinePage]] = set()
        self._fine_guard = threading.Lock()
        self.fine_cache_limit = min(FINE_CACHE_BYTES, index_budget_bytes // 16)

    # ------------------------------------------------------------------ indexes
    def _box(self, target: Target) -> tuple[BoxIndex, threading.RLock]:
        # one box per List series or Dict meter, and per way its rule holds payloads
        lo, hi = target.key_range()
        codec = target.rule.shape.codec
        size, dtype = codec.fixed_size, numeric_dtype(codec)
        key = (lo[0], lo[1], lo[2], hi[2], size, None if dtype is None else dtype.str)
        with self._guard:
            box = self._boxes.get(key)
            if box is None:
                lock = self._locks[key] = threading.RLock()

                def make(box: BoxIndex, moid: int) -> SeriesIndex:
                    idx = SeriesIndex(
                        size,
                        dtype,
                        self.index_chunk,
                        self._chunks,
                        functools.partial(self._load_chunk, box, moid),
                        lock,
                        self._tally,
                        None
                        if self.store is None
                        else functools.partial(self._load_fine, box, moid),
                    )
                    idx.building = box.building
                    return idx

                box = self._boxes[key] = BoxIndex(lo, hi, make, size)
                box.dtype = None if dtype is None else dtype.str
            self._boxes.move_to_end(key)
            return box, self._locks[key]

    def nonempty_series(self, lo: KeyTuple, hi: KeyTuple) -> dict[tuple[int, int, int], int]:
        """``(cid, mid, moid)`` of the series held whose summaries count records, among the
        keys of the box ``[lo, hi)``, with the records counted (a series once non-empty
        stays so: TStorage deletes nothing)."""
        with self._guard:
            boxes = list(self._boxes.values())
        out: dict[tuple[int, int, int], int] = {}
        for box in boxes:
            cid, mid = box.lo[0], box.lo[1]
            if not (lo[0] <= cid < hi[0] and lo[1] <= mid < hi[1]):
                continue
            for moid, idx in list(box.moids.items()):
                if not lo[2] <= moid < hi[2]:
                    continue
                # the counts, not len(): no wait for the series lock a build may hold
                records = int(idx.count.sum())
                if records:
                    out[(cid, mid, moid)] = max(records, out.get((cid, mid, moid), 0))
        return out

    def held(self) -> int:
        """Memory held by indexes, in records (summary rows weighted): what
        ``index_budget`` bounds when set."""
        return self._tally.size + self._chunks.records()

    def held_bytes(self) -> int:
        """Memory held by indexes, in bytes (summary rows, fine rows waiting for their
        pages, cached chunks and their block rows): what ``index_budget_bytes`` bounds."""
        return self._tally.held_bytes + self._chunks.nbytes()

    def memory(self) -> dict[str, int | None]:
        """What the indexes hold against their budgets (for ``/health``)."""
        summary_bytes = self._tally.nbytes
        return {
            "held_bytes": self.held_bytes(),
            "budget_bytes": self.index_budget_bytes,
            "summary_rows": self._tally.rows,
            "summary_bytes": summary_bytes,
            "cached_chunks": len(self._chunks),
            "cached_records": self._chunks.records(),
            "cached_bytes": self._chunks.nbytes(),
            "held_records": self.held(),
            "budget_records": self.index_budget,
            "fine_page_bytes": self._fine_cache_bytes,
            "fine_pending_bytes": self._tally.fine_bytes,
        }

    def _evict(self, records: int = 0, nbytes: int = 0) -> None:
        # Room for ``records`` records of ``nbytes`` bytes about to be read: cached chunks
        # go first (least recently used); whole boxes (their summaries) only when
        # summaries alone exceed a budget. The box in use and boxes being built (in the
        # background) stay.
        summaries = self._tally.size
        budget = 2**62 if self.index_budget is None else self.index_budget
        # (the chunks' room in bytes follows the summaries by itself: ChunkCache)
        self._chunks.room_records = budget - summaries
        excess = summaries + self._chunks.records() + records - budget
        excess_b = self.held_bytes() + nbytes - self.index_budget_bytes
        if excess <= 0 and excess_b <= 0:
            return
        freed, freed_b = self._chunks.evict(excess, excess_b)
        excess, excess_b = excess - freed, excess_b - freed_b
        if excess_b > 0 and self._tally.fine_bytes > 0:
            # fine rows waiting for their page go before any summaries (made again later)
            with self._guard:
                held = [i for b in self._boxes.values() for i in list(b.moids.values())]
            for idx in held:
                if excess_b <= 0:
                    break
                before = idx.fine_pending_bytes
                if before:
                    idx.fine_forget()
                    excess_b -= before - idx.fine_pending_bytes
        with self._guard:
            for key in list(self._boxes)[:-1]:
                if excess <= 0 and excess_b <= 0:
                    break
                box = self._boxes[key]
                if box in self._building:
                    continue
                # a box another thread reads or changes right now stays this time (it
                # would be taken again at once); this thread's own boxes may go
                lock = self._locks.get(key)
                if lock is not None and not lock.acquire(blocking=False):
                    continue
                try:
                    del self._boxes[key]
                    self._locks.pop(key, None)
                    excess -= box.size
                    excess_b -= box.nbytes
                    box.drop()
                finally:
                    if lock is not None:
                        lock.release()

    def _load_chunk(
        self, box: BoxIndex, moid: int, lo_cap: int, hi_cap: int, expect: int = 0
    ) -> CapIndex:
        """Records of caps ``[lo_cap, hi_cap)`` of one series, acquired below the box's
        watermark (what its summaries count); room is made for ``expect`` of them."""
        size = box.payload_size
        # room for the chunks about to be read
        self._evict(expect, expect * record_bytes(size))
        s = SeriesKey(box.lo[0], box.lo[1], moid)
        lo, hi = s.key_range(lo_cap, hi_cap, acq_max=box.acq0)
        data = CapIndex(size)
        if box.acq0 == ACQ_MIN:
            return data
        if size:
            data.reserve(expect)

            def take_columns(arr: Any) -> None:
                sel = arr["moid"] == moid
                if not bool(sel.all()):
                    arr = arr[sel]
                data.add_arrays(arr["cap"], arr["acq"], _payload_rows(arr, size))

            try:
                self.link.stream_columns(lo, hi, size, take_columns, _STREAM_BATCH_BYTES)
                return data
            except ColumnsUnavailable:
                data = CapIndex(size)

        def take(batch: list[Fetched]) -> None:
            mine = [(k, p) for k, p in batch if k.moid == moid]
            data.add_records([k.cap for k, _ in mine], [k.acq for k, _ in mine],
                             [p for _, p in mine])  # fmt: skip
            if not data.columnar:
                for k, p in mine:
                    self.values.offer((k.cid, k.mid, k.moid, k.cap), k.acq, p)

        self.link.stream(lo, hi, take)
        return data

    def _load_fine(
        self, box: BoxIndex, moid: int, idx: SeriesIndex, p: int
    ) -> dict[int, FineRows] | None:
        """Fine page ``p`` of a series (its entries by chunk lo), from the few pages read
        lately or from TStorage; ``None`` when the header lists none or it is unreadable."""
        store = self.store
        page = idx.fine_pages[p] if 0 <= p < len(idx.fine_pages) else None
        if store is None or page is None:
            return None
        key = (box.lo[0], box.lo[1], moid, p, page)
        with self._fine_guard:
            hit = self._fine_cache.get(key)
            if hit is not None:
                self._fine_cache.move_to_end(key)
                return hit[0]
            if key in self._fine_bad:
                return None
        got = store.load_fine(SeriesKey(box.lo[0], box.lo[1], moid), p, page)
        if got is None:
            log.warning("fine page %d of series %s/%s is not used: missing or damaged", p,
                        box.lo[1], moid)  # fmt: skip
            with self._fine_guard:
                if len(self._fine_bad) >= 4096:
                    self._fine_bad.clear()
                self._fine_bad.add(key)
            return None
        size = sum(pending_bytes(e) for e in got.values())  # as held, objects included
        with self._fine_guard:
            if key not in self._fine_cache:
                self._fine_cache[key] = (got, size)
                self._fine_cache_bytes += size
            while self._fine_cache_bytes > self.fine_cache_limit and self._fine_cache:
                _, (_, n) = self._fine_cache.popitem(last=False)
                self._fine_cache_bytes -= n
        return got

    def _write_fine(self, box: BoxIndex, moid: int, idx: SeriesIndex, *, final: bool) -> None:
        """Write the fine pages of a series that rows made here changed (not ``final``: only
        pages of complete chunks, as a build goes), under the generation of its next save,
        and list them in the series' directory; its next save lists them in its header.

        Raises:
            TStorageUnavailable: not written (the rows are made again another time).
        """
        store = self.store
        if store is None:
            return
        if final:
            idx.fine_from_cache()
        owed = idx.fine_owed(final)
        if not owed:
            return
        pages: dict[int, tuple[bytes, int]] = {}
        columns: dict[int, dict[int, int]] = {}
        taken: dict[int, FineRows] = {}
        for p in owed:
            entries, columns[p], took = idx.fine_page(p)
            pages[p] = (encode_page(entries), int(idx.lo[p * PAGE_CHUNKS]))
            taken.update(took)
        generation = store.next_generation(idx.persisted)
        try:
            written = store.save_fine(SeriesKey(box.lo[0], box.lo[1], moid), generation, pages)
        except BaseException:
            idx.fine_unwritten(taken)
            raise
        if written:
            top = max(written) + 1
            if len(idx.fine_pages) < top:
                idx.fine_pages.extend([None] * (top - len(idx.fine_pages)))
            for p, page in written.items():
                idx.fine_pages[p] = page
                idx.fine_written(columns[p])
            idx.dirty = True

    def _catch_up(
        self, box: BoxIndex, lock: threading.RLock, force: bool = False, *, patient: bool = False
    ) -> None:
        # A box with no usable summaries is built in the background (see
        # gateway.storage.background_build); the caller waits at most build_wait seconds
        # (patient: until it ends), then catches up with what arrived meanwhile.
        build = self._building.get(box)
        if build is None:
            with lock:
                if not force and time.monotonic() - box.refreshed_at < self.max_staleness:
                    return
                build = self._building.get(box)
                if build is None:
                    started = time.monotonic()
                    if box.acq0 == ACQ_MIN and not self._restore(box):
                        build = self._start_build(box, lock)
                    else:
                        count = self._feed(box, *box.feed_box())
                        self._caught_up(box, started)
                        if count:
                            self._evict()
                        return
        build.join(None if patient else self.build_wait)
        self._catch_up(box, lock, force, patient=patient)

    def _caught_up(self, box: BoxIndex, started: float) -> None:
        box.refreshed_at = started
        # own writes were acknowledged before this read began (the lock is held by
        # writes), so the feed brought them back with their acq
        for held in box.moids.values():
            held.settle()
        self._persist(box)

    def _start_build(self, box: BoxIndex, lock: threading.RLock) -> Build:
        progress = _Progress(box)
        build = self._building[box] = Build(progress)

        def work() -> None:
            with lock:
                started = time.monotonic()
                count = self._build(box, *box.feed_box(), progress)
                self._caught_up(box, started)
            if count:
                self._evict()

        def finished() -> None:
            self._building.pop(box, None)

        build.start(work, finished)
        return build

    def _moids(self, box: BoxIndex) -> list[int] | None:
        # The moids a box shows when they are known without reading its records.
        if box.hi[2] - box.lo[2] == 1:
            return [box.lo[2]]
        fields = next((t.rule.fields for t in box.views.values() if t.rule.fields), None)
        return None if fields is None else sorted({m for _, m in fields})

    def _shape(self, box: BoxIndex) -> Shape:
        return Shape(self.index_chunk, box.payload_size, box.dtype)

    def _restore(self, box: BoxIndex) -> bool:
        """Start a box from persisted summaries (then the feed catches up from their
        watermark); False when some series has none, or a corrupt one, to be rebuilt."""
        moids = self._moids(box)
        if self.store is None or moids is None:
            return False
        found: dict[int, Snapshot] = {}
        for moid in moids:
            s = SeriesKey(box.lo[0], box.lo[1], moid)
            try:
                snap = self.store.load(s, self._shape(box))
            except CorruptSummary as exc:
                log.warning("summaries of series %s are not used (%s): rebuilding them", s, exc)
                return False
            if snap is None:
                return False
            found[moid] = snap
        for moid, snap in found.items():
            idx = box.series(moid)
            idx.restore(snap.columns)
            idx.fine_pages = list(snap.fine_pages)
            if not any(idx.fine_pages):  # no usable directory: no fine rows to claim
                idx.fine[:] = 0
            idx.persisted, idx.persisted_at = snap, time.monotonic()
        # every series counts all records below its watermark; from the lowest one, the
        # feed brings the rest (records counted already land in their chunk again, which
        # is recounted from its records: nothing counts twice)
        box.acq0 = min(snap.watermark for snap in found.values())
        return True

    def _persist(self, box: BoxIndex, *, now: bool = False) -> None:
        # Save the summaries that changed, at most every index_save seconds per series.
        if self.store is None or box.acq0 == ACQ_MIN:
            return
        t = time.monotonic()
        heads = self.heads
        for moid, idx in box.moids.items():
            if not idx.dirty or idx.unsettled or len(idx) == 0:
                continue
            if not now and t - idx.persisted_at < self.index_save:
                continue
            s = SeriesKey(box.lo[0], box.lo[1], moid)
            if idx.chunks > persisted.MAX_CHUNKS:
                if idx not in self._too_long:
                    self._too_long.add(idx)
                    log.warning("summaries of series %s not saved: %d chunks, more than the "
                                "%d a series persists (it is built again at each start; a "
                                "larger index_chunk persists it)", s, idx.chunks,
                                persisted.MAX_CHUNKS)  # fmt: skip
                continue
            try:
                self._write_fine(box, moid, idx, final=True)
                extra = [] if heads is None else [heads.record(s, self._head(s, idx, box.acq0))]
                idx.persisted = self.store.save(
                    s, self._shape(box), idx.columns(), box.acq0, idx.persisted, extra,
                    idx.fine_pages,
                )  # fmt: skip
            except TStorageUnavailable as exc:
                log.warning("summaries of series %s not saved (retried later): %s", s, exc)
                continue
            idx.dirty, idx.persisted_at = False, t
            if heads is not None:
                self._heads_saved[idx] = t

    def _head(self, s: SeriesKey, idx: SeriesIndex, watermark: int) -> Head:
        # What a listing shows of the series, from its summaries and last record.
        last = idx.last()
        payload = None
        if last is not None:
            payload = idx.last_payload() if idx.payload_size is not None else None
            if payload is None:
                payload = self._fetch(s, [last], idx).get(last)
        return Head(watermark, len(idx), idx.first(), last, payload)

    def _build(self, box: BoxIndex, lo: KeyTuple, hi: KeyTuple, progress: _Progress) -> int:
        # The first read of a box: one streamed GET of all its records, cut into chunks as
        # they arrive; only summaries and the chunks the cache can hold stay in memory.
        count = [0]

        def take(batch: list[Fetched]) -> None:
            give_way()  # building a large index is seconds of CPU
            count[0] += len(batch)
            box.add_records((k.moid, k.cap, k.acq, p) for k, p in batch)
            self._flush_fine(box)
            self._evict()
            progress.update(count[0])

        box.building = True
        try:
            acq = None
            if box.payload_size:
                acq = self._build_columns(box, lo, hi, count, progress)
            if acq is None:
                count[0] = 0
                acq = self.link.stream(lo, hi, take, _STREAM_BATCH_BYTES)
        except BaseException:
            # The stream stopped mid-way: forget the part that arrived; the next read
            # builds again from the start.
            box.forget()
            raise
        finally:
            box.building = False
        box.acq0 = max(box.acq0, acq)
        for idx in box.moids.values():
            idx.finish_build()
        progress.done(count[0])
        self._persist(box, now=True)
        return count[0]

    def _flush_fine(self, box: BoxIndex) -> None:
        # A build makes fine rows for every chunk it completes: past a few MB waiting, the
        # pages they complete are written (the save at its end lists them).
        tally = self._tally
        full = tally.fine_bytes >= tally.fine_limit // 2
        for moid, idx in list(box.moids.items()):
            if len(idx.fine_pending) >= FINE_PENDING_CHUNKS // 2 or (full and idx.fine_pending):
                try:
                    self._write_fine(box, moid, idx, final=False)
                except TStorageUnavailable as exc:  # the build's own GET decides its fate
                    log.warning("fine rows of series %s/%s not saved: %s", box.lo[1], moid, exc)
                    idx.fine_forget()  # (made again as chunks are read)

    def _build_columns(
        self, box: BoxIndex, lo: KeyTuple, hi: KeyTuple, count: list[int], progress: _Progress
    ) -> int | None:
        # Fixed-size payloads: decode the stream into numpy columns (no Python object per
        # record). None: some payload has another size (the record-by-record build follows).
        size = box.payload_size
        assert size

        def take(arr: Any) -> None:
            give_way()  # between batches (a few ms each)
            count[0] += len(arr)
            box.add_columns(arr["moid"], arr["cap"], arr["acq"], _payload_rows(arr, size))
            self._flush_fine(box)
            self._evict()
            progress.update(count[0])

        try:
            return self.link.stream_columns(lo, hi, size, take, _STREAM_BATCH_BYTES)
        except ColumnsUnavailable:
            box.forget()  # the record-by-record build starts over
            return None

    def _feed(self, box: BoxIndex, lo: KeyTuple, hi: KeyTuple) -> int:
        # Records that arrived since acq0. They are applied once the read is over: a chunk
        # they land in may have to be read first (below the old acq0), on the same link.
        if box.payload_size:
            fed = self._feed_columns(box, lo, hi, box.payload_size)
            if fed is not None:
                return fed
        got: list[Fetched] = []
        acq = self.link.stream(lo, hi, got.extend)
        gained: dict[int, int] = {}  # moid -> smallest cap new to the index
        changed: dict[int, set[int]] = {}  # moid -> held caps whose payload changed
        if got and self.on_change is not None:
            for k, p in got:
                idx = box.series(k.moid)
                if not idx.contains(k.cap):
                    gained[k.moid] = min(gained.get(k.moid, k.cap), k.cap)
                elif idx.payload_size is not None:
                    held = idx.payload(k.cap)
                    if held is not None and held != p:
                        changed.setdefault(k.moid, set()).add(k.cap)
        with box.feeding():
            box.add_records((k.moid, k.cap, k.acq, p) for k, p in got)
            box.acq0 = max(box.acq0, acq)
        if box.payload_size is None:
            # recent records are likely read next: cache them
            for k, payload in got:
                self.values.offer((k.cid, k.mid, k.moid, k.cap), k.acq, payload)
        if gained or changed:
            self._announce(box, gained, changed)
        return len(got)

    def _feed_columns(self, box: BoxIndex, lo: KeyTuple, hi: KeyTuple, size: int) -> int | None:
        # _feed for fixed-size payloads, in numpy columns: after a bulk write the feed brings
        # back every record written (hundreds of thousands), which record by record would
        # hold the series lock about as long as the write took. None: some payload has
        # another size (the record-by-record feed takes over; re-adding changes nothing).
        parts: list[Any] = []
        try:
            acq = self.link.stream_columns(lo, hi, size, parts.append, _STREAM_BATCH_BYTES)
        except ColumnsUnavailable:
            return None
        gained: dict[int, int] = {}
        changed: dict[int, set[int]] = {}
        count = 0
        with box.feeding():
            for arr in parts:  # batch by batch: no copy of the whole feed
                if not len(arr):
                    continue
                count += len(arr)
                moids, caps, rows = arr["moid"], arr["cap"], _payload_rows(arr, size)
                if self.on_change is not None:
                    first = int(moids[0])
                    if bool((moids == first).all()):  # one series (a List's box): no selection
                        _news(box.series(first), caps, rows, first, gained, changed)
                    else:
                        for moid in np.unique(moids).tolist():
                            sel = moids == moid
                            _news(box.series(moid), caps[sel], rows[sel], moid, gained, changed)
                box.add_columns(moids, caps, arr["acq"], rows)
            box.acq0 = max(box.acq0, acq)
        if gained or changed:
            self._announce(box, gained, changed)
        return count

    def _announce(
        self, box: BoxIndex, gained: dict[int, int], changed: dict[int, set[int]]
    ) -> None:
        # Refresh payloads as upstream clients send them (spec section 5.1).
        assert self.on_change is not None
        for key, target in list(box.views.items()):
            if isinstance(target, ListTarget):
                moid = target.series.moid
                idx = box.series(moid)
                if moid in gained:
                    start = idx.position(gained[moid])
                    self.on_change(key, {"start": start, "stop": None})
                elif moid in changed:
                    positions = sorted(
                        p for c in changed[moid] if (p := idx.position(c)) is not None
                    )
                    self.on_change(key, {"indices": positions})
            else:
                fields = [
                    f
                    for m in sorted(set(gained) | set(changed))
                    if (f := target.field_for_moid(m)) is not None
                ]
                if fields:
                    self.on_change(key, {"keys": fields})

    def poll(self, watch_s: float = 60.0) -> None:
        """Catch up every index read within ``watch_s`` seconds (announcing changes)."""
        now = time.monotonic()
        with self._guard:
            boxes = [(k, b) for k, b in self._boxes.items() if now - b.used_at < watch_s]
        for key, box in boxes:
            lock = self._locks.get(key)
            if lock is not None and box not in self._building:  # a build catches up itself
                self._catch_up(box, lock, force=True)

    def _series_box(
        self, t: ListTarget, force: bool = False, *, patient: bool = False
    ) -> tuple[BoxIndex, threading.RLock, SeriesIndex]:
        box, lock, idx = self._held_box(t, force, patient=patient, moid=t.series.moid)
        assert idx is not None
        return box, lock, idx

    def _meter_box(self, target: DictTarget) -> tuple[BoxIndex, threading.RLock]:
        box, lock, _ = self._held_box(target)
        return box, lock

    def _held_box(
        self, target: Target, force: bool = False, *, patient: bool = False, moid: int | None = None
    ) -> tuple[BoxIndex, threading.RLock, SeriesIndex | None]:
        # The box of a List or Dict, caught up, with the index of ``moid`` when given.
        for _ in range(_BOX_TRIES):
            box, lock = self._box(target)
            box.views[target.key] = target
            box.used_at = time.monotonic()
            self._catch_up(box, lock, force, patient=patient)
            idx = None if moid is None else box.series(moid)
            # dropped for room by another read meanwhile: a series made in it would be
            # empty; the box is made (and caught up) again
            if not box.forgotten:
                return box, lock, idx
        raise _dropped(target.key)

    def series_index(
        self, t: ListTarget, *, fresh: bool = False, settled: bool = False
    ) -> tuple[BoxIndex, threading.RLock, SeriesIndex]:
        """The box, its lock and the index of a List's series, caught up with TStorage.

        Reading it counts as watching the key (the follower keeps it current).

        Args:
            t: the List.
            fresh: catch up now rather than within ``max_staleness``.
            settled: catch up now if the index holds own writes whose acq is not known
                yet; then it counts exactly the records with ``acq < box.acq0``.
        """
        if settled and not fresh:
            box, _ = self._box(t)
            fresh = box.series(t.series.moid).unsettled
        return self._series_box(t, fresh)

    def save_summaries(self, t: ListTarget, *, rewrite: bool = False) -> int:
        """Catch a List's series up with TStorage and persist its summaries now (if they
        changed since their last save, or with ``rewrite`` in any case: its saved head was
        missing or unreadable); returns its length."""
        box, lock, idx = self._series_box(t, force=True, patient=True)
        with lock:
            if rewrite:  # unchanged pages are not written again: a header and a head
                idx.dirty = True
            self._persist(box, now=True)
            return len(idx)

    def save_head(self, t: ListTarget) -> None:
        """Save a List's series' head (with its summaries) unless this gateway saved one
        since it holds the series: the saved one was found missing or unreadable."""
        box, _ = self._box(t)
        idx = box.moids.get(t.series.moid)
        if idx is None or idx not in self._heads_saved:
            self.save_summaries(t, rewrite=True)

    def series_lock(self, t: ListTarget) -> threading.RLock:
        """The lock of a List's series (held by writes and catch-ups), without reading once
        the series has summaries; before, its build is started or joined (a build holds the
        lock: waiting for it is bounded by ``build_wait``).

        Raises:
            IndexBuilding: the build runs longer than ``build_wait``.
        """
        box, lock = self._box(t)
        if box.acq0 == ACQ_MIN or box in self._building:
            self._series_box(t)
        return lock

    # -------------------------------------------------------------- fetching
    def _fetch(
        self, series: SeriesKey, caps: Sequence[int], idx: SeriesIndex | None = None
    ) -> dict[int, bytes]:
        """Newest payload of each requested cap: from the payload columns of the chunks
        that hold them or the cache, else one GET of the cap range covering the rest."""
        s = series
        out: dict[int, bytes] = {}
        missing: list[int] = []
        for cap in caps:
            hit = idx.payload(cap) if idx is not None and idx.payload_size is not None else None
            if hit is None:
                hit = self.values.get((s.cid, s.mid, s.moid, cap))
            if hit is None:
                missing.append(cap)
            else:
                out[cap] = hit
        if not missing:
            return out
        lo, hi = s.key_range(min(missing), max(missing) + 1)
        records, _ = self.link.get(lo, hi)
        wanted = set(missing)
        for (moid, cap), (acq, p) in _newest_per_cap(records).items():
            if moid == s.moid:
                self.values.offer((s.cid, s.mid, moid, cap), acq, p)
                if cap in wanted:
                    out[cap] = p
        return out

    def existing(self, t: ListTarget, caps: Sequence[int]) -> tuple[int | None, set[int]]:
        """The series' last cap, and which of ``caps`` it holds (for imports: only the
        chunks that would hold those at or before the last cap are read)."""
        _, lock, idx = self._series_box(t)
        with lock:
            last = idx.last()
            if last is None:
                return None, set()
            asked = np.unique(np.asarray([c for c in caps if c <= last], dtype=np.int64))
            return last, set(asked[idx.holds(asked)].tolist())

    def fetch(self, t: ListTarget, caps: Sequence[int]) -> dict[int, bytes]:
        """Newest payload of each of ``caps`` (held in memory, else one range GET)."""
        _, lock, idx = self._series_box(t)
        with lock:
            return self._fetch(t.series, caps, idx)

    def records(
        self, t: ListTarget, idx: SeriesIndex, i0: int, i1: int
    ) -> Iterator[tuple[npt.NDArray[np.int64], bytes | None, dict[int, bytes] | None]]:
        """Records at positions ``i0..i1-1``, a chunk at a time: ``(caps, payloads block,
        None)`` from a chunk holding fixed-size payloads, else ``(caps, None, payload by
        cap)`` read from the cache or TStorage (a cap missing there has no record any more).
        """
        for data, j0, j1 in idx.segments(i0, i1):
            caps = data.caps[j0:j1]
            if data.columnar:
                yield caps, data.payload_block(range(j0, j1)), None
            else:
                yield caps, None, self._fetch(t.series, caps.tolist())

    # ------------------------------------------------------------- writes
    def _writable(self, t: Target) -> Rule:
        if t.rule.read_only:
            raise ResponseError(f"{t.key!r} is read-only (map rule {t.rule.index} sets read_only)")
        return t.rule

    def _own(self, idx: SeriesIndex, records: Sequence[PutRecord]) -> None:
        # Records we just stored: into the index (with payloads when it holds them) at
        # once, so this gateway reads its own writes without waiting for the feed.
        idx.unsettled = True
        idx.add(
            [k[3] for k, _ in records],
            [UNKNOWN_ACQ] * len(records),
            [p for _, p in records],
            own=True,
        )
        if idx.payload_size is None:
            for key, payload in records:
                self.values.remember_own(key, payload)

    def _assign_caps(
        self, key: str, rule: Rule, idx: SeriesIndex, wanted: Sequence[int | None]
    ) -> list[int]:
        # "now" caps are strictly increasing per series: two appends in one nanosecond
        # become two elements, never a silent correction.
        last = idx.last()
        now = self.clock()
        out: list[int] = []
        seen: set[int] = set()
        for want in wanted:
            if want is None:
                cap = now if last is None else max(now, last + 1)
                if cap > CAP_RANGE[1]:
                    raise DataError(f"{key!r}: no capture time left after {last}")
            else:
                cap = want
            if want is not None and last is not None and cap <= last:
                if not (idx.contains(cap) or cap in seen):
                    raise ResponseError(
                        f"{key!r}: t={cap_text(cap)} lies before the last element and "
                        "matches none: inserting in the middle of a series is not supported"
                    )
                if not rule.allow_corrections:
                    raise ResponseError(
                        f"{key!r}: an element with this time exists; corrections are off "
                        "for this map rule (allow_corrections = false)"
                    )
            out.append(cap)
            seen.add(cap)
            last = cap if last is None else max(last, cap)
        return out


def _news(
    idx: SeriesIndex,
    caps: npt.NDArray[np.int64],
    rows: npt.NDArray[np.uint8],
    moid: int,
    gained: dict[int, int],
    changed: dict[int, set[int]],
) -> None:
    # Which fed records a series did not hold (the smallest such cap goes to gained) and
    # which held ones carry another payload (changed), compared chunk by chunk in numpy.
    if caps.size > 1 and not bool((caps[1:] >= caps[:-1]).all()):
        order = np.argsort(caps, kind="stable")
        caps, rows = caps[order], rows[order]
    # the records of chunk k are one run of the sorted caps: [lo[k], lo[k + 1])
    cuts = np.searchsorted(caps, idx.lo[1:])
    starts, ends = np.r_[0, cuts], np.r_[cuts, caps.size]
    for k in np.flatnonzero(ends > starts).tolist():
        a, b = int(starts[k]), int(ends[k])
        mine = caps[a:b]
        data = idx.chunk(k) if int(idx.count[k]) > 0 else None
        held = data.caps if data is not None else np.empty(0, dtype=np.int64)
        p0 = int(np.searchsorted(held, mine[0]))
        p1 = p0 + mine.size
        if data is not None and p1 <= len(held) and bool((held[p0:p1] == mine).all()):
            # a run of held records (own writes coming back): compare the run's payloads
            if data.columnar:
                differs = _rows_differ(data.payload_rows(p0, p1), rows[a:b])
                if bool(differs.any()):
                    changed.setdefault(moid, set()).update(mine[differs].tolist())
            continue
        pos = np.minimum(np.searchsorted(held, mine), max(len(held) - 1, 0))
        known = (held[pos] == mine) if len(held) else np.zeros(len(mine), dtype=bool)
        if not bool(known.all()):
            first = int(mine[~known].min())
            gained[moid] = min(gained.get(moid, first), first)
        if data is not None and data.columnar and bool(known.any()):
            now = data.payload_rows(0, len(data))[pos[known]]
            differs = _rows_differ(now, rows[a:b][known])
            if bool(differs.any()):
                changed.setdefault(moid, set()).update(mine[known][differs].tolist())


def _rows_differ(x: npt.NDArray[np.uint8], y: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Which rows of two ``n x size`` payload arrays differ (rows contiguous, the arrays may
    be strided views)."""
    size = x.shape[1]
    if size in (1, 2, 4, 8):  # one integer per row: far faster than a reduction over bytes
        word = np.dtype(f"<u{size}")
        return np.asarray(x.view(word)[:, 0] != y.view(word)[:, 0])
    return np.asarray((x != y).any(axis=1))


def _payload_rows(arr: Any, size: int) -> Any:
    """The ``v0`` field of decoded records as an ``n x size`` uint8 array.

    A strided view of the records when they are contiguous (what the decoder gives), so the
    index copies each payload once; a compact copy otherwise.
    """
    n = len(arr)
    if arr.flags.c_contiguous and arr.dtype.itemsize:
        offset = arr.dtype.fields["v0"][1]
        rows = arr.view(np.uint8).reshape(n, arr.dtype.itemsize)
        return rows[:, offset : offset + size]
    return np.frombuffer(arr["v0"].tobytes(), dtype=np.uint8).reshape(n, size)


def _parse(shape: ElementShape, value: Any) -> tuple[int | None, bytes]:
    try:
        return shape.parse(value)
    except CodecError as exc:
        raise DataError(str(exc)) from None
