"""List and Dict writes acknowledged from the gateway's journal, stored in TStorage right after.

With ``[tstorage.journal]``, :meth:`TStorageLink.put <gateway.storage.link.TStorageLink.put>`
of records that may be stored twice without changing what readers see (a series' records:
the newest of equal records wins) writes them to the
:class:`~gateway.storage.journal.Journal` and returns; one background thread stores the
queued writes in TStorage in as few PUTs as it can (all that queued while the previous
PUT was on the wire, after waiting up to ``linger`` for more while no request waits for
them), and notes each stored one in the journal. A writer then waits for its journal write, not for a round trip to TStorage.

Every other request of the link first waits until the writes acknowledged before it are
in TStorage (:meth:`WriteBehind.settle`), so a read through this gateway always sees them
and writes that are not journalled (unmapped keys, whose records are operations) keep
their order. Readers elsewhere (another gateway, a ``tstorage_client``) see them once
stored: within about ``linger`` plus one PUT.

A PUT is sent again only once the connection that carried it is gone (the background
thread waits for the answer as long as the connection lives, with TCP keepalive), so an
earlier copy can never land after a later write. Only writes of at most
``max_write_bytes`` are journalled (a larger one is stored at once, and a refusal reaches
its writer as "not stored"). When TStorage refuses a PUT (an answer of ERROR: over a limit,
out of room, busy), the writes are tried again in halves down to one at a time, a write
refused alone in parts of its records down to one record, and then again after a growing
pause: an acknowledged write is never dropped, and ``/health`` shows what waits and the
last error.

What it survives: ``kill -9`` of the gateway (the journal is replayed at the next start)
and of TStorage (the writes stay queued and are stored once it answers again); a power
loss loses at most the last ``sync_interval`` of acknowledged writes, as
``sync = "interval"`` does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.schema import JournalConfig
from gateway.cooperative import off_hub
from gateway.errors import TStorageRefused, TStorageUnavailable
from gateway.storage.journal import Journal
from gateway.storage.link import PutRecord

log = logging.getLogger(__name__)

RECORD_OVERHEAD = 64
"""Bytes counted per queued record beyond its payload (key, tuple and list slots)."""
BATCH_BYTES = 4 << 20
"""At most this much goes into one PUT (far below TStorage's request limits)."""
RECORD_KEY_BYTES = 32
"""Bytes a record's key adds to a PUT, as :meth:`WriteBehind.add` counts a write's size."""
RETRY_MAX_DELAY = 1.0

Ship = Callable[[Sequence[PutRecord]], None]
"""``ship(records)``: store records in TStorage, or raise :class:`TStorageUnavailable`
(:class:`TStorageRefused` when TStorage answered with an error)."""


@dataclass
class _Write:
    seq: int
    records: Sequence[PutRecord]
    size: int
    at: float  # when it was acknowledged (monotonic)


class WriteBehind:
    """The queue between the journal and TStorage, and the threads that empty and fsync it."""

    def __init__(self, journal: Journal, ship: Ship, settings: JournalConfig, address: str) -> None:
        self.journal = journal
        self.settings = settings
        self.address = address
        self._ship = ship
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the shipper waits here for writes
        self._done = threading.Condition(self._lock)  # writers and readers wait for stores
        self._queue: deque[_Write] = deque()
        self.pending_bytes = 0
        self.pending_records = 0
        self._added = 0  # seq of the last write acknowledged
        self._stored = 0  # every write up to this seq is in TStorage
        self._batch_cap: int | None = None  # writes per PUT while TStorage refuses some
        self._waiting = 0  # requests waiting in settle(): no lingering meanwhile
        self._sending_since: float | None = None
        # the last STORED mark could not be written: until it is, a restart would replay
        # stored writes, so nothing may go to TStorage after them
        self._mark_owed = False
        self._closing = False
        self._closed = False
        self.last_error: str | None = None
        self._failing_since: float | None = None

    # ------------------------------------------------------------------ life
    def start(self) -> list[tuple[int, list[PutRecord]]]:
        """Open the journal, queue what it holds unstored (returned), and start the threads
        that store and fsync."""
        recovered = self.journal.recover()
        with self._lock:
            self._added = self._stored = self.journal.next_seq - 1
            if recovered:
                self._stored = recovered[0][0] - 1
            for seq, records in recovered:
                size = sum(len(p) for _, p in records) + RECORD_OVERHEAD * len(records)
                self._enqueue(seq, records, size)
        if recovered:
            log.warning(
                "journal %s: %d write(s), %d record(s), acknowledged before the gateway "
                "stopped and not yet in TStorage: storing them now",
                self.journal.directory,
                len(recovered),
                self.pending_records,
            )
        for target, name in ((self._run, "gateway-journal"), (self._syncer, "journal-fsync")):
            threading.Thread(target=target, name=name, daemon=True).start()
        return recovered

    def close(self, timeout: float) -> None:
        """Store what is queued (for at most ``timeout`` s), then stop.

        Records left over stay in the journal (and are logged): the next start stores them.
        """
        with self._lock:
            self._closing = True
            self._work.notify_all()
            end = time.monotonic() + timeout
            while self._queue and time.monotonic() < end:
                self._done.wait(end - time.monotonic())
            self._closed = True
            left = self.pending_records
            self._work.notify_all()
            self._done.notify_all()  # writers waiting for room hear "stopping" at once
            self.journal.close()
        if left:
            log.warning(
                "journal %s: %d acknowledged record(s) not stored in TStorage at %s before "
                "the gateway stopped; they stay in the journal and are stored at its next start",
                self.journal.directory,
                left,
                self.address,
            )

    def status(self) -> dict[str, Any]:
        """For ``/health``: what is acknowledged and not yet in TStorage, and why."""
        with self._lock:
            now = time.monotonic()
            since = self._failing_since
            return {
                "dir": str(self.journal.directory),
                "pending_records": self.pending_records,
                "pending_bytes": self.pending_bytes,
                "oldest_pending_s": round(now - self._queue[0].at, 3) if self._queue else None,
                "put_in_flight_s": None
                if self._sending_since is None
                else round(now - self._sending_since, 3),
                "failing_for_s": None if since is None else round(now - since, 3),
                "last_error": self.last_error,
            }

    # ------------------------------------------------------------ the link's side
    def add(self, records: Sequence[PutRecord], deadline: float) -> bool:
        """Acknowledge ``records``: in the journal (and the OS) when this returns True.

        False (nothing done): the write is larger than ``max_write_bytes`` and is not for
        the journal.

        Raises:
            TStorageUnavailable: not stored: the queue stayed full (TStorage is not taking
                writes) until ``deadline``, the journal could not be written, or the
                gateway is stopping.
        """
        payload = sum(len(p) for _, p in records)
        if payload + RECORD_KEY_BYTES * len(records) > self.settings.max_write_bytes:
            return False
        size = payload + RECORD_OVERHEAD * len(records)
        with self._lock:
            while self._queue and self.pending_bytes + size > self.settings.max_bytes:
                left = deadline - time.monotonic()
                if left <= 0 or self._closing:
                    raise TStorageUnavailable(
                        f"{self.pending_records} acknowledged record(s) "
                        f"({self.pending_bytes} bytes, [tstorage.journal] max_bytes) are "
                        f"waiting for TStorage at {self.address}{self._why()}; not stored"
                    )
                self._done.wait(left)
            if self._closing:
                raise TStorageUnavailable("the gateway is stopping; not stored")
            try:
                seq = self.journal.append(records)
            except OSError as exc:
                raise TStorageUnavailable(
                    f"the journal in {self.journal.directory} could not be written ({exc}); "
                    "not stored"
                ) from exc
            self._enqueue(seq, records, size)
            self._work.notify()
        return True

    def settle(self, deadline: float) -> None:
        """Wait until every write acknowledged so far is in TStorage.

        Raises:
            TStorageUnavailable: they were not all stored by ``deadline`` (they stay queued
                and in the journal).
        """
        if self._stored >= self._added and not self._mark_owed:  # read without the lock
            return
        with self._lock:
            target = self._added
            self._waiting += 1
            self._work.notify()
            try:
                while self._stored < target or self._mark_owed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TStorageUnavailable(
                            f"TStorage at {self.address} has not yet stored "
                            f"{self.pending_records} acknowledged record(s){self._why()}; they "
                            "are kept in the journal and stored once it takes them; this "
                            "request, which must come after them, was not made"
                        )
                    self._done.wait(left)
            finally:
                self._waiting -= 1

    # ------------------------------------------------------------------ inside
    def _enqueue(self, seq: int, records: Sequence[PutRecord], size: int) -> None:
        self._queue.append(_Write(seq, records, size, time.monotonic()))
        self.pending_bytes += size
        self.pending_records += len(records)
        self._added = seq

    def _why(self) -> str:
        if self.last_error:
            return f" (last error: {self.last_error})"
        if self._queue:
            text = f" (the oldest for {time.monotonic() - self._queue[0].at:.1f} s"
            if self._sending_since is not None:
                took = time.monotonic() - self._sending_since
                text += f"; TStorage has not answered a PUT for {took:.1f} s"
            return text + ")"
        return ""

    def _run(self) -> None:
        delay = 0.0
        while True:
            with self._lock:
                while (not self._queue or self._mark_owed) and not self._closed:
                    if self._mark_owed:
                        self._note_stored()
                        if self._mark_owed:
                            self._work.wait(RETRY_MAX_DELAY)
                            continue
                    if not self._queue:
                        self._work.wait()
                if self._closed:
                    return
                # let more writes join this PUT, unless a request waits for them
                end = time.monotonic() + self.settings.linger
                while (
                    not (self._waiting or self._closing or delay or self._batch_cap)
                    and time.monotonic() < end
                ):
                    self._work.wait(end - time.monotonic())
                if self._closed:
                    return
                batch: list[_Write] = []
                taken = 0
                for w in self._queue:
                    full = self._batch_cap is not None and len(batch) >= self._batch_cap
                    if batch and (full or taken + w.size > BATCH_BYTES):
                        break
                    batch.append(w)
                    taken += w.size
                self._sending_since = time.monotonic()
            try:
                self._ship([r for w in batch for r in w.records])
            except TStorageRefused:
                if len(batch) > 1:  # too much at once? halves, down to one write a PUT
                    self._batch_cap = len(batch) // 2
                    continue
                try:  # one write alone: in parts of its records (each stands alone)
                    self._ship_in_parts(batch[0].records)
                except Exception as exc:  # (raised here, the handlers below would miss it)
                    # a record refused alone (a full disk, a busy server, a limit below a
                    # record), or TStorage gone: kept and tried again, never dropped
                    delay = self._back_off(delay, str(exc))
                    continue
            except TStorageUnavailable as exc:
                # Only once the connection that carried the PUT is gone: sending it again
                # stores what readers see already, never an old copy after a newer write.
                delay = self._back_off(delay, str(exc))
                continue
            except Exception as exc:
                log.exception("journal: storing queued writes failed; retrying")
                delay = self._back_off(delay, f"{type(exc).__name__}: {exc}")
                continue
            finally:
                with self._lock:
                    self._sending_since = None
            delay = 0.0
            if self._batch_cap is not None:  # stored: try twice as many next time
                self._batch_cap = None if self._batch_cap >= 4096 else self._batch_cap * 2
            self._stored_now(batch)

    def _ship_in_parts(self, records: Sequence[PutRecord]) -> None:
        cap, i = max(1, len(records) // 2), 0
        while i < len(records):
            part = records[i : i + cap]
            try:
                self._ship(part)
            except TStorageRefused:
                if cap == 1:
                    raise
                cap //= 2
                continue
            i += len(part)

    def _stored_now(self, batch: list[_Write]) -> None:
        with self._lock:
            if self._closed:  # close() gave up waiting: the journal replays these
                return
            for _ in batch:
                w = self._queue.popleft()
                self.pending_bytes -= w.size
                self.pending_records -= len(w.records)
            self._stored = batch[-1].seq
            if self._failing_since is not None:
                log.warning(
                    "journal: TStorage at %s takes writes again; %d record(s) still queued",
                    self.address,
                    self.pending_records,
                )
            self._failing_since = None
            self.last_error = None
            self._note_stored()
            self._done.notify_all()

    def _note_stored(self) -> None:
        # with the lock held: the STORED mark of everything stored so far
        try:
            self.journal.stored(self._stored)
        except OSError as exc:
            if not self._mark_owed:
                log.error(
                    "journal %s: cannot note stored writes (%s); requests that must come "
                    "after them wait until it can",
                    self.journal.directory,
                    exc,
                )
            self._mark_owed = True
            self.last_error = f"the journal cannot note stored writes: {exc}"
            return
        if self._mark_owed:
            self._mark_owed = False
            self.last_error = None
            self._done.notify_all()

    def _back_off(self, delay: float, why: str) -> float:
        # a failed PUT: noted for /health, then a pause that doubles up to a bound
        delay = min(max(delay * 2, 0.05), RETRY_MAX_DELAY)
        self._failed(why)
        time.sleep(delay)
        return delay

    def _failed(self, why: str) -> None:
        with self._lock:
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

    def _syncer(self) -> None:
        # fsyncs on a clock of their own: they go on while TStorage is down or slow
        while True:
            time.sleep(self.settings.sync_interval)
            try:
                with self._lock:
                    if self._closed:
                        return
                    work = self.journal.take_sync()
                if work is not None:
                    off_hub(work)
            except Exception as exc:  # tried again next time; the journal stays unsynced
                log.error("journal %s: fsync failed: %s", self.journal.directory, exc)
                with self._lock:
                    self.journal.owe_sync()
