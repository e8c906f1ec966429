"""Time-window reads over the wire: ``ts:info``, ``ts:range``, ``ts:latest``, ``ts:resume``.

A `gateway run` process on the session's TStorage server; records are written directly
with ``tstorage_client`` (known caps and values) and read with our ``znsocket.Client``,
raw (``client.call``) and through :class:`gateway.TimeSeries`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import znsocket
from gateway import TimeSeries
from tests._servers import ServerProcess, spawn
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError

pytestmark = pytest.mark.integration

T0 = 800_000_000 * 10**9  # 2026-05-08 in TStorage ns
SEC = 10**9
NS = "tstorage_ns"  # the unit of the caps these tests write (answers default to unix_ns)


@pytest.fixture
def setup(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> Iterator[tuple[znsocket.Client, int, ServerProcess]]:
    cid = fresh_cid()
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    yield client, cid, gw
    client.sio.disconnect()


def put_values(ts: ServerProcess, cid: int, caps: list[int], values: list[float]) -> None:
    put_direct(
        ts, [((cid, 7, 3, c), struct.pack("<d", v)) for c, v in zip(caps, values, strict=False)]
    )


def data(answer: dict) -> dict:
    assert "error" not in answer, answer
    return answer["data"]


def test_info_range_latest(
    setup: tuple[znsocket.Client, int, ServerProcess], tstorage: ServerProcess
) -> None:
    client, cid, _ = setup
    caps = [T0 + i * SEC for i in range(100)]
    put_values(tstorage, cid, caps, [float(i) for i in range(100)])
    info = data(client.call("ts:info", "meters/7/3", unit=NS))
    assert info["count"] == 100 and info["first"] == caps[0] and info["last"] == caps[-1]
    assert isinstance(info["watermark"], str) and int(info["watermark"]) > caps[-1] - T0
    # half-open window [start, end)
    got = data(client.call("ts:range", "meters/7/3", start=caps[10], end=caps[20], unit=NS))
    assert got["mode"] == "raw" and got["t"] == caps[10:20] and got["v"] == list(range(10, 20))
    assert got["count"] == 10 and not got["truncated"] and got["next"] is None
    # ISO-8601 bounds mean the same instants; full key works too
    iso = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=caps[10] // SEC)
    got_iso = data(
        client.call(
            "ts:range",
            "znsocket.List:meters/7/3",
            start=iso.isoformat(),
            end=str(caps[20]),
            unit=NS,
        )
    )
    assert got_iso["t"] == got["t"]
    # limit: the oldest first, with where to continue
    page = data(client.call("ts:range", "meters/7/3", limit=30, unit=NS))
    assert page["t"] == caps[:30] and page["truncated"] and page["next"] == str(caps[30])
    assert page["count"] == 100
    latest = data(client.call("ts:latest", "meters/7/3", n=3, unit="unix_ms"))
    assert latest["v"] == [97.0, 98.0, 99.0]
    assert latest["t"][-1] == (caps[-1] + EPOCH_OFFSET_NS) / 1e6


def test_answers_give_unix_nanoseconds_unless_asked(
    setup: tuple[znsocket.Client, int, ServerProcess], tstorage: ServerProcess
) -> None:
    # the unit users meet elsewhere: the CSV files of gateway export, map rules' default time
    client, cid, _ = setup
    caps = [T0 + i * SEC for i in range(3)]
    put_values(tstorage, cid, caps, [1.0, 2.0, 3.0])
    unix = [c + EPOCH_OFFSET_NS for c in caps]
    info = data(client.call("ts:info", "meters/7/3"))
    assert (info["first"], info["last"]) == (unix[0], unix[-1])
    assert data(client.call("ts:range", "meters/7/3"))["t"] == unix
    assert data(client.call("ts:range", "meters/7/3", buckets=1))["t"] == [unix[0]]
    assert data(client.call("ts:latest", "meters/7/3", n=2))["t"] == unix[1:]
    got = data(client.call("ts:resume", keys=["meters/7/3"], since=0))
    assert got["changes"]["meters/7/3"]["t"] == unix
    # TStorage nanoseconds stay available by asking, and request times are unchanged
    assert data(client.call("ts:range", "meters/7/3", start=caps[1], unit=NS))["t"] == caps[1:]


def test_downsampling_agrees_with_numpy(
    setup: tuple[znsocket.Client, int, ServerProcess], tstorage: ServerProcess
) -> None:
    client, cid, _ = setup
    rng = np.random.default_rng(7)
    caps = T0 + np.unique(rng.integers(0, 10_000 * SEC, size=5000))
    n = len(caps)
    values = rng.normal(size=n)
    put_values(tstorage, cid, caps.tolist(), values.tolist())
    start, end, k = int(caps[100]), int(caps[4000]), 37
    got = data(client.call("ts:range", "meters/7/3", start=start, end=end, buckets=k, unit=NS))
    assert got["mode"] == "buckets" and got["count"] == 3900
    # the same computation on the raw records, in numpy
    sel = (caps >= start) & (caps < end)
    c, v = caps[sel], values[sel]
    edges = [start + (end - start) * i // k for i in range(k + 1)]
    exp_t: list[int] = []
    exp: dict[str, list[Any]] = {"n": [], "min": [], "max": [], "mean": [], "last": []}
    for a, b in itertools.pairwise(edges):
        m = (c >= a) & (c < b)
        if not m.any():
            continue
        exp_t.append(a)
        exp["n"].append(int(m.sum()))
        exp["min"].append(v[m].min())
        exp["max"].append(v[m].max())
        exp["mean"].append(v[m].mean())
        exp["last"].append(v[m][-1])
    assert got["t"] == exp_t and got["n"] == exp["n"]
    for stat in ("min", "max", "last"):
        assert got[stat] == pytest.approx(exp[stat], rel=0, abs=0)
    assert got["mean"] == pytest.approx(exp["mean"], rel=1e-12)
    # unbounded: from the first record to just after the last
    whole = data(client.call("ts:range", "meters/7/3", buckets=1, unit=NS))
    assert whole["n"] == [n] and whole["t"] == [int(caps[0])]
    assert whole["max"] == [values.max()] and whole["last"] == [values[-1]]


def test_as_of_returns_the_version_before_a_correction(
    setup: tuple[znsocket.Client, int, ServerProcess], tstorage: ServerProcess
) -> None:
    client, cid, _ = setup
    caps = [T0 + i * SEC for i in range(5)]
    put_values(tstorage, cid, caps, [1.0, 2.0, 3.0, 4.0, 5.0])
    before = data(client.call("ts:info", "meters/7/3"))["watermark"]
    time.sleep(0.01)
    put_values(tstorage, cid, [caps[2]], [30.0])  # a correction: same cap, newer acq
    time.sleep(0.2)  # reads see outside writes within [tstorage] max_staleness (0.1 s)
    now = data(client.call("ts:range", "meters/7/3"))
    assert now["v"] == [1.0, 2.0, 30.0, 4.0, 5.0]
    then = data(client.call("ts:range", "meters/7/3", as_of=before, unit=NS))
    assert then["v"] == [1.0, 2.0, 3.0, 4.0, 5.0] and then["t"] == caps
    assert data(client.call("ts:latest", "meters/7/3", n=3, as_of=before))["v"] == [3.0, 4.0, 5.0]
    # an as-of before anything existed: empty
    assert data(client.call("ts:range", "meters/7/3", as_of=1))["t"] == []
    ts = TimeSeries(client, "meters/7/3")
    _t, v = ts.as_of(before)[:].to_numpy()
    assert v.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert ts[:].v.tolist() == [1.0, 2.0, 30.0, 4.0, 5.0]
    # and resuming from the old watermark hands back the correction only
    changes = ts.resume(before)
    assert changes.v.tolist() == [30.0] and len(changes) == 1


def test_resume_hands_back_exactly_what_was_missed(
    setup: tuple[znsocket.Client, int, ServerProcess], tstorage: ServerProcess
) -> None:
    client, cid, _ = setup
    put_values(tstorage, cid, [T0, T0 + 1], [0.0, 1.0])
    w0 = data(client.call("ts:info", "meters/7/3"))["watermark"]
    caps = [T0 + 2 + i for i in range(50)]
    put_values(tstorage, cid, caps[:20], [float(i) for i in range(20)])
    put_values(tstorage, cid, caps[20:], [float(i) for i in range(20, 50)])
    got = data(client.call("ts:resume", keys=["meters/7/3"], since=w0, unit=NS))
    part = got["changes"]["meters/7/3"]
    assert part["t"] == caps and part["v"] == [float(i) for i in range(50)]
    assert len(part["acq"]) == 50 and all(int(a) >= int(w0) for a in part["acq"])
    # from the new watermark: nothing repeats
    again = data(client.call("ts:resume", keys=["meters/7/3"], since=got["watermark"]))
    assert again["changes"]["meters/7/3"]["t"] == []
    # per-key watermarks; an unknown key is refused as a whole
    d = data(client.call("ts:resume", keys=["meters/7/3"], since={"meters/7/3": int(w0)}, unit=NS))
    assert d["changes"]["meters/7/3"]["t"] == caps


def test_time_series_proxy(
    setup: tuple[znsocket.Client, int, ServerProcess], tstorage: ServerProcess
) -> None:
    client, cid, _ = setup
    caps = [T0 + i * SEC for i in range(10)]
    put_values(tstorage, cid, caps, [float(i) for i in range(10)])
    ts = TimeSeries(client, "meters/7/3")
    assert len(ts) == 10
    epoch = np.datetime64("2001-01-01T00:00:00", "ns")
    times = epoch + np.asarray(caps, dtype="timedelta64[ns]")
    w = ts[times[2] : times[5]]
    t, v = w.to_numpy()
    assert t.dtype == np.dtype("datetime64[ns]") and (t == times[2:5]).all()
    assert v.tolist() == [2.0, 3.0, 4.0]
    pydt = dt.datetime(2001, 1, 1) + dt.timedelta(seconds=caps[5] // SEC)
    assert ts[pydt:].v.tolist() == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert list(w.to_records()) == ["t", "v"]
    pages = list(ts.pages(page=4))
    assert [len(p) for p in pages] == [4, 4, 2]
    assert ts.latest(2).v.tolist() == [8.0, 9.0]
    info = ts.info()
    assert info["first"] == times[0] and info["last"] == times[-1]
    down = ts.range(buckets=2)
    assert down.n.tolist() == [5, 5] and down.mean.tolist() == [2.0, 7.0]
    # to_pandas without pandas: test_timeseries_windows.py (CI installs pandas)
    with pytest.raises(TypeError):
        ts[times[0] : times[3] : 2]


@pytest.mark.parametrize(
    ("event", "args", "kwargs", "kind", "text"),
    [
        ("ts:range", ["meters/7/3"], {"start": "yesterday"}, "DataError", "ISO-8601"),
        ("ts:range", ["meters/7/3"], {"start": 10, "end": 5}, "DataError", "after end"),
        ("ts:range", ["meters/7/3"], {"limit": 10**7}, "DataError", "over the limit"),
        ("ts:range", ["meters/7/3"], {"buckets": 10**6}, "DataError", "over the limit"),
        ("ts:range", ["meters/7/3"], {"buckets": 0}, "DataError", "positive integer"),
        ("ts:range", ["meters/7/3"], {"unit": "days"}, "DataError", "unit"),
        ("ts:range", ["meters/7/3"], {"colour": 1}, "DataError", "unknown argument"),
        ("ts:range", ["meters/7"], {}, "KeyMappingError", "not a series"),
        ("ts:range", ["elsewhere"], {}, "KeyMappingError", "not a series"),
        ("ts:range", [], {}, "DataError", "missing the key"),
        ("ts:info", [42], {}, "KeyMappingError", "non-empty string"),
        ("ts:latest", ["meters/7/3"], {"n": -1}, "DataError", "positive integer"),
        ("ts:resume", [], {"keys": "meters/7/3", "since": 0}, "DataError", "non-empty list"),
        ("ts:resume", [], {"keys": ["meters/7/3"]}, "DataError", "no watermark"),
        ("ts:resume", [], {"keys": ["meters/7/3"] * 101, "since": 0}, "DataError", "at most 100"),
    ],
)
def test_bad_requests_get_clear_errors(
    setup: tuple[znsocket.Client, int, ServerProcess],
    event: str,
    args: list,
    kwargs: dict,
    kind: str,
    text: str,
) -> None:
    client, _, gw = setup
    # the normal client path: the 101-key request travels as compressed_message
    answer = client.call(event, *args, **kwargs)
    assert answer["error"]["type"] == kind and text in answer["error"]["msg"], answer
    # the connection and the server stay usable
    assert "data" in client.call("ts:info", "meters/7/3") and gw.alive()


def test_malformed_payloads_and_downsampling_non_numbers(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    extra = f"""
    [[map]]
    pattern = "notes/{{n:int}}"
    cid = {cid}
    mid = 1
    moid = "{{n}}"
    codec = "json"
    """
    gw = start_gateway(meter_config(tstorage, fresh_cid(), fresh_cid(), extra))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        notes = znsocket.List(client, "notes/1")
        notes.extend(["a", {"b": 1}])
        bad = client.call("ts:range", "notes/1", buckets=4)
        assert bad["error"]["type"] == "DataError" and "numbers" in bad["error"]["msg"]
        raw = data(client.call("ts:range", "notes/1"))
        assert raw["v"] == ["a", {"b": 1}]
        reply = client.sio.call("ts:range", {"not": "a list"}, namespace="/znsocket")
        assert reply["error"]["type"] == "MalformedMessageError"
        # the dashboard's listing event checks its payload the same way
        bad_payloads: list[Any] = [{"not": "a list"}, [[], {}, 3], ["x", {}], [[], []]]
        for payload in bad_payloads:
            reply = client.sio.call("dashboard:series", payload, namespace="/znsocket")
            assert reply["error"]["type"] == "MalformedMessageError", payload
        reply = client.sio.call("dashboard:series", [["extra"], {}], namespace="/znsocket")
        assert reply["error"]["type"] == "DataError"
        listing = client.sio.call("dashboard:series", [[], {}], namespace="/znsocket")
        notes_1 = [e for e in listing["data"]["series"] if e["key"] == "notes/1"]
        assert [(e["count"], e["latest"]) for e in notes_1] == [(2, {"b": 1})]
        with pytest.raises(DataError):
            TimeSeries(client, "notes/1").range(buckets=2)
    finally:
        client.sio.disconnect()


AUTH = """
[auth]
enabled = true

