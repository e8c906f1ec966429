"""``TimeSeries``: a client-side proxy for the gateway's ``ts:*`` events.

Works with any client object whose ``call(event, *args, **kwargs)`` sends
``[args, kwargs]`` and returns the raw answer envelope (our ``znsocket.Client``, upstream's
``znsocket.Client``). Bulk transfers (:meth:`TimeSeries.extend`, and reads of rules whose
codec holds one number) travel as binary columns (``gateway/timeseries/columns.py``), sent
through the client's Socket.IO connection (``client.sio``), which carries ``bytes`` as
binary attachments. Only numpy is needed; pandas is imported when ``to_pandas`` or
``many`` is called (``pip install 'tstorage-gateway[pandas]'``).

Times given are ``datetime``/pandas ``Timestamp`` (naive = UTC), ISO-8601 strings,
``numpy.datetime64`` or ints of unix ns, sent as ISO-8601 strings to the nanosecond (their
meaning needs no unit); answers are asked for in ``unix_ns`` and returned as UTC.

    ts = TimeSeries(client, "meters/7/3")
    ts.append(datetime.now(timezone.utc), 230.5)
    window = ts[np.datetime64("2026-11-22T08:00"):np.datetime64("2026-11-22T09:00")]
    t, v = window.to_numpy()
    ts.last("1h", every="1min").to_pandas()
    TimeSeries.many(client, "meters/7/*", every="1min")
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from gateway import errors as gateway_errors
from gateway.timeseries.columns import MAX_COLUMN_LIMIT, extend_chunk
from gateway.timeseries.times import parse_duration, parse_time
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket import exceptions as zn_exceptions
from znsocket.objects.base import LIST_PREFIX

__all__ = ["Downsampled", "Resumed", "TimeSeries", "TimeSeriesError", "Window"]

_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_PAGE = 100_000

#: a time: ``datetime``/pandas ``Timestamp`` (naive = UTC), ``numpy.datetime64``, an ISO-8601
#: string, or an int of unix nanoseconds
TimeLike = dt.datetime | np.datetime64 | str | int | None
#: a duration: ``"30s"``, ``"5min"``, ``"1h"``, ``"7d"``, a ``timedelta`` or int nanoseconds
DurationLike = str | dt.timedelta | np.timedelta64 | int


class _Caller(Protocol):
    def call(self, event: str, *args: Any, **kwargs: Any) -> Any: ...


class TimeSeriesError(Exception):
    """The gateway answered a ``ts:*`` request with an error it has no class for here."""


def _raise(envelope: Any, event: str) -> Any:
    if not isinstance(envelope, dict):
        raise TimeSeriesError(f"{event}: unexpected answer {envelope!r:.200}")
    if "error" in envelope:
        err = envelope["error"] or {}
        name, msg = str(err.get("type", "")), str(err.get("msg", ""))
        cls = getattr(zn_exceptions, name, None) or getattr(gateway_errors, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            raise cls(msg)
        if name == "TypeError":
            raise TypeError(msg)
        raise TimeSeriesError(f"{name}: {msg}")
    return envelope.get("data")


def _unix_ns(value: Any) -> int:
    """One time as unix nanoseconds (UTC).

    Takes a ``datetime`` or pandas ``Timestamp`` (naive = UTC), a ``numpy.datetime64``, an
    ISO-8601 string (no zone = UTC) or an int of unix nanoseconds.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"a time is not a bool: {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ValueError("a time is NaT")
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, dt.datetime):
        if hasattr(value, "nanosecond") and isinstance(getattr(value, "value", None), int):
            if value != value:  # pandas NaT
                raise ValueError("a time is NaT")
            # a pandas Timestamp: exact ns, UTC
            return int(value.as_unit("ns").value)  # type: ignore[attr-defined]
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        d = value - _UNIX_EPOCH
        return (d.days * 86_400 + d.seconds) * 10**9 + d.microseconds * 1000
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            return parse_time(text, "time") + EPOCH_OFFSET_NS  # type: ignore[operator]
        except zn_exceptions.DataError as exc:
            raise ValueError(str(exc)) from None
    raise TypeError(
        "a time is a datetime, pandas Timestamp, numpy.datetime64, ISO-8601 string or int "
        f"(unix ns), not {value!r:.80}"
    )


