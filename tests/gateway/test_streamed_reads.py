"""A numeric window read over chunks not cached streams from TStorage and leaves the cache.

Reading a window of a series larger than ``index_budget`` through the chunk cache reads
every chunk into it and evicts it again; such a read streams its records instead, with the
same answer: every record with ``acq`` below the watermark, the newest version per cap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gateway.storage import GatewayStorage
from gateway.timeseries.reads import TimeSeriesReads
from tests._servers import ServerProcess
from tests.gateway.test_index_build import put
from tests.gateway.test_summaries import T0, tiny

Make = Callable[[str], GatewayStorage]
F8 = np.dtype("<f8")


def test_a_window_over_uncached_chunks_equals_the_records_and_keeps_the_cache(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    n, chunk, budget = 20_000, 64, 4000
    rng = np.random.default_rng(17)
    model: dict[int, float] = {}

    def outside(caps: np.ndarray, vals: np.ndarray) -> None:
        put(tstorage, cid, 5, 1, caps, vals)  # another writer, straight to TStorage
        model.update(zip(caps.tolist(), vals.tolist(), strict=True))

    outside(T0 + np.arange(n, dtype=np.int64) * 10, rng.normal(size=n))
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=chunk, budget=budget))
    reads = TimeSeriesReads(gw)
    t = reads.target("meters/5/1")
    assert reads.info(t)[0] == n  # built
    held = np.asarray(sorted(model), dtype=np.int64)
    # corrections (one cap corrected twice: three versions), late records between caps
    fix = rng.choice(held, 300, replace=False)
    outside(fix, rng.normal(size=300))
    outside(fix[:50], rng.normal(size=50))
    late = rng.choice(held[:-1], 300, replace=False) + rng.integers(1, 9, 300)
    outside(late, rng.normal(size=300))
    gw.series.series_index(t, fresh=True)  # the change feed, now
    # a small window read through the cache: its chunks stay cached
    small = reads.range_array(t, F8, int(held[100]), int(held[300]))
    assert small.caps.tolist() == sorted(c for c in model if held[100] <= c < held[300])
    _, lock, idx = gw.series.series_index(t)
    with lock:
        cached = {lo for lo in idx.lo.tolist() if idx.held(lo)}
    assert len(cached) > 20

    caps = np.asarray(sorted(model), dtype=np.int64)
    vals = np.asarray([model[c] for c in caps.tolist()])
    whole = reads.range_array(t, F8, limit=1_048_576, max_limit=1_048_576)
    assert whole.count == len(caps) and whole.next_cap is None
    assert np.array_equal(whole.caps, caps)
    assert np.array_equal(whole.values, vals)
    # a page in the middle: its limit and where the next one starts; a correction another
    # writer stores while the page streams is newer than its watermark: not in this page
    real = gw.link.stream_columns

    def racing(*args: Any, **kwargs: Any) -> Any:
        put(tstorage, cid, 5, 1, caps[[6000]], np.asarray([1e9]))
        return real(*args, **kwargs)

    gw.link.stream_columns = racing  # type: ignore[method-assign]
    page = reads.range_array(t, F8, int(caps[5000]), limit=9000, max_limit=1_048_576)
    gw.link.stream_columns = real  # type: ignore[method-assign]
    assert np.array_equal(page.caps, caps[5000:14000])
    assert np.array_equal(page.values, vals[5000:14000])
    assert page.next_cap == int(caps[14000]) and page.count == len(caps) - 5000

    with lock:
        # the long reads did not flush the chunks cached before them (a read finds its
        # positions in the chunks at its ends: at most two per read may give way)
        assert len(cached - {lo for lo in idx.lo.tolist() if idx.held(lo)}) <= 2 * 2
    assert gw.series.held() <= budget + chunk
    gw.series.series_index(t, fresh=True)
    again = reads.range_array(t, F8, int(caps[5000]), limit=9000, max_limit=1_048_576)
    assert again.values[1000] == 1e9 and np.array_equal(again.caps, page.caps)


def test_a_small_window_still_reads_through_the_cache(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    n = 3000
    vals = np.arange(n) * 0.25
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    put(tstorage, cid, 6, 1, caps, vals)
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=64, budget=100_000))
    reads = TimeSeriesReads(gw)
    t = reads.target("meters/6/1")
    got = reads.range_array(t, F8, limit=n, max_limit=n)  # 3000 < 64 chunks of 64
    assert np.array_equal(got.caps, caps) and np.array_equal(got.values, vals)
    _, lock, idx = gw.series.series_index(t)
    with lock:
        assert sum(idx.held(lo) for lo in idx.lo.tolist()) == n  # cached for the next read
