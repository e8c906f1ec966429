"""Aligned downsampled reads (``align="rows"``): each inner slice edge may move, by at most a
quarter of a slice, to a boundary of the chunk summaries (or of the block rows of a chunk
read anyway), so a long series is downsampled from its summaries. The answer must be exact
for the edges it reports: every bucket agrees with numpy over the raw records between its
reported start and end, the buckets hold every record of the window once, and the window's
own ends do not move. Checked over series cut into tiny chunks, in a gateway that starts
from persisted summaries and warm, before and after corrections, late records and appends
from an outside writer; and a read's cost: the records it reads from TStorage are those of
the two chunks at the window's ends, none for the whole series."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import znsocket
from gateway import TimeSeries
from gateway.keymap import CAP_RANGE
from gateway.storage import GatewayStorage, summaries
from gateway.timeseries.downsample import interval_slices, slice_edges, snap_edges
from gateway.timeseries.events import buckets_answer
from gateway.timeseries.reads import ALIGN_SHIFT, MAX_BUCKETS, BucketWindow, TimeSeriesReads
from gateway.timeseries.times import parse_unit
from tests._servers import ServerProcess
from tests.gateway.test_index_build import put
from tests.gateway.test_persisted_summaries import config
from tests.gateway.test_rollup_edges import outside_changes
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError

Make = Callable[[str], GatewayStorage]
T0 = 800_000_000 * 10**9
KEY = "meters/6/1"


def chunk_reads(gw: GatewayStorage, cid: int) -> list[tuple[Any, Any]]:
    """Record every read of the series' records the gateway makes (not of the summaries, nor
    the change feed's read of what arrived since their watermark)."""
    seen: list[tuple[Any, Any]] = []
    for name in ("stream", "stream_columns"):
        real = getattr(gw.link, name)

        def spy(lo: Any, hi: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if lo[0] == cid and lo[4] == -(2**63):
                seen.append((lo, hi))
            return _real(lo, hi, *args, **kwargs)

        setattr(gw.link, name, spy)
    return seen


def saved_series(
    make_storage: Make, tstorage: ServerProcess, cid: int, generic: int, caps: np.ndarray,
    vals: np.ndarray, index_chunk: int = 16,
) -> None:  # fmt: skip
    """Store the records of ``KEY`` and let a gateway build and save their summaries (the
    gateways of the test then start from them)."""
    put(tstorage, cid, 6, 1, caps, vals)
    builder = make_storage(config(tstorage, cid, generic, index_chunk))
    TimeSeriesReads(builder).info(TimeSeriesReads(builder).target(KEY))


def check_window(
    w: BucketWindow,
    caps: np.ndarray,
    vals: np.ndarray,
    lo: int,
    hi: int,
    nominal: np.ndarray,
) -> None:
    """``w`` is exact for the edges it reports, and they lie near the nominal ones."""
    b = w.buckets
    assert b.end is not None and b.first_cap is not None and b.last_cap is not None
    assert b.first is not None
    inside = (caps >= lo) & (caps < hi)
    assert w.count == int(inside.sum())
    # every record of the window in exactly one bucket: ascending, disjoint, summing up
    assert bool((b.start < b.end).all())
    assert bool((b.end[:-1] <= b.start[1:]).all())
    assert int(b.n.sum()) == w.count
    for k in range(len(b.start)):
        sel = (caps >= b.start[k]) & (caps < b.end[k]) & inside
        c, v = caps[sel], vals[sel]
        assert b.n[k] == len(c), k
        assert (b.first_cap[k], b.last_cap[k]) == (c[0], c[-1])
        got = (b.min[k], b.max[k], b.first[k], b.last[k])
        np.testing.assert_array_equal(got, (np.min(v), np.max(v), v[0], v[-1]), err_msg=str(k))
        np.testing.assert_allclose(b.mean[k], v.mean(), rtol=1e-12, atol=1e-12, equal_nan=True)
    # each reported edge is a nominal edge moved by at most a quarter of a slice; the
    # outer ones (the window's own ends, or whole intervals around it) not at all
    shift = int(np.diff(nominal).min() * ALIGN_SHIFT)
    for edge in np.r_[b.start, b.end]:
        j = int(np.argmin(np.abs(nominal - edge)))
        assert abs(int(nominal[j]) - int(edge)) <= shift, (edge, nominal[j], shift)
        if j in (0, len(nominal) - 1):
            assert edge == nominal[j]


def check(reads: TimeSeriesReads, model: dict[int, float], rng: np.random.Generator,
          rounds: int) -> int:  # fmt: skip
    """Random aligned reads against numpy; returns how many buckets moved off a nominal edge."""
    t = reads.target(KEY)
    caps = np.asarray(sorted(model), dtype=np.int64)
    vals = np.asarray([model[c] for c in caps.tolist()])
    span = int(caps[-1] - caps[0])
    moved = 0
    for _ in range(rounds):
        start = None if rng.random() < 0.3 else int(caps[0]) + int(rng.integers(-50, span))
        end = None if rng.random() < 0.3 else int(caps[0]) + int(rng.integers(0, span + 50))
        if start is not None and end is not None and start > end:
            start, end = end, start
        lo = int(caps[0]) if start is None else start
        hi = int(caps[-1]) + 1 if end is None else end
        if rng.random() < 0.2:  # by interval
            every = int(rng.integers(50, 3000))
            if interval_slices(lo, hi, every, 10**9)[2] > MAX_BUCKETS:
                continue
            w = reads.downsampled(t, None, start, end, every=every, align="rows")
            nominal = slice_edges(*interval_slices(lo, hi, every, MAX_BUCKETS))
        else:
            count = int(rng.choice([1, 2, 7, int(rng.integers(1, 60)), int(rng.integers(60, 400))]))
            w = reads.downsampled(t, count, start, end, align="rows")
            nominal = slice_edges(lo, hi, count)
        if w.count == 0:
            continue
        assert w.align == "rows"
        check_window(w, caps, vals, lo, hi, nominal)
        moved += int((~np.isin(w.buckets.start, nominal)).sum())
    return moved


@pytest.mark.parametrize(
    "chunk, block, run",
    [(16, summaries.BLOCK_RECORDS, None), (32, 4, None), (16, summaries.BLOCK_RECORDS, 3)],
)
def test_aligned_buckets_agree_with_numpy_at_the_edges_they_report(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
    block: int,
    run: int | None,
) -> None:
    """Irregular records (bursts, long gaps, NaN, ties): edges move off chunks and blocks
    where they may and stay where they may not (a chunk spanning a gap); every answer is
    exact for its edges, from persisted summaries and warm, before and after an outside
    writer's corrections, late records and appends. Also when a read takes the chunks an
    edge cuts a few at a time (``run``: as a small budget makes it)."""
    monkeypatch.setattr(summaries, "BLOCK_RECORDS", block)
    if run is not None:
        monkeypatch.setattr(summaries.SeriesIndex, "run_chunks", lambda self, most=256: run)
    cid = fresh_cid()
    rng = np.random.default_rng(21)
    steps = rng.choice([1, 1, 1, 7, 30, 90, 5000], size=4000).astype(np.int64)
    caps = T0 + np.cumsum(steps)
    vals = rng.normal(size=caps.size).round(2)
    vals[[100, 2000]] = np.nan
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, chunk)
    model = dict(zip(caps.tolist(), vals.tolist(), strict=True))
    fresh = make_storage(config(tstorage, cid, fresh_cid(), chunk))
    reads = TimeSeriesReads(fresh)
    moved = check(reads, model, rng, 30)  # first reads: chunks cached as they are read
    moved += check(reads, model, rng, 30)  # warm
    assert moved > 50  # edges did move: the test means something
    outside_changes(tstorage, cid, 6, caps, model, rng, 60)
    fresh.series.series_index(reads.target(KEY), fresh=True)  # the change feed, now
    check(reads, model, rng, 30)
    # and a gateway that starts from the summaries saved before the writes catches up
    again = make_storage(config(tstorage, cid, fresh_cid(), chunk))
    check(TimeSeriesReads(again), model, rng, 30)


