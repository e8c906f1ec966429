"""``gateway.TimeSeries`` as a Python user meets it: timestamped writes (``append``,
``extend`` of any time form), relative windows (``last``), buckets by interval
(``ts:range`` ``every``) and time-zone-aware pandas output, over the wire to a
`gateway run` process (stored records read back directly from TStorage).
"""

from __future__ import annotations

import datetime as dt
import struct
import sys
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import znsocket
from gateway import TimeSeries
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct, records_of
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError, ResponseError

pytestmark = pytest.mark.integration

SEC = 10**9
MIN = 60 * SEC
BASE = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.timezone.utc)
BASE_NS = int(BASE.timestamp()) * SEC  # unix ns


@pytest.fixture
def setup(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> Iterator[tuple[znsocket.Client, int]]:
    cid = fresh_cid()
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    yield client, cid
    client.sio.disconnect()


def put_unix(tstorage: ServerProcess, cid: int, unix_ns: list[int], values: list[float]) -> None:
    put_direct(
        tstorage,
        [
            ((cid, 7, 3, t - EPOCH_OFFSET_NS), struct.pack("<d", v))
            for t, v in zip(unix_ns, values, strict=True)
        ],
    )


def test_append_and_extend_take_every_time_form(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    ts = TimeSeries(client, "meters/7/3")
    assert ts.append(BASE, 0.0) == 1  # aware datetime
    assert ts.append("2026-11-22T08:00:01Z", 1.0) == 2  # ISO-8601
    assert ts.append(BASE_NS + 2 * SEC, 2.0) == 3  # int: unix ns
    assert ts.append(np.datetime64(BASE_NS + 3 * SEC, "ns"), 3.0) == 4
    assert ts.append(dt.datetime(2026, 11, 22, 8, 0, 4), 4.0) == 5  # naive = UTC
    assert ts.append("2026-11-22T09:00:05.000000001+01:00", 5.0) == 6  # to the ns
    mixed = [
        BASE + dt.timedelta(seconds=6),
        "2026-11-22T08:00:07Z",
        BASE_NS + 8 * SEC,
        np.datetime64(BASE_NS + 9 * SEC, "ns"),
    ]
    assert ts.extend(mixed, [6.0, 7.0, 8.0, 9.0]) == 10
    want = [BASE_NS + i * SEC + (i == 5) for i in range(10)]
    t, v = ts.range().to_numpy()
    assert t.astype(np.int64).tolist() == want and v.tolist() == [float(i) for i in range(10)]
    # stored at exactly those times, not stamped on arrival
    stored = records_of(tstorage, cid)
    assert [k[3] + EPOCH_OFFSET_NS for k, _ in stored] == want
    # bad input is refused before anything is sent; a time before the last is refused
    with pytest.raises(ValueError, match="neither an ISO-8601 time"):
        ts.append("yesterday", 1.0)
    with pytest.raises(TypeError):
        ts.append(1.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaT"):
        ts.append(np.datetime64("NaT"), 1.0)
    with pytest.raises(ResponseError, match="not stored"):
        ts.append(BASE, 1.0)
    assert len(ts) == 10 and len(records_of(tstorage, cid)) == 10


def test_range_every_cuts_slices_by_interval(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    times = [BASE_NS + 30 * SEC + i * 10 * SEC for i in range(24)]  # 08:00:30 .. 08:04:20
    values = [float(i * i % 7) for i in range(24)]
    put_unix(tstorage, cid, times, values)
    ts = TimeSeries(client, "meters/7/3")
    d = ts.range("2026-11-22T08:00:30Z", "2026-11-22T08:03:00Z", every="1min")
    # slices on whole minutes: the first holds the window's part of 08:00
    assert d.t.astype(np.int64).tolist() == [BASE_NS, BASE_NS + MIN, BASE_NS + 2 * MIN]
    assert d.n.tolist() == [3, 6, 6] and d.every == np.timedelta64(MIN, "ns")
    t, v = np.asarray(times), np.asarray(values)
    for i, s in enumerate(d.t.astype(np.int64)):
        inside = (t >= max(s, BASE_NS + 30 * SEC)) & (t < s + MIN)
        assert d.mean[i] == pytest.approx(v[inside].mean())
        assert (d.min[i], d.max[i], d.last[i]) == (v[inside].min(), v[inside].max(), v[inside][-1])
    # the same slices as a count of buckets over whole minutes
    same = ts.range(np.datetime64(BASE_NS, "ns"), BASE_NS + 5 * MIN, buckets=5)
    whole = ts.range(np.datetime64(BASE_NS, "ns"), BASE_NS + 5 * MIN, every=dt.timedelta(minutes=1))
    for k in ("t", "n", "min", "max", "mean", "last"):
        assert getattr(same, k).tolist() == getattr(whole, k).tolist()
    # unbounded: from the first record's minute to the last's
    assert ts.range(every="2min").n.tolist() == [9, 12, 3]
    # on the wire: every in ns
    answer = client.call("ts:range", "meters/7/3", every="30s", unit="unix_ns")["data"]
    assert answer["every"] == 30 * SEC and all(x % (30 * SEC) == 0 for x in answer["t"])
    assert sum(answer["n"]) == 24
    # a bounded number of slices, bad intervals, both forms at once: clear errors
    with pytest.raises(DataError, match=r"20,000 buckets; at most 10,000"):
        ts.range(BASE_NS, BASE_NS + 20_000 * SEC, every="1s")
    for bad, msg in [
        ("fortnight", "not a duration"),
        ("0s", "positive"),
        (1.5, "duration"),
        (2**64, "past TStorage's time range"),
    ]:
        answer = client.call("ts:range", "meters/7/3", every=bad)
        assert answer["error"]["type"] == "DataError" and msg in answer["error"]["msg"], answer
    answer = client.call("ts:range", "meters/7/3", every="1min", buckets=3)
    assert answer["error"]["type"] == "DataError" and "one" in answer["error"]["msg"]
    with pytest.raises(ValueError, match="not a duration"):
        ts.range(every="soon")
    assert len(ts) == 24  # the server answered every bad request and still serves


def test_last_is_a_window_ending_now(setup: tuple[znsocket.Client, int]) -> None:
    client, _ = setup
    ts = TimeSeries(client, "meters/7/3")
    now = dt.datetime.now(dt.timezone.utc)
    ago = [dt.timedelta(hours=3), dt.timedelta(hours=2), dt.timedelta(minutes=30)]
    ts.extend([now - a for a in ago] + [now - dt.timedelta(seconds=10)], [1.0, 2.0, 3.0, 4.0])
    assert ts.last("1h").v.tolist() == [3.0, 4.0]
    assert ts.last("5min").v.tolist() == [4.0]
    assert ts.last(dt.timedelta(minutes=45)).v.tolist() == [3.0, 4.0]
    assert ts.last("150min").v.tolist() == [2.0, 3.0, 4.0]
    assert ts.last("7d").v.tolist() == [1.0, 2.0, 3.0, 4.0]
    hourly = ts.last("4h", every="1h")
    assert int(hourly.n.sum()) == 4 and hourly.every == np.timedelta64(3600 * SEC, "ns")
    assert int(ts.last("30s", buckets=3).n.sum()) == 1
    with pytest.raises(ValueError, match="positive"):
        ts.last("0s")


def test_pandas_in_and_out_are_time_zone_aware(setup: tuple[znsocket.Client, int]) -> None:
    pd = pytest.importorskip("pandas")
    client, _ = setup
    ts = TimeSeries(client, "meters/7/3")
    berlin = pd.date_range("2026-11-22 09:00", periods=3, freq="1s", tz="Europe/Berlin")
    assert ts.extend(pd.Series([1.0, 2.0, 3.0], index=berlin)) == 3
    assert ts.append(pd.Timestamp("2026-11-22T08:00:03.000000007Z"), 4.0) == 4
    assert ts.append(pd.Timestamp("2026-11-22 08:00:04"), 5.0) == 5  # naive = UTC
    frame = ts.range().to_pandas()
    assert str(frame.index.tz) == "UTC" and frame.index.name == "t"
    assert frame.index[0] == pd.Timestamp("2026-11-22T08:00:00Z")
    assert frame.index[3] == pd.Timestamp("2026-11-22T08:00:03.000000007Z")
    assert frame["v"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    buckets = ts.range(every="2s").to_pandas()
    assert str(buckets.index.tz) == "UTC" and buckets["n"].tolist() == [2, 2, 1]
    assert ts.range(BASE, pd.Timestamp("2026-11-22 09:00:02", tz="Europe/Berlin")).v.tolist() == [
        1.0,
        2.0,
    ]


def test_to_pandas_without_pandas_names_the_extra(
    setup: tuple[znsocket.Client, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = setup
    ts = TimeSeries(client, "meters/7/3")
    ts.append(BASE, 1.0)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'tstorage-gateway\[pandas\]'"):
        ts.range().to_pandas()
    with pytest.raises(ImportError, match=r"tstorage-gateway\[pandas\]"):
        TimeSeries.many(client, "meters/7/*")


def test_every_agrees_with_numpy_over_chunk_summaries(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    # chunks of 4 records: most slices count whole chunks by their summaries
    text = meter_config(tstorage, cid, fresh_cid())
    gw = start_gateway(text.replace("[generic]", "index_chunk = 4\n\n[generic]", 1))
    rng = np.random.default_rng(7)
    times = BASE_NS + np.cumsum(rng.integers(1, 20 * SEC, 1000))
    values = rng.normal(size=1000)
    put_unix(tstorage, cid, times.tolist(), values.tolist())
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        ts = TimeSeries(client, "meters/7/3")
        for every in ("7s", "1min", "5min"):
            step = {"7s": 7 * SEC, "1min": MIN, "5min": 5 * MIN}[every]
            for lo, hi in [(None, None), (int(times[100]) + 3, int(times[900]) - 5)]:
                d = ts.range(lo, hi, every=every)
                keep = np.ones(len(times), bool)
                if lo is not None and hi is not None:
                    keep = (times >= lo) & (times < hi)
                t, v = times[keep], values[keep]
                slot = (t // step) * step
                starts, first = np.unique(slot, return_index=True)
                assert d.t.astype(np.int64).tolist() == starts.tolist(), (every, lo)
                assert d.n.tolist() == np.diff(np.r_[first, len(t)]).tolist()
                assert d.min.tolist() == np.minimum.reduceat(v, first).tolist()
                assert d.max.tolist() == np.maximum.reduceat(v, first).tolist()
                assert d.last.tolist() == v[np.r_[first[1:], len(t)] - 1].tolist()
                np.testing.assert_allclose(d.mean, np.add.reduceat(v, first) / d.n, rtol=1e-12)
    finally:
        client.close()
