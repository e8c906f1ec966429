"""A small pool of TStorage channels: the gateway's only door to TStorage.

Every method either returns what TStorage answered OK or raises
:class:`~gateway.errors.TStorageUnavailable`; a channel that failed is closed and dropped,
and the next request opens a fresh one, retrying the connection with exponential backoff
(bounded by ``reconnect_max_delay``).

One deadline per request: waiting for a free connection, connecting (with its retries),
sending and receiving all end ``timeout`` seconds after the request began, so a client
hears within about one timeout that TStorage is down or stalled. Inside
:meth:`TStorageLink.request` (a client command) every request ends by the command's own
deadline, however many it makes. A read that streams many batches may go on as long as
every batch arrives within ``timeout`` of the previous one.

A failed write says what became of it: :class:`~gateway.errors.TStorageUnavailable` only
when nothing was stored for certain (no byte of it was sent, or TStorage answered with an
error), :class:`~gateway.errors.TStorageOutcomeUnknown` when it was sent and no answer came
back (TStorage may have stored it, e.g. a stalled server that resumes).
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gateway.config import TStorageConfig
from gateway.errors import TStorageOutcomeUnknown, TStorageRefused, TStorageUnavailable
from gateway.keymap import KeyTuple
from gateway.storage.connect_failure import connect_failure
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType, NumpyPayloadType
from tstorage_client.record import Key, Record
from tstorage_client.response import ResponseAcq, ResponseStatus

if TYPE_CHECKING:
    from gateway.config.schema import JournalConfig
    from gateway.storage.write_behind import WriteBehind

PutRecord = tuple[tuple[int, int, int, int], bytes]
"""((cid, mid, moid, cap), payload): a record to PUT (TStorage assigns acq)."""

Fetched = tuple[Key, bytes]


@dataclass(frozen=True)
class LinkSettings:
    """Where TStorage is and how to talk to it."""

    host: str
    port: int
    timeout: float = 5.0
    memory_limit: int = 64 * 1024 * 1024
    connections: int = 4
    reconnect_max_delay: float = 5.0
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def for_config(cls, t: TStorageConfig, host: str, port: int) -> LinkSettings:
        """The settings of ``[tstorage]`` for TStorage at ``host:port`` (TLS when configured)."""
        return cls(
            host,
            port,
            t.timeout,
            t.memory_limit,
            t.connections,
            t.reconnect_max_delay,
            t.tls.context() if t.tls is not None else None,
        )


class TStorageLink:
    """A bounded pool of blocking :class:`~tstorage_client.channel.Channel` objects."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        #: idle channels by payload size: ``None`` for bytes payloads, else numpy columns
        self._idle: dict[int | None, list[Channel[Any]]] = {}
        self._slots = threading.BoundedSemaphore(settings.connections)
        self._lock = threading.Lock()
        self._delay = 0.0  # current reconnect backoff; 0 while TStorage answers
        self._put_lock = threading.Lock()
        self._put_queue: list[_Ticket] = []
        self._put_leader = False
        self._scope = threading.local()  # green-thread local in the (patched) gateway
        self._behind: WriteBehind | None = None
        self._ship_channel: Channel[Any] | None = None

    @contextlib.contextmanager
    def request(self, writes: bool = False) -> Iterator[None]:
        """Bound the TStorage requests made inside by one deadline, ``timeout`` from now,
        pushed back each time TStorage answers one of them.

        A client command runs in one: it answers at most about ``timeout`` after it began
        or after TStorage last answered it, however many requests it makes and however
        long it waited for a lock held by another's request. Nested uses keep the outer
        deadline.

        Args:
            writes: the command may write. Should a read fail before any PUT was tried,
                the error then says that nothing was stored.
        """
        if getattr(self._scope, "deadline", None) is not None:
            yield
            return
        self._scope.deadline = time.monotonic() + self.settings.timeout
        self._scope.put_tried = False
        try:
            yield
        except TStorageUnavailable as exc:
            if writes and not self._scope.put_tried and type(exc) is TStorageUnavailable:
                raise TStorageUnavailable(f"{exc}; the write was not stored") from exc
            raise
        finally:
            self._scope.deadline = None

    def _deadline(self) -> float:
        own = time.monotonic() + self.settings.timeout
        scoped: float | None = getattr(self._scope, "deadline", None)
        return own if scoped is None else min(own, scoped)

    def _answered(self) -> None:
        # TStorage is answering this command: its requests may go on
        if getattr(self._scope, "deadline", None) is not None:
            self._scope.deadline = time.monotonic() + self.settings.timeout

    @property
    def address(self) -> str:
        """``host:port`` of TStorage, for messages."""
        return f"{self.settings.host}:{self.settings.port}"

    # -------------------------------------------------------------- channels
    def _open(self, deadline: float, size: int | None = None) -> Channel[Any]:
        s = self.settings
        while True:
            ch: Channel[Any] = Channel(
                s.host,
                s.port,
                _payload_type(size),
                timeout=s.timeout,
                memory_limit=s.memory_limit,
                ssl_context=s.ssl_context,
            )
            ch.deadline = deadline
            try:
                self._connect(ch)
            except TStorageUnavailable:
                self._delay = min(max(self._delay * 2, 0.05), s.reconnect_max_delay)
                if time.monotonic() + self._delay > deadline:
                    raise
                time.sleep(self._delay)
            else:
                self._delay = 0.0
                return ch

    def _connect(self, ch: Channel[Any]) -> None:
        # the cause stays attached (``from exc``) and named in the message
        try:
            ch.open()
        except Exception as exc:
            why = connect_failure(exc, self.settings.host, self.settings.timeout)
            raise TStorageUnavailable(f"TStorage at {self.address} is unreachable: {why}") from exc

    @contextlib.contextmanager
    def _channel(
        self, deadline: float, size: int | None = None
    ) -> Iterator[tuple[Channel[Any], bool]]:
        """A channel bound to ``deadline`` and whether it was reused from the pool (it may
        have gone stale since it was checked): payloads as bytes, or with ``size`` decoded
        into numpy columns of that many bytes.

        Only bytes channels count against ``connections``: column reads (builds, chunk
        reads, discovery) use channels of their own, so a long or stalled one never holds
        up writes."""
        bounded = size is None
        if bounded and not self._slots.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            raise TStorageUnavailable(
                f"all {self.settings.connections} TStorage connections stayed busy for "
                f"{self.settings.timeout:g} s"
            )
        ch: Channel[Any] | None = None
        try:
            ch = self._pooled(size)
            reused = ch is not None
            if ch is None:
                ch = self._open(deadline, size)
            ch.deadline = deadline
            yield ch, reused
        except BaseException:
            if ch is not None:
                _close(ch)
                ch = None
            raise
        finally:
            if ch is not None:
                ch.deadline = None
                with self._lock:
                    self._idle.setdefault(size, []).append(ch)
            if bounded:
                self._slots.release()

    def _pooled(self, size: int | None = None) -> Channel[Any] | None:
        # An idle connection the server closed (e.g. a restarted TStorage) is dropped
        # before anything is sent on it, so a write is not made uncertain for nothing.
        while True:
            with self._lock:
                idle = self._idle.get(size)
                ch = idle.pop() if idle else None
            if ch is None or not ch.peer_closed():
                return ch
            _close(ch)

    def close(self) -> None:
        """Store the journal's queued writes (for at most ``timeout``), then close every idle
        channel (busy ones close when their request ends)."""
        if self._behind is not None:
            self._behind.close(self.settings.timeout)
            if self._ship_channel is not None:
                _close(self._ship_channel)
        with self._lock:
            idle, self._idle = self._idle, {}
        for chs in idle.values():
            for ch in chs:
                _close(ch)

    # -------------------------------------------------------------- journal
    def write_behind(self, config: JournalConfig) -> WriteBehind:
        """From now on acknowledge replayable writes from the journal ``[tstorage.journal]``
        describes, and store them in TStorage in the background
        (:mod:`gateway.storage.write_behind`).

        The writes the journal holds unstored (a gateway stopped before storing them) are
        stored first: this returns once they are.

        Raises:
            TStorageUnavailable: TStorage did not take them within ``10 x timeout``.
            JournalInUse: another gateway holds the folder.
        """
        from gateway.storage.journal import Journal  # they build on this module's PutRecord
        from gateway.storage.write_behind import WriteBehind

        assert self._behind is None
        behind = WriteBehind(Journal(config.dir), self._ship, config, self.address)
        self._behind = behind
        if behind.start():
            behind.settle(time.monotonic() + 10 * self.settings.timeout)
        return behind

    @property
    def journal(self) -> WriteBehind | None:
        """The journal's queue when writes are acknowledged from it, else None."""
        return self._behind

    def _ship(self, records: Sequence[PutRecord]) -> None:
        # The journal's PUTs, on a connection of their own that waits for each answer as
        # long as it lives: a PUT is sent again only once the connection that carried it
        # is gone, so no earlier copy can land after a later write.
        ch = self._ship_channel
        if ch is None or ch.peer_closed():
            if ch is not None:
                _close(ch)
            self._ship_channel = None
            ch = self._open(time.monotonic() + self.settings.timeout)
            ch.deadline = None
            ch.timeout = None
            try:
                ch.keep_alive()
            except OSError as exc:
                _close(ch)
                raise TStorageUnavailable(
                    f"TStorage at {self.address}: keepalive refused ({exc}); not sent"
                ) from exc
            self._ship_channel = ch
        res = ch.put(_as_records(records))
        if res.is_ok():
            return
        refused = res.status == ResponseStatus.ERROR and ch.answered
        _close(ch)
        self._ship_channel = None
        if refused:
            raise TStorageRefused(f"TStorage at {self.address} refused the write; not stored")
        raise TStorageOutcomeUnknown(
            f"the connection to TStorage at {self.address} ended before it answered a write "
            f"({res.status.name})"
        )

    def _settle(self) -> None:
        # what this gateway acknowledged must be in TStorage before it asks anything
        if self._behind is not None:
            self._behind.settle(self._deadline())

    # -------------------------------------------------------------- commands
    def put(self, records: Sequence[PutRecord], *, replayable: bool = False) -> None:
        """Store records; returns only once TStorage answered OK, or with a journal
        (:meth:`write_behind`) and ``replayable``, once they are in the journal.

        ``replayable``: storing the records twice changes nothing readers see (a series'
        records, where the newest of equal records wins; not operations on unmapped keys).

        Concurrent callers share PUTs (group commit): while one PUT is on the wire, the
        records of the callers that arrive meanwhile are queued and go out together in the
        next one, so TStorage commits (and fsyncs) once for all of them. Each caller still
        returns only when the PUT holding its records was answered OK, and every caller of
        a failed PUT gets the error. Every caller hears within ``timeout`` of its call: a
        PUT's deadline is the earliest of its callers'.

        Raises:
            TStorageOutcomeUnknown: the records were sent but no answer came back in time;
                they may or may not be stored.
            TStorageUnavailable: not stored (unreachable, refused, or not sent in time).
        """
        if not records:
            return
        if self._behind is not None:
            if replayable and self._behind.add(records, self._deadline()):
                self._scope.put_tried = True
                return
            self._settle()  # after the journal's writes, as they were acknowledged
        self._scope.put_tried = True
        ticket = _Ticket(records, self._deadline())
        with self._put_lock:
            lead = not self._put_leader
            if not lead:  # only a caller queued behind a PUT in flight waits to be woken
                ticket.done = threading.Event()
            self._put_queue.append(ticket)
            self._put_leader = True
        if not lead:
            self._await(ticket)
            if not ticket.lead:
                if ticket.error is not None:
                    raise ticket.error
                self._answered()
                return
        self._lead_puts(ticket)
        if ticket.error is not None:
            raise ticket.error
        self._answered()

    def _await(self, ticket: _Ticket) -> None:
        # Queued behind a PUT in flight: leave the queue at the deadline, unless a PUT has
        # taken the records meanwhile (that PUT ends by this deadline too).
        if ticket.done.wait(max(ticket.deadline - time.monotonic(), 0.0)):
            return
        with self._put_lock:
            if not ticket.done.is_set() and ticket in self._put_queue:
                self._put_queue.remove(ticket)
                raise TStorageUnavailable(self._not_sent())
        ticket.done.wait()

    def _not_sent(self) -> str:
        return (
            f"TStorage at {self.address} did not take the write within "
            f"{self.settings.timeout:g} s (writes queued ahead of it); not stored"
        )

    def _lead_puts(self, mine: _Ticket) -> None:
        # Send queued batches until our own records are stored, then hand the lead to the
        # oldest waiting caller (so no caller serves others forever).
        try:
            while True:
                with self._put_lock:
                    queued, self._put_queue = self._put_queue, []
                now = time.monotonic()
                batch = [t for t in queued if t.deadline > now]
                for t in queued:
                    if t.deadline <= now:  # waited out its time behind earlier PUTs
                        t.error = TStorageUnavailable(self._not_sent())
                        if t is not mine:
                            t.done.set()
                if mine.deadline <= now:  # our caller must answer now: the next one sends
                    with self._put_lock:
                        self._put_queue[:0] = batch
                    break
                error: BaseException | None = None
                try:
                    if batch:
                        self._put_now(
                            [r for t in batch for r in t.records],
                            min(t.deadline for t in batch),
                        )
                except BaseException as exc:
                    error = exc
                    if not isinstance(exc, Exception):
                        for t in batch:  # interrupted: fail the batch, then stop leading
                            t.error = TStorageOutcomeUnknown(
                                "the write was interrupted; it may or may not be stored"
                            )
                            if t is not mine:
                                t.done.set()
                        raise
                for t in batch:
                    t.error = error
                    if t is not mine:
                        t.done.set()
                if mine in queued:
                    break
        finally:
            with self._put_lock:
                if self._put_queue:
                    heir = self._put_queue[0]
                    heir.lead = True
                    heir.done.set()
                else:
                    self._put_leader = False

    def _put_now(self, records: Sequence[PutRecord], deadline: float) -> None:
        data = _as_records(records)
        # A pooled connection may have died with a restarted TStorage: then one more try
        # on a fresh connection. Should the first PUT have been stored after all, the
        # second stores the same records again, which reads back the same (newest wins).
        sent = False  # some attempt put bytes on the wire and got no answer
        for attempt in (1, 2):
            try:
                with self._channel(deadline) as (ch, reused):
                    before = ch.bytes_sent
                    res = ch.put(data)
                    if res.is_ok():
                        return
                    # An error answer is the server's refusal (it may close the connection
                    # after it, as one over its limits does); a garbled one is no answer.
                    refused = res.status == ResponseStatus.ERROR and ch.answered
                    sent = sent or (ch.bytes_sent > before and not refused)
                    raise _Failed(res.status, refused, reused)  # drops the channel
            except _Failed as failed:
                stale = failed.reused and failed.status == ResponseStatus.DISCONNECTED
                if attempt == 1 and stale and time.monotonic() < deadline:
                    continue
                if sent:
                    raise self._outcome_unknown(failed.status) from None
                if failed.refused:
                    raise TStorageRefused(
                        f"TStorage at {self.address} refused the write; not stored"
                    ) from None
                raise TStorageUnavailable(
                    f"{self._failure('write', failed.status)}; not stored"
                ) from None
            except TStorageUnavailable as exc:  # no connection: nothing sent this time
                if sent:
                    raise self._outcome_unknown(ResponseStatus.DISCONNECTED) from exc
                raise TStorageUnavailable(f"{exc}; the write was not sent, not stored") from exc

    def _outcome_unknown(self, status: ResponseStatus) -> TStorageOutcomeUnknown:
        what = (
            f"did not answer within {self.settings.timeout:g} s or closed the connection"
            if status == ResponseStatus.DISCONNECTED
            else f"sent a garbled answer ({status.name})"
        )
        return TStorageOutcomeUnknown(
            f"TStorage at {self.address} {what} after the write was sent: it may or may "
            "not be stored (read it back to find out before writing it again)"
        )

    def put_columns(
        self,
        series: tuple[int, int, int],
        caps: npt.NDArray[np.int64],
        payloads: npt.NDArray[np.uint8],
    ) -> None:
        """Store one series' records given as columns, in one numpy PUT (TStorage assigns acq).

        Args:
            series: ``(cid, mid, moid)`` of every record.
            caps: capture times.
            payloads: an ``n x payload_size`` array, row ``i`` the payload of ``caps[i]``.

        Raises:
            TStorageUnavailable: not stored (refused, or nothing was sent).
            TStorageOutcomeUnknown: sent without an answer: may or may not be stored.
        """
        n = len(caps)
        if n == 0:
            return
        self._settle()
        size = int(payloads.shape[1])
        cid, mid, moid = series
        data: Any = {
            "cid": np.full(n, cid, dtype=np.int32),
            "mid": np.full(n, mid, dtype=np.int64),
            "moid": np.full(n, moid, dtype=np.int32),
            "cap": caps,
            "v0": np.ascontiguousarray(payloads).view(f"V{size}").reshape(n),
        }
        if not self._slots.acquire(timeout=self.settings.timeout):
            raise TStorageUnavailable(
                f"all {self.settings.connections} TStorage connections are busy; not stored"
            )
        try:
            ch = self._open_typed(NumpyPayloadType(f"V{size}"))
            try:
                res = ch.put(data)
                refused = res.status == ResponseStatus.ERROR and ch.answered
                sent = ch.bytes_sent > 0
            finally:
                _close(ch)
        finally:
            self._slots.release()
        if res.is_ok():
            return
        if refused:
            raise TStorageUnavailable(f"TStorage at {self.address} refused the write; not stored")
        if sent:
            raise self._outcome_unknown(res.status)
        raise TStorageUnavailable(f"{self._failure('write', res.status)}; not stored")

    def _open_typed(self, payload_type: Any) -> Channel[Any]:
        s = self.settings
        ch: Channel[Any] = Channel(
            s.host,
            s.port,
            payload_type,
            timeout=s.timeout,
            memory_limit=s.memory_limit,
            ssl_context=s.ssl_context,
        )
        try:
            self._connect(ch)
        except TStorageUnavailable as exc:
            raise TStorageUnavailable(f"{exc}; not stored") from exc.__cause__
        return ch

    def _failure(self, what: str, status: ResponseStatus) -> str:
        if status == ResponseStatus.DISCONNECTED:
            return (
                f"TStorage at {self.address} is unreachable, did not answer within "
                f"{self.settings.timeout:g} s or closed the connection; {what} not done"
            )
        return f"TStorage at {self.address} failed a {what} ({status.name})"

    def get(self, lo: KeyTuple, hi: KeyTuple) -> tuple[list[Fetched], int]:
        """Every record of the box ``[lo, hi)`` and the watermark ``acq0``.

        Raises:
            TStorageUnavailable: the read failed (nothing partial is returned).
        """
        out: list[Fetched] = []
        acq = self.stream(lo, hi, lambda batch: out.extend(batch))
        return out, acq

    def stream_columns(
        self,
        lo: KeyTuple,
        hi: KeyTuple,
        payload_size: int,
        sink: Callable[[npt.NDArray[Any]], None],
        batch_bytes: int | None = None,
    ) -> int:
        """Like :meth:`stream`, decoding records straight into numpy columns.

        ``sink`` gets structured arrays with fields ``moid, cap, acq`` and ``v0`` (the
        payload, ``payload_size`` raw bytes). Far faster than records one by one, for the
        streamed builds of indexes over fixed-size payloads.

        Raises:
            ColumnsUnavailable: a record's payload has another size (use :meth:`stream`).
            TStorageUnavailable: the read failed.
        """

        def on_batch(arrays: Any) -> None:
            for arr in arrays if isinstance(arrays, list) else [arrays]:
                sink(arr)

        def failed(status: ResponseStatus) -> Exception:
            if status == ResponseStatus.UNPARSEABLE_ENTITY:
                return ColumnsUnavailable(f"a record in the box is not {payload_size} bytes")
            return TStorageUnavailable(self._failure("read", status))

        return self._get_stream(lo, hi, payload_size, on_batch, batch_bytes, failed)

    def stream(
        self,
        lo: KeyTuple,
        hi: KeyTuple,
        sink: Callable[[list[Fetched]], None],
        batch_bytes: int | None = None,
    ) -> int:
        """Feed the records of ``[lo, hi)`` to ``sink`` in batches; returns ``acq0``.

        Memory stays bounded by the memory limit per batch, or by ``batch_bytes`` when
        given (smaller batches let the sink run more often; every record must fit).

        Raises:
            TStorageUnavailable: the read failed part-way (``sink`` may have seen a prefix).
        """
        batch: list[Fetched] = []

        def on_batch(records: object) -> None:
            batch.clear()
            batch.extend((r.key, r.value) for r in records)  # type: ignore[attr-defined]
            sink(batch)

        def failed(status: ResponseStatus) -> Exception:
            return TStorageUnavailable(self._failure("read", status))

        return self._get_stream(lo, hi, None, on_batch, batch_bytes, failed)

    def _get_stream(
        self,
        lo: KeyTuple,
        hi: KeyTuple,
        size: int | None,
        on_batch: Callable[[Any], None],
        batch_bytes: int | None,
        failed: Callable[[ResponseStatus], Exception],
    ) -> int:
        # One streamed GET on a pooled channel (a new connection per read costs a connect
        # and an accept each: hundreds when a rollup reads its edge chunks). A pooled
        # channel found stale before any batch arrived is replaced once.
        self._settle()
        delivered = [0]
        timeout = self.settings.timeout
        deadline = self._deadline()
        for attempt in (1, 2):
            try:
                with self._channel(deadline, size) as (ch, reused):

                    def counted(batch: object, ch: Channel[Any] = ch) -> None:
                        delivered[0] += 1
                        on_batch(batch)
                        ch.deadline = time.monotonic() + timeout  # progress: may go on
                        self._answered()

                    if batch_bytes is not None:
                        ch.memory_limit = min(self.settings.memory_limit, batch_bytes)
                    try:
                        res: ResponseAcq = ch.get_stream(Key(*lo), Key(*hi), counted)
                    finally:
                        ch.memory_limit = self.settings.memory_limit
                    if res.is_ok():
                        self._answered()
                        return int(res.acq)
                    stale = reused and res.status == ResponseStatus.DISCONNECTED
                    retry = attempt == 1 and stale and delivered[0] == 0
                    if retry and time.monotonic() < deadline:
                        raise _Retry  # drops the stale channel
                    raise failed(res.status)  # the channel is closed, not pooled
            except _Retry:
                continue
        raise AssertionError("unreachable")  # pragma: no cover


