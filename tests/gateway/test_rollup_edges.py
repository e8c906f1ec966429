"""Downsampled reads built from chunk summaries and the records of the chunks that straddle a
slice edge agree with numpy over the raw records, at every edge: random windows, bucket
counts and intervals over series cut into tiny chunks (slices narrower and wider than a
chunk, empty slices, gaps, NaN), with some chunks cached and others not (a small budget),
before and after corrections and late records from another writer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from gateway.storage import GatewayStorage, summaries
from gateway.timeseries.downsample import interval_slices, slice_edges
from gateway.timeseries.reads import MAX_BUCKETS, TimeSeriesReads
from tests._servers import ServerProcess
from tests.gateway.test_index_build import put
from tests.gateway.test_summaries import tiny

Make = Callable[[str], GatewayStorage]
T0 = 800_000_000 * 10**9


def expect(
    caps: np.ndarray, vals: np.ndarray, lo: int, hi: int, edges: np.ndarray
) -> dict[str, np.ndarray]:
    """The non-empty slices of ``edges`` over the records of ``[lo, hi)``, by numpy."""
    inside = (caps >= lo) & (caps < hi)
    c, v = caps[inside], vals[inside]
    which = np.searchsorted(edges, c, side="right") - 1
    filled = np.unique(which)
    groups = [v[which == k] for k in filled]
    return {
        "start": edges[filled],
        "n": np.asarray([len(g) for g in groups], dtype=np.int64),
        "min": np.asarray([g.min() for g in groups]),
        "max": np.asarray([g.max() for g in groups]),
        "first": np.asarray([g[0] for g in groups]),
        "last": np.asarray([g[-1] for g in groups]),
        "mean": np.asarray([g.mean() for g in groups]),
    }


def outside_changes(
    ts: ServerProcess, cid: int, mid: int, caps: np.ndarray, model: dict[int, float],
    rng: np.random.Generator, n: int,
) -> None:  # fmt: skip
    """One PUT by another writer of ``n`` corrections of held caps, up to ``n`` late records
    between them and ``2 * n + 20`` appends (they grow and split the last chunk); ``model``
    follows it."""
    fix = rng.choice(caps, n, replace=False)
    late = rng.choice(caps[:-1], n, replace=False) + 1
    late = late[~np.isin(late, caps)]
    tail = caps[-1] + 3 * np.arange(1, 2 * n + 21, dtype=np.int64)
    more = np.concatenate([fix, late, tail])
    more_vals = rng.normal(size=more.size).round(2)
    put(ts, cid, mid, 1, more, more_vals)
    model.update(zip(more.tolist(), more_vals.tolist(), strict=True))


def check(reads: TimeSeriesReads, key: str, model: dict[int, float], rng: np.random.Generator,
          rounds: int) -> None:  # fmt: skip
    t = reads.target(key)
    caps = np.asarray(sorted(model), dtype=np.int64)
    vals = np.asarray([model[c] for c in caps.tolist()])
    span = int(caps[-1] - caps[0])
    assert reads.info(t)[0] == len(caps)
    for _ in range(rounds):
        start = None if rng.random() < 0.2 else int(caps[0]) + int(rng.integers(-50, span))
        end = None if rng.random() < 0.2 else int(caps[0]) + int(rng.integers(0, span + 50))
        if start is not None and end is not None and start > end:
            start, end = end, start
        lo = int(caps[0]) if start is None else start
        hi = int(caps[-1]) + 1 if end is None else end
        if rng.random() < 0.3:  # by interval: whole intervals around the window
            every = int(rng.integers(1, 400))
            if interval_slices(lo, hi, every, 10**9)[2] > MAX_BUCKETS:
                continue
            w = reads.downsampled(t, None, start, end, every=every)
            s_lo, s_hi, count = interval_slices(lo, hi, every, MAX_BUCKETS)
        else:
            count = int(rng.choice([1, 2, 7, int(rng.integers(1, 60)), int(rng.integers(60, 900))]))
            w = reads.downsampled(t, count, start, end, align="equal")
            s_lo, s_hi = lo, hi
        want = expect(caps, vals, lo, hi, slice_edges(s_lo, s_hi, count))
        b = w.buckets
        assert w.count == int(((caps >= lo) & (caps < hi)).sum())
        assert w.slices == count
        for name in ("start", "n", "min", "max", "first", "last"):
            np.testing.assert_array_equal(getattr(b, name), want[name], err_msg=name)
        np.testing.assert_allclose(b.mean, want["mean"], rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    "chunk, block, budget",
    [(8, summaries.BLOCK_RECORDS, 1000), (32, 3, 1000), (32, 3, 100_000)],
)
def test_rollups_agree_with_numpy_at_every_edge(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
    block: int,
    budget: int,
) -> None:
    """Blocks of a chunk's records (``block`` records each) are counted by their rows when
    no edge cuts them: a chunk of ``chunk`` records spans several blocks, or one. With room
    for a third of the series, chunks are evicted and read again while a rollup runs; with
    room for all of it, the corrections change chunks whose block rows are held."""
    monkeypatch.setattr(summaries, "BLOCK_RECORDS", block)
    cid = fresh_cid()
    rng = np.random.default_rng(15)
    # bursts 1 ns apart, steps of tens, a few long gaps (empty slices, empty chunk ranges)
    steps = rng.choice([1, 1, 1, 7, 30, 90, 5000], size=3000).astype(np.int64)
    caps = T0 + np.cumsum(steps)
    vals = rng.normal(size=3000).round(2)  # ties for min and max
    vals[[100, 2000]] = np.nan
    put(tstorage, cid, 5, 1, caps, vals)
    model = dict(zip(caps.tolist(), vals.tolist(), strict=True))
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=chunk, budget=budget))
    reads = TimeSeriesReads(gw)
    check(reads, "meters/5/1", model, rng, 40)
    # corrections, late records and appends land in cached and uncached chunks alike
    outside_changes(tstorage, cid, 5, caps, model, rng, 40)
    gw.series.series_index(reads.target("meters/5/1"), fresh=True)
    check(reads, "meters/5/1", model, rng, 40)
    _, _, idx = gw.series.series_index(reads.target("meters/5/1"))
    assert idx.chunks > 3000 // (2 * chunk)  # many chunks: most slices cut some
