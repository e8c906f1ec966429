"""Series discovery: which List keys of the map rules hold a series.

TStorage has no "list series" query. With ``[tstorage] index_persist`` (the default) what
was discovered is saved in TStorage (:mod:`gateway.timeseries.catalog_store`: a marker per
series, a watermark per rule box), so a gateway's first call reads the markers and then
each box from its saved watermark only. Otherwise (or before anything was saved) the first
call streams each list rule's box once (into numpy columns when the rule's payloads have a
fixed size) and keeps the distinct ``(cid, mid, moid)``, leaving out the longest series
whose summaries the gateway holds already (they are known to have records: a series
charted first, or a huge one, is not streamed a second time). Later calls re-read the boxes from
their watermark ``acq0`` (the change feed), which returns only what arrived since. All
reads go through the gateway's :class:`~gateway.storage.link.TStorageLink` (its TLS context
and deadlines). The dashboard's listing and ``ts:mrange`` share one catalog
(``TimeSeriesReads.catalog``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.cooperative import give_way
from gateway.errors import KeyMappingError, TStorageOutcomeUnknown, TStorageUnavailable
from gateway.keymap import (
    ACQ_MIN,
    LIST_PREFIX,
    KeyMap,
    KeyTuple,
    Rule,
    SeriesKey,
    box_since,
    boxes_without,
)
from gateway.storage import GatewayStorage
from gateway.storage.link import ColumnsUnavailable, Fetched
from gateway.storage.series_index import tstorage_now_ns
from gateway.timeseries.catalog_store import CatalogStore

__all__ = ["SeriesCatalog", "listed_keys"]

_DISCOVERY_BATCH_BYTES = 4 * 1024 * 1024
#: a series held with at least this many records is not streamed by a box's first read
LEAVE_OUT_RECORDS = 65_536
#: at most this many series are left out of one box's first read (the longest)
LEAVE_OUT_MOST = 32
_SERIES_FIELDS = ("cid", "mid", "moid")

log = logging.getLogger("gateway.catalog")


class SeriesCatalog:
    """The series of the list rules that have records, found by streaming the rules' boxes.

    Boxes whose rules have fixed-size payloads (``struct:<FMT>``, ``unit``) are streamed
    into numpy columns and reduced with ``np.unique`` (a million records in well under a
    second); other boxes record by record.
    """

    def __init__(self, storage: GatewayStorage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._seen: set[tuple[int, int, int]] = set()
        # box -> (acq0, fixed payload size of its rule or None)
        self._boxes: dict[tuple[KeyTuple, KeyTuple], tuple[int, int | None]] = {}
        for rule in storage.keymap.rules:
            if rule.kind != "list":
                continue
            lo, hi = rule.key_range()
            size = rule.shape.codec.fixed_size
            known = self._boxes.get((lo, hi))
            if known is None or known[1] != size:  # two rules on one box: read records
                self._boxes[(lo, hi)] = (ACQ_MIN, size if known is None else None)
        t = storage.config.tstorage
        self.store = (
            CatalogStore(storage.link, t.index_cid, tstorage_now_ns) if t.index_persist else None
        )
        self._save_every = t.index_save
        self._loaded = False
        self._listed: list[SeriesKey] | None = None
        #: the List keys of each series, kept by :func:`listed_keys`
        self.rendered: dict[SeriesKey, list[str]] = {}
        # box -> watermark last saved, when, and series found since but not yet saved
        self._saved: dict[tuple[KeyTuple, KeyTuple], int] = {}
        self._saved_at: dict[tuple[KeyTuple, KeyTuple], float] = {}
        self._unsaved: dict[tuple[KeyTuple, KeyTuple], set[tuple[int, int, int]]] = {}

    def series(self) -> list[SeriesKey]:
        """Every series with at least one record, caught up with TStorage.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        with self._lock:
            if self.store is not None and not self._loaded:
                self._load()
            for box, (acq0, size) in list(self._boxes.items()):
                found: set[tuple[int, int, int]] = set()
                parts = [box]
                if acq0 == ACQ_MIN and box[1][0] - box[0][0] == 1:
                    # The first read of a box leaves out the long series whose summaries
                    # the gateway holds: they are known to have records, and one just
                    # charted (or a huge one) would otherwise be streamed once more here.
                    # Only the longest few: each one left out costs up to two more GETs.
                    held = self.storage.series.nonempty_series(*box)
                    found = set(held)
                    long = sorted((n, s) for s, n in held.items() if n >= LEAVE_OUT_RECORDS)
                    out = [(mid, moid) for _, (_, mid, moid) in long[-LEAVE_OUT_MOST:]]
                    if out:
                        parts = boxes_without(box, out)
                acqs = [self._stream(box_since(part, acq0), size, found) for part in parts]
                acq = min(acqs, default=acq0)
                new = found - self._seen
                self._seen |= new
                acq = max(acq0, acq)
                self._boxes[box] = (acq, size)
                self._save(box, new, acq)
            if self._listed is None or len(self._listed) != len(self._seen):
                self._listed = [SeriesKey(*s) for s in sorted(self._seen)]  # only ever grows
            return self._listed

    def _load(self) -> None:
        """The saved markers and watermarks: the boxes are then read from those on."""
        assert self.store is not None
        for cid in sorted({lo[0] for lo, _ in self._boxes}):
            boxes = [(lo, hi) for lo, hi in self._boxes if lo[0] == cid]

            def take(
                mids: npt.NDArray[np.int64],
                moids: npt.NDArray[np.int32],
                cid: int = cid,
                boxes: list[tuple[KeyTuple, KeyTuple]] = boxes,
            ) -> None:
                inside = np.zeros(len(mids), dtype=bool)
                for lo, hi in boxes:
                    inside |= (mids >= lo[1]) & (mids < hi[1]) & (moids >= lo[2]) & (moids < hi[2])
                mine = zip(mids[inside].tolist(), moids[inside].tolist(), strict=True)
                self._seen.update((cid, mid, moid) for mid, moid in mine)

            self.store.markers(cid, take)
        for box, (acq0, size) in list(self._boxes.items()):
            w = self.store.watermark(box)
            if w is not None:
                self._boxes[box] = (max(acq0, w), size)
                self._saved[box] = w
        self._loaded = True

    def _save(
        self, box: tuple[KeyTuple, KeyTuple], new: set[tuple[int, int, int]], acq: int
    ) -> None:
        """Save what this read found (new markers now; an advanced watermark alone at most
        every ``[tstorage] index_save`` seconds). A failed save only costs a longer read later."""
        if self.store is None:
            return
        self._unsaved.setdefault(box, set()).update(new)
        pending = self._unsaved[box]
        saved = self._saved.get(box, ACQ_MIN)
        due = time.monotonic() - self._saved_at.get(box, -float("inf")) >= self._save_every
        if not pending and (acq <= saved or not due):
            return
        try:
            self.store.save(box, sorted(pending), acq)
        except (TStorageUnavailable, TStorageOutcomeUnknown) as exc:
            log.warning("series discovery not saved (the next start reads more): %s", exc)
            return
        pending.clear()
        self._saved[box] = acq
        self._saved_at[box] = time.monotonic()

    def _stream(
        self, box: tuple[KeyTuple, KeyTuple], size: int | None, seen: set[tuple[int, int, int]]
    ) -> int:
        """Add the series of the records in ``box`` to ``seen``; returns the read's
        watermark (records with a lower acq were all seen)."""
        if size is not None:
            with contextlib.suppress(ColumnsUnavailable):
                return self._stream_columns(*box, size, seen)
        return self._stream_records(*box, seen)

    def _stream_records(self, lo: KeyTuple, hi: KeyTuple, seen: set[tuple[int, int, int]]) -> int:
        def take(batch: list[Fetched]) -> None:
            seen.update((k.cid, k.mid, k.moid) for k, _ in batch)

        return self.storage.link.stream(lo, hi, take, _DISCOVERY_BATCH_BYTES)

    def _stream_columns(
        self, lo: KeyTuple, hi: KeyTuple, size: int, seen: set[tuple[int, int, int]]
    ) -> int:

        def take(arr: Any) -> None:
            give_way()  # between batches
            if len(arr):
                seen.update(_series_of(arr))

        # through the link: its TLS context, deadline and error messages
        return self.storage.link.stream_columns(lo, hi, size, take, _DISCOVERY_BATCH_BYTES)


