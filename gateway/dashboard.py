"""The live dashboard: its page, served from the gateway's own port, and its series listing.

Mounted by :func:`mount` on a built gateway (``gateway/app.py`` calls it):

* **HTTP.** ``GET /`` answers the dashboard page and ``GET /assets/<file>`` its bundle,
  both built by ``scripts/bootstrap-js.sh`` from ``gateway/dashboard/`` into
  ``gateway/dashboard/dist/`` (not committed). Every other path goes to socket.io as before.
  Pages carry a ``Content-Security-Policy`` allowing only same-origin scripts, styles and
  connections, so the page never fetches anything from elsewhere. Without a built bundle,
  ``/`` answers 503 with the command that builds it.
* **Event** ``dashboard:series`` ``[[], {"prefix"?, "match"?, "limit"?, "after"?}]`` in the
  znsocket namespace, answered with the
  usual envelopes (``{"data": ...}`` or ``{"error": {"msg", "type"}}``): the mapped series,
  i.e. every List key of a ``list`` rule whose series has records in TStorage, plus the
  fully fixed keys of the configuration (shown even while empty).
  Paging: ``prefix`` keeps the keys starting with it, ``match`` those matching a glob
  (``fnmatch``: ``*``, ``?``, ``[...]``), ``limit`` (a positive integer) answers at most that
  many in key order and ``after`` (a previous answer's ``next``) the keys after it; any of
  them sorts the answer by key. Without arguments every series is answered, in
  discovery order. A wrong argument is a ``DataError``.
  ``data = {"series": [{"key", "full_key", "pattern", "cid", "mid", "moid", "count",
  "first_time", "last_time", "latest", "unit", "label"}, ...], "examples": [key, ...],
  "next": key | null}``; ``next`` is the last key of the page when more follow;
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

Series discovery (:mod:`gateway.timeseries.catalog`, shared with ``ts:mrange``): which
series exist is saved in TStorage under ``[tstorage] index_cid`` (a marker per series and a
watermark per rule box, :mod:`gateway.timeseries.catalog_store`), so a gateway lists them
with one GET of the markers plus the change feed since the watermark, not the data; without
them it streams each list rule's box once. Later calls re-read the boxes from their
watermark. Count, times and latest value of the series of a page come from their heads
(:mod:`gateway.storage.heads`, saved with the summaries): one GET of the page's heads and
one of what its series received since, whatever the page's size; a series whose head is
not proven current by that read is answered from its chunk summaries.
"""

from __future__ import annotations

import fnmatch
import logging
import mimetypes
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gateway.keymap import ListTarget, SeriesKey
from gateway.storage import GatewayStorage
from gateway.storage.heads import Head
from gateway.timeseries.catalog import SeriesCatalog
from gateway.timeseries.reads import TimeSeriesReads, user_key
from gateway.timeseries.times import cap_in_unit
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

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


_SERIES_ARGS = ("prefix", "match", "limit", "after")


