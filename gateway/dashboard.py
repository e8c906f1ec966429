"""The live dashboard: its page, served from the gateway's own port, and the reads it needs.

Mounted by :func:`mount` on a built gateway (``gateway/app.py`` calls it):

* **HTTP.** ``GET /`` answers the dashboard page and ``GET /assets/<file>`` its bundle,
  both built by ``scripts/bootstrap-js.sh`` from ``gateway/dashboard/`` into
  ``gateway/dashboard/dist/`` (not committed). Every other path goes to socket.io as before.
  Pages carry a ``Content-Security-Policy`` allowing only same-origin scripts, styles and
  connections, so the page never fetches anything from elsewhere. Without a built bundle,
  ``/`` answers 503 with the command that builds it.
* **Events** in the znsocket namespace, answered with the usual envelopes
  (``{"data": ...}`` or ``{"error": {"msg", "type"}}``), each with one ``[args, kwargs]``
  argument like every command:

  ``dashboard:series`` ``[[], {}]``
      The mapped series: every List key of a ``list`` rule whose series has records in
      TStorage, plus the fully fixed keys of the configuration (shown even while empty).
      ``data = {"series": [{"key", "full_key", "pattern", "cid", "mid", "moid", "count",
      "first_time", "last_time", "latest"}, ...]}``; the times are the oldest and newest
      capture times in unix seconds (``null`` when empty) and ``latest`` the newest element
      as the List shows it.
  ``dashboard:window`` ``[[], {"key", "start"?, "end"?, "limit"?, "buckets"?, "latest"?}]``
      Records of one series whose capture time lies in ``[start, end)`` (unix seconds;
      ``null``/absent = unbounded). With ``latest = N`` only the last N of them. When the
      window holds more than ``2 * buckets`` records (``buckets`` given), the answer is
      downsampled to ``buckets`` equal time slices with ``min``/``max``/``mean``/``last``;
      otherwise it is the raw points, at most ``limit`` (default 10,000; the newest ones,
      with ``truncated: true``, when there are more). ``data = {"key", "count", "first_time",
      "last_time", "in_window", "mode": "raw" | "buckets", "t": [...], "v": [...]}`` (raw) or
      ``{..., "t", "min", "max", "mean", "last", "n"}`` (buckets, ``t`` = slice start;
      empty slices are left out). Values are numbers (an element ``{"t", "v"}`` gives its
      ``v``); anything not numeric is ``null``.

  Both read through the gateway's own storage (its indexes and change feed), and both
  answer ``TStorageUnavailable`` while TStorage is unreachable, which is what the page
  shows. With auth on, a series is listed and read only when the connection's token may
  read its key (checked as an ``lrange`` of the key).

Series discovery: TStorage has no "list series" query, so the first ``dashboard:series``
streams each list rule's box once (into numpy columns when the rule's payloads have a fixed
size) and keeps the distinct ``(cid, mid, moid)``; later calls re-read the boxes from their
watermark ``acq0`` (the change feed), which returns only what arrived since.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import mimetypes
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.elements import TSTORAGE_EPOCH_UNIX_NS
from gateway.errors import TStorageUnavailable
from gateway.keymap import CAP_RANGE, MID_RANGE, MOID_RANGE, KeyTuple, ListTarget, SeriesKey
from gateway.storage import GatewayStorage
from gateway.storage.link import ColumnsUnavailable, Fetched
from tstorage_client.channel import Channel
from tstorage_client.payload_type import NumpyPayloadType
from tstorage_client.record import Key
from tstorage_client.response import ResponseStatus
from znsocket.protocol.payload import Envelope, error_envelope_for

__all__ = ["DIST_DIR", "DashboardReads", "SeriesCatalog", "StaticDashboard", "mount"]

log = logging.getLogger("gateway.dashboard")

#: Where ``scripts/bootstrap-js.sh`` puts the built page.
DIST_DIR = Path(__file__).resolve().parent / "dashboard" / "dist"

SERIES_EVENT = "dashboard:series"
WINDOW_EVENT = "dashboard:window"

DEFAULT_LIMIT = 10_000
MAX_LIMIT = 200_000
MAX_BUCKETS = 10_000

_ACQ_MIN, _ACQ_MAX = -(2**63), 2**63 - 1
_DISCOVERY_BATCH_BYTES = 4 * 1024 * 1024
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

Authorize = Callable[[Any, str, list[Any], dict[str, Any]], None]


def _unix_s(cap: int) -> float:
    return (cap + TSTORAGE_EPOCH_UNIX_NS) / 1e9


def _cap(unix_s: Any, name: str) -> int:
    if (
        isinstance(unix_s, bool)
        or not isinstance(unix_s, (int, float))
        or not math.isfinite(unix_s)
    ):
        raise ValueError(f"{name} must be a number of unix seconds or null, not {unix_s!r}")
    cap = round(unix_s * 1e9) - TSTORAGE_EPOCH_UNIX_NS
    return min(max(cap, CAP_RANGE[0]), CAP_RANGE[1] + 1)


def _count(value: Any, name: str, default: int | None, bounds: tuple[int, int]) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} must be an integer in [{bounds[0]}, {bounds[1]}], not {value!r}")
    return value


def _numbers(elements: list[str]) -> npt.NDArray[np.float64]:
    """Numeric values of List elements (JSON text); ``{"t", "v"}`` elements give ``v``."""
    if not elements:
        return np.empty(0, dtype=np.float64)
    decoded = json.loads("[" + ",".join(elements) + "]")
    if isinstance(decoded[0], dict):
        decoded = [d.get("v") if isinstance(d, dict) else d for d in decoded]
    try:
        return np.asarray(decoded, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(
            [
                v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
                for v in decoded
            ],
            dtype=np.float64,
        )


def _json_floats(values: npt.NDArray[np.float64]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


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
                if len(arr):
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
    """The two dashboard events over a gateway's storage (no socket.io in here)."""

    def __init__(self, storage: GatewayStorage) -> None:
        self.storage = storage
        self.catalog = SeriesCatalog(storage)

    def _target(self, key: Any) -> ListTarget:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, not {key!r}")
        full = key if key.startswith("znsocket.List:") else "znsocket.List:" + key
        target = self.storage.resolve(full)
        if not isinstance(target, ListTarget):
            raise ValueError(f"{key!r} is not a List key of a map rule; the dashboard shows series")
        return target

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
        """``dashboard:series``: the listed series with count, first/last time and latest value."""
        out = []
        views = self.storage.series
        for full in self._keys():
            if not allowed(full):
                continue
            target = self.storage.resolve(full)
            if not isinstance(target, ListTarget):
                continue
            caps = views.caps(target)
            latest = views.lindex(target, -1) if len(caps) else None
            s = target.series
            out.append(
                {
                    "key": full.removeprefix("znsocket.List:"),
                    "full_key": full,
                    "pattern": target.rule.pattern.source,
                    "cid": s.cid,
                    "mid": s.mid,
                    "moid": s.moid,
                    "count": len(caps),
                    "first_time": _unix_s(int(caps[0])) if len(caps) else None,
                    "last_time": _unix_s(int(caps[-1])) if len(caps) else None,
                    "latest": None if latest is None else json.loads(latest),
                }
            )
        return {"series": out}

    def window(self, target: ListTarget, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``dashboard:window``: raw or downsampled records of one series in a time window."""
        unknown = set(kwargs) - {"key", "start", "end", "limit", "buckets", "latest"}
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        start = kwargs.get("start")
        end = kwargs.get("end")
        lo_cap = CAP_RANGE[0] if start is None else _cap(start, "start")
        hi_cap = CAP_RANGE[1] + 1 if end is None else _cap(end, "end")
        limit = _count(kwargs.get("limit"), "limit", DEFAULT_LIMIT, (1, MAX_LIMIT))
        buckets = _count(kwargs.get("buckets"), "buckets", None, (1, MAX_BUCKETS))
        latest = _count(kwargs.get("latest"), "latest", None, (1, MAX_LIMIT))
        assert limit is not None
        views = self.storage.series
        caps = views.caps(target)
        i0, i1 = (int(x) for x in np.searchsorted(caps, [lo_cap, hi_cap]))
        i1 = max(i0, i1)
        in_window = i1 - i0
        if latest is not None:
            i0 = max(i0, i1 - latest)
        head: dict[str, Any] = {
            "key": target.key.removeprefix("znsocket.List:"),
            "count": len(caps),
            "first_time": _unix_s(int(caps[0])) if len(caps) else None,
            "last_time": _unix_s(int(caps[-1])) if len(caps) else None,
            "in_window": in_window,
        }
        n = i1 - i0
        if buckets is not None and n > 2 * buckets:
            return head | self._buckets(
                target, caps[i0:i1], i0, buckets, lo_cap, hi_cap, start, end
            )
        truncated = n > limit
        if truncated:
            i0 = i1 - limit
        window_caps = caps[i0:i1]
        values = _numbers(views.lrange(target, i0, i1 - 1)) if i1 > i0 else np.empty(0)
        t = ((window_caps + TSTORAGE_EPOCH_UNIX_NS) / 1e9).tolist()
        return head | {"mode": "raw", "truncated": truncated, "t": t, "v": _json_floats(values)}

    def _buckets(
        self,
        target: ListTarget,
        caps: npt.NDArray[np.int64],
        offset: int,
        buckets: int,
        lo_cap: int,
        hi_cap: int,
        start: Any,
        end: Any,
    ) -> dict[str, Any]:
        # Unbounded sides of the window end at the data itself.
        lo = int(caps[0]) if start is None else lo_cap
        hi = int(caps[-1]) + 1 if end is None else hi_cap
        edges = np.linspace(float(lo), float(hi), buckets + 1)
        starts = np.searchsorted(caps, edges[:-1].astype(np.int64)).astype(np.int64)
        stops = np.append(starts[1:], len(caps))
        full = stops > starts
        starts, stops = starts[full], stops[full]
        values = _numbers(self.storage.series.lrange(target, offset, offset + len(caps) - 1))
        finite = ~np.isnan(values)
        counts = np.add.reduceat(finite.astype(np.int64), starts)
        sums = np.add.reduceat(np.where(finite, values, 0.0), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        t = ((edges[:-1][full] + TSTORAGE_EPOCH_UNIX_NS) / 1e9).tolist()
        return {
            "mode": "buckets",
            "t": t,
            "min": _json_floats(np.fmin.reduceat(values, starts)),
            "max": _json_floats(np.fmax.reduceat(values, starts)),
            "mean": _json_floats(mean),
            "last": _json_floats(values[stops - 1]),
            "n": (stops - starts).tolist(),
        }


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


def mount(app: Any, storage: GatewayStorage, authorize: Authorize | None = None) -> DashboardReads:
    """Serve the dashboard page from ``app`` and register its events.

    Args:
        app: The gateway's :class:`~znsocket.server.app.ZnSocketApp`; its ``wsgi_app`` is
            wrapped so ``/`` and ``/assets/`` serve the page.
        storage: The gateway's storage (series are read through it).
        authorize: The gateway's authorization hook, or ``None`` when auth is off.

    Returns:
        The reads behind the events (for tests and benchmarks).
    """
    reads = DashboardReads(storage)
    sio = app.sio
    namespace = app.namespace
    principals: dict[str, Any] = app.principals
    # These handlers wait on TStorage: run them in their own green thread, not on the reader.
    sio.background_events = frozenset(sio.background_events | {SERIES_EVENT, WINDOW_EVENT})

    def allowed(sid: str) -> Callable[[str], bool]:
        def check(full_key: str) -> bool:
            if authorize is None:
                return True
            try:
                authorize(principals.get(sid), "lrange", [full_key], {})
            except Exception:
                return False
            return True

        return check

    def parse(event: str, args: tuple[Any, ...]) -> dict[str, Any]:
        if (
            len(args) != 1
            or not isinstance(args[0], list)
            or len(args[0]) != 2
            or not isinstance(args[0][1], dict)
        ):
            raise ValueError(f"{event}: expected one data argument [args, kwargs]")
        return args[0][1]

    def series_handler(sid: str, *args: Any) -> Envelope:
        try:
            parse(SERIES_EVENT, args)
            return {"data": reads.series(allowed(sid))}
        except Exception as exc:
            return error_envelope_for(exc, SERIES_EVENT)

    def window_handler(sid: str, *args: Any) -> Envelope:
        try:
            kwargs = parse(WINDOW_EVENT, args)
            target = reads._target(kwargs.get("key"))
            if authorize is not None:
                authorize(principals.get(sid), "lrange", [target.key], {})
            return {"data": reads.window(target, kwargs)}
        except Exception as exc:
            return error_envelope_for(exc, WINDOW_EVENT)

    sio.on(SERIES_EVENT, namespace=namespace)(series_handler)
    sio.on(WINDOW_EVENT, namespace=namespace)(window_handler)
    app.wsgi_app = StaticDashboard(app.wsgi_app)
    log.info(
        "dashboard at / (%s)", "bundle " + str(DIST_DIR) if (DIST_DIR / "index.html").is_file()
        else "not built: run scripts/bootstrap-js.sh"
    )  # fmt: skip
    return reads
