"""Series heads: a series' count, first/last cap and latest payload in one small record,
saved with its chunk summaries, so a listing reads the heads of a whole page in one GET.

Layout
------
A head is a JSON record under the reserved client id ``[tstorage] index_cid``, at ``mid``
and ``moid`` of the series, with ``cap = -2**33 - 1 - cid`` (beside the discovery markers
and watermarks of :mod:`gateway.timeseries.catalog_store` and the summaries of
:mod:`gateway.storage.persisted`, whose caps never meet it)::

    {"format": 1, "w": W, "n": count, "first": cap, "last": cap, "p": base64 | null,
     "crc": CRC-32 of the other fields}

``W`` is the watermark of the summaries saved with it: the head counts exactly the records
acquired below ``W``. ``p`` is the newest payload of the ``last`` cap (``null`` when it was
not at hand). Each save writes a new version; a reader takes the newest (looking back an
hour, a day, a month, a year, then all, as for the summary headers).

A head is only an answer once proven current: :meth:`HeadStore.current` reads, in one GET
over the page's series, every record acquired from the oldest ``W`` on (the change feed of
the page); records past a head's ``last`` cap are appends and are counted in, and any other
(a correction or a late record, whose effect on the count needs the chunk) leaves that
series to the caller, which reads its summaries. A head that does not parse or fails its
CRC is never used.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.keymap import ACQ_END, ACQ_MIN, CAP_END, CAP_RANGE, KeyTuple, SeriesKey, key_box
from gateway.storage.link import Fetched, PutRecord, TStorageLink
from gateway.storage.reserved import ReservedStore, lookback

__all__ = ["Head", "HeadStore", "head_cap"]

FORMAT = 1


def head_cap(cid: int) -> int:
    """The cap of the head records of the series of client id ``cid``."""
    return -(2**33) - 1 - cid


@dataclass(frozen=True)
class Head:
    """What a listing shows of a series, exact for the records acquired below ``watermark``.

    Attributes:
        watermark: every record acquired below it is counted, none above.
        count: distinct caps.
        first: the smallest cap (``None`` when empty).
        last: the largest cap (``None`` when empty).
        payload: the newest payload of ``last`` (``None`` when empty or not at hand).
    """

    watermark: int
    count: int
    first: int | None
    last: int | None
    payload: bytes | None

    def encode(self) -> bytes:
        """The record's payload."""
        body = self._fields()
        crc = zlib.crc32(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return json.dumps({**body, "crc": crc}, separators=(",", ":")).encode()

    def _fields(self) -> dict[str, Any]:
        p = None if self.payload is None else base64.b64encode(self.payload).decode()
        return {"format": FORMAT, "w": self.watermark, "n": self.count,
                "first": self.first, "last": self.last, "p": p}  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Head | None:
        """The head a record holds, or ``None`` when it is unreadable or fails its CRC."""
        try:
            d = json.loads(data)
            crc = d.pop("crc")
            if d.get("format") != FORMAT:
                return None
            if zlib.crc32(json.dumps(d, separators=(",", ":"), sort_keys=True).encode()) != crc:
                return None
            p = d["p"]
            head = cls(
                int(d["w"]),
                int(d["n"]),
                None if d["first"] is None else int(d["first"]),
                None if d["last"] is None else int(d["last"]),
                None if p is None else base64.b64decode(p, validate=True),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if head.count < 0 or (head.count == 0) != (head.last is None) or (
            head.first is None) != (head.last is None):  # fmt: skip
            return None
        return head

    def appended(self, caps: Iterable[tuple[int, int, bytes]]) -> Head | None:
        """This head with ``(cap, acq, payload)`` records acquired since its watermark
        counted in, or ``None`` when one of them is not an append (a cap at or before
        ``last``: a correction or a late record) and the summaries must tell."""
        newest: dict[int, tuple[int, bytes]] = {}
        for cap, acq, payload in caps:
            if self.last is not None and cap <= self.last:
                return None
            held = newest.get(cap)
            if held is None or acq > held[0]:
                newest[cap] = (acq, payload)
        if not newest:
            return self
        last = max(newest)
        first = min(newest) if self.first is None else self.first
        return Head(self.watermark, self.count + len(newest), first, last, newest[last][1])


class HeadStore(ReservedStore):
    """Reads and writes series heads under one reserved cid (``link``, ``cid``, ``clock``
    as :class:`~gateway.storage.reserved.ReservedStore`)."""

    def __init__(self, link: TStorageLink, cid: int, clock: Callable[[], int]) -> None:
        super().__init__(link, cid, clock)
        # Heads proven current by the last read of each series, at that read's watermark:
        # the next listing reads the change feed from there, not from the saved head's
        # (older, the more a series is written between saves). One small head per listed
        # series, as the catalog holds its key.
        self._proven: dict[SeriesKey, Head] = {}

    def record(self, s: SeriesKey, head: Head) -> PutRecord:
        """The record that saves ``head`` of ``s`` (stored by the summaries' PUT)."""
        return (self.cid, s.mid, s.moid, head_cap(s.cid)), head.encode()

    def newest(self, series: Sequence[SeriesKey]) -> dict[SeriesKey, Head | None]:
        """The newest saved head of each series of one client id (``None``: unreadable);
        series with no head saved are left out.

        One GET over the series' ``(mid, moid)`` box for the last hour, then wider windows
        over the series not found yet.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        out: dict[SeriesKey, Head | None] = {}
        if not series:
            return out
        cid = series[0].cid
        cap = head_cap(cid)
        wanted = {(s.mid, s.moid): s for s in series}
        for since in lookback(self.clock()):  # widening for the series not found yet
            missing = [s for s in wanted.values() if s not in out]
            if not missing:
                break
            lo, hi = _box(self.cid, missing, (cap, cap + 1), (since, ACQ_END))
            records, _ = self.link.get(lo, hi)
            found: dict[SeriesKey, tuple[int, bytes]] = {}
            for k, p in records:
                s = wanted.get((k.mid, k.moid))
                if s is None or s in out or k.cap != cap:
                    continue
                if s not in found or k.acq > found[s][0]:
                    found[s] = (k.acq, p)
            for s, (_, p) in found.items():
                out[s] = Head.decode(p)
        return out

    def current(self, heads: dict[SeriesKey, Head]) -> tuple[dict[SeriesKey, Head], int]:
        """The heads brought up to date with TStorage, and the watermark they hold at.

        One GET of the series' box (their own client id) for every record acquired since
        the oldest head's watermark; a series that got anything but appends since its head
        is left out (its summaries tell). All series must share a client id.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        if not heads:
            return {}, ACQ_MIN
        heads = {s: self._newer(s, h) for s, h in heads.items()}
        series = list(heads)
        since = min(h.watermark for h in heads.values())
        lo, hi = _box(series[0].cid, series, (CAP_RANGE[0], CAP_END), (since, ACQ_END))
        fed: dict[SeriesKey, list[tuple[int, int, bytes]]] = {}
        wanted = {(s.mid, s.moid): s for s in series}

        def take(batch: list[Fetched]) -> None:
            for k, p in batch:
                s = wanted.get((k.mid, k.moid))
                if s is not None and k.acq >= heads[s].watermark:
                    fed.setdefault(s, []).append((k.cap, k.acq, p))

        acq = self.link.stream(lo, hi, take)
        out: dict[SeriesKey, Head] = {}
        for s, head in heads.items():
            now = head.appended(fed.get(s, ()))
            if now is None:
                self._proven.pop(s, None)
                continue
            out[s] = now
            if acq > now.watermark:
                # exact below acq: every record acquired since its watermark was read
                self._proven[s] = replace(now, watermark=acq)
        return out, acq

    def _newer(self, s: SeriesKey, saved: Head) -> Head:
        # The head to read the feed from: the one proven current last, unless a newer one
        # was saved since.
        proven = self._proven.get(s)
        return proven if proven is not None and proven.watermark > saved.watermark else saved


def _box(
    cid: int, series: Sequence[SeriesKey], caps: tuple[int, int], acqs: tuple[int, int]
) -> tuple[KeyTuple, KeyTuple]:
    # the smallest box holding every (mid, moid) of the series
    mids = [s.mid for s in series]
    moids = [s.moid for s in series]
    return key_box(
        cid,
        (min(mids), max(mids) + 1),
        (min(moids), max(moids) + 1),
        caps,
        acq_min=acqs[0],
        acq_max=acqs[1],
    )
