"""A bounded cache of record payloads, kept coherent by acq.

Key: ``(cid, mid, moid, cap)``; value: the payload of the newest version seen and its
``acq``. An offer replaces an entry only when its ``acq`` is newer, so the order in which
reads, the change feed and our own writes arrive does not matter: the newest version wins,
as it does in TStorage. Our own writes (:meth:`ValueCache.remember_own`) replace the entry at
once, so a client reads its own write, but keep the acq of what they replaced: TStorage
assigns the real acq, and the change feed, which brings our record and any newer one,
settles the entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

CacheKey = tuple[int, int, int, int]
UNKNOWN_ACQ = -(2**63)


class ValueCache:
    """Least-recently-used payloads, at most ``max_entries`` of them."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> bytes | None:
        """The cached payload or ``None``."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def offer(self, key: CacheKey, acq: int, payload: bytes) -> None:
        """Remember ``payload`` unless a newer version is already cached."""
        if self.max_entries <= 0:
            return
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > acq:
                return
            self._entries[key] = (acq, payload)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def remember_own(self, key: CacheKey, payload: bytes) -> None:
        """Cache a payload we just wrote (its acq is unknown until the feed brings it)."""
        if self.max_entries <= 0:
            return
        with self._lock:
            hit = self._entries.get(key)
            self._entries[key] = (hit[0] if hit is not None else UNKNOWN_ACQ, payload)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
