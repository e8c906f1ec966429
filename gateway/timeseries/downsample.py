"""Downsampling a window of a series to equal time slices (min/max/mean/first/last each).

The records arrive as two numpy arrays (sorted capture times and float values), straight
from an index's columns, so a slice's statistics are ``ufunc.reduceat`` over contiguous
runs: a 10,000,000-record window costs a few passes over 80 MB, no Python per record.

Aligned slices (:func:`snap_edges`) move each inner edge that cuts a summary row to the
nearest end of that row, when that is close enough, so whole rows count by their summaries
and the records under them are not read (``align="rows"`` of ``ts:range``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from gateway.codecs import PayloadCodec, StructCodec
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError


@dataclass(frozen=True)
class Buckets:
    """Statistics of the non-empty slices of a window (arrays of equal length).

    Attributes:
        start: start of each slice (TStorage ns).
        n: records per slice.
        min, max, mean, first, last: value statistics; ``first``/``last`` are the values of
            the oldest/newest record (with min and max, what M4 drawing needs).
        end: end of each slice (exclusive): the slice holds the records with
            ``start <= cap < end``.
        first_cap, last_cap: capture times of each slice's oldest and newest record.
    """

    start: npt.NDArray[np.int64]
    n: npt.NDArray[np.int64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    first: npt.NDArray[np.float64] | None = None
    end: npt.NDArray[np.int64] | None = None
    first_cap: npt.NDArray[np.int64] | None = None
    last_cap: npt.NDArray[np.int64] | None = None


_P = TypeVar("_P", bound="Part")


@dataclass(frozen=True)
class Part:
    """Rows to reduce into slices, ascending by ``cap``: each row is one record or the
    summary of a run of records that fall in one slice (a whole chunk of a series).

    Attributes:
        cap: the first capture time of each row (decides its slice).
        cap_last: the last capture time of each row.
        n, min, max, sum, first, last: the row's record count and value statistics.
    """

    cap: npt.NDArray[np.int64]
    cap_last: npt.NDArray[np.int64]
    n: npt.NDArray[np.int64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    sum: npt.NDArray[np.float64]
    first: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]

    @classmethod
    def raw(cls: type[_P], caps: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> _P:
        """One row per record."""
        ones = np.ones(len(caps), dtype=np.int64)
        return cls(caps, caps, ones, values, values, values, values, values)

    @classmethod
    def reduced(
        cls,
        caps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        edges: Any,
        cuts: npt.NDArray[np.int64] | None = None,
    ) -> Part:
        """One row per run of records within one slice of ``edges`` (fewer rows to carry).

        Args:
            caps, values: records ascending by cap.
            edges: the slices' edges (as :func:`slice_edges`).
            cuts: positions where a row must start too, e.g. where records of chunks that
                are not neighbours meet (rows of other parts may lie between them).
        """
        n = len(caps)
        if n == 0:
            return cls.raw(caps, values)
        # the edges' positions among the records (not each record's slice: O(edges log n))
        at = np.searchsorted(caps, edges, side="left")
        bounds = [np.zeros(1, dtype=np.int64), at[(at > 0) & (at < n)]]
        if cuts is not None:
            bounds.append(cuts[(cuts > 0) & (cuts < n)])
        return cls.runs(caps, values, np.unique(np.concatenate(bounds)))

    @classmethod
    def runs(
        cls: type[_P],
        caps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        starts: npt.NDArray[np.int64],
    ) -> _P:
        """One row per run of records beginning at ``starts`` (ascending, the first 0; a run
        ends where the next begins, the last at the end of the records). A subclass's own
        fields keep their defaults."""
        n = len(caps)
        if n == 0:
            return cls.raw(caps, values)
        stops = np.r_[starts[1:], n]
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in numpy
            sums = np.add.reduceat(values, starts)
        return cls(
            caps[starts],
            caps[stops - 1],
            (stops - starts).astype(np.int64),
            np.minimum.reduceat(values, starts),
            np.maximum.reduceat(values, starts),
            sums,
            values[starts],
            values[stops - 1],
        )

    @classmethod
    def joined(cls, parts: Sequence[Part]) -> Part:
        """The rows of ``parts`` in one part, in the order given."""
        return Part(*(np.concatenate([getattr(p, name) for p in parts]) for name in _COLUMNS))

    @classmethod
    def merged(cls, parts: Sequence[Part]) -> Part:
        """The rows of ``parts`` in one part, ascending by cap (rows hold distinct caps)."""
        joined = cls.joined(parts)
        return joined.take(np.argsort(joined.cap, kind="stable"))

    def take(self: _P, rows: Any) -> _P:
        """These rows only (an index, a mask or a slice); other fields stay."""
        return replace(self, **{name: getattr(self, name)[rows] for name in _COLUMNS})

    @property
    def nbytes(self) -> int:
        """Bytes of the rows (eight 8-byte columns)."""
        return 8 * self.cap.nbytes


#: the row columns of :class:`Part`, in order
_COLUMNS = tuple(f.name for f in fields(Part))


def slice_edges(lo: int, hi: int, count: int) -> npt.NDArray[np.int64]:
    """``count + 1`` integer edges cutting ``[lo, hi)`` into slices of equal duration.

    Python integers do the arithmetic: ``hi - lo`` may exceed int64 for unbounded windows.
    """
    span = hi - lo
    if span > 0 and span * count < _INT64[1] and _INT64[0] <= lo and hi <= _INT64[1]:
        # no product overflows int64, and numpy's // floors as Python's does
        return lo + span * np.arange(count + 1, dtype=np.int64) // count
    return np.asarray([lo + span * k // count for k in range(count + 1)], dtype=np.int64)


_INT64 = (-(2**63), 2**63 - 1)


def interval_slices(lo: int, hi: int, every: int, top: int) -> tuple[int, int, int]:
    """``(lo', hi', count)``: the slices of ``every`` ns covering ``[lo, hi)``, aligned to the
    unix epoch (whole minutes, hours, UTC days), for :func:`downsample`.

    Cutting ``[lo', hi')`` into ``count`` equal slices gives exactly the edges
    ``lo' + k * every``, so interval buckets take the same path as a count of buckets.

    Raises:
        DataError: more than ``top`` slices, or whole intervals reaching past int64 ns.
    """
    a_lo = lo - (lo + EPOCH_OFFSET_NS) % every
    a_hi = max(hi + (-(hi + EPOCH_OFFSET_NS)) % every, a_lo + every)
    count = (a_hi - a_lo) // every
    if count > top:
        raise DataError(
            f"every={every} ns cuts the window into {count:,} buckets; at most {top:,} per "
            "request: use a longer every or a narrower window"
        )
    if a_lo < _INT64[0] or a_hi > _INT64[1]:
        raise DataError(
            f"every={every} ns: whole intervals around the window run past TStorage's time "
            "range: use a shorter every"
        )
    return a_lo, a_hi, count


def downsample(
    caps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    lo: int,
    hi: int,
    count: int,
) -> Buckets:
    """Cut ``[lo, hi)`` into ``count`` equal slices and reduce the records of each.

    Args:
        caps: ascending capture times, all in ``[lo, hi)``.
        values: the records' values (same length).
        lo, hi: the window.
        count: number of slices (empty ones are left out of the result).
    """
    return rollup([Part.raw(caps, values)], lo, hi, count)


def rollup(parts: list[Part], lo: int, hi: int, count: int) -> Buckets:
    """:func:`downsample` over rows that are records or summaries of whole runs.

    Args:
        parts: rows ascending by cap (concatenated in order), all in ``[lo, hi)``; a
            summary row must not straddle a slice edge.
        lo, hi, count: the window and its number of slices.
    """
    return rollup_at(parts, slice_edges(lo, hi, count))


def rollup_at(parts: list[Part], edges: npt.NDArray[np.int64]) -> Buckets:
    """:func:`rollup` over the slices between ``edges`` (ascending; equal neighbours make an
    empty slice), e.g. edges moved by :func:`snap_edges`.

    Args:
        parts: rows ascending by cap (concatenated in order), all in
            ``[edges[0], edges[-1])``; a summary row must not straddle an edge.
        edges: the slices' edges.
    """
    if parts:
        cap = np.concatenate([p.cap for p in parts])
        cap_last = np.concatenate([p.cap_last for p in parts])
        n_rows = np.concatenate([p.n for p in parts])
        cols = {
            name: np.concatenate([getattr(p, name) for p in parts]).astype(np.float64)
            for name in ("min", "max", "sum", "first", "last")
        }
    else:
        cap = np.empty(0, dtype=np.int64)
    bounds = np.searchsorted(cap, edges, side="left")
    starts, stops = bounds[:-1], bounds[1:]
    filled = stops > starts
    starts, stops = starts[filled], stops[filled]
    if starts.size == 0:
        empty_f = np.empty(0, dtype=np.float64)
        empty_i = np.empty(0, dtype=np.int64)
        return Buckets(empty_i, empty_i, empty_f, empty_f, empty_f, empty_f, empty_f,
                       empty_i, empty_i, empty_i)  # fmt: skip
    # reduceat over the filled slices only: their starts are strictly increasing
    n = np.add.reduceat(n_rows, starts).astype(np.int64)
    sums = np.add.reduceat(cols["sum"], starts)
    return Buckets(
        start=edges[:-1][filled],
        n=n,
        min=np.minimum.reduceat(cols["min"], starts),
        max=np.maximum.reduceat(cols["max"], starts),
        mean=sums / n,
        last=cols["last"][stops - 1],
        first=cols["first"][starts],
        end=edges[1:][filled],
        first_cap=cap[starts],
        last_cap=cap_last[stops - 1],
    )


def snap_edges(
    edges: npt.NDArray[np.int64],
    first: npt.NDArray[np.int64],
    last: npt.NDArray[np.int64],
    shift: int,
    nominal: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.int64]:
    """Move each inner edge that cuts a row to the nearer end of that row, if it moves by at
    most ``shift`` ns: to the row's first cap (the row joins the slice after the edge) or
    just after its last cap (the slice before). The outer edges stay.

    Args:
        edges: ascending slice edges.
        first, last: first and last cap of each row (rows ascending and disjoint, e.g. the
            chunk summaries of a series, or the block rows of its chunks); only rows that
            may count whole (inside the window) are given.
        shift: the most an edge may move; below half the narrowest slice, so edges stay in
            order and no slice closes.
        nominal: where the edges were before any move (an edge moved off coarser rows
            before may move again, and stays within ``shift`` of it); default ``edges``.

    Returns:
        The edges, moved (a new array).
    """
    out = edges.copy()
    if edges.size < 3 or first.size == 0 or shift <= 0:
        return out
    inner = edges[1:-1]
    # the last row starting before the edge: the edge cuts it if it lies within
    j = np.searchsorted(first, inner, side="left") - 1
    row = np.maximum(j, 0)
    down, up = first[row], last[row] + 1
    cut = (j >= 0) & (inner <= last[row])
    to = np.where(inner - down <= up - inner, down, up)
    origin = inner if nominal is None else nominal[1:-1]
    moved = cut & (np.abs(to - origin) <= shift)
    out[1:-1] = np.where(moved, to, inner)
    return out


def numeric_dtype(codec: PayloadCodec) -> np.dtype[np.generic] | None:
    """The numpy dtype of a payload holding one number, or ``None`` for other codecs.

    Such payloads are read as numbers straight from an index's payload column.
    """
    if not isinstance(codec, StructCodec) or len(codec.codes) != 1:
        return None
    order = {"<": "<", ">": ">", "!": ">", "=": "=", "@": "="}[codec.fmt[0]]
    code = codec.codes
    if code in "lL":  # struct's standard sizes: 4 bytes
        code = "i" if code == "l" else "I"
    dtype = np.dtype(order + code)
    if dtype.itemsize != codec.fixed_size:  # native alignment/size differs: decode instead
        return None
    return dtype