def _iso(unix_ns: int) -> str:
    # requests carry ISO-8601 times to the nanosecond: their meaning needs no unit
    return str(np.datetime_as_string(np.datetime64(unix_ns, "ns"), unit="ns")) + "Z"


def _wire_time(value: TimeLike) -> str | None:
    """A time as the events take it: an ISO-8601 string (exact to the nanosecond)."""
    return None if value is None else _iso(_unix_ns(value))


def _duration_ns(value: Any, name: str) -> int:
    """A positive duration as ns: ``"5min"``, ``"1h"``, a ``timedelta``, ``numpy.timedelta64``,
    pandas ``Timedelta`` or int ns."""
    if hasattr(value, "components") and isinstance(getattr(value, "value", None), int):
        ns = int(value.as_unit("ns").value)  # a pandas Timedelta
    elif isinstance(value, dt.timedelta):
        ns = (value.days * 86_400 + value.seconds) * 10**9 + value.microseconds * 1000
    elif isinstance(value, np.timedelta64):
        ns = int(value.astype("timedelta64[ns]").astype(np.int64))
    else:
        try:
            ns = parse_duration(value, name)
        except zn_exceptions.DataError as exc:
            raise ValueError(str(exc)) from None
    if ns <= 0:
        raise ValueError(f"{name}: a duration must be positive, got {value!r}")
    return ns


def _times(unix_ns: list[int] | bytes) -> npt.NDArray[np.datetime64]:
    if isinstance(unix_ns, (bytes, bytearray)):
        # a view: range() copies the pages into one array anyway
        return np.frombuffer(unix_ns, dtype="<i8").view("datetime64[ns]")
    return np.asarray(unix_ns, dtype=np.int64).astype("datetime64[ns]")