def test_an_aligned_read_reads_only_the_chunks_at_the_window_ends(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """4,000 records 100 ns apart in chunks of 16, 20 buckets (12.5 chunks each): from
    persisted summaries, the whole series reads no record and a window two chunks (one
    GET each); equal slices over that window read a chunk per edge."""
    cid = fresh_cid()
    n = 4000
    caps = T0 + np.arange(n, dtype=np.int64) * 100
    vals = np.sin(np.arange(n) / 40.0)
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals)

    def fresh_reads() -> tuple[TimeSeriesReads, list[tuple[Any, Any]]]:
        gw = make_storage(config(tstorage, cid, fresh_cid()))
        return TimeSeriesReads(gw), chunk_reads(gw, cid)

    reads, seen = fresh_reads()
    t = reads.target(KEY)
    w = reads.downsampled(t, 20, align="rows")
    assert seen == []  # the whole series: summaries only
    check_window(w, caps, vals, int(caps[0]), int(caps[-1]) + 1,
                 slice_edges(int(caps[0]), int(caps[-1]) + 1, 20))  # fmt: skip
    assert w.count == n and len(w.buckets.n) == 20

    start, end = int(caps[105]) + 50, int(caps[3890]) + 50  # both inside a chunk
    w = reads.downsampled(t, 20, start, end, align="rows")
    assert len(seen) == 2  # the two chunks the window's ends cut
    for lo, hi in seen:  # each no more than one chunk
        assert CAP_RANGE[0] <= lo[3] and hi[3] - lo[3] <= 16 * 100 + 1
    check_window(w, caps, vals, start, end, slice_edges(start, end, 20))

    reads, seen = fresh_reads()
    reads.downsampled(reads.target(KEY), 20, start, end, align="equal")  # for comparison
    assert len(seen) >= 15


