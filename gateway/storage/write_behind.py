"""Writes acknowledged from the gateway's journal and stored in TStorage moments later.

With ``[tstorage.journal]``, :meth:`TStorageLink.put <gateway.storage.link.TStorageLink.put>`
writes the records to the :class:`~gateway.storage.journal.Journal` and returns; one
background thread stores the queued writes in TStorage, as few PUTs as it can (all that
queued while the previous PUT was on the wire, after waiting ``linger`` for more), and
notes each stored one in the journal. A writer then waits for its journal write, not for a
round trip to TStorage and its commit.

Every other request of the link first waits until the writes acknowledged before it are
in TStorage (:meth:`WriteBehind.settle`), so a read through this gateway always sees
them. Readers elsewhere (another gateway, a ``tstorage_client``) see them once stored:
normally within a few milliseconds.

What it survives: ``kill -9`` of the gateway (the journal is replayed at the next start)
and of TStorage (the writes stay queued and are stored once it answers again); a power
loss loses at most the last ``sync_interval`` of acknowledged writes, as
``sync = "interval"`` does.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.schema import JournalConfig
from gateway.errors import TStorageOutcomeUnknown, TStorageUnavailable
from gateway.storage.journal import Journal
from gateway.storage.link import PutRecord

log = logging.getLogger(__name__)

RECORD_OVERHEAD = 64
"""Bytes counted per queued record beyond its payload (key, tuple and list slots)."""
BATCH_BYTES = 4 << 20
"""At most this much goes into one PUT (far below TStorage's request limits)."""
RETRY_MAX_DELAY = 1.0

Ship = Callable[[Sequence[PutRecord], float], None]
"""``ship(records, deadline)``: store records in TStorage, or raise."""


@dataclass(frozen=True)
class WriteBehindSettings:
    """The bounds of writes acknowledged ahead of TStorage."""

    max_bytes: int = 64 << 20
    linger: float = 0.002
    sync_interval: float = 1.0
    timeout: float = 5.0

    @classmethod
    def for_config(cls, journal: JournalConfig, timeout: float) -> WriteBehindSettings:
        """The settings of ``[tstorage.journal]``; ``timeout`` bounds each PUT."""
        return cls(journal.max_bytes, journal.linger, journal.sync_interval, timeout)


class WriteBehind:
    """The queue between the journal and TStorage, and the thread that empties it."""

    def __init__(
        self, journal: Journal, ship: Ship, settings: WriteBehindSettings, address: str
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.address = address
        self._ship = ship
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[int, Sequence[PutRecord], int]] = deque()
        self.pending_bytes = 0
        self.pending_records = 0
        self._added = 0  # seq of the last write acknowledged
        self._stored = 0  # every write up to this seq is in TStorage
        self._closing = False
        self._closed = False
        self._close_by = 0.0
        self.last_error: str | None = None
        self._failing_since: float | None = None
        self._thread: threading.Thread | None = None
        self._last_sync = time.monotonic()

    # ------------------------------------------------------------------ life
    def start(self) -> WriteBehind:
        """Replay what the journal holds unstored, then start storing in the background."""
        recovered = self.journal.recover()
        with self._cond:
            self._added = self._stored = self.journal.next_seq - 1
            if recovered:
                self._stored = recovered[0][0] - 1
            for seq, records in recovered:
                self._enqueue(seq, records)
        if recovered:
            log.warning(
                "journal %s: %d write(s), %d record(s), acknowledged before the gateway "
                "stopped and not yet in TStorage: storing them now",
                self.journal.directory,
                len(recovered),
                self.pending_records,
            )
        self._thread = threading.Thread(target=self._run, name="gateway-journal", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float) -> int:
        """Store what is queued (for at most ``timeout`` s), stop; returns records left over.

        Records left over stay in the journal: the next start stores them.
        """
        with self._cond:
            self._closing = True
            self._close_by = end = time.monotonic() + timeout
            self._cond.notify_all()
            while self._queue and time.monotonic() < end:
                self._cond.wait(end - time.monotonic())
            left = self.pending_records
        if self._thread is not None:
            self._thread.join(max(end - time.monotonic(), 0.0) + 0.1)
        with self._cond:
            self._closed = True
            left = self.pending_records
            self.journal.close()
        if left:
            log.warning(
                "journal %s: %d acknowledged record(s) not stored in TStorage at %s before "
                "the gateway stopped; they stay in the journal and are stored at its next start",
                self.journal.directory,
                left,
                self.address,
            )
        return left

    def status(self) -> dict[str, Any]:
        """For ``/health``: what is acknowledged and not yet in TStorage, and why."""
        with self._cond:
            since = self._failing_since
            return {
                "dir": str(self.journal.directory),
                "pending_records": self.pending_records,
                "pending_bytes": self.pending_bytes,
                "failing_for_s": None if since is None else round(time.monotonic() - since, 3),
                "last_error": self.last_error,
            }

    # ------------------------------------------------------------ the link's side
    def add(self, records: Sequence[PutRecord], deadline: float) -> None:
        """Acknowledge ``records``: in the journal (and the OS) when this returns.

        Raises:
            TStorageUnavailable: not stored: the queue stayed full (TStorage is not taking
                writes) until ``deadline``, or the journal could not be written.
        """
        size = sum(len(p) for _, p in records) + RECORD_OVERHEAD * len(records)
        with self._cond:
            while self._queue and self.pending_bytes + size > self.settings.max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TStorageUnavailable(
                        f"{self.pending_records} acknowledged record(s) "
                        f"({self.pending_bytes} bytes, [tstorage.journal] max_bytes) are "
                        f"waiting for TStorage at {self.address}{self._why()}; not stored"
                    )
                self._cond.wait(left)
            try:
                seq = self.journal.append(records)
            except OSError as exc:
                raise TStorageUnavailable(
                    f"the journal in {self.journal.directory} could not be written ({exc}); "
                    "not stored"
                ) from exc
            self._enqueue(seq, records)
            self._cond.notify_all()

    def settle(self, deadline: float) -> None:
        """Wait until every write acknowledged so far is in TStorage.

        Raises:
            TStorageUnavailable: they were not all stored by ``deadline`` (they stay queued
                and in the journal).
        """
        if self._stored >= self._added:  # read without the lock: both only grow
            return
        with self._cond:
            target = self._added
            while self._stored < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TStorageUnavailable(
                        f"TStorage at {self.address} has not yet stored "
                        f"{self.pending_records} acknowledged record(s){self._why()}; they are "
                        "kept in the journal and stored once it takes them; this request, "
                        "which must see them, was not made"
                    )
                self._cond.wait(left)

    # ------------------------------------------------------------------ inside
    def _enqueue(self, seq: int, records: Sequence[PutRecord]) -> None:
        size = sum(len(p) for _, p in records) + RECORD_OVERHEAD * len(records)
        self._queue.append((seq, records, size))
        self.pending_bytes += size
        self.pending_records += len(records)
        self._added = seq

    def _why(self) -> str:
        return f" (last error: {self.last_error})" if self.last_error else ""

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._cond:
                while not self._queue:
                    if self._closing:
                        return
                    self._cond.wait(self._until_sync())
                    self._maybe_sync()
            if self.settings.linger and not self._closing and delay == 0.0:
                time.sleep(self.settings.linger)  # let more writes join this PUT
            with self._cond:
                batch: list[Sequence[PutRecord]] = []
                taken = 0
                for _, records, size in self._queue:
                    if batch and taken + size > BATCH_BYTES:
                        break
                    batch.append(records)
                    taken += size
            try:
                self._ship([r for records in batch for r in records], self._deadline())
            except (TStorageUnavailable, TStorageOutcomeUnknown) as exc:
                # An uncertain PUT is sent again: the same records once more read back the
                # same (the newest of equal records wins).
                delay = min(max(delay * 2, 0.05), RETRY_MAX_DELAY)
                self._failed(str(exc))
                if self._closing and time.monotonic() > self._close_by:
                    return
                time.sleep(delay)
                continue
            except Exception:
                log.exception("journal: storing queued writes failed; retrying")
                delay = min(max(delay * 2, 0.05), RETRY_MAX_DELAY)
                time.sleep(delay)
                continue
            delay = 0.0
            with self._cond:
                if self._closed:  # close() gave up waiting: the journal replays these
                    return
                last = 0
                for _ in batch:
                    last, records, size = self._queue.popleft()
                    self.pending_bytes -= size
                    self.pending_records -= len(records)
                self._stored = last
                if self._failing_since is not None:
                    log.warning(
                        "journal: TStorage at %s takes writes again; %d record(s) still queued",
                        self.address,
                        self.pending_records,
                    )
                self._failing_since = None
                self.last_error = None
                try:
                    self.journal.stored(last)
                except OSError as exc:  # replayed once more at the next start: harmless
                    log.error("journal %s: %s", self.journal.directory, exc)
                self._maybe_sync()
                self._cond.notify_all()

    def _deadline(self) -> float:
        return time.monotonic() + self.settings.timeout

    def _failed(self, why: str) -> None:
        with self._cond:
            first = self._failing_since is None
            if first:
                self._failing_since = time.monotonic()
            self.last_error = why
            left = self.pending_records
        if first:
            log.warning(
                "journal: TStorage did not take %d queued record(s) (%s); they stay in the "
                "journal, retrying",
                left,
                why,
            )

    def _until_sync(self) -> float:
        return max(self._last_sync + self.settings.sync_interval - time.monotonic(), 0.001)

    def _maybe_sync(self) -> None:
        # Called with the lock held: the fsync happens in an OS thread when eventlet runs
        # the process, so that other clients are served meanwhile.
        if time.monotonic() - self._last_sync < self.settings.sync_interval:
            return
        self._last_sync = time.monotonic()
        _off_hub(self.journal.sync)


def _off_hub(fn: Callable[[], None]) -> None:
    eventlet = sys.modules.get("eventlet")
    if eventlet is not None and eventlet.patcher.is_monkey_patched("thread"):
        from eventlet import tpool

        tpool.execute(fn)
    else:
        fn()
