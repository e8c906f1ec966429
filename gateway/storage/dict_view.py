"""Meters seen as znsocket Dicts: one field per moid, showing its latest record, read from
the last chunk of the field's summaries (``docs/data-model.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.errors import KeyMappingError
from gateway.keymap import DictTarget, key_box
from gateway.storage.link import PutRecord
from gateway.storage.series_index import (
    SeriesIndexes,
    _newest_per_cap,
    _parse,
)
from gateway.storage.summaries import BoxIndex, SeriesIndex
from znsocket.exceptions import DataError


class DictViews(SeriesIndexes):
    """The Dict commands over mapped meters."""

    # -------------------------------------------------------------- Dict reads
    def _fields(self, t: DictTarget, box: BoxIndex) -> list[tuple[str, int]]:
        present = {m for m, c in box.moids.items() if len(c)}
        if t.rule.fields is not None:
            return [(name, m) for name, m in t.rule.fields if m in present]
        return [(str(m), m) for m in sorted(present)]

    @staticmethod
    def _indexes(box: BoxIndex, moids: Sequence[int]) -> dict[int, SeriesIndex]:
        # Taken at once from the box just caught up: a read below may wait for TStorage,
        # and another client's read meanwhile may drop the box for room (its series
        # forgotten), while these indexes stay whole.
        return {m: box.series(m) for m in moids}

    def _latest(
        self, t: DictTarget, indexes: dict[int, SeriesIndex]
    ) -> dict[int, tuple[int, bytes]]:
        out: dict[int, tuple[int, bytes]] = {}
        lasts_known: dict[int, int] = {}
        for m, held in indexes.items():
            c = held.last()
            if c is None:
                continue
            # the last chunk of the field's summary holds it
            hit = held.last_payload() if held.payload_size is not None else None
            if hit is None:
                hit = self.values.get((t.cid, t.mid, m, c))
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
            indexes[m].searchsorted(hi_cap, "right") - indexes[m].searchsorted(lo_cap)
            for m in lasts_known
        )
        windows: list[tuple[list[int], int, int]]
        if in_window <= 4 * len(lasts_known) + 16:
            windows = [(list(lasts_known), lo_cap, hi_cap)]
        else:
            windows = [([m], c, c) for m, c in lasts_known.items()]
        for ms, a, b in windows:
            lo, hi = key_box(t.cid, (t.mid, t.mid + 1), (min(ms), max(ms) + 1), (a, b + 1))
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
        latest = self._latest(t, self._indexes(box, [m for _, m in fields]))
        shape = t.rule.shape
        return {name: shape.to_json(*latest[m]) for name, m in fields if m in latest}

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
        latest = self._latest(t, self._indexes(box, [m for m in moids if m is not None]))
        shape = t.rule.shape
        return [shape.to_json(*latest[m]) if m is not None and m in latest else None for m in moids]

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
        rule = self._writable(t)
        moids = [t.moid_for_field(str(k)) for k, _ in pairs]
        parsed = [_parse(rule.shape, v) for _, v in pairs]
        box, lock = self._meter_box(t)
        with lock:
            new_fields = sum(1 for m in set(moids) if len(box.series(m)) == 0)
            planned: dict[int, list[int]] = {}
            for moid in dict.fromkeys(moids):
                wanted = [c for m, (c, _) in zip(moids, parsed, strict=True) if m == moid]
                planned[moid] = self._assign_caps(t.key, rule, box.series(moid), wanted)
            cursor = {m: iter(caps) for m, caps in planned.items()}
            records: list[PutRecord] = [
                ((t.cid, t.mid, m, next(cursor[m])), payload)
                for m, (_, payload) in zip(moids, parsed, strict=True)
            ]
            self.link.put(records, replayable=True)
            for moid in planned:
                self._own(box.series(moid), [r for r in records if r[0][2] == moid])
        return new_fields