[[auth.tokens]]
name = "viewer"
env = "GW_TS_VIEWER"
access = "read"
keys = ["meters/1/*"]
"""


def test_read_access_applies_to_time_series_events(
    tmp_path: Path, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    put_direct(
        tstorage,
        [((cid, 1, 1, T0), struct.pack("<d", 1.0)), ((cid, 2, 1, T0), struct.pack("<d", 2.0))],
    )
    path = tmp_path / "gateway.toml"
    path.write_text(meter_config(tstorage, cid, fresh_cid()) + AUTH)
    with spawn(
        ["gateway", "run", "--config", str(path), "--port", "0"], env={"GW_TS_VIEWER": "v"}
    ) as gw:
        viewer = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}", token="v")
        try:
            # a read-only token reads its keys...
            assert data(viewer.call("ts:range", "meters/1/1"))["v"] == [1.0]
            w = data(viewer.call("ts:info", "meters/1/1"))["watermark"]
            assert data(viewer.call("ts:resume", keys=["meters/1/1"], since=w))["changes"]
            # ...and no other key, by any of the events
            for event, args, kwargs in [
                ("ts:range", ["meters/2/1"], {}),
                ("ts:range", ["meters/2/1"], {"buckets": 3}),
                ("ts:latest", ["meters/2/1"], {}),
                ("ts:info", ["meters/2/1"], {}),
                ("ts:resume", [], {"keys": ["meters/1/1", "meters/2/1"], "since": w}),
            ]:
                answer = viewer.call(event, *args, **kwargs)
                assert answer["error"]["type"] == "PermissionDeniedError", (event, answer)
                assert "meters/2/1" in answer["error"]["msg"]
        finally:
            viewer.sio.disconnect()


def test_a_client_leaving_mid_request_leaves_the_server_serving(
    setup: tuple[znsocket.Client, int, ServerProcess], tstorage: ServerProcess
) -> None:
    client, cid, gw = setup
    put_values(tstorage, cid, [T0 + i for i in range(20_000)], [float(i) for i in range(20_000)])
    leaving = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    requests: list[tuple[str, dict[str, Any]]] = [
        ("ts:range", {"limit": 100_000}),
        ("ts:resume", {"since": 0}),
    ]
    for event, kwargs in requests:
        args: list = [] if event == "ts:resume" else ["meters/7/3"]
        if event == "ts:resume":
            kwargs = {**kwargs, "keys": ["meters/7/3"]}
        leaving.sio.emit(event, [args, kwargs], namespace="/znsocket", callback=lambda *a: None)
    leaving.sio.disconnect()
    time.sleep(0.5)
    assert gw.alive()
    assert data(client.call("ts:info", "meters/7/3"))["count"] == 20_000
    got = data(client.call("ts:resume", keys=["meters/7/3"], since=0))
    assert len(got["changes"]["meters/7/3"]["t"]) == 20_000


def test_own_writes_read_back_are_not_resumed_again(
    setup: tuple[znsocket.Client, int, ServerProcess],
) -> None:
    client, _, _ = setup
    lst = znsocket.List(client, "meters/7/3")
    for k in range(5):
        lst.extend([float(k), float(k) + 0.5])
        # read straight after the write: it is in the answer, and the answer's watermark
        # lies above it, so resuming from there does not hand it back
        seen = data(client.call("ts:range", "meters/7/3"))
        assert seen["v"][-2:] == [float(k), float(k) + 0.5] and seen["count"] == 2 * (k + 1)
        again = data(client.call("ts:resume", keys=["meters/7/3"], since=seen["watermark"]))
        assert again["changes"]["meters/7/3"]["t"] == []
