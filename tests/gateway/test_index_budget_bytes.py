"""``[tstorage] index_budget_bytes`` bounds what the series indexes hold, in bytes: summary
rows plus cached chunks (their arrays, block rows and bookkeeping), whatever the length of a
series. Reads across many chunks of a series far larger than the budget stay exact, the
gateway's own accounting (``/health``) stays within the budget, and so does its memory."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gateway.storage.series_index as series_module
import znsocket
from gateway.config import load_config
from gateway.keymap import ListTarget
from gateway.storage import GatewayStorage
from gateway.storage.fine_rows import pending_bytes
from gateway.timeseries.downsample import slice_edges
from gateway.timeseries.proxy import TimeSeries
from gateway.timeseries.reads import TimeSeriesReads
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_index_build import put
from tstorage_client.timestamp import EPOCH_OFFSET_NS

Make = Callable[[str], GatewayStorage]
T0 = 800_000_000 * 10**9
UNIX_OFFSET = EPOCH_OFFSET_NS  # ts:range takes Unix ns


def budgeted(tstorage: ServerProcess, cid: int, generic: int, chunk: int, nbytes: int) -> str:
    """The meters config with a small chunk size and byte budget (no record bound hit)."""
    lines = f"index_chunk = {chunk}\nindex_budget_bytes = {nbytes}\nindex_persist = false"
    return meter_config(tstorage, cid, generic).replace("[generic]", f"{lines}\n\n[generic]", 1)


def accounted(gw: GatewayStorage) -> dict[str, int]:
    """The gateway's accounting, checked against what its indexes hold."""
    mem = {k: v for k, v in gw.series.memory().items() if v is not None}
    assert mem["held_bytes"] == gw.series.held_bytes()
    pending = mem["fine_pending_bytes"]
    assert mem["held_bytes"] == mem["summary_bytes"] + pending + mem["cached_bytes"]
    # the running totals agree with a recount of the series held
    boxes = list(gw.series._boxes.values())
    series = [i for b in boxes for i in b.moids.values()]
    assert mem["summary_rows"] == sum(i.chunks for i in series)
    assert mem["summary_bytes"] + pending == sum(b.nbytes for b in boxes)
    assert pending == sum(pending_bytes(r) for i in series for r in i.fine_pending.values())
    return mem


