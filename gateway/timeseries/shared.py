"""One read for many identical requests: single flight plus a short reuse window.

When 100 clients reconnect at once and each resumes the same series from the same
watermark, the first request reads TStorage and the others wait for its answer (or take it
from the reuse window if they arrive just after). Any answer handed out is exact for the
watermark it reports, so reuse never loses or repeats a record.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SharedReads(Generic[T]):
    """Runs ``read()`` once for concurrent callers with the same key.

    Args:
        reuse_s: how long a finished answer is handed to later callers with the same key.
        capacity: finished answers kept at most (least recently finished dropped first).
    """

    def __init__(self, reuse_s: float = 2.0, capacity: int = 4096) -> None:
        self.reuse_s = reuse_s
        self.capacity = capacity
        self.reads = 0  # how many times a read actually ran
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[T]] = {}
        self._done: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """The answer for ``key``: shared with concurrent callers, or read now."""
        now = time.monotonic()
        with self._lock:
            hit = self._done.get(key)
            if hit is not None and now - hit[0] < self.reuse_s:
                return hit[1]
            flight = self._flights.get(key)
            lead = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.reads += 1
        if not lead:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            flight.result = read()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
                if flight.error is None and flight.result is not None:
                    self._done[key] = (time.monotonic(), flight.result)
                    self._done.move_to_end(key)
                    while len(self._done) > self.capacity:
                        self._done.popitem(last=False)
            flight.done.set()
        return flight.result
