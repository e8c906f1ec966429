"""Chunk summaries of series on a real TStorage: with a tiny chunk size, they agree with a
brute-force recount after random writes from several writers (appends, corrections, late
records), reads touch only the chunks they need, and ``index_budget`` bounds memory even
for one series far larger than it."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from gateway.storage import GatewayStorage
from gateway.storage.summaries import SUMMARY_WEIGHT
from gateway.timeseries.downsample import slice_edges
from gateway.timeseries.reads import TimeSeriesReads
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_index_build import put
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record

Make = Callable[[str], GatewayStorage]
T0 = 800_000_000 * 10**9


def tiny(tstorage: ServerProcess, cid: int, generic: int, chunk: int, budget: int) -> str:
    """The meters config with a tiny chunk size and budget."""
    return meter_config(tstorage, cid, generic).replace(
        "[generic]", f"index_chunk = {chunk}\nindex_budget = {budget}\n\n[generic]", 1
    )


def check_against(
    gw: GatewayStorage, reads: TimeSeriesReads, key: str, model: dict[int, float]
) -> None:
    """Every read of the series, and every chunk summary, agrees with the model."""
    t = reads.target(key)
    caps = sorted(model)
    vals = [model[c] for c in caps]
    full = "znsocket.List:" + key
    assert gw.llen(full) == len(caps)
    count, first, last, _ = reads.info(t)
    assert (count, first, last) == (len(caps), caps[0], caps[-1])
    window = reads.range(t, limit=100_000)
    assert window.caps.tolist() == caps and window.values == vals
    rng = np.random.default_rng(len(caps))
    for i in rng.integers(-len(caps), len(caps), 20).tolist():
        assert gw.lindex(full, i) == str(vals[i])
    assert gw.lrange(full, -7, -1) == [str(v) for v in vals[-7:]]
    # each chunk's row is a recount of the records in its cap range
    box, lock, idx = gw.series.series_index(t)
    with lock:
        # what the budget counts is what is held (the gateway reads no other series)
        held = sum(idx.held(lo) for lo in idx.lo.tolist())
        assert gw.series.held() == box.size + held
        bounds = [*idx.lo.tolist(), 2**63]
        arr_c, arr_v = np.asarray(caps), np.asarray(vals)
        for k in range(idx.chunks):
            sel = (arr_c >= bounds[k]) & (arr_c < bounds[k + 1])
            row = idx.summary(k)
            assert row.count == int(sel.sum())
            if row.count:
                v = arr_v[sel]
                assert (row.first, row.last) == (int(arr_c[sel][0]), int(arr_c[sel][-1]))
                assert (row.min, row.max, row.first_value, row.last_value) == (
                    v.min(),
                    v.max(),
                    v[0],
                    v[-1],
                )
                assert np.isclose(row.sum, v.sum(), rtol=1e-12)
    # downsampling over the whole series and over a window that cuts chunks
    for start, end in ((None, None), (caps[len(caps) // 5] + 1, caps[-len(caps) // 5])):
        b = reads.downsampled(t, 7, start, end, align="equal").buckets
        lo = caps[0] if start is None else start
        hi = caps[-1] + 1 if end is None else end
        inside = (arr_c >= lo) & (arr_c < hi)
        which = np.searchsorted(slice_edges(lo, hi, 7), arr_c[inside], side="right") - 1
        v = arr_v[inside]
        filled = [k for k in range(7) if (which == k).any()]
        assert b.n.tolist() == [int((which == k).sum()) for k in filled]
        assert b.min.tolist() == [v[which == k].min() for k in filled]
        assert b.max.tolist() == [v[which == k].max() for k in filled]
        assert b.last.tolist() == [v[which == k][-1] for k in filled]
        assert b.first is not None and b.first.tolist() == [v[which == k][0] for k in filled]
        assert np.allclose(b.mean, [v[which == k].mean() for k in filled], rtol=1e-12)


def test_summaries_agree_with_a_recount_after_writes_from_several_writers(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=4, budget=2000))
    other = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=4, budget=2000))
    reads = TimeSeriesReads(gw)
    key = "meters/3/1"
    rng = np.random.default_rng(11)
    model: dict[int, float] = {}

    def outside(caps: np.ndarray, vals: np.ndarray) -> None:
        put(tstorage, cid, 3, 1, caps, vals)  # a tstorage_client writer
        model.update(zip(caps.tolist(), vals.tolist(), strict=True))

    outside(T0 + np.arange(0, 400, dtype=np.int64) * 100, rng.normal(size=400))
    check_against(gw, reads, key, model)  # the first build
    for _ in range(4):
        held = np.asarray(sorted(model), dtype=np.int64)
        # corrections of held caps, late records between held caps, appends at the end
        fix = rng.choice(held, 15, replace=False)
        outside(fix, rng.normal(size=15))
        late = rng.choice(held[:-1], 15, replace=False) + rng.integers(1, 99, 15)
        outside(late, rng.normal(size=15))
        tail = held[-1] + 100 * np.arange(1, 30, dtype=np.int64)
        outside(rng.permutation(tail), rng.normal(size=29))
        # another gateway appends too (its caps: now, after every record)
        other_reads = TimeSeriesReads(other)
        for v in rng.normal(size=5).tolist():
            n_before = other.llen("znsocket.List:" + key)
            assert other.rpush("znsocket.List:" + key, str(v)) == n_before + 1
        mine = other_reads.latest(other_reads.target(key), 5)
        model.update(zip(mine.caps.tolist(), mine.values, strict=True))  # type: ignore[arg-type]
        gw.series.series_index(reads.target(key), fresh=True)  # the change feed, now
        check_against(gw, reads, key, model)
        # and a fresh gateway builds the same from scratch
        fresh = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=4, budget=2000))
        check_against(fresh, TimeSeriesReads(fresh), key, model)
    _, _, idx = gw.series.series_index(reads.target(key))
    assert idx.chunks > 100  # the series spans many chunks: the test means something
    assert gw.series.held() <= 2000 + 2 * 4


def test_one_series_larger_than_the_budget_is_held_within_it(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """20,000 records, a budget of 2,000: reads anywhere read one chunk each and memory
    stays within the budget (the whole-series index held all 20,000)."""
    cid = fresh_cid()
    n, chunk, budget = 20_000, 256, 2000
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    vals = np.arange(n) * 0.5
    put(tstorage, cid, 4, 1, caps, vals)
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=chunk, budget=budget))
    full = "znsocket.List:meters/4/1"
    assert gw.llen(full) == n
    reads_of: list[tuple[Any, Any]] = []
    for name in ("stream", "stream_columns", "get"):
        real = getattr(gw.link, name)

        def spy(lo: Any, hi: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            reads_of.append((lo, hi))
            return _real(lo, hi, *args, **kwargs)

        setattr(gw.link, name, spy)
    rng = np.random.default_rng(3)
    for i in rng.integers(0, n, 50).tolist():
        reads_of.clear()
        assert gw.lindex(full, i) == str(vals[i])
        # one read of the chunk holding i (caught up already: no feed read)
        assert len(reads_of) <= 2
        spans = [(hi[3] - lo[3]) // 10 for lo, hi in reads_of if hi[3] - lo[3] < 2**62]
        assert all(s <= 2 * chunk for s in spans)
        assert gw.series.held() <= budget + chunk
    assert gw.lrange(full, -1000, -1) == [str(v) for v in vals[-1000:].tolist()]
    reads = TimeSeriesReads(gw)
    b = reads.downsampled(reads.target("meters/4/1"), 10, align="equal").buckets
    assert b.n.tolist() == [n // 10] * 10 and b.max.tolist()[-1] == vals[-1]
    assert gw.series.held() <= budget + chunk
    _, _, idx = gw.series.series_index(reads.target("meters/4/1"))
    assert idx.chunks * SUMMARY_WEIGHT < budget


def test_a_payload_of_another_size_in_one_chunk_leaves_the_others_columnar(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    caps = T0 + np.arange(100, dtype=np.int64)
    put(tstorage, cid, 6, 1, caps, caps - T0 + 0.25)
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        assert ch.put([Record(Key(cid, 6, 1, T0 + 50, 0), b"odd!")]).is_ok()  # a correction
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=8, budget=1000))
    reads = TimeSeriesReads(gw)
    t = reads.target("meters/6/1")
    assert reads.info(t)[0] == 100
    assert gw.lindex("znsocket.List:meters/6/1", 99) == str(99.25)
    assert gw.lindex("znsocket.List:meters/6/1", 3) == str(3.25)
    # downsampling a window that skips the odd record uses summaries and raw numbers alike
    b = reads.downsampled(t, 2, T0 + 56, T0 + 100, align="equal").buckets
    assert b.n.tolist() == [22, 22] and b.min.tolist()[0] == 56.25
    assert struct.pack("<d", b.max[-1]) == struct.pack("<d", 99.25)


def test_a_first_read_that_asks_for_own_writes_counts_every_record(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """The first read of a series is a ``ts:*`` read (it asks whether the series holds own
    writes before the build) and the series is larger than the budget: every record is
    counted, at chunk ends too."""
    cid = fresh_cid()
    rng = np.random.default_rng(15)
    caps = T0 + np.cumsum(rng.choice([1, 1, 1, 7, 30, 90, 5000], size=3000)).astype(np.int64)
    vals = rng.normal(size=3000)
    put(tstorage, cid, 8, 1, caps, vals)
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=8, budget=1000))
    reads = TimeSeriesReads(gw)
    assert reads.info(reads.target("meters/8/1"))[:3] == (3000, caps[0], caps[-1])
    assert gw.llen("znsocket.List:meters/8/1") == 3000
    model = dict(zip(caps.tolist(), vals.tolist(), strict=True))
    check_against(gw, reads, "meters/8/1", model)


def test_a_cold_chunk_read_holds_no_slack_and_keeps_the_prefix_counts(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    # A chunk read from TStorage gets the room its summary expects up front (no arrays
    # grown by doubling while it streams in), and a read that finds the count the summary
    # had leaves the prefix counts of the series as they were (no recount of them all).
    cid = fresh_cid()
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=37, budget=1000))
    reads = TimeSeriesReads(gw)
    caps = T0 + np.arange(0, 3000, dtype=np.int64) * 100
    vals = np.sin(np.arange(3000) / 7.0)
    put(tstorage, cid, 3, 1, caps, vals)
    t = reads.target("meters/3/1")
    assert reads.info(t)[0] == 3000
    _, lock, idx = gw.series.series_index(t)
    with lock:
        cold = [k for k in range(idx.chunks) if idx.held(int(idx.lo[k])) == 0]
        assert len(cold) > 10  # most chunks are not cached (the budget): the test means something
        starts = idx.starts()
        for k in cold[:5]:
            data = idx.chunk(k)
            n = int(idx.count[k])
            assert len(data) == n and data.caps.tolist() == caps[starts[k] : starts[k] + n].tolist()
            assert data.nbytes == n * (8 + 8 + 8)  # caps, acqs and 8-byte payloads, no slack
            assert idx.starts() is starts
    check_against(gw, reads, "meters/3/1", dict(zip(caps.tolist(), vals.tolist(), strict=True)))


def test_appended_records_update_their_chunk_row_to_the_bits_of_a_recount(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """Appends one at a time and a few at once (a NaN and infinities among them) keep each
    chunk's row exactly what a recount gives: the count, caps, min/max/first/last, and the
    sum of its values added in cap order; the same after the chunks are read back from
    TStorage, and in a fresh gateway that starts from the persisted summaries."""
    cid = fresh_cid()
    text = tiny(tstorage, cid, fresh_cid(), chunk=50, budget=100_000).replace(
        "[generic]", "index_save = 0\n\n[generic]", 1
    )
    gw = make_storage(text)
    reads = TimeSeriesReads(gw)
    key, full = "meters/4/1", "znsocket.List:meters/4/1"
    rng = np.random.default_rng(21)
    vals = (rng.normal(size=420) * 1e3 + 1e-3).tolist()  # sums that depend on their order
    vals[130], vals[260], vals[261] = float("nan"), float("inf"), float("-inf")
    i = 0
    while i < len(vals):
        n = 1 if i % 100 < 80 else 3
        assert gw.rpush(full, *(json.dumps(v) for v in vals[i : i + n])) == min(i + n, len(vals))
        i += n
    t = reads.target(key)
    caps = reads.range(t, limit=1000).caps
    assert gw.llen(full) == len(caps) == len(vals)  # and positions across chunk starts:
    assert [gw.lindex(full, i) for i in (0, 49, 50, 51, 299, -1)] == [
        str(vals[i]) for i in (0, 49, 50, 51, 299, -1)
    ]

    def rows(g: GatewayStorage) -> list[tuple[Any, ...]]:
        _, lock, idx = g.series.series_index(TimeSeriesReads(g).target(key))
        with lock:
            return [tuple(vars(idx.summary(k)).values()) for k in range(idx.chunks)]

    def recount(lo: int, cs: np.ndarray, vs: list[float]) -> tuple[Any, ...]:
        total = 0.0
        for v in vs:  # one after the other, as the chunk received them
            total += v
        a = np.asarray(vs)
        return (lo, len(vs), int(cs[0]), int(cs[-1]), True, a.min(), a.max(), total, vs[0], vs[-1])

    _, lock, idx = gw.series.series_index(t)
    with lock:
        los = idx.lo.tolist()
    assert len(los) >= 8  # rows were appended to, and full chunks cut
    bounds = np.searchsorted(caps, [*los[1:], 2**63 - 1])
    want = [
        recount(lo, caps[a:b], vals[a:b])
        for lo, a, b in zip(los, [0, *bounds[:-1]], bounds, strict=True)
    ]
    assert any(np.isnan(w[5]) for w in want) and any(np.isnan(w[7]) for w in want)

    def same(got: list[tuple[Any, ...]]) -> None:
        assert [r[:5] for r in got] == [w[:5] for w in want]
        # the values exactly (NaN where a NaN is)
        np.testing.assert_array_equal([r[5:] for r in got], [w[5:] for w in want])

    same(rows(gw))
    gw.series.series_index(t, fresh=True)  # the feed brings the appends back (their acq)
    with lock:  # every chunk read back from TStorage and recounted
        for lo in los:
            idx.drop(lo)
        idx.preload(range(idx.chunks))
    same(rows(gw))
    fresh = make_storage(text)  # starts from the persisted summaries
    same(rows(fresh))
    model = dict(zip(caps.tolist(), vals, strict=True))
    assert len(model) == len(vals) and len(fresh.lrange(full, 0, -1)) == len(vals)


def test_which_times_a_series_holds_agrees_with_its_records_across_many_chunks(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """What an import checks before it writes: of 3,000 asked times (held ones, ones in the
    gaps between records and between chunks, before the first and after the last), the
    series holds exactly those with a record, read chunk by chunk under a budget smaller
    than the series."""
    cid = fresh_cid()
    rng = np.random.default_rng(4)
    caps = T0 + np.cumsum(rng.choice([1, 2, 50], size=20_000)).astype(np.int64) * 10
    put(tstorage, cid, 4, 1, caps, np.zeros(len(caps)))
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=64, budget=2000))
    t = TimeSeriesReads(gw).target("meters/4/1")
    asked = np.r_[rng.choice(caps, 1500), rng.integers(caps[0] - 100, caps[-1] + 100, 1500)]
    last, held = gw.series.existing(t, asked.tolist())
    assert last == int(caps[-1])
    have = set(caps.tolist())
    assert held == {int(c) for c in asked if c in have}