def test_reads_across_many_chunks_stay_exact_within_a_tiny_byte_budget(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """100,000 records (2.4 MB of caps, acqs and payloads), a budget of 256 KiB: random
    positions, slices and rollups anywhere read what they need and drop the rest."""
    cid = fresh_cid()
    n, chunk, budget = 100_000, 256, 256 * 1024
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    vals = np.sin(np.arange(n) / 100.0)
    put(tstorage, cid, 4, 1, caps, vals)
    gw = make_storage(budgeted(tstorage, cid, fresh_cid(), chunk, budget))
    full = "znsocket.List:meters/4/1"
    reads = TimeSeriesReads(gw)
    t = reads.target("meters/4/1")
    assert gw.llen(full) == n
    rng = np.random.default_rng(5)
    most = 0
    for i in rng.integers(0, n, 60).tolist():
        assert gw.lindex(full, i) == str(vals[i])
        most = max(most, accounted(gw)["held_bytes"])
    for a in rng.integers(0, n - 3000, 5).tolist():  # slices of a dozen chunks
        assert gw.lrange(full, a, a + 2999) == [str(v) for v in vals[a : a + 3000].tolist()]
        most = max(most, accounted(gw)["held_bytes"])
    # rollups: every bucket edge lies in another chunk (more edge chunks than fit)
    for lo, hi in ((int(caps[0]), int(caps[-1]) + 1), (int(caps[7_777]), int(caps[91_234]))):
        buckets = reads.downsampled(t, 200, lo, hi, align="equal").buckets
        inside = (caps >= lo) & (caps < hi)
        which = np.searchsorted(slice_edges(lo, hi, 200), caps[inside], side="right") - 1
        v = vals[inside]
        assert buckets.n.tolist() == np.bincount(which, minlength=200).tolist()
        assert buckets.min.tolist() == [v[which == k].min() for k in range(200)]
        assert buckets.max.tolist() == [v[which == k].max() for k in range(200)]
        assert buckets.last.tolist() == [v[which == k][-1] for k in range(200)]
        most = max(most, accounted(gw)["held_bytes"])
    mem = accounted(gw)
    assert most <= budget
    # the budget was used, and the cache turned over: the reads touched far more chunks
    assert mem["cached_chunks"] > 10 and mem["held_bytes"] > budget // 2
    assert mem["summary_rows"] >= n // chunk and mem["budget_bytes"] == budget
    # what is counted is what the arrays take
    _, lock, idx = gw.series.series_index(t)
    with lock:
        cached = [lo for lo in idx.lo.tolist() if idx.held(lo)]
        arrays = sum(a.nbytes for a in idx.columns().values()) + idx.starts().nbytes
        assert mem["summary_bytes"] == arrays
        assert mem["cached_chunks"] == len(cached)
        assert mem["cached_bytes"] == sum(idx.held_bytes(lo) for lo in cached)
        assert all(idx.held_bytes(lo) >= 24 * idx.held(lo) for lo in cached)


def test_a_bulk_write_over_the_budget_costs_no_scan_of_the_cache_per_chunk(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Own writes whose acq TStorage has not told yet keep their chunks cached, past the
    budget: eviction then finds nothing to drop, and must not look through every cached
    chunk again for each chunk the write adds (quadratic in the write). Once the change
    feed brings the writes back, the budget holds again."""
    cid = fresh_cid()
    put(tstorage, cid, 7, 1, T0 + np.arange(100, dtype=np.int64), np.ones(100))
    gw = make_storage(budgeted(tstorage, cid, fresh_cid(), 2, 1 << 16))
    assert gw.lindex("znsocket.List:meters/7/1", 50) == "1.0"  # a chunk read: the budget set
    full = "znsocket.List:meters/6/1"
    t = gw.resolve(full)
    assert isinstance(t, ListTarget)
    checks = [0]
    pinned = series_module.SeriesIndex.pinned

    def counted(self: Any, lo: int) -> bool:
        checks[0] += 1
        return bool(pinned(self, lo))

    monkeypatch.setattr(series_module.SeriesIndex, "pinned", counted)
    n, batch = 6000, 500  # 3,000 chunks of 2 records, far over a 64 KiB budget
    for i in range(0, n, batch):
        caps = T0 + np.arange(i, i + batch, dtype=np.int64) * 10
        payloads = np.arange(i, i + batch, dtype="<f8").view(np.uint8).reshape(batch, 8)
        gw.series.extend_columns(t, caps, payloads)
    assert gw.llen(full) == n
    assert checks[0] < 10 * (n // 2), checks[0]  # without the shortcut: millions
    gw.series.series_index(t, settled=True)  # the change feed settles the own writes
    assert gw.lindex(full, 0) == "0.0"
    mem = accounted(gw)
    # the budget holds again for chunks (the summaries of a series in use always stay)
    assert mem["cached_bytes"] <= 1 << 16, mem


def crowded(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int], series: int,
    n: int,
) -> GatewayStorage:  # fmt: skip
    """A gateway whose 64 KiB budget holds the summaries (chunks of 2) of only some of
    ``series`` series of ``n`` records each (``meters/6/1``... valued by their moid)."""
    cid = fresh_cid()
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    for moid in range(1, series + 1):
        put(tstorage, cid, 6, moid, caps, np.full(n, float(moid)))
    return make_storage(budgeted(tstorage, cid, fresh_cid(), 2, 1 << 16))


def test_summary_totals_follow_series_that_grow_split_and_are_dropped(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """40 series of 50 summary rows each (about 160 KB) under a 64 KiB budget: whole
    series are dropped to make room and built again when read; the budget check's running
    totals of summary rows stay equal to a recount throughout."""
    n, series = 100, 40
    gw = crowded(make_storage, tstorage, fresh_cid, series, n)
    for moid in [*range(1, series + 1), 1, 2, 3]:
        full = f"znsocket.List:meters/6/{moid}"
        assert gw.llen(full) == n
        assert gw.lindex(full, n // 2) == str(float(moid))
        mem = accounted(gw)
    assert mem["summary_rows"] < series * n // 2  # some series were dropped
    # appends split the last chunk of a series held: the totals grow with it
    full = "znsocket.List:meters/6/3"
    before = accounted(gw)["summary_rows"]
    for i in range(6):
        gw.rpush(full, str(100.0 + i))
    assert gw.llen(full) == n + 6
    assert accounted(gw)["summary_rows"] > before


def test_a_box_another_thread_holds_stays_while_others_make_room(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """Summaries alone exceed a 64 KiB budget, so reads drop whole series for room; a
    series another thread reads or changes at that moment (holding its lock) is not one
    of them, and goes like any other once let go."""
    n, series = 100, 30
    gw = crowded(make_storage, tstorage, fresh_cid, series, n)
    reads = TimeSeriesReads(gw)
    held = reads.target("meters/6/1")
    assert gw.llen("znsocket.List:meters/6/1") == n
    box = gw.series._series_box(held)[0]
    taken, done = threading.Event(), threading.Event()

    def reader() -> None:  # as a read of another client, in its own thread
        with gw.series.series_lock(held):
            taken.set()
            done.wait(30)

    other = threading.Thread(target=reader)
    other.start()
    try:
        assert taken.wait(10)
        for moid in range(2, series + 1):
            assert gw.llen(f"znsocket.List:meters/6/{moid}") == n
        assert box in gw.series._boxes.values()  # the others went, this one stayed
        assert accounted(gw)["summary_rows"] < series * n // 2
    finally:
        done.set()
        other.join(10)
    for moid in range(2, series + 1):
        assert gw.llen(f"znsocket.List:meters/6/{moid}") == n
    assert box not in gw.series._boxes.values()  # let go: it made room like the others
    assert gw.llen("znsocket.List:meters/6/1") == n


def test_a_box_dropped_for_room_while_a_read_uses_it_is_read_again(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """Another read drops the box of A for room between A's catch-up and its series: the
    read of A takes A's box again (not an empty series of the dropped box), and the
    totals of summary rows stay equal to a recount."""
    cid = fresh_cid()
    n = 1000
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    put(tstorage, cid, 6, 1, caps, np.ones(n))
    put(tstorage, cid, 7, 1, caps, np.ones(n))
    gw = make_storage(budgeted(tstorage, cid, fresh_cid(), 2, 1 << 16))
    a, b = "znsocket.List:meters/6/1", "znsocket.List:meters/7/1"
    assert gw.llen(a) == n
    series = gw.series
    catch_up = series._catch_up
    armed = [0]

    def then_b(box: Any, lock: Any, *args: Any, **kwargs: Any) -> None:
        catch_up(box, lock, *args, **kwargs)
        if armed[0] and box.lo[1] == 6:
            armed[0] -= 1
            assert gw.llen(b) == n  # as another client's read may, from another thread

    series._catch_up = then_b  # type: ignore[method-assign]
    for _ in range(4):
        armed[0] = 1
        assert gw.llen(a) == n
        assert gw.lindex(a, n - 1) == "1.0"
        accounted(gw)


def test_a_dict_read_whose_box_is_dropped_while_it_waits_for_tstorage_shows_every_field(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """A Dict read waits for TStorage (a field's last chunk is not cached); meanwhile
    another read drops the meter's box for room: the fields still read come from the
    indexes the read took with the box, not from the emptied box (no field goes missing)."""
    cid = fresh_cid()
    n = 1000
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    for moid in (1, 2, 3):
        put(tstorage, cid, 6, moid, caps, np.full(n, float(moid)))
    put(tstorage, cid, 7, 1, caps, np.ones(n))
    gw = make_storage(budgeted(tstorage, cid, fresh_cid(), 2, 1 << 16))
    meter, other = "znsocket.Dict:meters/6", "znsocket.List:meters/7/1"
    link = gw.series.link
    stream_columns = link.stream_columns
    armed = [0]

    def then_other(*args: Any, **kwargs: Any) -> Any:
        got = stream_columns(*args, **kwargs)
        if armed[0]:
            armed[0] -= 1
            assert gw.llen(other) == n  # as another client's read may, during this wait
        return got

    link.stream_columns = then_other  # type: ignore[method-assign]
    dropped = 0
    for _ in range(4):
        boxes_before = set(map(id, gw.series._boxes.values()))
        armed[0] = 1
        assert gw.hgetall(meter) == {"1": "1.0", "2": "2.0", "3": "3.0"}
        dropped += len(boxes_before - set(map(id, gw.series._boxes.values())))
        armed[0] = 1
        assert gw.hmget(meter, ["3", "1"]) == ["3.0", "1.0"]
        accounted(gw)
    assert dropped  # the interleaving did drop the meter's box


def test_two_first_reads_of_one_series_count_it_once(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gw = make_storage(meter_config(tstorage, fresh_cid(), fresh_cid()))
    made = series_module.SeriesIndex

    class Slow(made):  # type: ignore[misc,valid-type]
        # a thread switch inside the constructor: both reads make an index of the series
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            time.sleep(0.05)

    monkeypatch.setattr(series_module, "SeriesIndex", Slow)
    gw.llen("znsocket.List:meters/9/8")
    reads = [threading.Thread(target=gw.llen, args=("znsocket.List:meters/9/9",)) for _ in "ab"]
    for r in reads:
        r.start()
    for r in reads:
        r.join()
    mem = accounted(gw)
    assert mem["summary_rows"] == 2


def test_index_budget_bytes_is_checked_and_documented(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    base = '[tstorage]\nhost = "127.0.0.1"\nport = 1\n'
    path.write_text(base)
    assert load_config(path).tstorage.index_budget_bytes == 128 * 1024 * 1024
    path.write_text(base + "index_budget_bytes = 1000\n")
    with pytest.raises(Exception, match="index_budget_bytes"):
        load_config(path)
    doc = (Path(__file__).resolve().parents[2] / "config" / "README.md").read_text()
    assert "`index_budget_bytes`" in doc


def _vm(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def _health(gw: ServerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{gw.url}/health", timeout=10) as res:
        out: dict[str, Any] = json.loads(res.read())
        return out


@pytest.mark.slow
def test_a_gateway_process_holds_a_long_series_within_its_byte_budget(
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    start_gateway: Callable[[str], ServerProcess],
) -> None:
    """2M records (48 MB of chunks once read), a budget of 8 MiB: after the first build,
    rollups over the whole series and over windows anywhere, positions and slices,
    ``/health`` shows the indexes within the budget and the process grew by about the
    budget, not by the series (before the byte bound: by 57 MB, the whole series cached)."""
    cid = fresh_cid()
    n, budget = 2_000_000, 8 * 1024 * 1024
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    vals = np.cos(np.arange(n) / 1000.0)
    for a in range(0, n, 500_000):
        put(tstorage, cid, 4, 1, caps[a : a + 500_000], vals[a : a + 500_000])
    gw = start_gateway(budgeted(tstorage, cid, fresh_cid(), 1024, budget))
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}", call_timeout=300)
    try:
        lst = znsocket.List(c, "meters/4/1")
        ts = TimeSeries(c, "meters/4/1")
        before = _vm(gw.pid)["VmRSS"]  # a fresh gateway
        assert len(lst) == n  # the summaries built (one streamed read of the series)
        rng = np.random.default_rng(9)
        got = ts.range(buckets=100, align="equal")
        assert int(got.n.sum()) == n and float(got.max.max()) == float(vals.max())
        for _ in range(5):  # rollups of windows anywhere, positions, slices
            a = int(rng.integers(0, n - 200_000))
            got = ts.range(int(caps[a]) + UNIX_OFFSET, int(caps[a + 200_000]) + UNIX_OFFSET,
                           buckets=100, align="equal")  # fmt: skip
            assert got.n.tolist() == [2000] * 100
            assert got.max.tolist() == vals[a : a + 200_000].reshape(100, -1).max(1).tolist()
            for i in rng.integers(0, n, 20).tolist():
                assert lst[i] == vals[i]
            assert lst[a : a + 10_000] == vals[a : a + 10_000].tolist()
        index = _health(gw)["index"]
        after = _vm(gw.pid)
    finally:
        c.close()
    assert index["budget_bytes"] == budget
    assert 0 < index["held_bytes"] <= budget
    assert index["summary_rows"] >= n // 1024
    # the budget, one read's working set (a few MB here) and the build's stream batches
    assert after["VmRSS"] - before < budget / 2**20 + 16, (before, after)


def _reset_peak(pid: int) -> None:
    # VmHWM from here on: the build's peak is not the read's
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _whole_read_peak(
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    start_gateway: Callable[[str], ServerProcess],
    vals: np.ndarray,
    chunk: int,
    budget: int,
    buckets: int,
) -> tuple[float, dict[str, Any]]:
    """Store ``vals`` 10 ns apart as ``meters/4/1``, let a gateway process (chunks of
    ``chunk``, ``budget`` bytes) build its summaries, then read the whole series in
    ``buckets`` equal slices and check them against numpy. Returns how far the process's
    peak rose above its resident memory during that read (MB), and ``/health``'s index."""
    cid, n = fresh_cid(), len(vals)
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    for a in range(0, n, 500_000):
        put(tstorage, cid, 4, 1, caps[a : a + 500_000], vals[a : a + 500_000])
    gw = start_gateway(budgeted(tstorage, cid, fresh_cid(), chunk, budget))
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}", call_timeout=300)
    try:
        ts = TimeSeries(c, "meters/4/1")
        assert len(znsocket.List(c, "meters/4/1")) == n  # the summaries built
        ts.latest(1)
        before = _vm(gw.pid)["VmRSS"]
        _reset_peak(gw.pid)
        lo, hi = int(caps[0]) + UNIX_OFFSET, int(caps[-1]) + 10 + UNIX_OFFSET
        got = ts.range(lo, hi, buckets=buckets, align="equal")
        peak = _vm(gw.pid)["VmHWM"]
        index = _health(gw)["index"]
    finally:
        c.close()
    per = vals.reshape(buckets, -1)
    assert got.n.tolist() == [n // buckets] * buckets
    assert got.min.tolist() == per.min(1).tolist()
    assert got.max.tolist() == per.max(1).tolist()
    assert got.last.tolist() == per[:, -1].tolist()
    assert np.allclose(got.mean, per.mean(1), rtol=0, atol=1e-12)
    return peak - before, index


@pytest.mark.slow
def test_an_equal_read_that_cuts_every_chunk_holds_one_run_of_them_at_a_time(
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    start_gateway: Callable[[str], ServerProcess],
) -> None:
    """2M records in chunks of 1,024 (48 MB once read), a budget of 8 MiB: 5,000 equal
    slices put an edge in every chunk, so the read needs the records of all of them. It
    stays exact, and the process's peak grows by about the budget and one run of chunks
    (1 MiB here), not by the chunks an edge cuts (before the read went by runs: by 66 MB)."""
    budget = 8 * 1024 * 1024
    vals = np.sin(np.arange(2_000_000) / 777.0)
    rose, index = _whole_read_peak(tstorage, fresh_cid, start_gateway, vals, 1024, budget, 5_000)
    assert 0 < index["held_bytes"] <= budget
    # the budget, one run of chunks and the answer's rows (a few MB); not 48 MB
    assert rose < budget / 2**20 + 16, rose


@pytest.mark.slow
def test_a_rollup_over_many_summary_rows_makes_no_copy_of_them_all(
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    start_gateway: Callable[[str], ServerProcess],
) -> None:
    """2M records in chunks of 8: 250,000 summary rows of eight columns (16 MB). A
    1,000-bucket rollup of the whole series (its edges between chunks: no chunk is read)
    counts them by slice before it copies any, so the process's peak grows by a few MB,
    not by several copies of the rows (before: by 42 MB), and it stays exact."""
    vals = np.cos(np.arange(2_000_000) / 3333.0)
    rose, _ = _whole_read_peak(tstorage, fresh_cid, start_gateway, vals, 8, 64 << 20, 1_000)
    assert rose < 12, rose


@pytest.mark.parametrize(
    ("budget_line", "chunk", "held", "added", "moids"),
    [
        ("index_budget_bytes = 65536", 64, 10, 4000, 1),  # many chunks, more than it holds
        ("index_budget_bytes = 65536", 4096, 10, 4000, 1),  # one chunk outgrows the budget
        ("index_budget_bytes = 65536", 4096, 10, 5000, 1),  # ... and splits
        ("index_budget = 1000", 4096, 10, 4000, 1),  # the record bound, not the byte one
        ("index_budget = 1000", 4096, 2000, 4000, 1),  # over the budget before, not cached
        ("index_budget_bytes = 65536", 256, 500, 3000, 3),  # three Lists and their Dict
    ],
)
def test_a_change_feed_in_many_batches_keeps_every_record_within_a_tight_budget(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    budget_line: str,
    chunk: int,
    held: int,
    added: int,
    moids: int,
) -> None:
    """An outside writer appends to series the gateway holds; its change feed brings the
    records in ~50-record batches while the budget drops chunks. No chunk the feed changed
    is dropped before the feed is over: read again below the feed's watermark, it would
    lack the feed's earlier records for good."""
    monkeypatch.setattr(series_module, "_STREAM_BATCH_BYTES", 2048)
    cid = fresh_cid()
    n = held + added
    caps = T0 + np.arange(n, dtype=np.int64) * 10
    vals = np.arange(n, dtype=np.float64)
    for moid in range(1, moids + 1):
        put(tstorage, cid, 4, moid, caps[:held], vals[:held] + moid)
    lines = f"index_chunk = {chunk}\n{budget_line}\nindex_persist = false"
    config = meter_config(tstorage, cid, fresh_cid())
    gw = make_storage(config.replace("[generic]", f"{lines}\n\n[generic]", 1))
    reads = TimeSeriesReads(gw)
    for moid in range(1, moids + 1):
        assert gw.llen(f"znsocket.List:meters/4/{moid}") == held
    if moids > 1:
        assert gw.hgetall("znsocket.Dict:meters/4")  # the Dict's box: every moid at once
    for moid in range(1, moids + 1):
        put(tstorage, cid, 4, moid, caps[held:], vals[held:] + moid)
    if moids > 1:  # the Dict's box (its three series fed at once), after max_staleness
        time.sleep(0.3)
        got = gw.hgetall("znsocket.Dict:meters/4")
        assert {k: float(v) for k, v in got.items()} == {
            str(m): float(vals[-1] + m) for m in range(1, moids + 1)
        }
    for moid in range(1, moids + 1):
        t = reads.target(f"meters/4/{moid}")
        gw.series.series_index(t, fresh=True)  # the change feed, now
        assert gw.llen(f"znsocket.List:meters/4/{moid}") == n
        window = reads.range(t, limit=10_000)
        assert window.caps.tolist() == caps.tolist()
        assert window.values == (vals + moid).tolist()
