"""Mapped series seen as znsocket Lists: one series in cap order, the newest acq winning
for equal caps (``docs/data-model.md``). Writes are acknowledged only after TStorage
answered the PUT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.keymap import ListTarget
from gateway.storage.link import PutRecord
from gateway.storage.series_index import SeriesIndexes, _parse
from gateway.storage.summaries import SeriesIndex
from gateway.storage.values import UNKNOWN_ACQ
from gateway.timeseries.times import cap_text
from znsocket.exceptions import DataError, ResponseError


class ListViews(SeriesIndexes):
    """The List commands over mapped series."""

    # -------------------------------------------------------------- List reads
    def llen(self, t: ListTarget) -> int:
        """Number of distinct caps of the series. Redis LLEN."""
        return len(self._series_box(t)[2])

    def lindex_many(self, t: ListTarget, indices: Sequence[Any]) -> list[str | None]:
        """``lindex`` for several indices: one read of the covering positions when they
        are close, else one per index (only the chunks holding them are read)."""
        _, lock, idx = self._series_box(t)
        with lock:
            n = len(idx)
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
            lo, hi = min(valid), max(valid) + 1
            texts: dict[int, str | None] = {}
            if hi - lo <= max(4 * len(valid), 1024):
                texts = dict(zip(range(lo, hi), self._texts(t, idx, lo, hi), strict=True))
            else:
                for p in sorted(set(valid)):
                    texts[p] = self._texts(t, idx, p, p + 1)[0]
            return [None if p is None else texts[p] for p in positions]

    def lindex(self, t: ListTarget, index: Any) -> str | None:
        """Element at ``index`` (negative from the end) or ``None``. Redis LINDEX."""
        return self.lindex_many(t, [index])[0]

    def lrange(self, t: ListTarget, start: Any, end: Any) -> list[str]:
        """Elements ``start..end`` inclusive, from the chunks that hold them. Redis LRANGE."""
        _, lock, idx = self._series_box(t)
        try:
            start, end = int(start), int(end)
        except (TypeError, ValueError):
            raise ResponseError("value is not an integer or out of range") from None
        with lock:
            n = len(idx)
            start = max(start + n if start < 0 else start, 0)
            end = min(end + n if end < 0 else end, n - 1)
            if start > end:
                return []
            return [x for x in self._texts(t, idx, start, end + 1) if x is not None]

    def _texts(self, t: ListTarget, idx: SeriesIndex, i0: int, i1: int) -> list[str | None]:
        # elements at positions i0..i1-1 as JSON text (None: the record vanished meanwhile)
        shape = t.rule.shape
        out: list[str | None] = []
        for caps, block, got in self.records(t, idx, i0, i1):
            if block is not None:
                out.extend(shape.to_json_block(caps.tolist(), block))
            else:
                assert got is not None
                out.extend(shape.to_json(c, got[c]) if c in got else None for c in caps.tolist())
        return out

    # ------------------------------------------------------------- List writes
    def rpush(self, t: ListTarget, *values: Any) -> int:
        """Append elements as new records; returns the new length once TStorage said OK."""
        if not values:
            raise ResponseError("wrong number of arguments for 'rpush' command")
        rule = self._writable(t)
        return self.append(t, [_parse(rule.shape, v) for v in values])

    def append(self, t: ListTarget, parsed: Sequence[tuple[int | None, bytes]]) -> int:
        """Append ``(cap or None for now, payload)`` pairs as one PUT; returns the new length.

        Raises:
            ResponseError: read-only rule, a cap before the last that matches no record, or
                an existing cap while corrections are off (nothing is written).
            TStorageUnavailable: the PUT failed (nothing is acknowledged).
        """
        rule = self._writable(t)
        _, lock, idx = self._series_box(t)
        with lock:
            caps = self._assign_caps(t.key, rule, idx, [c for c, _ in parsed])
            s = t.series
            records: list[PutRecord] = [
                ((s.cid, s.mid, s.moid, cap), payload)
                for cap, (_, payload) in zip(caps, parsed, strict=True)
            ]
            self.link.put(records, replayable=True)
            self._own(idx, records)
            return len(idx)

    def extend_columns(
        self, t: ListTarget, caps: npt.NDArray[np.int64], payloads: npt.NDArray[np.uint8]
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
        rule = self._writable(t)
        if len(caps) > 1 and not bool((caps[1:] > caps[:-1]).all()):
            raise DataError(
                f"{t.key!r}: the times of one extend must be strictly increasing; not stored"
            )
        _, lock, idx = self._series_box(t)
        with lock:
            before = len(idx)
            last = idx.last()
            if len(caps) and last is not None and int(caps[0]) <= last:
                # the rule of append, for the times up to the last one: they correct elements
                old = caps[: int(np.searchsorted(caps, last, side="right"))].tolist()
                stray = [c for c in old if not idx.contains(c)]
                if stray:
                    raise ResponseError(
                        f"{t.key!r}: t={cap_text(stray[0])} lies before the last "
                        "element and matches none: inserting in the middle of a series is not "
                        "supported; not stored"
                    )
                if not rule.allow_corrections:
                    raise ResponseError(
                        f"{t.key!r}: an element with time t={cap_text(old[0])} exists; "
                        "corrections are off for this map rule (allow_corrections = false); "
                        "not stored"
                    )
            s = t.series
            self.link.put_columns((s.cid, s.mid, s.moid), caps, payloads)
            idx.unsettled = True
            idx.add(caps, np.full(len(caps), UNKNOWN_ACQ, dtype=np.int64), payloads, own=True)
            return before, len(idx)

    def lset(self, t: ListTarget, index: Any, value: Any) -> bool:
        """Correct element ``index``: a newer record with the same cap. Redis LSET."""
        rule = self._writable(t)
        if not rule.allow_corrections:
            raise ResponseError(
                f"{t.key!r}: elements of a series cannot be replaced "
                "(set allow_corrections = true in the map rule to allow corrections)"
            )
        cap_given, payload = _parse(rule.shape, value)
        _, lock, idx = self._series_box(t)
        with lock:
            n = len(idx)
            if n == 0:
                raise ResponseError("no such key")
            i = int(index)
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise ResponseError("index out of range")
            cap = idx.cap_at(j)
            if cap_given is not None and cap_given != cap:
                raise ResponseError(
                    f"{t.key!r}: element {i} has t={cap}; a correction keeps its time"
                )
            s = t.series
            correction: list[PutRecord] = [((s.cid, s.mid, s.moid, cap), payload)]
            self.link.put(correction, replayable=True)
            self._own(idx, correction)
        return True
