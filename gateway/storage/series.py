"""Mapped series seen as znsocket Lists, and meters seen as Dicts of latest values.

See ``docs/data-model.md`` for the model. In short: a List is one series in cap order
(newest acq wins for equal caps); a Dict is one meter whose fields are moids showing their
latest record. Indexes of caps live in memory (:mod:`gateway.storage.index`), built by one
streamed GET and caught up through the change feed when older than ``max_staleness``.
Writes are acknowledged only after TStorage answered the PUT.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.config import MapRule
from gateway.elements import TSTORAGE_EPOCH_UNIX_NS, ElementShape
from gateway.errors import CodecError, KeyMappingError
from gateway.keymap import CAP_RANGE, MOID_RANGE, DictTarget, KeyTuple, ListTarget, SeriesKey
from gateway.storage.index import BoxIndex, CapIndex
from gateway.storage.link import ColumnsUnavailable, Fetched, PutRecord, TStorageLink
from gateway.storage.values import UNKNOWN_ACQ, ValueCache
from znsocket.exceptions import DataError, ResponseError

_ACQ_MIN, _ACQ_MAX = -(2**63), 2**63 - 1
_STREAM_BATCH_BYTES = 4 * 1024 * 1024
# (cid, mid, moid_lo, moid_hi, payload size held per record or None)
_BoxKey = tuple[int, int, int, int, int | None]


def tstorage_now_ns() -> int:
    """Now in TStorage time (ns since 2001-01-01 UTC), from this host's clock."""
    return time.time_ns() - TSTORAGE_EPOCH_UNIX_NS


@dataclass
class _View:
    """A rule's settings, resolved once."""

    rule: MapRule
    shape: ElementShape


def _newest_per_cap(records: Sequence[Fetched]) -> dict[tuple[int, int], tuple[int, bytes]]:
    # (moid, cap) -> (acq, payload) of the newest version
    out: dict[tuple[int, int], tuple[int, bytes]] = {}
    for key, payload in records:
        k = (key.moid, key.cap)
        prev = out.get(k)
        if prev is None or key.acq > prev[0]:
            out[k] = (key.acq, payload)
    return out


