"""The ``ts:*`` events on the gateway's socket.io server (``docs/time-series-events.md``).

Each handler checks the request's shape and the token's read access, calls
:class:`~gateway.timeseries.reads.TimeSeriesReads` and shapes its answer as JSON. The
handlers wait on TStorage, so they run in their own green thread, not on the connection's
reader.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.keymap import LIST_PREFIX, ListTarget, user_key
from gateway.storage import GatewayStorage
from gateway.timeseries.columns import (
    MAX_COLUMN_LIMIT,
    caps_column,
    column_offset,
    parse_extend,
    values_column,
)
from gateway.timeseries.downsample import numeric_dtype
from gateway.timeseries.reads import BucketWindow, RawWindow, TimeSeriesReads
from gateway.timeseries.times import (
    Unit,
    cap_in_unit,
    caps_in_unit,
    parse_duration,
    parse_time,
    parse_unit,
    watermark_text,
)
from znsocket.exceptions import DataError, PermissionDeniedError
from znsocket.protocol.payload import Envelope, error_envelope_for, parse_call_payload
from znsocket.server.dispatch import Authorize, malformed

__all__ = ["EVENTS", "mount"]

INFO, RANGE, LATEST, RESUME = "ts:info", "ts:range", "ts:latest", "ts:resume"
EXTEND, MRANGE = "ts:extend", "ts:mrange"
EVENTS = frozenset({INFO, RANGE, LATEST, RESUME, EXTEND, MRANGE})
#: series one ``ts:mrange`` reads at most by default (``[server] max_mrange_series``)
MAX_MRANGE_SERIES = 100
_WINDOW = {"start", "end", "limit", "buckets", "every", "align", "as_of", "unit"}

_ALLOWED = {
    INFO: {"key", "unit"},
    RANGE: {"key", "columns"} | _WINDOW,
    MRANGE: {"pattern", "keys", "columns"} | _WINDOW,
    EXTEND: {"key", "t", "v", "dtype", "unit"},
    LATEST: {"key", "n", "as_of", "unit"},
    RESUME: {"keys", "since", "unit"},
}


def _request(event: str, args: tuple[Any, ...]) -> tuple[list[Any], dict[str, Any]]:
    if len(args) != 1:
        raise _Malformed("expected one data argument [args, kwargs]")
    try:
        positional, kwargs = parse_call_payload(args[0])
    except ValueError as exc:
        raise _Malformed(str(exc)) from None
    unknown = set(kwargs) - _ALLOWED[event]
    if unknown:
        raise DataError(
            f"{event}: unknown argument(s) {', '.join(sorted(map(str, unknown)))}; "
            f"expected {', '.join(sorted(_ALLOWED[event]))}"
        )
    return positional, kwargs


class _Malformed(Exception):
    pass


def _key_arg(event: str, positional: list[Any], kwargs: dict[str, Any]) -> Any:
    if positional and "key" in kwargs:
        raise DataError(f"{event}: give the key once (positionally or as key=)")
    if len(positional) > 1:
        raise DataError(f"{event}: takes one positional argument, the key")
    if positional:
        return positional[0]
    if "key" not in kwargs:
        raise DataError(f"{event}: missing the key")
    return kwargs["key"]


def _columns(event: str, kwargs: dict[str, Any]) -> bool:
    value = kwargs.get("columns")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DataError(f"{event}: columns must be true or false, got {value!r}")
    return value


def _every(kwargs: dict[str, Any]) -> int | None:
    value = kwargs.get("every")
    return None if value is None else parse_duration(value, "every")


def _numbers(a: npt.NDArray[np.floating[Any]]) -> list[float | None]:
    # NaN and infinities are not JSON: null, as the codecs show them
    return [v if math.isfinite(v) else None for v in a.tolist()]


def _raw_window_answer(
    key: str, mode: str, w: RawWindow, t: Any, v: Any, **extra: Any
) -> dict[str, Any]:
    # the fields raw and column answers share, in the order both send them
    return {
        "key": key,
        "mode": mode,
        "count": w.count,
        "truncated": w.truncated,
        # a decimal string, like watermarks: JavaScript numbers cannot hold TStorage ns exactly
        "next": None if w.next_cap is None else str(w.next_cap),
        "t": t,
        "v": v,
        **extra,
        "watermark": watermark_text(w.watermark),
    }


def raw_answer(key: str, w: RawWindow, unit: Unit) -> dict[str, Any]:
    """The JSON answer of a raw window."""
    return _raw_window_answer(key, "raw", w, caps_in_unit(w.caps, unit), w.values)


def columns_answer(key: str, w: RawWindow, unit: Unit, dtype: np.dtype[Any]) -> dict[str, Any]:
    """The answer of a raw window in binary columns (``gateway/timeseries/columns.py``)."""
    t = caps_column(w.caps, unit, RANGE)
    return _raw_window_answer(key, "columns", w, t, values_column(w.values, dtype), dtype=dtype.str)


def _buckets_answer(
    key: str,
    w: BucketWindow,
    times: Callable[[npt.NDArray[np.int64]], Any],
    stats: Callable[[npt.NDArray[np.float64]], Any],
    counts: Callable[[npt.NDArray[np.int64]], Any],
    **extra: Any,
) -> dict[str, Any]:
    # the fields JSON and column answers share, each array through the form's encoder
    b = w.buckets
    out: dict[str, Any] = {
        "key": key,
        "mode": "buckets",
        "count": w.count,
        "buckets": w.slices,
        "every": w.every,
        **extra,
        "t": times(b.start),
        "n": counts(b.n),
        "min": stats(b.min),
        "max": stats(b.max),
        "mean": stats(b.mean),
        "last": stats(b.last),
    }
    if w.align is not None:
        assert b.end is not None and b.first_cap is not None and b.last_cap is not None
        assert b.first is not None
        out.update(
            align=w.align,
            t_end=times(b.end),
            t_first=times(b.first_cap),
            t_last=times(b.last_cap),
            first=stats(b.first),
        )
    out["watermark"] = watermark_text(w.watermark)
    return out


def buckets_answer(key: str, w: BucketWindow, unit: Unit) -> dict[str, Any]:
    """The JSON answer of a downsampled window (aligned: with each bucket's end, first and
    last record time and first value)."""
    return _buckets_answer(key, w, lambda a: caps_in_unit(a, unit), _numbers, lambda a: a.tolist())


def bucket_columns_answer(key: str, w: BucketWindow, unit: Unit) -> dict[str, Any]:
    """The answer of a downsampled window in binary columns: the JSON answer's fields, each
    array as bytes (times and counts ``<i8``, statistics ``<f8``: NaN and infinities as they
    are, where JSON shows null)."""
    return _buckets_answer(
        key,
        w,
        lambda a: caps_column(a, unit, RANGE),
        lambda a: a.astype("<f8", copy=False).tobytes(),
        lambda a: a.astype("<i8", copy=False).tobytes(),
        columns=True,
        dtype="<f8",
    )


class TimeSeriesEvents:
    """The handlers, given the reads and a read-access check ``(sid, full_key)``."""

    def __init__(
        self,
        reads: TimeSeriesReads,
        check: Callable[[str, str], None],
        check_write: Callable[[str, str], None] | None = None,
        max_series: int = MAX_MRANGE_SERIES,
    ) -> None:
        self.reads = reads
        self.check = check
        self.check_write = check_write or check
        self.max_series = max_series

    def _dtype(self, event: str, t: Any) -> np.dtype[Any]:
        codec = t.rule.shape.codec
        dtype = numeric_dtype(codec)
        if dtype is None:
            raise DataError(
                f"{event}: binary columns need a map rule whose codec holds one number "
                f"(e.g. struct:<d); {user_key(t.key)!r} has {codec.spec} (use the JSON form)"
            )
        return dtype

    def info(self, sid: str, positional: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``ts:info``."""
        t = self.reads.target(_key_arg(INFO, positional, kwargs))
        unit = parse_unit(kwargs.get("unit"))
        self.check(sid, t.key)
        count, first, last, wm = self.reads.info(t)
        return {
            "key": user_key(t.key),
            "count": count,
            "first": cap_in_unit(first, unit),
            "last": cap_in_unit(last, unit),
            "watermark": watermark_text(wm),
        }

    def range(self, sid: str, positional: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``ts:range``."""
        t = self.reads.target(_key_arg(RANGE, positional, kwargs))
        unit = parse_unit(kwargs.get("unit"))
        start = parse_time(kwargs.get("start"), "start")
        end = parse_time(kwargs.get("end"), "end")
        as_of = parse_time(kwargs.get("as_of"), "as_of")
        every = _every(kwargs)
        columns = _columns(RANGE, kwargs)
        self.check(sid, t.key)
        if kwargs.get("buckets") is not None or every is not None:
            if columns:
                column_offset(unit, RANGE)  # a bad unit is refused before the read
            w = self.reads.downsampled(
                t, kwargs.get("buckets"), start, end, as_of, every=every, align=kwargs.get("align")
            )
            if columns:
                return bucket_columns_answer(user_key(t.key), w, unit)
            return buckets_answer(user_key(t.key), w, unit)
        if kwargs.get("align") is not None:
            raise DataError(f"{RANGE}: align applies to downsampled reads (buckets or every)")
        if columns:
            dtype = self._dtype(RANGE, t)
            column_offset(unit, RANGE)  # a bad unit is refused before the read
            raw = self.reads.range_array(
                t, dtype, start, end, kwargs.get("limit"), as_of, MAX_COLUMN_LIMIT
            )
            return columns_answer(user_key(t.key), raw, unit, dtype)
        raw = self.reads.range(t, start, end, kwargs.get("limit"), as_of)
        return raw_answer(user_key(t.key), raw, unit)

    def mrange(self, sid: str, positional: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``ts:mrange``: one window of each series a pattern (or a list of keys) names."""
        if positional:
            raise DataError(f"{MRANGE}: takes pattern= or keys= and the window, by name")
        unit = parse_unit(kwargs.get("unit"))
        start = parse_time(kwargs.get("start"), "start")
        end = parse_time(kwargs.get("end"), "end")
        as_of = parse_time(kwargs.get("as_of"), "as_of")
        every = _every(kwargs)
        targets = self._series_of(sid, kwargs)
        columns = _columns(MRANGE, kwargs)
        buckets = kwargs.get("buckets")
        raw_mode = buckets is None and every is None
        # raw windows need the codec's dtype; downsampled ones are float64 statistics
        dtypes = [self._dtype(MRANGE, t) for t in targets] if columns and raw_mode else []
        if columns:
            column_offset(unit, MRANGE)  # a bad unit is refused before the reads
        windows: Sequence[RawWindow | BucketWindow] = self.reads.many(
            targets, start, end, limit=kwargs.get("limit"), buckets=buckets, every=every,
            as_of=as_of, align=kwargs.get("align"),
        )  # fmt: skip
        answers: list[dict[str, Any]] = []
        for i, (t, w) in enumerate(zip(targets, windows, strict=True)):
            key = user_key(t.key)
            if isinstance(w, BucketWindow):
                answers.append(
                    bucket_columns_answer(key, w, unit) if columns else buckets_answer(key, w, unit)
                )
            elif columns:
                answers.append(columns_answer(key, w, unit, dtypes[i]))
            else:
                answers.append(raw_answer(key, w, unit))
        mode = "raw" if raw_mode else "buckets"
        return {"mode": mode, "series": answers}

    def _series_of(self, sid: str, kwargs: dict[str, Any]) -> list[ListTarget]:
        pattern, keys = kwargs.get("pattern"), kwargs.get("keys")
        if (pattern is None) == (keys is None):
            raise DataError(f"{MRANGE}: give pattern= (a glob such as 'meters/7/*') or keys=")
        if keys is not None:
            if not isinstance(keys, list) or not keys:
                raise DataError(f"{MRANGE}: keys must be a non-empty list of series keys")
            if len(keys) > self.max_series:
                raise DataError(
                    f"{MRANGE}: {len(keys)} keys; at most {self.max_series} series per request "
                    "([server] max_mrange_series)"
                )
            targets = [self.reads.target(k) for k in keys]
            for t in targets:
                self.check(sid, t.key)
            return targets
        if not isinstance(pattern, str) or not pattern:
            raise DataError(f"{MRANGE}: pattern must be a non-empty glob, got {pattern!r}")
        glob = pattern.removeprefix(LIST_PREFIX)  # a pattern names List keys only
        found: list[ListTarget] = []
        for full in self.reads.series_keys():
            if not fnmatch.fnmatchcase(user_key(full), glob):
                continue
            try:
                self.check(sid, full)
            except PermissionDeniedError:
                continue  # a pattern names only the series the token may read
            if len(found) == self.max_series:
                raise DataError(
                    f"{MRANGE}: pattern {pattern!r} matches more than {self.max_series} series "
                    "([server] max_mrange_series): narrow the pattern"
                )
            found.append(self.reads.target(full))
        return sorted(found, key=lambda t: t.key)

    def extend(self, sid: str, positional: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``ts:extend``: append records sent as binary columns."""
        t = self.reads.target(_key_arg(EXTEND, positional, kwargs))
        unit = parse_unit(kwargs.get("unit"))
        self.check_write(sid, t.key)
        caps, payloads = parse_extend(kwargs, unit, self._dtype(EXTEND, t), EXTEND)
        before, after = self.reads.series.extend_columns(t, caps, payloads)
        return {"key": user_key(t.key), "count": len(caps), "start": before, "length": after}

    def latest(self, sid: str, positional: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``ts:latest``."""
        t = self.reads.target(_key_arg(LATEST, positional, kwargs))
        unit = parse_unit(kwargs.get("unit"))
        as_of = parse_time(kwargs.get("as_of"), "as_of")
        self.check(sid, t.key)
        raw = self.reads.latest(t, kwargs.get("n"), as_of)
        return raw_answer(user_key(t.key), raw, unit)

    def resume(self, sid: str, positional: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``ts:resume``."""
        if positional:
            raise DataError(f"{RESUME}: takes keys= and since= only")
        keys = kwargs.get("keys")
        if not isinstance(keys, list) or not keys:
            raise DataError(f"{RESUME}: keys must be a non-empty list of series keys")
        unit = parse_unit(kwargs.get("unit"))
        targets = [self.reads.target(k) for k in keys]
        raw_since = kwargs.get("since")
        since: list[int] = []
        for k, t in zip(keys, targets, strict=True):
            given = (
                raw_since.get(k, raw_since.get(t.key)) if isinstance(raw_since, dict) else raw_since
            )
            if given is None:
                raise DataError(f"{RESUME}: no watermark (since) for key {k!r}")
            w = parse_time(given, "since")
            assert w is not None
            since.append(w)
        for t in targets:
            self.check(sid, t.key)
        upto, changes = self.reads.resume(targets, since)
        out: dict[str, Any] = {}
        for k, t, c in zip(keys, targets, changes, strict=True):
            codec = t.rule.shape.codec
            out[k] = {
                "t": caps_in_unit(c.caps, unit),
                "v": codec.decode_many(c.payloads),
                "acq": [watermark_text(a) for a in c.acqs.tolist()],
            }
        return {"watermark": watermark_text(upto), "changes": out}


def mount(app: Any, storage: GatewayStorage, authorize: Authorize | None = None) -> TimeSeriesReads:
    """Register the ``ts:*`` events on a built gateway's znsocket app.

    Args:
        app: the :class:`~znsocket.server.app.ZnSocketApp`.
        storage: the gateway's storage.
        authorize: the gateway's authorization hook (``None`` when auth is off); a key is
            readable when its ``llen`` is allowed (``ts:mrange``: each key it reads).

    Returns:
        The reads behind the events (the Python API; also for tests and benchmarks).
    """
    reads = TimeSeriesReads(storage)
    sio = app.sio
    principals: dict[str, Any] = app.principals

    def check(sid: str, full_key: str) -> None:
        if authorize is not None:
            authorize(principals.get(sid), "llen", [full_key], {})

    def check_write(sid: str, full_key: str) -> None:
        if authorize is not None:
            authorize(principals.get(sid), "rpush", [full_key], {})

    handlers = TimeSeriesEvents(reads, check, check_write, storage.config.server.max_mrange_series)
    table: dict[str, Callable[[str, list[Any], dict[str, Any]], dict[str, Any]]] = {
        INFO: handlers.info,
        RANGE: handlers.range,
        LATEST: handlers.latest,
        RESUME: handlers.resume,
        EXTEND: handlers.extend,
        MRANGE: handlers.mrange,
    }

    def bind(event: str) -> Callable[..., Envelope]:
        run = table[event]

        def handler(sid: str, *args: Any) -> Envelope:
            try:
                positional, kwargs = _request(event, args)
                return {"data": run(sid, positional, kwargs)}
            except _Malformed as exc:
                return malformed(event, str(exc))
            except Exception as exc:
                return error_envelope_for(exc, event)

        return handler

    sio.background_events = frozenset(sio.background_events | EVENTS)
    for event in EVENTS:
        sio.on(event, namespace=app.namespace)(bind(event))
    return reads
