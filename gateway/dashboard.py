"""The live dashboard: its page, served from the gateway's own port, and its series listing.

Mounted by :func:`mount` on a built gateway (``gateway/app.py`` calls it):

* **HTTP.** ``GET /`` answers the dashboard page and ``GET /assets/<file>`` its bundle,
  both built by ``scripts/bootstrap-js.sh`` from ``gateway/dashboard/`` into
  ``gateway/dashboard/dist/`` (not committed). Every other path goes to socket.io as before.
  Pages carry a ``Content-Security-Policy`` allowing only same-origin scripts, styles and
  connections, so the page never fetches anything from elsewhere. Without a built bundle,
  ``/`` answers 503 with the command that builds it.
* **Event** ``dashboard:series`` ``[[], {}]`` in the znsocket namespace, answered with the
  usual envelopes (``{"data": ...}`` or ``{"error": {"msg", "type"}}``): the mapped series,
  i.e. every List key of a ``list`` rule whose series has records in TStorage, plus the
  fully fixed keys of the configuration (shown even while empty).
  ``data = {"series": [{"key", "full_key", "pattern", "cid", "mid", "moid", "count",
  "first_time", "last_time", "latest", "unit", "label"}, ...], "examples": [key, ...]}``;
  ``unit`` and ``label`` are the map rule's (``null`` when it sets none), ``examples`` one
  writable List key per list rule (what the page suggests when nothing is listed); ``count``,
  the oldest and newest capture
  times (unix seconds, ``null`` when empty) and ``latest`` (the newest value, as
  ``ts:latest`` gives it) come from the same reads as ``ts:info`` / ``ts:latest``. It
  answers ``TStorageUnavailable`` while TStorage is unreachable, which is what the page
  shows. With auth on, a series is listed only when the connection's token may read its
  key (checked as an ``lrange`` of the key).

Everything else the page reads (windows, downsampled views, the newest records) goes
through the documented ``ts:*`` events (``docs/time-series-events.md``).

Series discovery: TStorage has no "list series" query, so the first ``dashboard:series``
streams each list rule's box once (into numpy columns when the rule's payloads have a fixed
size) and keeps the distinct ``(cid, mid, moid)``; later calls re-read the boxes from their
watermark ``acq0`` (the change feed), which returns only what arrived since.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gateway.errors import TStorageUnavailable
from gateway.keymap import CAP_RANGE, MID_RANGE, MOID_RANGE, KeyTuple, ListTarget, SeriesKey
from gateway.storage import GatewayStorage
from gateway.storage.link import ColumnsUnavailable, Fetched
from gateway.timeseries.reads import TimeSeriesReads, user_key
from gateway.timeseries.times import cap_in_unit
from tstorage_client.channel import Channel
from tstorage_client.payload_type import NumpyPayloadType
from tstorage_client.record import Key
from tstorage_client.response import ResponseStatus
from znsocket.exceptions import DataError
from znsocket.protocol.payload import Envelope, error_envelope_for, parse_call_payload
from znsocket.server.dispatch import Authorize, malformed

__all__ = [
    "DIST_DIR",
    "SERIES_EVENT",
    "DashboardReads",
    "SeriesCatalog",
    "StaticDashboard",
    "mount",
]

log = logging.getLogger("gateway.dashboard")

#: Where ``scripts/bootstrap-js.sh`` puts the built page.
DIST_DIR = Path(__file__).resolve().parent / "dashboard" / "dist"

#: The one event of the dashboard's own: the listing of mapped series.
SERIES_EVENT = "dashboard:series"

_ACQ_MIN, _ACQ_MAX = -(2**63), 2**63 - 1
_DISCOVERY_BATCH_BYTES = 4 * 1024 * 1024
_SERIES_FIELDS = ("cid", "mid", "moid")
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class SeriesCatalog:
    """The series of the list rules that have records, found by streaming the rules' boxes.

    Boxes whose rules have fixed-size payloads (``struct:<FMT>``, ``unit``) are streamed
    into numpy columns and reduced with ``np.unique`` (a million records in well under a
    second); other boxes record by record.
    """

    def __init__(self, storage: GatewayStorage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._seen: set[tuple[int, int, int]] = set()
        # box -> (acq0, fixed payload size of its rule or None)
        self._boxes: dict[tuple[KeyTuple, KeyTuple], tuple[int, int | None]] = {}
        for rule in storage.keymap.rules:
            if rule.kind != "list":
                continue
            mid = (
                (rule.mid, rule.mid + 1)
                if isinstance(rule.mid, int)
                else (MID_RANGE[0], MID_RANGE[1] + 1)
            )
            moid = (
                (rule.moid, rule.moid + 1)
                if isinstance(rule.moid, int)
                else (MOID_RANGE[0], MOID_RANGE[1] + 1)
            )
            lo: KeyTuple = (rule.cid, mid[0], moid[0], CAP_RANGE[0], _ACQ_MIN)
            hi: KeyTuple = (rule.cid + 1, mid[1], moid[1], CAP_RANGE[1] + 1, _ACQ_MAX)
            size = storage.series.view(rule.index).shape.codec.fixed_size
            known = self._boxes.get((lo, hi))
            if known is None or known[1] != size:  # two rules on one box: read records
                self._boxes[(lo, hi)] = (_ACQ_MIN, size if known is None else None)

    def series(self) -> list[SeriesKey]:
        """Every series with at least one record, caught up with TStorage.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        with self._lock:
            for (lo, hi), (acq0, size) in list(self._boxes.items()):
                since: KeyTuple = (*lo[:4], acq0)
                acq = None
                if size is not None:
                    with contextlib.suppress(ColumnsUnavailable):
                        acq = self._stream_columns(since, hi, size)
                if acq is None:
                    acq = self._stream_records(since, hi)
                self._boxes[(lo, hi)] = (max(acq0, acq), size)
            return [SeriesKey(*s) for s in sorted(self._seen)]

    def _stream_records(self, lo: KeyTuple, hi: KeyTuple) -> int:
        seen = self._seen

        def take(batch: list[Fetched]) -> None:
            seen.update((k.cid, k.mid, k.moid) for k, _ in batch)

        return self.storage.link.stream(lo, hi, take, _DISCOVERY_BATCH_BYTES)

    def _stream_columns(self, lo: KeyTuple, hi: KeyTuple, size: int) -> int:
        s = self.storage.link.settings
        ch: Channel[Any] = Channel(
            s.host,
            s.port,
            NumpyPayloadType(f"V{size}" if size else None),
            timeout=s.timeout,
            memory_limit=min(s.memory_limit, _DISCOVERY_BATCH_BYTES),
        )
        if not ch.connect().is_ok():
            raise TStorageUnavailable(f"TStorage at {self.storage.link.address} is unreachable")
        seen = self._seen

        def take(arrays: Any) -> None:
            time.sleep(0)  # let other clients run between batches
            for arr in arrays if isinstance(arrays, list) else [arrays]:
                if len(arr) and all(bool((arr[f] == arr[f][0]).all()) for f in _SERIES_FIELDS):
                    # one series in the whole batch (the usual case): no sort of the rows
                    seen.add((int(arr["cid"][0]), int(arr["mid"][0]), int(arr["moid"][0])))
                elif len(arr):
                    keys = np.unique(
                        np.stack([arr["cid"], arr["mid"], arr["moid"]], axis=1), axis=0
                    )
                    seen.update(map(tuple, keys.tolist()))

        try:
            res = ch.get_stream(Key(*lo), Key(*hi), take)
        finally:
            with contextlib.suppress(Exception):
                ch.close()
        if res.status == ResponseStatus.UNPARSEABLE_ENTITY:
            raise ColumnsUnavailable(f"a record in the box is not {size} bytes")
        if not res.is_ok():
            raise TStorageUnavailable(
                f"TStorage at {self.storage.link.address}: read failed ({res.status.name})"
            )
        return int(res.acq)