class SeriesViews:
    """List and Dict commands over mapped series."""

    def __init__(
        self,
        link: TStorageLink,
        rules: Sequence[MapRule],
        *,
        max_staleness: float = 0.1,
        index_budget: int = 10_000_000,
        value_cache: int = 200_000,
        clock: Callable[[], int] = tstorage_now_ns,
    ) -> None:
        self.link = link
        self.values = ValueCache(value_cache)
        #: ``(full_key, refresh_payload)`` callback for records that arrived from elsewhere.
        self.on_change: Callable[[str, dict[str, Any]], None] | None = None
        self.max_staleness = max_staleness
        self.index_budget = index_budget
        self.clock = clock
        self._views = [_View(r, ElementShape(r.payload_codec(), r.element, r.time)) for r in rules]
        self._boxes: OrderedDict[_BoxKey, BoxIndex] = OrderedDict()
        self._locks: dict[_BoxKey, threading.RLock] = {}
        self._guard = threading.Lock()

    # ------------------------------------------------------------------ indexes
    def _box(
        self, cid: int, mid: int, moid_lo: int, moid_hi: int, payload_size: int | None
    ) -> tuple[BoxIndex, threading.RLock]:
        key = (cid, mid, moid_lo, moid_hi, payload_size)
        with self._guard:
            box = self._boxes.get(key)
            if box is None:
                lo: KeyTuple = (cid, mid, moid_lo, CAP_RANGE[0], _ACQ_MIN)
                hi: KeyTuple = (cid + 1, mid + 1, moid_hi, CAP_RANGE[1] + 1, _ACQ_MAX)
                box = self._boxes[key] = BoxIndex(lo, hi, payload_size)
                self._locks[key] = threading.RLock()
            self._boxes.move_to_end(key)
            return box, self._locks[key]

    def _evict(self) -> None:
        with self._guard:
            total = sum(b.size for b in self._boxes.values())
            while total > self.index_budget and len(self._boxes) > 1:
                key, box = self._boxes.popitem(last=False)
                self._locks.pop(key, None)
                total -= box.size

    def _catch_up(self, box: BoxIndex, lock: threading.RLock, force: bool = False) -> None:
        with lock:
            if not force and time.monotonic() - box.refreshed_at < self.max_staleness:
                return
            started = time.monotonic()
            lo, hi = box.feed_box()
            # Records that arrive through the feed are recent and likely read next: cache
            # them (but not the whole history streamed by the first build of an index).
            initial = box.acq0 == lo[4] == _ACQ_MIN
            watch = not initial and self.on_change is not None
            gained: dict[int, int] = {}  # moid -> smallest cap new to the index
            changed: dict[int, set[int]] = {}  # moid -> held caps whose payload changed
            count = [0]

            def take(batch: list[Fetched]) -> None:
                # Building a large index is seconds of CPU: let other clients (and the
                # websocket keep-alive pings) run between batches.
                time.sleep(0)
                count[0] += len(batch)
                if watch:
                    for k, p in batch:
                        idx = box.series(k.moid)
                        if not idx.contains(k.cap):
                            gained[k.moid] = min(gained.get(k.moid, k.cap), k.cap)
                        elif idx.columnar and idx.payload(k.cap) != p:
                            changed.setdefault(k.moid, set()).add(k.cap)
                box.add_records((k.moid, k.cap, k.acq, p) for k, p in batch)
                if not initial and box.payload_size is None:
                    for k, payload in batch:
                        self.values.offer((k.cid, k.mid, k.moid, k.cap), k.acq, payload)

            # Small fixed-size records: stream in modest batches so the build yields often.
            batch = _STREAM_BATCH_BYTES if box.payload_size is not None else None
            acq = None
            if initial and box.payload_size:
                acq = self._build_columns(box, lo, hi, count)
            elif box.payload_size:
                acq = self._feed_columns(box, lo, hi, count, watch, gained, changed)
            if acq is None:
                acq = self.link.stream(lo, hi, take, batch)
            box.acq0 = max(box.acq0, acq)
            box.refreshed_at = started
            # own writes were acknowledged before this read began (the lock is held by
            # writes), so the feed brought them back with their acq
            for held in box.moids.values():
                held.unsettled = False
            if gained or changed:
                self._announce(box, gained, changed)
        if count[0]:
            self._evict()

    def _build_columns(
        self, box: BoxIndex, lo: KeyTuple, hi: KeyTuple, count: list[int]
    ) -> int | None:
        # First build of an index over fixed-size payloads: decode the stream into numpy
        # columns (no Python object per record). None: some payload has another size.
        size = box.payload_size
        assert size

        def take(arr: Any) -> None:
            time.sleep(0)  # let other clients run between batches (a few ms each)
            count[0] += len(arr)
            box.add_columns(arr["moid"], arr["cap"], arr["acq"], _payload_rows(arr, size))

        try:
            return self.link.stream_columns(lo, hi, size, take, _STREAM_BATCH_BYTES)
        except ColumnsUnavailable:
            box.moids.clear()  # the record-by-record build starts over
            return None
        except BaseException:
            # The stream stopped mid-way: forget the part that arrived, so the next
            # build appends in order again (the fast path) instead of merging into it.
            box.moids.clear()
            raise

    def _feed_columns(
        self,
        box: BoxIndex,
        lo: KeyTuple,
        hi: KeyTuple,
        count: list[int],
        watch: bool,
        gained: dict[int, int],
        changed: dict[int, set[int]],
    ) -> int | None:
        # A catch-up of an index over fixed-size payloads, decoded into numpy columns like
        # the first build: after a bulk write the feed brings back every record written
        # (hundreds of thousands), which record by record would hold the lock for seconds.
        # None: some payload has another size (the record-by-record catch-up takes over;
        # re-adding what was added here changes nothing).
        size = box.payload_size
        assert size

        def take(arr: Any) -> None:
            time.sleep(0)
            count[0] += len(arr)
            moids, caps, rows = arr["moid"], arr["cap"], _payload_rows(arr, size)
            if watch:
                for moid in np.unique(moids).tolist():
                    sel = moids == moid
                    idx = box.series(moid)
                    mine, held = caps[sel], idx.caps
                    pos = np.minimum(np.searchsorted(held, mine), max(len(held) - 1, 0))
                    known = (held[pos] == mine) if len(held) else np.zeros(len(mine), bool)
                    if not bool(known.all()):
                        first = int(mine[~known].min())
                        gained[moid] = min(gained.get(moid, first), first)
                    if idx.columnar and bool(known.any()):
                        now = idx.payload_rows(0, len(idx))[pos[known]]
                        differs = (now != rows[sel][known]).any(axis=1)
                        if bool(differs.any()):
                            changed.setdefault(moid, set()).update(mine[known][differs].tolist())
            box.add_columns(moids, caps, arr["acq"], rows)

        try:
            return self.link.stream_columns(lo, hi, size, take, _STREAM_BATCH_BYTES)
        except ColumnsUnavailable:
            return None

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
            if lock is not None:
                self._catch_up(box, lock, force=True)

    def _payload_size(self, rule_index: int) -> int | None:
        return self._views[rule_index].shape.codec.fixed_size

    def _series_box(
        self, t: ListTarget, force: bool = False
    ) -> tuple[BoxIndex, threading.RLock, CapIndex]:
        s = t.series
        size = self._payload_size(t.rule.index)
        box, lock = self._box(s.cid, s.mid, s.moid, s.moid + 1, size)
        box.views[t.key] = t
        box.used_at = time.monotonic()
        self._catch_up(box, lock, force)
        return box, lock, box.series(s.moid)

    def _meter_box(self, target: DictTarget) -> tuple[BoxIndex, threading.RLock]:
        fields = target.rule.fields
        if fields is not None:
            moids = [m for _, m in fields]
            lo_m, hi_m = min(moids), max(moids) + 1
        else:
            lo_m, hi_m = MOID_RANGE[0], MOID_RANGE[1] + 1
        size = self._payload_size(target.rule.index)
        box, lock = self._box(target.cid, target.mid, lo_m, hi_m, size)
        box.views[target.key] = target
        box.used_at = time.monotonic()
        self._catch_up(box, lock)
        return box, lock

    def series_index(
        self, t: ListTarget, *, fresh: bool = False, settled: bool = False
    ) -> tuple[BoxIndex, threading.RLock, CapIndex]:
        """The box, its lock and the index of a List's series, caught up with TStorage.

        Reading it counts as watching the key (the follower keeps it current).

        Args:
            t: the List.
            fresh: catch up now rather than within ``max_staleness``.
            settled: catch up now if the index holds own writes whose acq is not known
                yet; then it holds exactly the records with ``acq < box.acq0``.
        """
        if settled and not fresh:
            s = t.series
            size = self._payload_size(t.rule.index)
            box, _ = self._box(s.cid, s.mid, s.moid, s.moid + 1, size)
            fresh = box.series(s.moid).unsettled
        return self._series_box(t, fresh)

    def series_lock(self, t: ListTarget) -> threading.RLock:
        """The lock of a List's series (held by writes and catch-ups), without reading."""
        s = t.series
        return self._box(s.cid, s.mid, s.moid, s.moid + 1, self._payload_size(t.rule.index))[1]

    def view(self, rule_index: int) -> _View:
        """The settings of map rule ``rule_index``."""
        return self._views[rule_index]

    # -------------------------------------------------------------- fetching
    def _fetch(
        self, series: SeriesKey, caps: Sequence[int], idx: CapIndex | None = None
    ) -> dict[int, bytes]:
        """Newest payload of each requested cap: from the index's payload columns or the
        cache, else one GET of the cap range covering the caps not held."""
        s = series
        out: dict[int, bytes] = {}
        missing: list[int] = []
        if idx is not None and idx.columnar:
            for cap in caps:
                payload = idx.payload(cap)
                if payload is not None:
                    out[cap] = payload
            return out
        for cap in caps:
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

    def caps(self, t: ListTarget) -> np.ndarray:
        """The sorted distinct caps of a series (a read-only view of the index)."""
        return self._series_box(t)[2].caps

    def fetch(self, t: ListTarget, caps: Sequence[int]) -> dict[int, bytes]:
        """Newest payload of each of ``caps`` (held in memory, else one range GET)."""
        return self._fetch(t.series, caps, self._series_box(t)[2])

    def _element(self, rule_index: int, cap: int, payload: bytes) -> str:
        return self._views[rule_index].shape.to_json(cap, payload)

    # -------------------------------------------------------------- List reads
    def llen(self, t: ListTarget) -> int:
        """Number of distinct caps of the series. Redis LLEN."""
        return len(self._series_box(t)[2])

    def lindex_many(self, t: ListTarget, indices: Sequence[Any]) -> list[str | None]:
        """``lindex`` for several indices with at most one range GET when they are close."""
        _, _, idx = self._series_box(t)
        caps = idx.caps
        n = len(caps)
        positions: list[int | None] = []
        for i in indices:
            if type(i) is not int:
                if i is None:
                    raise DataError("Invalid input of type None")
                try:
                    i = int(i)
                except (TypeError, ValueError):
                    raise ResponseError("value is not an integer or out of range") from None
            j = i + n if i < 0 else i
            positions.append(j if 0 <= j < n else None)
        valid = [p for p in positions if p is not None]
        if not valid:
            return [None] * len(positions)
        view = self._views[t.rule.index]
        if idx.columnar:  # payloads held next to the caps: no GET, one decoding pass
            texts = view.shape.to_json_block(caps[valid].tolist(), idx.payload_block(valid))
            if len(valid) == len(positions):
                return list(texts)
            it = iter(texts)
            return [None if pos is None else next(it) for pos in positions]
        span = max(valid) - min(valid) + 1
        if span <= max(4 * len(valid), 1024):
            payloads = self._fetch(t.series, [int(caps[p]) for p in valid], idx)
        else:  # far-apart indices: one narrow GET each rather than the whole series
            payloads = {}
            for p in valid:
                payloads.update(self._fetch(t.series, [int(caps[p])]))
        out: list[str | None] = []
        for pos in positions:
            if pos is None:
                out.append(None)
                continue
            cap = int(caps[pos])
            out.append(self._element(t.rule.index, cap, payloads[cap]) if cap in payloads else None)
        return out

    def lindex(self, t: ListTarget, index: Any) -> str | None:
        """Element at ``index`` (negative from the end) or ``None``. Redis LINDEX."""
        return self.lindex_many(t, [index])[0]

    def lrange(self, t: ListTarget, start: Any, end: Any) -> list[str]:
        """Elements ``start..end`` inclusive, by one GET of their cap range. Redis LRANGE."""
        _, _, idx = self._series_box(t)
        caps = idx.caps
        n = len(caps)
        try:
            start, end = int(start), int(end)
        except (TypeError, ValueError):
            raise ResponseError("value is not an integer or out of range") from None
        start = max(start + n if start < 0 else start, 0)
        end = min(end + n if end < 0 else end, n - 1)
        if start > end:
            return []
        if idx.columnar:
            shape = self._views[t.rule.index].shape
            return shape.to_json_block(
                caps[start : end + 1].tolist(), idx.payload_block(range(start, end + 1))
            )
        wanted = [int(c) for c in caps[start : end + 1]]
        payloads = self._fetch(t.series, wanted, idx)
        return [self._element(t.rule.index, c, payloads[c]) for c in wanted if c in payloads]

    # ------------------------------------------------------------- List writes
    def _writable(self, rule_index: int, key: str) -> _View:
        view = self._views[rule_index]
        if view.rule.read_only:
            raise ResponseError(f"{key!r} is read-only (map rule {rule_index} sets read_only)")
        return view

    def rpush(self, t: ListTarget, *values: Any) -> int:
        """Append elements as new records; returns the new length once TStorage said OK."""
        if not values:
            raise ResponseError("wrong number of arguments for 'rpush' command")
        view = self._writable(t.rule.index, t.key)
        return self.append(t, [_parse(view.shape, v) for v in values])

    def append(self, t: ListTarget, parsed: Sequence[tuple[int | None, bytes]]) -> int:
        """Append ``(cap or None for now, payload)`` pairs as one PUT; returns the new length.

        Raises:
            ResponseError: read-only rule, a cap before the last that matches no record, or
                an existing cap while corrections are off (nothing is written).
            TStorageUnavailable: the PUT failed (nothing is acknowledged).
        """
        view = self._writable(t.rule.index, t.key)
        _, lock, idx = self._series_box(t)
        with lock:
            caps = self._assign_caps(t.key, view.rule, idx, [c for c, _ in parsed])
            s = t.series
            records: list[PutRecord] = [
                ((s.cid, s.mid, s.moid, cap), payload)
                for cap, (_, payload) in zip(caps, parsed, strict=True)
            ]
            self.link.put(records)
            self._own(idx, records)
            return len(idx)

    def extend_columns(
        self, t: ListTarget, caps: np.ndarray, payloads: np.ndarray
    ) -> tuple[int, int]:
        """Append records given as columns, as one numpy PUT: the bulk form of :meth:`append`.

        Args:
            t: the List.
            caps: capture times (TStorage ns), strictly increasing.
            payloads: an ``n x payload_size`` uint8 array of encoded payloads.

        Returns:
            ``(length before, length after)``.

        Raises:
            DataError: caps not strictly increasing (nothing is written).
            ResponseError: read-only rule, caps at or before the last element that match no
                element, or corrections while they are off (nothing is written).
            TStorageUnavailable: the PUT failed (nothing is acknowledged).
        """
        view = self._writable(t.rule.index, t.key)
        if len(caps) > 1 and not bool((caps[1:] > caps[:-1]).all()):
            raise DataError(
                f"{t.key!r}: the times of one extend must be strictly increasing; not stored"
            )
        _, lock, idx = self._series_box(t)
        with lock:
            before = len(idx)
            last = idx.last()
            if len(caps) and last is not None and int(caps[0]) <= last:
                # the rule of append, vectorised: times up to the last one correct elements
                old = caps[: int(np.searchsorted(caps, last, side="right"))]
                held = idx.caps
                pos = np.minimum(np.searchsorted(held, old), len(held) - 1)
                stray = old[held[pos] != old]
                if len(stray):
                    raise ResponseError(
                        f"{t.key!r}: t={int(stray[0])} (TStorage ns) lies before the last "
                        "element and matches none: inserting in the middle of a series is not "
                        "supported; not stored"
                    )
                if not view.rule.allow_corrections:
                    raise ResponseError(
                        f"{t.key!r}: an element with time t={int(old[0])} (TStorage ns) exists; "
                        "corrections are off for this map rule (allow_corrections = false); "
                        "not stored"
                    )
            s = t.series
            self.link.put_columns((s.cid, s.mid, s.moid), caps, payloads)
            if idx.columnar and payloads.shape[1] == idx.payload_size:
                idx.unsettled = True
                acqs = np.full(len(caps), UNKNOWN_ACQ, dtype=np.int64)
                # all after the last element: no held record to replace, so the sorted
                # append (no re-sort of what was checked to be increasing) does the same
                fresh = last is None or int(caps[0]) > last
                idx.add_arrays(caps, acqs, payloads, own=not fresh)
            else:
                idx.unsettled = True
                idx.add(caps)
            return before, len(idx)

    def _own(self, idx: CapIndex, records: Sequence[PutRecord]) -> None:
        # Records we just stored: into the index (with payloads when it holds them) at
        # once, so this gateway reads its own writes without waiting for the feed.
        idx.unsettled = True
        idx.add_records(
            [k[3] for k, _ in records],
            [UNKNOWN_ACQ] * len(records),
            [p for _, p in records],
            own=True,
        )
        if not idx.columnar:
            for key, payload in records:
                self.values.remember_own(key, payload)

    def _assign_caps(
        self, key: str, rule: MapRule, idx: CapIndex, wanted: Sequence[int | None]
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
                        f"{key!r}: t={cap} (TStorage ns) lies before the last element and "
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

    def lset(self, t: ListTarget, index: Any, value: Any) -> bool:
        """Correct element ``index``: a newer record with the same cap. Redis LSET."""
        view = self._writable(t.rule.index, t.key)
        if not view.rule.allow_corrections:
            raise ResponseError(
                f"{t.key!r}: elements of a series cannot be replaced "
                "(set allow_corrections = true in the map rule to allow corrections)"
            )
        cap_given, payload = _parse(view.shape, value)
        _, lock, idx = self._series_box(t)
        with lock:
            n = len(idx)
            if n == 0:
                raise ResponseError("no such key")
            i = int(index)
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise ResponseError("index out of range")
            cap = int(idx.caps[j])
            if cap_given is not None and cap_given != cap:
                raise ResponseError(
                    f"{t.key!r}: element {i} has t={cap}; a correction keeps its time"
                )
            s = t.series
            correction: list[PutRecord] = [((s.cid, s.mid, s.moid, cap), payload)]
            self.link.put(correction)
            self._own(idx, correction)
        return True

    # -------------------------------------------------------------- Dict reads
    def _fields(self, t: DictTarget, box: BoxIndex) -> list[tuple[str, int]]:
        present = {m for m, c in box.moids.items() if len(c)}
        if t.rule.fields is not None:
            return [(name, m) for name, m in t.rule.fields if m in present]
        return [(str(m), m) for m in sorted(present)]

    def _latest(
        self, t: DictTarget, box: BoxIndex, moids: Sequence[int]
    ) -> dict[int, tuple[int, bytes]]:
        out: dict[int, tuple[int, bytes]] = {}
        lasts_known: dict[int, int] = {}
        for m in moids:
            held = box.series(m)
            c = held.last()
            if c is None:
                continue
            hit = held.last_payload() if held.columnar else self.values.get((t.cid, t.mid, m, c))
            if hit is not None:
                out[m] = (c, hit)
            else:
                lasts_known[m] = c
        if not lasts_known:
            return out
        lo_cap, hi_cap = min(lasts_known.values()), max(lasts_known.values())
        # One GET over all fields when their latest records sit close together in time
        # (the index tells exactly how many records the window holds), else one per field.
        in_window = sum(
            int(
                np.searchsorted(box.series(m).caps, hi_cap, side="right")
                - np.searchsorted(box.series(m).caps, lo_cap)
            )
            for m in lasts_known
        )
        windows: list[tuple[list[int], int, int]]
        if in_window <= 4 * len(lasts_known) + 16:
            windows = [(list(lasts_known), lo_cap, hi_cap)]
        else:
            windows = [([m], c, c) for m, c in lasts_known.items()]
        for ms, a, b in windows:
            lo: KeyTuple = (t.cid, t.mid, min(ms), a, _ACQ_MIN)
            hi: KeyTuple = (t.cid + 1, t.mid + 1, max(ms) + 1, b + 1, _ACQ_MAX)
            records, _ = self.link.get(lo, hi)
            for (moid, cap), (acq, payload) in _newest_per_cap(records).items():
                self.values.offer((t.cid, t.mid, moid, cap), acq, payload)
                if lasts_known.get(moid) == cap:
                    out[moid] = (cap, payload)
        return out

    def hgetall(self, t: DictTarget) -> dict[str, str]:
        """Every field with its latest element. Redis HGETALL."""
        box, _ = self._meter_box(t)
        fields = self._fields(t, box)
        latest = self._latest(t, box, [m for _, m in fields])
        return {name: self._element(t.rule.index, *latest[m]) for name, m in fields if m in latest}

    def hmget(self, t: DictTarget, keys: Any, *args: Any) -> list[str | None]:
        """Latest elements of several fields. Redis HMGET."""
        names = list(keys) if isinstance(keys, (list, tuple)) else [keys]
        names += list(args)
        box, _ = self._meter_box(t)
        moids: list[int | None] = []
        for name in names:
            try:
                moids.append(t.moid_for_field(str(name)))
            except KeyMappingError:
                moids.append(None)
        latest = self._latest(t, box, [m for m in moids if m is not None])
        return [
            self._element(t.rule.index, *latest[m]) if m is not None and m in latest else None
            for m in moids
        ]

    def hget(self, t: DictTarget, key: Any) -> str | None:
        """Latest element of one field or ``None``. Redis HGET."""
        return self.hmget(t, [key])[0]

    def hkeys(self, t: DictTarget) -> list[str]:
        """Fields that have at least one record. Redis HKEYS."""
        box, _ = self._meter_box(t)
        return [name for name, _ in self._fields(t, box)]

    def hvals(self, t: DictTarget) -> list[str]:
        """Latest elements in field order. Redis HVALS."""
        return list(self.hgetall(t).values())

    def hlen(self, t: DictTarget) -> int:
        """Number of fields with a record. Redis HLEN."""
        return len(self.hkeys(t))

    def hexists(self, t: DictTarget, key: Any) -> int:
        """1 if the field has a record, else 0. Redis HEXISTS."""
        try:
            moid = t.moid_for_field(str(key))
        except KeyMappingError:
            return 0
        box, _ = self._meter_box(t)
        return int(len(box.series(moid)) > 0)

    # ------------------------------------------------------------- Dict writes
    def hset(
        self,
        t: DictTarget,
        key: Any = None,
        value: Any = None,
        mapping: Any = None,
        items: Any = None,
    ) -> int:
        """Append one record per field (cap = now or the element's ``t``). Redis HSET.

        Returns the number of fields that had no record before, as Redis counts new fields.
        """
        pairs: list[tuple[Any, Any]] = []
        if key is not None:
            pairs.append((key, value))
        if mapping:
            pairs.extend(dict(mapping).items())
        if items:
            it = list(items)
            pairs.extend(zip(it[::2], it[1::2], strict=False))
        if not pairs:
            raise DataError("'hset' with no key value pairs")
        view = self._writable(t.rule.index, t.key)
        moids = [t.moid_for_field(str(k)) for k, _ in pairs]
        parsed = [_parse(view.shape, v) for _, v in pairs]
        box, lock = self._meter_box(t)
        with lock:
            new_fields = sum(1 for m in set(moids) if len(box.series(m)) == 0)
            planned: dict[int, list[int]] = {}
            for moid in dict.fromkeys(moids):
                wanted = [c for m, (c, _) in zip(moids, parsed, strict=True) if m == moid]
                planned[moid] = self._assign_caps(t.key, view.rule, box.series(moid), wanted)
            cursor = {m: iter(caps) for m, caps in planned.items()}
            records: list[PutRecord] = [
                ((t.cid, t.mid, m, next(cursor[m])), payload)
                for m, (_, payload) in zip(moids, parsed, strict=True)
            ]
            self.link.put(records)
            for moid in planned:
                self._own(box.series(moid), [r for r in records if r[0][2] == moid])
        return new_fields


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