def test_the_default_aligns_a_window_of_enough_records_per_slice_and_no_other(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """``align`` left out (or ``"auto"``): slices by count move their edges once the window
    holds two fine rows' records per slice (chunks of 256: 32 records), as ``"rows"``
    would; a shorter window, slices by interval and the slices that several series share
    stay equal, as ``"equal"`` keeps them everywhere."""
    cid = fresh_cid()
    n = 4000
    caps = T0 + np.arange(n, dtype=np.int64) * 100
    vals = np.sin(np.arange(n) / 40.0)
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals, index_chunk=256)
    reads = TimeSeriesReads(make_storage(config(tstorage, cid, fresh_cid(), 256)))
    t = reads.target(KEY)
    lo, hi = int(caps[0]), int(caps[-1]) + 1
    nominal = slice_edges(lo, hi, 20)
    w = reads.downsampled(t, 20)  # 200 records a slice
    assert w.align == "rows"
    check_window(w, caps, vals, lo, hi, nominal)
    assert w.buckets.start.tolist() != nominal[:-1].tolist()  # edges did move
    rows = reads.downsampled(t, 20, align="rows").buckets
    for same in (reads.downsampled(t, 20, align="auto").buckets, w.buckets):
        assert same.start.tolist() == rows.start.tolist() and same.n.tolist() == rows.n.tolist()

    def equal(got: BucketWindow, a: int, b: int, count: int) -> None:
        assert got.align is None
        edges = slice_edges(a, b, count)
        inside = (caps >= a) & (caps < b)
        sums = np.histogram(caps[inside], bins=edges)[0]
        assert got.buckets.start.tolist() == edges[:-1][sums > 0].tolist()
        assert got.buckets.n.tolist() == sums[sums > 0].tolist()

    equal(reads.downsampled(t, 20, align="equal"), lo, hi, 20)
    a, b = int(caps[1000]), int(caps[1620])  # 620 records: 31 a slice, one short of 32
    equal(reads.downsampled(t, 20, a, b), a, b, 20)
    at_threshold = reads.downsampled(t, 20, a, int(caps[1640]))  # 32 a slice
    assert at_threshold.align == "rows"
    check_window(at_threshold, caps, vals, a, int(caps[1640]),
                 slice_edges(a, int(caps[1640]), 20))  # fmt: skip
    by_time = reads.downsampled(t, None, lo, hi, every=10_000)
    assert by_time.align is None
    assert by_time.buckets.n.tolist() == [100] * 40
    (shared,) = reads.many([t], lo, hi, buckets=20)
    assert isinstance(shared, BucketWindow)
    equal(shared, lo, hi, 20)


