"""The next page of a bulk column read, read while the client takes the current one.

A client reading a long window in binary columns (``ts:range`` with ``columns``, as
``gateway.TimeSeries.range`` does) asks page after page, each from the ``next`` of the one
before. Without read-ahead, TStorage streams a page only once it is asked for, and sits
idle while the gateway sends the page before and the client takes it in. With it, once a
page of at least :data:`MIN_POINTS` points is answered truncated, the gateway starts
reading the next one (same window, same limit, from ``next``) in a thread of its own.

The page read ahead is used only if the client asks for exactly that page, within
``ttl`` seconds, and if the series' index has not changed since it was read
(:meth:`~gateway.timeseries.reads.TimeSeriesReads.as_now`): the answer is then what a
read at that moment would give, with that moment's watermark. Anything else and it is
dropped and the page read as usual.

Memory: at most ``pages`` pages are read ahead or held at once, in all (a page of
1,048,576 float64 points holds 16 MiB, about 48 MiB while it streams); a connection that
starts another drops its own older one, and when all are in use no more is started.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.keymap import ListTarget
from gateway.timeseries.reads import RawWindow, TimeSeriesReads

__all__ = ["MIN_POINTS", "ReadAhead"]

#: pages shorter than this are not read ahead (their reads cost little)
MIN_POINTS = 65_536


@dataclass(eq=False)
class _Page:
    ask: tuple[Any, ...]
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    window: RawWindow | None = None


class ReadAhead:
    """The pages read ahead for the connections of one gateway.

    Args:
        reads: the time-series reads.
        pages: most pages read ahead or held at once (0: none).
        ttl: seconds a page read ahead waits to be asked for.
    """

    def __init__(self, reads: TimeSeriesReads, pages: int = 2, ttl: float = 5.0) -> None:
        self.reads = reads
        self.pages = pages
        self.ttl = ttl
        self._held: OrderedDict[str, _Page] = OrderedDict()
        self._running: set[_Page] = set()
        self._lock = threading.Lock()
        #: pages read ahead and used, and those dropped (for tests and /health)
        self.used = 0
        self.dropped = 0

    def counts(self) -> dict[str, int]:
        """Pages read ahead and used, read ahead and dropped, and the bound."""
        return {"used": self.used, "dropped": self.dropped, "pages": self.pages}

    def take(self, sid: str, t: ListTarget, ask: tuple[Any, ...]) -> RawWindow | None:
        """The page ``ask`` names if it was read ahead for ``sid`` and is still what a
        read now would answer; else ``None`` (the caller reads it)."""
        with self._lock:
            page = self._held.pop(sid, None)
        if page is None:
            return None
        left = self.ttl - (time.monotonic() - page.started)
        if page.ask != ask or left <= 0 or not page.done.wait(left):
            self.dropped += 1
            return None
        got = None if page.window is None else self.reads.as_now(t, page.window)
        if got is None:
            self.dropped += 1
        else:
            self.used += 1
        return got

    def start(self, sid: str, ask: tuple[Any, ...], read: Callable[[], RawWindow]) -> bool:
        """Read the page ``ask`` names ahead for ``sid`` with ``read``; False when no
        room is left (nothing started)."""
        now = time.monotonic()
        with self._lock:
            self._held.pop(sid, None)  # this connection moved on
            for old_sid, old in list(self._held.items()):
                if now - old.started > self.ttl:
                    del self._held[old_sid]
            if len(self._running.union(self._held.values())) >= self.pages:
                return False
            page = self._held[sid] = _Page(ask, now)
            self._running.add(page)

        def run() -> None:
            try:
                page.window = read()
            except Exception:  # the page is read again when asked, and fails there
                page.window = None
            finally:
                with self._lock:
                    self._running.discard(page)
                page.done.set()

        threading.Thread(target=run, name="read-ahead", daemon=True).start()
        return True