class DashboardReads:
    """The ``dashboard:series`` listing over the gateway's time-series reads (no socket.io here).

    Args:
        reads: the gateway's :class:`~gateway.timeseries.reads.TimeSeriesReads` (the reads
            behind the ``ts:*`` events), whose storage also serves series discovery.
    """

    def __init__(self, reads: TimeSeriesReads) -> None:
        self.reads = reads
        self.storage: GatewayStorage = reads.storage
        self.catalog = SeriesCatalog(self.storage)

    def _keys(self) -> Iterable[str]:
        found: dict[str, None] = {}
        keymap = self.storage.keymap
        for rule in keymap.rules:  # fixed keys of the configuration, even while empty
            if rule.kind == "list" and not rule.pattern.names:
                assert isinstance(rule.mid, int) and isinstance(rule.moid, int)
                key = keymap.render(rule, rule.mid, rule.moid)
                if key is not None:
                    found[key] = None
        for series in self.catalog.series():
            for key, field in keymap.keys_for_series(series):
                if field is None:
                    found[key] = None
        return found

    def series(self, allowed: Callable[[str], bool]) -> dict[str, Any]:
        """``dashboard:series``: the listed series with count, first/last time and latest value.

        Args:
            allowed: whether the connection may read a full key.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        out = []
        for full in self._keys():
            if not allowed(full):
                continue
            target = self.storage.resolve(full)
            if not isinstance(target, ListTarget):
                continue
            count, first, last, _ = self.reads.info(target)
            newest = self.reads.latest(target, 1).values if count else []
            s = target.series
            rule = self.storage.series.view(target.rule.index).rule
            out.append(
                {
                    "key": user_key(full),
                    "full_key": full,
                    "pattern": target.rule.pattern.source,
                    "cid": s.cid,
                    "mid": s.mid,
                    "moid": s.moid,
                    "count": count,
                    "first_time": cap_in_unit(first, "unix_s"),
                    "last_time": cap_in_unit(last, "unix_s"),
                    "latest": newest[-1] if newest else None,
                    "unit": rule.unit,
                    "label": rule.label,
                }
            )
        return {"series": out, "examples": self._examples(allowed)}

    def _examples(self, allowed: Callable[[str], bool]) -> list[str]:
        """One writable List key per list rule, for the page to show how to add data."""
        keymap = self.storage.keymap
        out = []
        for rule in keymap.rules:
            if rule.kind != "list" or self.storage.series.view(rule.index).rule.read_only:
                continue
            mid = rule.mid if isinstance(rule.mid, int) else 1
            moid = rule.moid if isinstance(rule.moid, int) else 1
            key = keymap.render(rule, mid, moid)
            if key is not None and allowed(key) and self.storage.resolve(key) is not None:
                out.append(user_key(key))
        return out


class StaticDashboard:
    """WSGI middleware: the dashboard page at ``/`` and its bundle under ``/assets/``."""

    def __init__(self, app: Any, dist: Path = DIST_DIR) -> None:
        self.app = app
        self.dist = dist

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path in ("/", "/index.html") or path.startswith("/assets/"):
            if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
                return self._answer(start_response, "405 Method Not Allowed", b"GET only\n")
            return self._file(path, start_response)
        return self.app(environ, start_response)

    def _file(self, path: str, start_response: Callable[..., Any]) -> list[bytes]:
        if path in ("/", "/index.html"):
            file = self.dist / "index.html"
        else:
            name = path.removeprefix("/assets/")
            # Only plain names of files the build produced: no path traversal.
            if not name or "/" in name or "\\" in name or name.startswith("."):
                return self._answer(start_response, "404 Not Found", b"not found\n")
            file = self.dist / "assets" / name
        if not file.is_file():
            if file.name == "index.html":
                body = b"dashboard not built: run scripts/bootstrap-js.sh\n"
                return self._answer(start_response, "503 Service Unavailable", body)
            return self._answer(start_response, "404 Not Found", b"not found\n")
        body = file.read_bytes()
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        cache = "no-cache" if file.name == "index.html" else "public, max-age=3600"
        return self._answer(start_response, "200 OK", body, ctype, cache)

    @staticmethod
    def _answer(
        start_response: Callable[..., Any],
        status: str,
        body: bytes,
        ctype: str = "text/plain; charset=utf-8",
        cache: str = "no-store",
    ) -> list[bytes]:
        start_response(
            status,
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                ("Cache-Control", cache),
                ("Content-Security-Policy", _CSP),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]


def mount(app: Any, reads: TimeSeriesReads, authorize: Authorize | None = None) -> DashboardReads:
    """Serve the dashboard page from ``app`` and register ``dashboard:series``.

    Args:
        app: The gateway's :class:`~znsocket.server.app.ZnSocketApp`; its ``wsgi_app`` is
            wrapped so ``/`` and ``/assets/`` serve the page.
        reads: The gateway's time-series reads (``Gateway.reads``, behind the ``ts:*``
            events), through which the listing reads each series.
        authorize: The gateway's authorization hook, or ``None`` when auth is off.

    Returns:
        The listing behind the event (for tests and benchmarks).
    """
    listing = DashboardReads(reads)
    sio = app.sio
    principals: dict[str, Any] = app.principals
    # The listing waits on TStorage: run it in its own green thread, not on the reader.
    sio.background_events = frozenset(sio.background_events | {SERIES_EVENT})

    def allowed(sid: str) -> Callable[[str], bool]:
        def check(full_key: str) -> bool:
            if authorize is None:
                return True
            try:
                authorize(principals.get(sid), "llen", [full_key], {})
            except Exception:
                return False
            return True

        return check

    def series_handler(sid: str, *args: Any) -> Envelope:
        if len(args) != 1:
            return malformed(SERIES_EVENT, "expected one data argument [args, kwargs]")
        try:
            positional, kwargs = parse_call_payload(args[0])
        except ValueError as exc:
            return malformed(SERIES_EVENT, str(exc))
        try:
            if positional or kwargs:
                raise DataError(f"{SERIES_EVENT} takes no arguments: send [[], {{}}]")
            return {"data": listing.series(allowed(sid))}
        except Exception as exc:
            return error_envelope_for(exc, SERIES_EVENT)

    sio.on(SERIES_EVENT, namespace=app.namespace)(series_handler)
    app.wsgi_app = StaticDashboard(app.wsgi_app)
    log.info(
        "dashboard at / (%s)", "bundle " + str(DIST_DIR) if (DIST_DIR / "index.html").is_file()
        else "not built: run scripts/bootstrap-js.sh"
    )  # fmt: skip
    return listing