def _series_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The checked paging arguments of ``dashboard:series``."""
    unknown = sorted(set(kwargs) - set(_SERIES_ARGS))
    if unknown:
        raise DataError(
            f"{SERIES_EVENT}: unknown argument(s) {', '.join(unknown)}; "
            f"it takes {', '.join(_SERIES_ARGS)}"
        )
    for name in ("prefix", "match", "after"):
        if kwargs.get(name) is not None and not isinstance(kwargs[name], str):
            raise DataError(f"{SERIES_EVENT}: {name} must be a string, got {kwargs[name]!r}")
    limit = kwargs.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"{SERIES_EVENT}: limit must be a positive integer, got {limit!r}")
    return {name: kwargs.get(name) for name in _SERIES_ARGS}


class DashboardReads:
    """The ``dashboard:series`` listing over the gateway's time-series reads (no socket.io here).

    Args:
        reads: the gateway's :class:`~gateway.timeseries.reads.TimeSeriesReads` (the reads
            behind the ``ts:*`` events), whose storage also serves series discovery.
    """

    def __init__(self, reads: TimeSeriesReads) -> None:
        self.reads = reads
        self.storage: GatewayStorage = reads.storage
        self.catalog = reads.catalog

    def _keys(self) -> Iterable[str]:
        return self.reads.series_keys()

    def series(
        self,
        allowed: Callable[[str], bool],
        prefix: str | None = None,
        match: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """``dashboard:series``: the listed series with count, first/last time and latest value.

        Args:
            allowed: whether the connection may read a full key.
            prefix: only the user keys that start with it.
            match: only the user keys that match this glob (``fnmatch``: ``*``, ``?``, ``[...]``).
            limit: at most this many series (in key order), the rest from ``next``.
            after: only the user keys after this one in key order (a previous ``next``).

        Returns:
            ``{"series", "examples", "next"}``; ``next`` is the last key of this page when
            more series follow, else ``None``.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        paged = prefix is not None or match is not None or limit is not None or after is not None
        keys = list(self._keys())
        if paged:  # key order, so a page's last key continues the listing
            keys.sort(key=user_key)
        page: list[tuple[str, ListTarget]] = []
        more = False
        for full in keys:
            name = user_key(full)
            if after is not None and name <= after:
                continue
            if prefix is not None and not name.startswith(prefix):
                continue
            if match is not None and not fnmatch.fnmatchcase(name, match):
                continue
            if not allowed(full):
                continue
            target = self.storage.resolve(full)
            if not isinstance(target, ListTarget):
                continue
            if limit is not None and len(page) == limit:
                more = True
                break
            page.append((full, target))
        out = self._entries(page)
        return {
            "series": out,
            "examples": self._examples(allowed),
            "next": out[-1]["key"] if more else None,
        }

    def _entries(self, page: list[tuple[str, ListTarget]]) -> list[dict[str, Any]]:
        """The entries of a page: from the saved series heads where they are proven
        current (a few GETs for the whole page), else from each series' summaries."""
        heads = self.storage.series.heads
        known: dict[SeriesKey, Head] = {}
        saved: dict[SeriesKey, Head | None] = {}
        if heads is not None:
            by_cid: dict[int, list[SeriesKey]] = {}
            for _, target in page:
                by_cid.setdefault(target.series.cid, []).append(target.series)
            for series in by_cid.values():
                newest = heads.newest(series)
                saved.update(newest)
                current, _ = heads.current({s: h for s, h in newest.items() if h is not None})
                known.update(current)
        out = []
        for full, target in page:
            s = target.series
            head = known.get(s)
            out.append(self._entry(full, target, head))
            if head is None and heads is not None and saved.get(s) is None:
                # missing or unreadable: saved again (built first if need be)
                self.storage.series.save_head(target)
        return out

    def _entry(self, full: str, target: ListTarget, head: Head | None = None) -> dict[str, Any]:
        if head is not None and (head.count == 0 or head.payload is not None):
            count, first, last = head.count, head.first, head.last
            codec = target.rule.shape.codec
            newest: list[Any] = []
            if head.payload is not None:
                newest = list(codec.decode_many([head.payload]))
        else:
            count, first, last, _ = self.reads.info(target)
            newest = list(self.reads.latest(target, 1).values) if count else []
        s = target.series
        rule = target.rule
        return {
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

    def _examples(self, allowed: Callable[[str], bool]) -> list[str]:
        """One writable List key per list rule, for the page to show how to add data."""
        keymap = self.storage.keymap
        out = []
        for rule in keymap.rules:
            if rule.kind != "list" or rule.read_only:
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
            if positional:
                raise DataError(
                    f"{SERIES_EVENT} takes only keyword arguments "
                    f"({', '.join(_SERIES_ARGS)}): send [[], {{...}}]"
                )
            return {"data": listing.series(allowed(sid), **_series_args(kwargs))}
        except Exception as exc:
            return error_envelope_for(exc, SERIES_EVENT)

    sio.on(SERIES_EVENT, namespace=app.namespace)(series_handler)
    app.wsgi_app = StaticDashboard(app.wsgi_app)
    log.info(
        "dashboard at / (%s)", "bundle " + str(DIST_DIR) if (DIST_DIR / "index.html").is_file()
        else "not built: run scripts/bootstrap-js.sh"
    )  # fmt: skip
    return listing
