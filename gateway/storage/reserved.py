"""Records the gateway keeps under its reserved client id (``[tstorage] index_cid``).

Chunk summaries (:mod:`gateway.storage.persisted`), series heads
(:mod:`gateway.storage.heads`) and discovery markers
(:mod:`gateway.timeseries.catalog_store`) share the cid, each at caps of its own. Their
records are rewritten in place (a new version per save), so a reader wants the newest
version of a key without reading the whole history of saves: it looks at the versions
acquired in the last hour, then the last day, month, year, and only then at all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from gateway.keymap import ACQ_MIN, record_box
from gateway.storage.link import TStorageLink

__all__ = ["ReservedStore", "lookback"]

_HOUR_NS = 3600 * 10**9
#: how far back a reader looks for the newest version, widening until found
_LOOKBACK_NS = (_HOUR_NS, 24 * _HOUR_NS, 31 * 24 * _HOUR_NS, 366 * 24 * _HOUR_NS, None)


def lookback(now: int) -> Iterator[int]:
    """The acq lower bounds to try in turn for the newest version of a record, from ``now``
    (TStorage ns): an hour back, a day, a month, a year, then every acq."""
    for back in _LOOKBACK_NS:
        yield ACQ_MIN if back is None else now - back


class ReservedStore:
    """Reads and writes records under one reserved cid.

    Args:
        link: the TStorage link.
        cid: the reserved client id (``[tstorage] index_cid``).
        clock: now in TStorage ns (where the search for a newest version starts).
    """

    def __init__(self, link: TStorageLink, cid: int, clock: Callable[[], int]) -> None:
        self.link = link
        self.cid = cid
        self.clock = clock

    def newest_version(self, mid: int, moid: int, cap: int) -> tuple[int, bytes] | None:
        """``(acq, payload)`` of the newest version at ``(cid, mid, moid, cap)``, or ``None``.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        for since in lookback(self.clock()):
            records, _ = self.link.get(*record_box(self.cid, mid, moid, cap, since))
            mine = [(k.acq, p) for k, p in records if (k.mid, k.moid, k.cap) == (mid, moid, cap)]
            if mine:
                return max(mine, key=lambda r: r[0])
        return None
