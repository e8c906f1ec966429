"""Several series at once: ``ts:mrange`` (a glob over the List keys of the map rules, or a
list of keys) and ``gateway.TimeSeries.mrange`` / ``many``, over the wire to a `gateway run`
process on records written directly to TStorage.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import znsocket
from gateway import TimeSeries
from gateway.timeseries import Downsampled, Window
from tests._servers import ServerProcess, spawn
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct
from tests.gateway.test_timeseries_columns import _calls
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError

pytestmark = pytest.mark.integration

SEC = 10**9
MIN = 60 * SEC
T0 = 848_650_800 * SEC  # 2027-11-22T08:20:00Z in TStorage ns, on a whole minute
U0 = T0 + EPOCH_OFFSET_NS


def put_series(
    tstorage: ServerProcess, cid: int, mid: int, moid: int, caps: list[int], values: list[float]
) -> None:
    put_direct(
        tstorage,
        [((cid, mid, moid, c), struct.pack("<d", v)) for c, v in zip(caps, values, strict=True)],
    )


@pytest.fixture
def setup(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> Iterator[tuple[znsocket.Client, int]]:
    cid = fresh_cid()
    # meters/7/1: every 10 s for 3 min; meters/7/2: every 20 s from minute 1 to 4;
    # meters/7/3: one record; meters/8/1: not matched by meters/7/*
    put_series(tstorage, cid, 7, 1, [T0 + i * 10 * SEC for i in range(18)], [1.0] * 18)
    put_series(tstorage, cid, 7, 2, [T0 + MIN + i * 20 * SEC for i in range(9)], [2.0] * 9)
    put_series(tstorage, cid, 7, 3, [T0 + 30 * SEC], [3.0])
    put_series(tstorage, cid, 8, 1, [T0], [8.0])
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid(), MAX_SERIES))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    yield client, cid
    client.sio.disconnect()


MAX_SERIES = """
[server]
max_mrange_series = 3
"""


def data(answer: dict) -> dict:
    assert "error" not in answer, answer
    return answer["data"]


def error(answer: dict, kind: str = "DataError") -> str:
    assert answer.get("error", {}).get("type") == kind, answer
    return answer["error"]["msg"]


def test_mrange_reads_every_series_a_pattern_names(setup: tuple[znsocket.Client, int]) -> None:
    client, _ = setup
    got = data(client.call("ts:mrange", pattern="meters/7/*", unit="unix_ns"))
    assert got["mode"] == "raw"
    assert [s["key"] for s in got["series"]] == ["meters/7/1", "meters/7/2", "meters/7/3"]
    assert [s["count"] for s in got["series"]] == [18, 9, 1]
    assert got["series"][2]["t"] == [U0 + 30 * SEC] and got["series"][2]["v"] == [3.0]
    # a list of keys, a window, and per-series limits with where to go on
    got = data(
        client.call("ts:mrange", keys=["meters/8/1", "meters/7/1"], start=T0, end=T0 + MIN, limit=4)
    )
    assert [s["key"] for s in got["series"]] == ["meters/8/1", "meters/7/1"]
    first = got["series"][1]
    assert first["count"] == 6 and len(first["t"]) == 4 and first["truncated"]
    assert first["next"] == str(T0 + 40 * SEC)
    # buckets by interval: the same slices for every series, over all their extent
    got = data(client.call("ts:mrange", pattern="meters/7/*", every="1min", unit="unix_ns"))
    assert got["mode"] == "buckets"
    assert [s["t"] for s in got["series"]] == [
        [U0, U0 + MIN, U0 + 2 * MIN],
        [U0 + MIN, U0 + 2 * MIN, U0 + 3 * MIN],
        [U0],
    ]
    assert [s["n"] for s in got["series"]] == [[6, 6, 6], [3, 3, 3], [1]]
    # a count of buckets cuts the extent of all the series, not each its own
    got = data(client.call("ts:mrange", pattern="meters/7/*", buckets=2, unit="unix_ns"))
    edges = {s["key"]: s["t"] for s in got["series"]}
    assert edges["meters/7/3"] == [U0] and edges["meters/7/2"][-1] == edges["meters/7/1"][-1]
    # nothing matched: no series, no error
    assert data(client.call("ts:mrange", pattern="nothing/*"))["series"] == []


def test_mrange_is_bounded_and_says_why(setup: tuple[znsocket.Client, int]) -> None:
    client, _ = setup
    # max_mrange_series = 3 in this gateway's [server]
    msg = error(client.call("ts:mrange", pattern="meters/*"))
    assert "more than 3 series" in msg and "max_mrange_series" in msg
    keys = ["meters/7/1", "meters/7/2", "meters/7/3", "meters/8/1"]
    assert "4 keys; at most 3" in error(client.call("ts:mrange", keys=keys))
    msg = error(client.call("ts:mrange", keys=keys[:2], limit=60_000))
    assert "120,000 records" in msg and "100,000" in msg
    msg = error(client.call("ts:mrange", keys=keys[:3], start=T0, end=T0 + 10**5 * SEC, every="1s"))
    assert "buckets" in msg and "at most 10,000" in msg
    assert "pattern=" in error(client.call("ts:mrange"))
    assert "pattern=" in error(client.call("ts:mrange", pattern="meters/*", keys=keys))
    assert "non-empty" in error(client.call("ts:mrange", keys=[]))
    assert error(client.call("ts:mrange", keys=["meters/7"]), "KeyMappingError")
    assert "unknown argument" in error(client.call("ts:mrange", pattern="a*", column=True))
    # the gateway still serves
    assert len(data(client.call("ts:mrange", keys=keys[:1]))["series"]) == 1


def test_mrange_answers_binary_columns(setup: tuple[znsocket.Client, int]) -> None:
    client, _ = setup
    keys = ["meters/7/1", "meters/7/2", "meters/7/3"]
    for window in ({"limit": 5}, {"every": "1min"}, {"buckets": 3, "align": "rows"}):
        as_json = data(client.call("ts:mrange", keys=keys, unit="unix_ns", **window))
        got = data(client.call("ts:mrange", keys=keys, unit="unix_ns", columns=True, **window))
        assert got["mode"] == as_json["mode"] and len(got["series"]) == 3
        for c, j in zip(got["series"], as_json["series"], strict=True):
            assert c["key"] == j["key"] and c["count"] == j["count"]
            assert np.frombuffer(c["t"], dtype="<i8").tolist() == j["t"]
            if as_json["mode"] == "raw":
                assert c["mode"] == "columns" and c["truncated"] == j["truncated"]
                assert np.frombuffer(c["v"], dtype=c["dtype"]).tolist() == j["v"]
            else:
                assert c["columns"] is True
                assert np.frombuffer(c["n"], dtype="<i8").tolist() == j["n"]
                assert np.frombuffer(c["mean"], dtype="<f8").tolist() == j["mean"]
    msg = error(client.call("ts:mrange", keys=keys, columns=True, unit="unix_ms"))
    assert "int64 nanoseconds" in msg


def test_time_series_mrange_and_many(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    caps = [T0 + 10 * MIN + i * SEC for i in range(12_000)]
    put_series(tstorage, cid, 9, 1, caps, [float(i) for i in range(12_000)])
    with _calls(client) as (as_text, as_binary):
        got = TimeSeries.mrange(client, "meters/7/*", every="1min")
    assert as_text == [] and as_binary == ["ts:mrange"]  # columns, no JSON fallback
    assert list(got) == ["meters/7/1", "meters/7/2", "meters/7/3"]
    assert all(isinstance(w, Downsampled) for w in got.values())
    assert got["meters/7/2"].t[0] == np.datetime64(U0 + MIN, "ns")
    raw = TimeSeries.mrange(client, ["meters/7/3", "meters/8/1"])
    assert isinstance(raw["meters/8/1"], Window) and raw["meters/8/1"].v.tolist() == [8.0]
    # a series longer than one answer's share is read on in pages
    long = TimeSeries.mrange(client, ["meters/9/1", "meters/7/3"])["meters/9/1"]
    assert len(long) == 12_000 and long.v.tolist() == [float(i) for i in range(12_000)]
    assert long.t[0] == np.datetime64(caps[0] + EPOCH_OFFSET_NS, "ns")
    with pytest.raises(DataError, match="more than 3 series"):
        TimeSeries.mrange(client, "meters/*")


def test_many_gives_one_frame_a_column_per_series(setup: tuple[znsocket.Client, int]) -> None:
    pd = pytest.importorskip("pandas")
    client, _ = setup
    frame = TimeSeries.many(client, "meters/7/*", every="1min")
    assert list(frame.columns) == ["meters/7/1", "meters/7/2", "meters/7/3"]
    assert str(frame.index.tz) == "UTC" and len(frame) == 4
    assert frame.index[0] == pd.Timestamp(U0, unit="ns", tz="UTC")
    assert frame["meters/7/1"].tolist()[:3] == [1.0, 1.0, 1.0]
    assert np.isnan(frame["meters/7/1"].iloc[3]) and frame["meters/7/2"].iloc[3] == 2.0
    counts = TimeSeries.many(client, "meters/7/*", every="1min", agg="n")
    assert counts["meters/7/1"].tolist()[:3] == [6, 6, 6]
    raw = TimeSeries.many(client, "meters/7/*")
    assert raw.shape == (18 + 3, 3)  # meters/7/2 shares 6 of its 9 times with meters/7/1
    assert raw["meters/7/3"].count() == 1
    with pytest.raises(ValueError, match="agg"):
        TimeSeries.many(client, "meters/7/*", every="1min", agg="median")


AUTH = """
[auth]
enabled = true

[[auth.tokens]]
name = "viewer"
env = "GW_TS_VIEWER"
access = "read"
keys = ["meters/1/*"]
"""


def test_mrange_reads_only_what_the_token_may_read(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    put_series(tstorage, cid, 1, 1, [T0], [1.0])
    put_series(tstorage, cid, 2, 1, [T0], [2.0])
    path = tmp_path / "gateway.toml"
    path.write_text(meter_config(tstorage, cid, fresh_cid()) + AUTH)
    with spawn(
        ["gateway", "run", "--config", str(path), "--port", "0"], env={"GW_TS_VIEWER": "v"}
    ) as gw:
        viewer = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}", token="v")
        try:
            # a pattern names only the series the token may read...
            got = data(viewer.call("ts:mrange", pattern="meters/*"))
            assert [s["key"] for s in got["series"]] == ["meters/1/1"]
            # ...and a key it may not read is refused, by name
            msg = error(
                viewer.call("ts:mrange", keys=["meters/1/1", "meters/2/1"]),
                "PermissionDeniedError",
            )
            assert "meters/2/1" in msg
        finally:
            viewer.sio.disconnect()