def _column_times(t: Any) -> npt.NDArray[np.int64]:
    """Times of :meth:`TimeSeries.extend` as int64 unix ns."""
    if hasattr(t, "tz") and hasattr(t, "tz_convert"):  # a pandas DatetimeIndex
        # its unit may be s/ms/us/ns (pandas 2+), and with a time zone the wall times
        # are local: to naive UTC first, then numpy datetime64[ns]
        if t.tz is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        t = t.to_numpy(dtype="datetime64[ns]")
    arr = np.asarray(t)
    if arr.ndim != 1:
        raise ValueError(f"times must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "M":
        if bool(np.isnat(arr).any()):
            raise ValueError("times hold NaT; not stored")
        return arr.astype("datetime64[ns]").astype(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind in "OU":  # datetimes, Timestamps, ISO strings, ints, one by one
        return np.fromiter((_unix_ns(x) for x in arr.tolist()), dtype=np.int64, count=len(arr))
    raise TypeError(
        "times are datetimes, pandas Timestamps, numpy.datetime64 values, ISO-8601 strings or "
        f"ints (unix ns), got dtype {arr.dtype}"
    )


def _split_frame(t: Any, v: Any) -> tuple[Any, Any]:
    """``(times, values)`` of the arguments of :meth:`TimeSeries.extend`."""
    if v is not None:
        return t, v
    if hasattr(t, "columns"):  # a pandas DataFrame
        cols = list(t.columns)
        if len(cols) != 1 and "v" not in cols:
            raise ValueError(f"a DataFrame needs one column or a column 'v', has {cols}")
        return t.index, t["v" if "v" in cols else cols[0]].to_numpy()
    if hasattr(t, "index") and hasattr(t, "to_numpy"):  # a pandas Series
        return t.index, t.to_numpy()
    raise TypeError("extend(t, v) needs values, or a pandas Series/DataFrame with a DatetimeIndex")


def _values(values: list[Any]) -> npt.NDArray[Any]:
    try:
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


def _stats(data: dict[str, Any], name: str) -> npt.NDArray[Any]:
    # a bucket statistic, sent as JSON or (``columns``) as a float64 column
    raw = data[name]
    if isinstance(raw, (bytes, bytearray)):
        return np.frombuffer(raw, dtype=np.dtype(data.get("dtype", "<f8"))).astype(np.float64)
    return _values(raw)


def _counts(raw: list[int] | bytes) -> npt.NDArray[np.int64]:
    if isinstance(raw, (bytes, bytearray)):
        return np.frombuffer(raw, dtype="<i8").astype(np.int64)
    return np.asarray(raw, dtype=np.int64)


def _call_binary(client: Any, event: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``event`` straight on the client's Socket.IO connection, so ``bytes`` travel as
    binary attachments (a client's ``call()`` would serialise them as JSON text, upstream,
    or compress them)."""
    sio = getattr(client, "sio", None)
    if sio is None:
        raise _NoBinary("binary columns need a znsocket client (with .sio)")
    namespace = getattr(client, "namespace", "/znsocket")
    timeout = getattr(client, "call_timeout", None) or 60
    answer = sio.call(event, [list(args), kwargs], namespace=namespace, timeout=timeout)
    return _raise(answer, event)


class _NoBinary(TypeError):
    """The client has no Socket.IO connection to send binary columns on."""


def _in_columns(client: Any, event: str, *args: Any, **kwargs: Any) -> Any:
    """``event`` asked with ``columns=True`` (see :func:`_call_binary`); ``None`` when it
    cannot be answered in columns: a client without ``.sio``, a rule whose codec is not one
    number, or a gateway that reads no columns there ("unknown argument(s) columns"). Any
    other error is raised."""
    try:
        return _call_binary(client, event, *args, columns=True, **kwargs)
    except _NoBinary:
        return None
    except zn_exceptions.DataError as exc:
        if "columns" not in str(exc):
            raise
        return None


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "pandas is not installed: pip install 'tstorage-gateway[pandas]' "
            "(to_records() and to_numpy() give the same columns as numpy arrays)"
        ) from None
    return pandas


def _utc_index(pd: Any, t: npt.NDArray[np.datetime64]) -> Any:
    # times are UTC instants: a tz-aware index says so (and converts with tz_convert)
    return pd.DatetimeIndex(t, name="t").tz_localize("UTC")


@dataclass(frozen=True)
class Window:
    """Raw records of a window: ``t`` (datetime64[ns]) and ``v`` (values)."""

    t: npt.NDArray[np.datetime64]
    v: npt.NDArray[Any]
    count: int
    watermark: str

    def __len__(self) -> int:
        return len(self.t)

    def to_numpy(self) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[Any]]:
        """``(t, v)`` arrays."""
        return self.t, self.v

    def to_records(self) -> dict[str, npt.NDArray[Any]]:
        """Columns as a dict of arrays (``pandas.DataFrame(window.to_records())`` works)."""
        return {"t": self.t, "v": self.v}

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with column ``v`` indexed by ``t``, a UTC
        ``DatetimeIndex`` (needs pandas: ``pip install 'tstorage-gateway[pandas]'``)."""
        pd = _pandas()
        return pd.DataFrame({"v": self.v}, index=_utc_index(pd, self.t))


@dataclass(frozen=True)
class Downsampled:
    """A downsampled window: per non-empty slice its start ``t`` and statistics.

    ``every`` is the slices' duration when cut by interval (``range(..., every=...)``),
    else ``None``. Aligned slices (``range(..., align="rows")``, and by default those of a
    long window, see :meth:`TimeSeries.range`) also give each slice's end
    ``t_end`` (exclusive), the times of its oldest and newest record (``t_first``,
    ``t_last``) and the oldest record's value (``first``); otherwise these are ``None``.
    """

    t: npt.NDArray[np.datetime64]
    n: npt.NDArray[np.int64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    count: int
    watermark: str
    every: np.timedelta64 | None = None
    t_end: npt.NDArray[np.datetime64] | None = None
    t_first: npt.NDArray[np.datetime64] | None = None
    t_last: npt.NDArray[np.datetime64] | None = None
    first: npt.NDArray[np.float64] | None = None

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def _of(cls, data: dict[str, Any]) -> Downsampled:
        stats = [_stats(data, k) for k in ("min", "max", "mean", "last")]
        every = data.get("every")
        aligned = data.get("align") is not None
        return cls(
            t=_times(data["t"]).copy(),
            n=_counts(data["n"]),
            min=stats[0],
            max=stats[1],
            mean=stats[2],
            last=stats[3],
            count=data["count"],
            watermark=data["watermark"],
            every=None if every is None else np.timedelta64(int(every), "ns"),
            t_end=_times(data["t_end"]).copy() if aligned else None,
            t_first=_times(data["t_first"]).copy() if aligned else None,
            t_last=_times(data["t_last"]).copy() if aligned else None,
            first=_stats(data, "first") if aligned else None,
        )

    def to_records(self) -> dict[str, npt.NDArray[Any]]:
        """Columns as a dict of arrays (aligned slices: with their ends and record times)."""
        names = ["t", "n", "min", "max", "mean", "last"]
        if self.t_end is not None:
            names += ["t_end", "t_first", "t_last", "first"]
        return {k: getattr(self, k) for k in names}

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` indexed by slice start, a UTC ``DatetimeIndex`` (needs
        pandas: ``pip install 'tstorage-gateway[pandas]'``)."""
        pd = _pandas()
        cols = self.to_records()
        t = cols.pop("t")
        return pd.DataFrame(cols, index=_utc_index(pd, t))


@dataclass(frozen=True)
class Resumed:
    """Records acquired since a watermark (``acq`` as TStorage ns) and the new watermark."""

    t: npt.NDArray[np.datetime64]
    v: npt.NDArray[Any]
    acq: npt.NDArray[np.int64]
    watermark: str

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class TimeSeries:
    """A mapped series read through the gateway's ``ts:*`` events.

    Args:
        client: a connected client with ``call(event, *args, **kwargs)``.
        key: the series' key (``"meters/7/3"``).
        as_of_acq: read the series as known at this watermark (see :meth:`as_of`).

    Slicing by time returns a :class:`Window` (all records of ``[start, stop)``, fetched in
    pages); a slice step is not supported. Times are ``datetime`` or pandas ``Timestamp``
    (naive = UTC), ``numpy.datetime64``, ISO-8601 strings or ints of unix nanoseconds.
    """

    client: _Caller
    key: str
    as_of_acq: str | int | None = None
    #: read raw windows as binary columns (switched off when the rule or gateway has none)
    columns: bool = True

    def _call(self, event: str, *args: Any, **kwargs: Any) -> Any:
        return _raise(self.client.call(event, *args, **kwargs), event)

    def _call_binary(self, event: str, *args: Any, **kwargs: Any) -> Any:
        return _call_binary(self.client, event, *args, **kwargs)

    def append(self, t: TimeLike, v: Any) -> int:
        """Append one record at time ``t``; returns the series' new length.

        ``t`` is a ``datetime`` or pandas ``Timestamp`` (naive = UTC), an ISO-8601 string, an
        int of unix nanoseconds or a ``numpy.datetime64``; ``v`` a number. It must be later
        than the series' last element (or, where the rule allows corrections, one of its
        times). One :meth:`extend` of one point.

        Raises:
            ValueError, TypeError: a bad time or value (nothing is sent).
            DataError, ResponseError: the gateway refused it (nothing stored).
        """
        if t is None:
            raise TypeError("append(t, v) needs a time")
        return self.extend(np.asarray([_unix_ns(t)], dtype=np.int64), [v])

    def extend(self, t: Any, v: Any = None, *, chunk: int | None = None) -> int:
        """Append records given as columns; returns the series' new length.

        The bulk form of ``List.extend``: times and values travel as binary columns,
        ``chunk`` points per ``ts:extend`` event (each answered once TStorage stored it), and
        the gateway checks each chunk as a whole (times strictly increasing, after the last
        element or corrections of existing ones as the rule allows, values exactly
        representable in the codec's dtype). Other clients get one ``refresh`` event.

        Args:
            t: times: a sequence of ``datetime``/pandas ``Timestamp`` (naive = UTC),
                ISO-8601 strings, ints (unix ns) or ``numpy.datetime64`` values, a numpy
                ``datetime64`` or int (unix ns) array, a pandas ``DatetimeIndex``; or a
                pandas Series / one-column DataFrame (or one with a column ``v``) indexed by
                time, with ``v`` left out.
            v: values (anything ``numpy.asarray`` takes, numbers).
            chunk: points per event (at most ``MAX_EXTEND_POINTS`` of
                ``gateway/timeseries/columns.py``); by default as many as keep each column
                within the server's message limit (the client's ``max_message_size_bytes``),
                at most ``EXTEND_CHUNK_POINTS``.

        Raises:
            ValueError, TypeError: bad arguments (nothing is sent).
            DataError, ResponseError: the gateway refused a chunk; the message says how many
                points earlier chunks stored (none of the refused chunk is stored).
        """
        times, values = _split_frame(t, v)
        caps = _column_times(times)
        unit = "unix_ns"
        vals = np.asarray(values)
        if vals.ndim != 1 or len(vals) != len(caps):
            raise ValueError(
                f"{len(caps)} times but values of shape {vals.shape}: give one value per time"
            )
        if vals.dtype.kind not in "biuf":
            raise TypeError(f"values must be numbers, got dtype {vals.dtype}")
        if chunk is None:
            chunk = extend_chunk(getattr(self.client, "max_message_size_bytes", None), vals.dtype)
        if chunk <= 0:
            raise ValueError(f"chunk must be positive, got {chunk}")
        caps = caps.astype("<i8", copy=False)
        vals = vals.astype(vals.dtype.newbyteorder("<"), copy=False)
        start: int | None = None
        length = 0
        done = 0
        try:
            for i in range(0, len(caps), chunk):
                data = self._call_binary(
                    "ts:extend", self.key, t=caps[i : i + chunk].tobytes(),
                    v=vals[i : i + chunk].tobytes(), dtype=vals.dtype.str, unit=unit,
                )  # fmt: skip
                start = data["start"] if start is None else start
                length = int(data["length"])
                done = i + len(caps[i : i + chunk])
        except Exception as exc:
            if done:
                self._announce(start)
                raise type(exc)(
                    f"{exc} (the first {done:,} of {len(caps):,} points were stored)"
                ) from exc
            raise
        if start is None:
            return len(self)
        self._announce(start)
        return length

    def _announce(self, start: int | None) -> None:
        sio = getattr(self.client, "sio", None)
        if sio is not None and start is not None:
            # as znsocket.List announces an extend to the other clients
            from znsocket.objects.base import emit_refresh

            emit_refresh(self.client, LIST_PREFIX + self.key, {"start": start, "stop": None})  # type: ignore[arg-type]

    def info(self) -> dict[str, Any]:
        """``count``, ``first``/``last`` (datetime64 or ``None``) and ``watermark``."""
        data = self._call("ts:info", self.key, unit="unix_ns")
        for k in ("first", "last"):
            if data[k] is not None:
                data[k] = np.datetime64(data[k], "ns")
        return dict(data)

    def __len__(self) -> int:
        return int(self.info()["count"])

    def __getitem__(self, item: slice) -> Window:
        if not isinstance(item, slice):
            raise TypeError("index a TimeSeries by a time slice, e.g. ts[start:stop]")
        if item.step is not None:
            raise TypeError("a time slice takes no step; use range(..., buckets=N) to thin out")
        return self.range(item.start, item.stop)

    def pages(
        self, start: TimeLike = None, stop: TimeLike = None, page: int = _PAGE
    ) -> Iterator[Window]:
        """Raw records of ``[start, stop)`` in pages of at most ``page`` records.

        Pages travel as binary columns when the rule's codec holds one number (then
        ``page`` may be up to ``MAX_COLUMN_LIMIT``, and a page's arrays are read-only views
        of the received columns), else as JSON.
        """
        return self._pages(_wire_time(start), _wire_time(stop), page)

    def _pages(self, cursor: str | None, end: str | None, page: int) -> Iterator[Window]:
        # cursor: a wire time, or the "next" of a truncated answer (TStorage ns, as sent)
        if self.columns:
            first = _in_columns(
                self.client, "ts:range", self.key, start=cursor, end=end, limit=page,
                unit="unix_ns", as_of=self.as_of_acq,
            )  # fmt: skip
            if first is not None:
                yield from self._column_pages(first, end, page)
                return
            self.columns = False
        page = min(page, _PAGE)
        while True:
            data = self._call(
                "ts:range", self.key, start=cursor, end=end, limit=page, unit="unix_ns",
                as_of=self.as_of_acq,
            )  # fmt: skip
            yield Window(_times(data["t"]), _values(data["v"]), data["count"], data["watermark"])
            if not data["truncated"]:
                return
            cursor = data["next"]

    def _column_page(self, cursor: Any, end: Any, page: int) -> Any:
        return self._call_binary(
            "ts:range", self.key, start=cursor, end=end, limit=page, unit="unix_ns",
            as_of=self.as_of_acq, columns=True,
        )  # fmt: skip

    def _column_pages(self, data: Any, end: Any, page: int) -> Iterator[Window]:
        while True:
            yield Window(
                _times(data["t"]),
                np.frombuffer(data["v"], dtype=np.dtype(data["dtype"])),
                data["count"],
                data["watermark"],
            )
            if not data["truncated"]:
                return
            data = self._column_page(data["next"], end, page)

    def range(
        self,
        start: TimeLike = None,
        stop: TimeLike = None,
        *,
        buckets: int | None = None,
        every: DurationLike | None = None,
        align: str | None = None,
    ) -> Any:
        """Records of ``[start, stop)``: a :class:`Window`, or :class:`Downsampled` with
        ``buckets`` (that many slices, equal or, over a long window, aligned: see ``align``
        below) or ``every`` (slices of that duration, e.g.
        ``"1min"``, aligned to the unix epoch: whole minutes, hours, UTC days; at most
        10,000 slices).

        ``None`` leaves a side open (downsampled: it ends at the first/last record).
        ``align="rows"`` lets each inner slice edge move (by at most a quarter of a slice)
        to a boundary of the gateway's chunk summaries, so a long series is downsampled from
        them without reading its records; each slice's real end and record times are then
        in the answer (``t_end``, ``t_first``, ``t_last``), exact for those edges. Left out
        (``"auto"``), ``buckets`` are aligned so once the window holds ``index_chunk / 8``
        records per slice (512 by default) and equal otherwise; ``align="equal"`` keeps
        them equal however long the window (one read per edge on a long series).
        """
        if buckets is not None or every is not None:
            ask: dict[str, Any] = dict(
                start=_wire_time(start), end=_wire_time(stop), buckets=buckets,
                every=None if every is None else _duration_ns(every, "every"), unit="unix_ns",
                as_of=self.as_of_acq, **({"align": align} if align is not None else {}),
            )  # fmt: skip
            got = _in_columns(self.client, "ts:range", self.key, **ask) if self.columns else None
            if got is not None:
                return Downsampled._of(got)
            self.columns = False
            return Downsampled._of(self._call("ts:range", self.key, **ask))
        if align is not None:
            raise ValueError("align applies to downsampled reads (buckets or every)")
        parts = list(self.pages(start, stop, MAX_COLUMN_LIMIT if self.columns else _PAGE))
        return Window(
            np.concatenate([p.t for p in parts]),
            np.concatenate([p.v for p in parts]) if parts else np.empty(0),
            parts[0].count if parts else 0,
            parts[0].watermark,
        )

    def last(
        self,
        window: DurationLike,
        *,
        buckets: int | None = None,
        every: DurationLike | None = None,
        align: str | None = None,
    ) -> Any:
        """The records of the last ``window`` before now (``"1h"``, ``"5min"``, ``"30s"``,
        ``"7d"``, a ``timedelta``): :meth:`range` from now (this machine's clock, UTC)
        minus ``window``, open-ended, so records stamped later than now are included.

        Example: ``ts.last("1h", every="1min").to_pandas()``.
        """
        start = time.time_ns() - _duration_ns(window, "window")
        return self.range(start, None, buckets=buckets, every=every, align=align)

    def latest(self, n: int = 1) -> Window:
        """The newest ``n`` records, oldest first."""
        data = self._call("ts:latest", self.key, n=n, unit="unix_ns", as_of=self.as_of_acq)
        return Window(_times(data["t"]), _values(data["v"]), data["count"], data["watermark"])

    def as_of(self, watermark: str | int | TimeLike) -> TimeSeries:
        """The series as the gateway knew it at ``watermark`` (an acq or a time)."""
        w = watermark if isinstance(watermark, (str, int)) else _wire_time(watermark)
        return TimeSeries(self.client, self.key, w)

    def resume(self, since: str | int) -> Resumed:
        """Records acquired since the watermark ``since``; pass ``.watermark`` next time."""
        data = self._call("ts:resume", keys=[self.key], since=str(since), unit="unix_ns")
        got = data["changes"][self.key]
        return Resumed(
            _times(got["t"]),
            _values(got["v"]),
            np.asarray([int(a) for a in got["acq"]], dtype=np.int64),
            data["watermark"],
        )

    def follow(
        self, on_records: Callable[[Resumed], None], since: str | int | None = None
    ) -> Callable[[Any], None]:
        """Call ``on_records`` with exactly the new records whenever the gateway refreshes the key.

        Registers a refresh callback on the client (``refresh_callbacks``) that resumes from
        the last watermark. Returns the callback.
        """
        state = {"since": since if since is not None else self.info()["watermark"]}

        def on_refresh(_payload: Any) -> None:
            got = self.resume(state["since"])
            state["since"] = got.watermark
            if len(got):
                on_records(got)

        callbacks = getattr(self.client, "refresh_callbacks", None)
        if callbacks is None:
            raise TypeError("follow() needs a client with refresh_callbacks (znsocket.Client)")
        callbacks[LIST_PREFIX + self.key] = on_refresh
        return on_refresh

    # ------------------------------------------------------------------ several series
    @classmethod
    def mrange(
        cls,
        client: _Caller,
        pattern: str | list[str],
        start: TimeLike = None,
        stop: TimeLike = None,
        *,
        buckets: int | None = None,
        every: DurationLike | None = None,
    ) -> dict[str, Any]:
        """One window of each series a glob (``"meters/7/*"``) or a list of keys names, by
        ``ts:mrange``: ``{key: Window}``, or ``{key: Downsampled}`` with ``buckets`` or
        ``every`` (the same slices for every series), keys in order.

        A glob names the series that hold records (or are fixed by the configuration) and
        that the client's token may read; at most ``[server] max_mrange_series`` (100 by
        default). Raw windows the answer cut short are read on per series, in pages.

        Raises:
            DataError: too many series, records or slices (the message says which).
        """
        keys: dict[str, Any] = (
            {"pattern": pattern} if isinstance(pattern, str) else {"keys": list(pattern)}
        )
        end = _wire_time(stop)
        ask: dict[str, Any] = dict(
            start=_wire_time(start), end=end, buckets=buckets,
            every=None if every is None else _duration_ns(every, "every"), unit="unix_ns",
            **keys,
        )  # fmt: skip
        # binary columns where every named series allows them, else JSON
        data = _in_columns(client, "ts:mrange", **ask)
        if data is None:
            data = _raise(client.call("ts:mrange", **ask), "ts:mrange")
        out: dict[str, Any] = {}
        for got in data["series"]:
            key = got["key"]
            if data["mode"] == "buckets":
                out[key] = Downsampled._of(got)
                continue
            v = (
                np.frombuffer(got["v"], dtype=np.dtype(got["dtype"])).copy()
                if got["mode"] == "columns"
                else _values(got["v"])
            )
            first = Window(_times(got["t"]).copy(), v, got["count"], got["watermark"])
            if not got["truncated"]:
                out[key] = first
                continue
            ts = cls(client, key)
            rest = list(ts._pages(got["next"], end, MAX_COLUMN_LIMIT if ts.columns else _PAGE))
            out[key] = Window(
                np.concatenate([first.t, *(p.t for p in rest)]),
                np.concatenate([first.v, *(p.v for p in rest)]),
                first.count,
                first.watermark,
            )
        return out

    @classmethod
    def many(
        cls,
        client: _Caller,
        pattern: str | list[str],
        start: TimeLike = None,
        stop: TimeLike = None,
        *,
        buckets: int | None = None,
        every: DurationLike | None = None,
        agg: str = "mean",
    ) -> Any:
        """Several series as one ``pandas.DataFrame``, a column per series (key), indexed
        by time (a UTC ``DatetimeIndex``), like RedisTimeSeries' ``TS.MRANGE`` with a
        filter (needs pandas: ``pip install 'tstorage-gateway[pandas]'``).

        Raw windows are joined on their times (``NaN`` where a series has no record at a
        time); downsampled ones (``buckets`` or ``every``) give the statistic ``agg`` of each
        slice (``"mean"``, ``"min"``, ``"max"``, ``"last"`` or ``"n"``), slices of all the
        series aligned. See :meth:`mrange` for the arguments.

        Example: ``TimeSeries.many(client, "meters/7/*", "2026-11-22", "2026-11-23",
        every="1min")`` (a day in minutes; at most 10,000 slices per series).
        """
        if agg not in ("mean", "min", "max", "last", "n"):
            raise ValueError(f"agg must be mean, min, max, last or n, got {agg!r}")
        pd = _pandas()
        got = cls.mrange(client, pattern, start, stop, buckets=buckets, every=every)
        columns = {}
        for key, w in got.items():
            values = getattr(w, agg) if isinstance(w, Downsampled) else w.v
            columns[key] = pd.Series(values, index=_utc_index(pd, w.t), name=key)
        if not columns:
            return pd.DataFrame(index=_utc_index(pd, np.empty(0, dtype="datetime64[ns]")))
        frame = pd.concat(columns.values(), axis=1, sort=True)
        frame.index.name = "t"
        return frame
