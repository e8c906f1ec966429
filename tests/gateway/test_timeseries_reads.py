"""The Python API behind the ``ts:*`` events, and its parts: times, slicing, shared reads.

Reads run in-process on the session's TStorage server process (real records over the wire);
the pure parts are checked on their own.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.codecs import parse_codec
from gateway.config import load_config
from gateway.errors import ConfigError, KeyMappingError
from gateway.storage import GatewayStorage
from gateway.timeseries.downsample import downsample, numeric_dtype, slice_edges
from gateway.timeseries.reads import TimeSeriesReads
from gateway.timeseries.shared import SharedReads
from gateway.timeseries.times import caps_in_unit, parse_time, parse_unit
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct
from znsocket.exceptions import DataError

T0 = 800_000_000 * 10**9

Make = Callable[[str], GatewayStorage]


# ---------------------------------------------------------------------- times
def test_parse_time_forms() -> None:
    assert parse_time(None, "start") is None
    assert parse_time(12, "start") == 12
    assert parse_time("784000000123456789", "start") == 784_000_000_123_456_789
    assert parse_time("2001-01-01T00:00:00Z", "start") == 0
    assert parse_time("2001-01-01T00:00:01.000000007", "start") == 10**9 + 7
    assert parse_time("2001-01-01T01:00:00+01:00", "start") == 0
    assert parse_time("2000-12-31T23:59:59.5Z", "start") == -(10**9) // 2
    for bad in ("yesterday", "2001-13-01", True, 1.5, [1]):
        with pytest.raises(DataError, match="start"):
            parse_time(bad, "start")
    with pytest.raises(DataError, match="range"):
        parse_time(2**64, "end")


def test_units() -> None:
    caps = np.asarray([0, 10**9], dtype=np.int64)
    assert caps_in_unit(caps, "tstorage_ns") == [0, 10**9]
    assert caps_in_unit(caps, "unix_s") == [978_307_200.0, 978_307_201.0]
    assert caps_in_unit(caps, "unix_ms")[1] == 978_307_201_000.0
    assert parse_unit(None) == "unix_ns"  # the unit of the CSV files
    with pytest.raises(DataError):
        parse_unit("fortnights")


# ---------------------------------------------------------------------- slicing
def test_slices_cover_the_window_exactly() -> None:
    edges = slice_edges(-(2**63), 2**63 - 1, 7)
    assert edges[0] == -(2**63) and edges[-1] == 2**63 - 1 and (np.diff(edges) > 0).all()
    caps = np.arange(0, 100, dtype=np.int64)
    vals = caps.astype(np.float64)
    b = downsample(caps, vals, 0, 100, 10)
    assert b.n.tolist() == [10] * 10 and b.start.tolist() == list(range(0, 100, 10))
    assert b.min.tolist() == list(range(0, 100, 10)) and b.last.tolist() == list(range(9, 100, 10))
    # empty slices are left out; a window with no records has no slices
    gappy = downsample(np.asarray([0, 95], dtype=np.int64), np.asarray([1.0, 2.0]), 0, 100, 10)
    assert gappy.start.tolist() == [0, 90] and gappy.mean.tolist() == [1.0, 2.0]
    assert len(downsample(np.empty(0, dtype=np.int64), np.empty(0), 0, 10, 3).n) == 0


def test_numeric_dtype_only_for_single_numbers() -> None:
    assert numeric_dtype(parse_codec("struct:<d")) == np.dtype("<f8")
    assert numeric_dtype(parse_codec("struct:>i")) == np.dtype(">i4")
    assert numeric_dtype(parse_codec("struct:<dd")) is None
    assert numeric_dtype(parse_codec("json")) is None


# ---------------------------------------------------------------------- shared reads
def test_concurrent_identical_reads_run_once() -> None:
    shared: SharedReads[int] = SharedReads(reuse_s=0.5)
    started = threading.Event()
    release = threading.Event()
    calls = []

    def read() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(shared.get("k", read))) for _ in range(100)
    ]
    for t in threads:
        t.start()
    started.wait(5)
    time.sleep(0.1)
    release.set()
    for t in threads:
        t.join(5)
    assert results == [42] * 100 and len(calls) == 1 and shared.reads == 1
    assert shared.get("k", read) == 42 and len(calls) == 1  # within the reuse window
    time.sleep(0.6)
    assert shared.get("k", read) == 42 and len(calls) == 2  # after it: read again


def test_a_failed_shared_read_fails_every_waiter_and_is_not_kept() -> None:
    shared: SharedReads[int] = SharedReads()

    def broken() -> int:
        time.sleep(0.1)
        raise DataError("boom")

    errors: list[BaseException] = []

    def run() -> None:
        try:
            shared.get("k", broken)
        except DataError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(errors) == 5
    assert shared.get("k", lambda: 7) == 7


# ---------------------------------------------------------------------- reads on TStorage
def test_mass_resume_is_one_tstorage_read(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    storage = make_storage(meter_config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(storage)
    t = reads.target("meters/7/3")
    put_direct(tstorage, [((cid, 7, 3, T0), struct.pack("<d", 1.0))])
    _, _, _, since = reads.info(t)
    put_direct(tstorage, [((cid, 7, 3, T0 + i + 1), struct.pack("<d", i)) for i in range(500)])
    # the index moves past `since` (caught up now, not within max_staleness): its own
    # catch-ups no longer start there
    storage.series.series_index(t, fresh=True)
    gets: list[Any] = []
    real_stream = storage.link.stream

    def counting(lo: Any, hi: Any, *args: Any, **kwargs: Any) -> int:
        if lo[4] == since:  # a resume's read starts at the client's watermark
            gets.append(lo)
            # keep the read in flight until every client has asked (a loaded machine may
            # start the last threads late), then a little longer for them to join it
            deadline = time.monotonic() + 10
            while len(asked) < 100 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.1)
        return real_stream(lo, hi, *args, **kwargs)

    storage.link.stream = counting  # type: ignore[method-assign]
    answers: list[tuple[int, int]] = []
    asked: list[int] = []
    barrier = threading.Barrier(100)

    def client() -> None:
        barrier.wait(5)
        asked.append(1)
        upto, (changes,) = reads.resume([t], [since])
        answers.append((upto, len(changes.caps)))

    threads = [threading.Thread(target=client) for _ in range(100)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(answers) == 100 and {n for _, n in answers} == {500}
    assert len({u for u, _ in answers}) == 1
    assert len(gets) == 1 and reads.resumes.reads == 1


def test_resume_of_several_keys_shares_one_watermark(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    storage = make_storage(meter_config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(storage, reuse_s=0)
    a, b = reads.target("meters/7/3"), reads.target("znsocket.List:meters/7/4")
    put_direct(tstorage, [((cid, 7, 3, T0), b"\0" * 8), ((cid, 7, 4, T0), b"\0" * 8)])
    upto, (ca, cb) = reads.resume([a, b], [0, 0])
    assert len(ca.caps) == len(cb.caps) == 1
    assert (ca.acqs < upto).all() and (cb.acqs < upto).all()
    with pytest.raises(KeyMappingError, match="not a series"):
        reads.target("meters/7")


def test_downsample_of_a_large_window_matches_numpy(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    storage = make_storage(meter_config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(storage)
    n = 200_000
    caps = T0 + np.arange(n, dtype=np.int64) * 1000
    vals = np.sin(np.arange(n) / 1000.0)
    put_direct(
        tstorage,
        [((cid, 7, 3, int(c)), struct.pack("<d", v)) for c, v in zip(caps, vals, strict=True)],
    )
    w = reads.downsampled(reads.target("meters/7/3"), 1000)
    assert w.count == n and len(w.buckets.n) == 1000 and w.buckets.n.sum() == n
    lo, hi = int(caps[0]), int(caps[-1]) + 1
    edges = slice_edges(lo, hi, 1000)
    which = np.searchsorted(edges, caps, side="right") - 1
    for stat, fn in (("min", np.min), ("max", np.max), ("mean", np.mean)):
        expected = np.asarray([fn(vals[which == k]) for k in range(1000)])
        assert np.allclose(getattr(w.buckets, stat), expected, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------- configuration
def test_live_fields_in_server_section(tmp_path: Path) -> None:
    base = '[tstorage]\nhost = "127.0.0.1"\nport = 1\n'
    ok = tmp_path / "ok.toml"
    ok.write_text(
        '[server]\nfollow_interval = 0.1\nmessage_queue = "redis://127.0.0.1:6379/0"\n' + base
    )
    cfg = load_config(ok)
    assert cfg.server.follow_interval == 0.1 and cfg.server.watch_window == 60.0
    default = tmp_path / "default.toml"
    default.write_text(base)
    d = load_config(default).server
    assert d.follow_interval == 0.25 and d.message_queue is None
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nfollow_interval = 0\nmessage_queue = "amqp://x"\n' + base)
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    text = str(info.value)
    assert "server.follow_interval" in text and "server.message_queue" in text
    assert "redis://" in text