_NEVER_WAITED = threading.Event()


class _Ticket:
    """One caller's records waiting for a shared PUT."""

    __slots__ = ("deadline", "done", "error", "lead", "records")

    def __init__(self, records: Sequence[PutRecord], deadline: float) -> None:
        self.records = records
        self.deadline = deadline  # time.monotonic() by which the caller hears the outcome
        # set for a caller that waits (see TStorageLink.put); a leading caller's ticket is
        # never waited for or woken, and an Event per append is not free
        self.done = _NEVER_WAITED
        self.error: BaseException | None = None
        self.lead = False  # set when the caller must lead the next PUTs


class _Retry(Exception):
    """Internal: the pooled connection was stale; try once more on a fresh one."""


class _Failed(Exception):
    """Internal: a PUT did not succeed (``status``); ``refused``: TStorage said so."""

    def __init__(self, status: ResponseStatus, refused: bool, reused: bool) -> None:
        super().__init__(status.name)
        self.status, self.refused, self.reused = status, refused, reused


class ColumnsUnavailable(Exception):
    """A record of the box does not have the expected fixed payload size."""


def _payload_type(size: int | None) -> Any:
    # bytes payloads, or fixed-size ones decoded into numpy columns (a payload of 0 bytes,
    # ``unit``, has no payload field at all)
    if size is None:
        return BytesPayloadType()
    return NumpyPayloadType(f"V{size}" if size else None)


def _close(ch: Channel[Any]) -> None:
    with contextlib.suppress(Exception):
        ch.close()


def _as_records(records: Sequence[PutRecord]) -> list[Record]:
    return [Record(Key(cid, mid, moid, cap), p) for (cid, mid, moid, cap), p in records]