def test_an_aligned_read_over_no_more_chunks_than_slices_keeps_equal_slices(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """4,000 records in 250 chunks of 16: 400 buckets (a chunk wider than a slice, read
    whichever way the edges lie) keep equal slices, on a fresh gateway and warm alike;
    100 buckets (2.5 chunks a slice) move their edges to chunk ends. Every answer is exact
    for its edges."""
    cid = fresh_cid()
    n = 4000
    caps = T0 + np.arange(n, dtype=np.int64) * 100
    vals = np.cos(np.arange(n) / 30.0)
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals)
    reads = TimeSeriesReads(make_storage(config(tstorage, cid, fresh_cid())))
    t = reads.target(KEY)
    lo, hi = int(caps[0]), int(caps[-1]) + 1
    for _ in ("fresh", "warm"):
        nominal = slice_edges(lo, hi, 400)
        w = reads.downsampled(t, 400, align="rows")
        check_window(w, caps, vals, lo, hi, nominal)
        np.testing.assert_array_equal(w.buckets.start, nominal[:-1])
        np.testing.assert_array_equal(w.buckets.end, nominal[1:])
        assert w.align == "rows"
        nominal = slice_edges(lo, hi, 100)
        w = reads.downsampled(t, 100, align="rows")
        check_window(w, caps, vals, lo, hi, nominal)
        assert not np.array_equal(w.buckets.start, nominal[:-1])
        ends = set(caps[::16].tolist()) | set((caps[15::16] + 1).tolist())  # chunk ends
        assert set(w.buckets.start[1:].tolist()) <= ends | set(nominal.tolist())