def _series_of(arr: Any) -> set[tuple[int, int, int]]:
    """The distinct ``(cid, mid, moid)`` of a batch of records: those of the rows that
    start a run of one series. Exact in any row order (every row is in a run whose first
    row names its series); streams come in key order, so the runs are few and no sort of
    the rows is needed."""
    cols = [arr[f] for f in _SERIES_FIELDS]
    starts = np.ones(len(arr), dtype=bool)
    starts[1:] = np.logical_or.reduce([c[1:] != c[:-1] for c in cols])
    return set(zip(*(c[starts].tolist() for c in cols), strict=True))


def _template(rule: Rule) -> str | None:
    # A list rule's full key as a str.format template of its mid and moid placeholders
    # (what keymap.render gives, when they are the pattern's two placeholders).
    names = set(rule.pattern.names)
    if not (isinstance(rule.mid, str) and isinstance(rule.moid, str)) or names != {
        rule.mid, rule.moid} or rule.mid == rule.moid:  # fmt: skip
        return None
    return LIST_PREFIX + "".join(
        "{" + p[0] + "}" if isinstance(p, tuple) else p.replace("{", "{{").replace("}", "}}")
        for p in rule.pattern.parts
    )


def _list_keys(
    keymap: KeyMap, lists: list[tuple[Rule, str | None]], series: SeriesKey
) -> list[str]:
    # The List keys of keys_for_series, without its check that no earlier rule shadows a
    # key of the first list rule (there is none; this check is most of a fresh listing).
    out = []
    for n, (rule, template) in enumerate(lists):
        if rule.cid != series.cid:
            continue
        if template is not None:
            assert isinstance(rule.mid, str) and isinstance(rule.moid, str)
            key: str | None = template.format_map({rule.mid: series.mid, rule.moid: series.moid})
        else:
            key = keymap.render(rule, series.mid, series.moid)
        if key is None:
            continue
        if n > 0:
            try:
                target = keymap.resolve(key)
            except KeyMappingError:
                continue
            if target is None or target.rule.index != rule.index:
                continue
        out.append(key)
    return out


def listed_keys(storage: GatewayStorage, catalog: SeriesCatalog) -> dict[str, None]:
    """Every full List key of a ``list`` rule whose series has records, plus the fully
    fixed keys of the configuration (even while empty), in discovery order.

    Raises:
        TStorageUnavailable: TStorage could not be read.
    """
    found: dict[str, None] = {}
    keymap = storage.keymap
    for rule in keymap.rules:  # fixed keys of the configuration, even while empty
        if rule.kind == "list" and not rule.pattern.names:
            assert isinstance(rule.mid, int) and isinstance(rule.moid, int)
            key = keymap.render(rule, rule.mid, rule.moid)
            if key is not None:
                found[key] = None
    rendered = catalog.rendered
    lists = [(rule, _template(rule)) for rule in keymap.rules if rule.kind == "list"]
    for series in catalog.series():
        keys = rendered.get(series)
        if keys is None:  # a series' keys never change: rendered once per gateway
            keys = rendered[series] = _list_keys(keymap, lists, series)
        for key in keys:
            found[key] = None
    return found