def test_align_is_checked_and_answered_with_each_buckets_end_and_record_times(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    caps = T0 + np.arange(500, dtype=np.int64) * 10
    put(tstorage, cid, 6, 1, caps, np.arange(500.0))
    gw = make_storage(config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(gw)
    t = reads.target(KEY)
    for bad in ("chunks", "", "ROWS", 1, ["rows"], {"rows": 1}):
        with pytest.raises(DataError, match="align"):
            reads.downsampled(t, 10, align=bad)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="align applies to downsampled reads"):
        reads.many([t], align="rows")
    for bad in ("", 0, False, "chunks"):  # ts:mrange checks as ts:range does
        with pytest.raises(DataError, match="align"):
            reads.many([t], buckets=10, align=bad)  # type: ignore[arg-type]
    w = reads.downsampled(t, 10, align="rows")
    answer = buckets_answer(KEY, w, parse_unit("tstorage_ns"))
    assert answer["align"] == "rows"
    assert answer["t"][0] == caps[0] and answer["t_end"][-1] == caps[-1] + 1
    assert answer["t_end"][:-1] == answer["t"][1:]  # no hole in the records: edge to edge
    # a bucket's records lie between its ends, 10 ns apart
    for a, first, last, b, k in zip(answer["t"], answer["t_first"], answer["t_last"],
                                    answer["t_end"], answer["n"], strict=True):  # fmt: skip
        assert a <= first < a + 10 and b - 10 <= last < b and last - first == 10 * (k - 1)
    assert answer["first"][0] == 0.0 and answer["last"][-1] == 499.0
    # equal slices keep the plain fields
    plain = buckets_answer(KEY, reads.downsampled(t, 10, align="equal"), parse_unit("tstorage_ns"))
    assert "t_end" not in plain and "align" not in plain
    assert plain["t"] == slice_edges(int(caps[0]), int(caps[-1]) + 1, 10)[:-1].tolist()


def test_aligned_buckets_over_the_wire_and_through_time_series(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    """``ts:range`` with ``align`` on a ``gateway run`` process: ``gateway.TimeSeries`` gets
    each slice's end and record times; a bad ``align`` is a clear error and the connection
    keeps serving."""
    cid = fresh_cid()
    caps = T0 + np.arange(3000, dtype=np.int64) * 1000
    vals = np.cos(np.arange(3000) / 100.0)
    put(tstorage, cid, 6, 1, caps, vals)
    gw = start_gateway(config(tstorage, cid, fresh_cid()))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        ts = TimeSeries(client, KEY)
        d = ts.range(buckets=50, align="rows")
        assert d.t_end is not None and d.t_first is not None and d.t_last is not None
        assert d.first is not None
        assert int(d.n.sum()) == 3000 and d.count == 3000
        unix = (caps + EPOCH_OFFSET_NS).astype("datetime64[ns]")
        for k in range(len(d.t)):
            sel = (unix >= d.t[k]) & (unix < d.t_end[k])
            assert d.n[k] == int(sel.sum())
            assert (d.t_first[k], d.t_last[k]) == (unix[sel][0], unix[sel][-1])
            assert (d.min[k], d.max[k], d.first[k], d.last[k]) == (
                vals[sel].min(), vals[sel].max(), vals[sel][0], vals[sel][-1]
            )  # fmt: skip
        assert set(d.to_records()) >= {"t_end", "t_first", "t_last", "first"}
        plain = ts.range(buckets=50, align="equal")
        assert plain.t_end is None and "t_end" not in plain.to_records()
        default = client.call("ts:range", KEY, buckets=50)["data"]  # 60 records a slice
        assert default["align"] == "rows" and len(default["t_end"]) == len(default["t"])
        assert "align" not in client.call("ts:range", KEY, buckets=50, align="equal")["data"]
        for bad, says in (({"buckets": 5, "align": "chunks"}, "align"),
                          ({"align": "rows"}, "align applies to downsampled reads")):  # fmt: skip
            got = client.call("ts:range", KEY, **bad)
            assert got["error"]["type"] == "DataError" and says in got["error"]["msg"], got
        assert client.call("ts:info", KEY)["data"]["count"] == 3000  # still serving
    finally:
        client.close()


@pytest.mark.parametrize("align", ["equal", None])
def test_a_read_of_more_chunks_than_the_cache_holds_reads_each_once(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int], align: str | None
) -> None:
    """1,280 records in 80 chunks of 16, a record budget (1,000) below what the read needs:
    the chunks a read brings in serve it even when they made room for each other, so a
    rollup over all of them is one GET per run of chunks, not one more per chunk dropped
    (equal slices: every chunk is read; the default aligns, reading at most those)."""
    cid = fresh_cid()
    caps = T0 + np.arange(1280, dtype=np.int64) * 100
    vals = np.sin(np.arange(1280) / 25.0)
    saved_series(make_storage, tstorage, cid, fresh_cid(), caps, vals)
    gw = make_storage(
        config(tstorage, cid, fresh_cid()).replace("index_budget = 100000", "index_budget = 1000")
    )
    reads = TimeSeriesReads(gw)
    t = reads.target(KEY)
    assert reads.info(t)[0] == 1280
    seen = chunk_reads(gw, cid)
    lo, hi = int(caps[0]), int(caps[-1]) + 1
    w = reads.downsampled(t, 200, align=align)  # 2.5 slices a chunk
    assert w.align == (None if align else "rows")
    check_window(w, caps, vals, lo, hi, slice_edges(lo, hi, 200))
    spans = sorted((lo[3], hi[3]) for lo, hi in seen)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # each once
    assert len(spans) <= 2 and (spans or not align)


@given(
    st.lists(st.integers(0, 10_000), min_size=2, max_size=40, unique=True),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 300)), max_size=30),
    st.integers(0, 400),
)
def test_snapped_edges_stay_in_order_move_at_most_the_shift_and_cut_no_row(
    edge_list: list[int], row_list: list[tuple[int, int]], shift: int
) -> None:
    """Whatever the rows and the shift: the outer edges stay, edges stay strictly
    ascending, none moves by more than the shift (bounded below half the narrowest slice,
    as the reads bound it), and an edge that moved lies at an end of the row it cut."""
    edges = np.asarray(sorted(edge_list), dtype=np.int64)
    shift = min(shift, max(0, int(np.diff(edges).min()) // 2 - 1))
    rows: list[tuple[int, int]] = []
    for start, width in sorted(row_list):  # disjoint ascending rows [first, last]
        if not rows or start > rows[-1][1]:
            rows.append((start, start + width))
    first = np.asarray([a for a, _ in rows], dtype=np.int64)
    last = np.asarray([b for _, b in rows], dtype=np.int64)
    out = snap_edges(edges, first, last, shift)
    assert out[0] == edges[0] and out[-1] == edges[-1]
    assert bool((np.diff(out) > 0).all())
    assert bool((np.abs(out - edges) <= shift).all())
    for e, moved in zip(out[1:-1].tolist(), (out != edges)[1:-1].tolist(), strict=True):
        if moved:  # onto a row's first cap, or just after its last one
            assert any(e in (a, b + 1) for a, b in rows)
