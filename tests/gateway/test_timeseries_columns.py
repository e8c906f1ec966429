"""Bulk writes and reads as binary columns: ``TimeSeries.extend`` / ``ts:extend`` and
``ts:range`` with ``columns``, over the wire to a `gateway run` process.

Records written through the gateway are read back directly from TStorage with
``tstorage_client`` (what was stored, not what the gateway remembers), and records written
directly are read back through the gateway.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import znsocket
from gateway import TimeSeries
from gateway.timeseries.columns import extend_chunk
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct, records_of
from tstorage_client.timestamp import EPOCH_OFFSET_NS
from znsocket.exceptions import DataError, ResponseError

pytestmark = pytest.mark.integration

T0 = 800_000_000 * 10**9  # TStorage ns
SEC = 10**9
EXTRA = """
[[map]]
pattern = "floats/{moid:int}"
cid = {cid}
mid = 9
moid = "{moid}"
codec = "struct:<f"

[[map]]
pattern = "corr/{moid:int}"
cid = {cid}
mid = 10
moid = "{moid}"
codec = "struct:<d"
allow_corrections = true

[[map]]
pattern = "notes/{moid:int}"
cid = {cid}
mid = 11
moid = "{moid}"
codec = "json"
"""


@pytest.fixture
def setup(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> Iterator[tuple[znsocket.Client, int]]:
    cid, other_cid = fresh_cid(), fresh_cid()  # floats/, fixed/, notes/ under other_cid
    extra = EXTRA.replace("{cid}", str(other_cid))
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid(), extra))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    yield client, cid
    client.sio.disconnect()


def unix(caps: np.ndarray) -> np.ndarray:
    return (caps + EPOCH_OFFSET_NS).astype("datetime64[ns]")


@contextlib.contextmanager
def _calls(client: znsocket.Client) -> Iterator[tuple[list[str], list[str]]]:
    """The events a client sends as JSON calls and, with ``columns``, on its Socket.IO
    connection while the block runs."""
    as_text: list[str] = []
    as_binary: list[str] = []
    call, sio_call = client.call, client.sio.call

    def text(event: str, *args: Any, **kwargs: Any) -> Any:
        as_text.append(event)
        return call(event, *args, **kwargs)

    def binary(event: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(data, list) and len(data) == 2 and data[1].get("columns"):
            as_binary.append(event)
        return sio_call(event, data, *args, **kwargs)

    client.call = text  # type: ignore[method-assign]
    client.sio.call = binary  # type: ignore[method-assign]
    try:
        yield as_text, as_binary
    finally:
        client.call = call  # type: ignore[method-assign]
        client.sio.call = sio_call  # type: ignore[method-assign]


def test_extend_numpy_columns_stores_every_point(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    ts = TimeSeries(client, "meters/7/3")
    caps = T0 + np.arange(1000, dtype=np.int64) * SEC
    values = np.linspace(0, 1, 1000)
    # small chunks: the bulk path in several events, each one numpy PUT
    assert ts.extend(unix(caps), values, chunk=300) == 1000
    stored = records_of(tstorage, cid)
    assert [k[3] for k, _ in stored] == caps.tolist()
    assert [struct.unpack("<d", p)[0] for _, p in stored] == values.tolist()
    # the JSON path sees the same list, and appends after it
    lst = znsocket.List(client, "meters/7/3")
    assert len(lst) == 1000 and lst[0] == 0.0 and lst[-1] == 1.0
    lst.append(2.0)
    # after the "now" of the append; ints are unix ns
    later = np.array([T0 + 10**17 + EPOCH_OFFSET_NS])
    assert ts.extend(later, np.array([3.0])) == 1002


def test_range_answers_binary_columns(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    caps = [T0 + i * SEC for i in range(50)]
    put_direct(tstorage, [((cid, 7, 3, c), struct.pack("<d", i / 2)) for i, c in enumerate(caps)])
    answer = client.call(
        "ts:range", "meters/7/3", start=caps[5], end=caps[25], columns=True, unit="unix_ns"
    )
    got = answer["data"]
    assert got["mode"] == "columns" and got["dtype"] == "<f8" and got["count"] == 20
    assert isinstance(got["t"], bytes) and isinstance(got["v"], bytes)
    t = np.frombuffer(got["t"], dtype="<i8")
    assert t.tolist() == [c + EPOCH_OFFSET_NS for c in caps[5:25]]
    assert np.frombuffer(got["v"], dtype="<f8").tolist() == [i / 2 for i in range(5, 25)]
    # truncated pages continue where the last stopped
    page = client.call("ts:range", "meters/7/3", limit=7, columns=True, unit="tstorage_ns")["data"]
    assert page["truncated"] and page["next"] == str(caps[7])
    assert np.frombuffer(page["t"], dtype="<i8").tolist() == caps[:7]  # tstorage_ns
    # TimeSeries reads in columns: values are a float64 array
    window = TimeSeries(client, "meters/7/3").range()
    assert window.v.dtype == np.float64 and window.v.tolist() == [i / 2 for i in range(50)]
    assert window.v.flags.writeable and window.t.flags.writeable  # the caller's own arrays
    assert (window.t.astype(np.int64) - EPOCH_OFFSET_NS).tolist() == caps


def test_bucket_reads_answer_binary_columns(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    caps = [T0 + i * SEC for i in range(200)] + [T0 + 500 * SEC + i * SEC for i in range(10)]
    values = [float((i * 7) % 13) for i in range(len(caps))]
    put_direct(
        tstorage,
        [((cid, 7, 3, c), struct.pack("<d", v)) for c, v in zip(caps, values, strict=True)],
    )
    for align in ({}, {"align": "rows"}):
        ask = dict(buckets=8, unit="unix_ns", **align)
        as_json = client.call("ts:range", "meters/7/3", **ask)["data"]
        got = client.call("ts:range", "meters/7/3", columns=True, **ask)["data"]
        assert got["mode"] == "buckets" and got["columns"] is True and got["dtype"] == "<f8"
        assert got["count"] == as_json["count"] == 210 and got["buckets"] == 8
        # the gap leaves buckets out: fewer rows than buckets, the same ones in both forms
        assert 2 < len(as_json["t"]) < 8
        times = ["t"] + (["t_end", "t_first", "t_last"] if align else [])
        stats = ["min", "max", "mean", "last"] + (["first"] if align else [])
        assert sorted(k for k, v in got.items() if isinstance(v, bytes)) == sorted(
            [*times, *stats, "n"]
        )
        for k in [*times, "n"]:
            assert np.frombuffer(got[k], dtype="<i8").tolist() == as_json[k], k
        for k in stats:
            assert np.frombuffer(got[k], dtype="<f8").tolist() == as_json[k], k
        # TimeSeries reads them as columns and gives what the JSON answer says
        with _calls(client) as (as_text, as_binary):
            d = TimeSeries(client, "meters/7/3").range(buckets=8, **align)
        assert as_text == [] and as_binary == ["ts:range"]  # columns, no JSON fallback
        assert d.n.tolist() == as_json["n"] and d.mean.tolist() == as_json["mean"]
        assert d.t.astype(np.int64).tolist() == as_json["t"]
        assert d.mean.flags.writeable and d.t.flags.writeable
        if align:
            assert d.t_end is not None and d.t_end.astype(np.int64).tolist() == as_json["t_end"]
    # times in columns are int64 ns; a values rule that is not numbers cannot be downsampled
    msg = client.call("ts:range", "meters/7/3", buckets=4, columns=True, unit="unix_s")
    assert msg["error"]["type"] == "DataError" and "int64 nanoseconds" in msg["error"]["msg"]
    znsocket.List(client, "notes/1").append({"text": "not a number"})
    # a json rule holding numbers is downsampled in columns, by ts:range and ts:mrange
    znsocket.List(client, "notes/2").extend([1.5, 2.5, 4.0])
    asks: list[tuple[str, dict[str, Any]]] = [
        ("ts:range", {"key": "notes/2"}),
        ("ts:mrange", {"keys": ["notes/2"]}),
    ]
    for event, ask in asks:
        got = client.call(event, buckets=1, columns=True, unit="unix_ns", **ask)["data"]
        one = got if event == "ts:range" else got["series"][0]
        assert np.frombuffer(one["mean"], dtype="<f8").tolist() == [8.0 / 3], event
    msg = client.call("ts:range", "notes/1", buckets=4, columns=True, unit="unix_ns")
    assert msg["error"]["type"] == "DataError"
    assert client.call("ts:info", "meters/7/3")["data"]["count"] == 210  # still serving


def test_a_columns_flag_that_is_not_true_or_false_is_refused(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    put_direct(tstorage, [((cid, 7, 3, T0 + i * SEC), struct.pack("<d", i)) for i in range(5)])
    other = znsocket.Client.from_url(client.address)
    try:
        for bad in ("yes", 1, [True], {"on": True}):
            for event, ask in (
                ("ts:range", {"key": "meters/7/3"}),
                ("ts:mrange", {"keys": ["meters/7/3"]}),
            ):
                for window in ({}, {"buckets": 2}):
                    got = client.call(event, columns=bad, unit="unix_ns", **ask, **window)
                    assert got["error"]["type"] == "DataError", (event, bad, got)
                    assert "columns must be true or false" in got["error"]["msg"]
                    # another client is answered meanwhile, in columns
                    ok = other.call("ts:range", "meters/7/3", columns=True, unit="unix_ns")["data"]
                    assert np.frombuffer(ok["v"], dtype="<f8").tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        # null means no columns, as leaving it out
        assert client.call("ts:range", "meters/7/3", columns=None)["data"]["mode"] == "raw"
    finally:
        other.sio.disconnect()


def test_extend_casts_only_exactly_and_keeps_the_codec_dtype(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    ts = TimeSeries(client, "floats/1")
    caps = T0 + np.arange(4, dtype=np.int64)
    assert ts.extend(caps, np.array([0.5, 1.5, -2.0, np.nan])) == 4  # float64 exact in <f
    with pytest.raises(DataError, match="cannot be stored exactly") as err:
        ts.extend(caps[:2] + 10, np.array([0.5, 0.1]))  # 0.1 is not a float32
    assert "not stored" in str(err.value)
    # a malformed message: the error names what is wrong
    answer = client.sio.call(
        "ts:extend",
        [["floats/1"], {"t": (caps[:2] + 20).tobytes(), "v": b"\0" * 4, "dtype": "<f4"}],
        namespace="/znsocket",
    )
    assert (
        answer["error"]["type"] == "DataError" and "2 times but 4 bytes" in answer["error"]["msg"]
    )
    window = ts.range()
    assert window.v.dtype == np.float32 and len(window) == 4
    assert np.isnan(window.v[3]) and window.v[:3].tolist() == [0.5, 1.5, -2.0]
    assert len(records_of(tstorage, cid + 1)) == 4


def test_extend_follows_the_append_rules_and_stores_nothing_of_a_bad_chunk(
    setup: tuple[znsocket.Client, int], tstorage: ServerProcess
) -> None:
    client, cid = setup
    ts = TimeSeries(client, "corr/1")
    caps = T0 + np.arange(10, dtype=np.int64) * SEC
    ts.extend(caps, np.arange(10.0))
    # corrections of existing elements (the rule allows them) then a new one, in one call
    assert ts.extend(np.append(caps[8:], caps[-1] + SEC), np.array([80.0, 90.0, 100.0])) == 11
    assert ts.range().v.tolist()[-3:] == [80.0, 90.0, 100.0]
    # the message names the time as the writer gave it (unix ns), not in TStorage's ns
    with pytest.raises(ResponseError, match=rf"unix ns {caps[3] + 1}\) lies .* matches none"):
        ts.extend(np.array([caps[3] + 1, caps[-1] + SEC]), np.array([1.0, 2.0]))
    with pytest.raises(DataError, match="strictly increasing"):
        ts.extend(np.array([caps[-1] + 2 * SEC, caps[-1] + SEC]), np.array([1.0, 2.0]))
    plain = TimeSeries(client, "meters/7/3")  # allow_corrections is off by default
    plain.extend(caps, np.arange(10.0))
    with pytest.raises(ResponseError, match=rf"unix ns {caps[-1]}\) exists; corrections are off"):
        plain.extend(caps[-1:], np.array([5.0]))
    # a huge input goes in chunks; a chunk refused midway says what earlier chunks stored
    more = caps[-1] + SEC * np.arange(1, 7, dtype=np.int64)
    with pytest.raises(ResponseError, match="first 4 of 7 points were stored"):
        plain.extend(np.append(more[:4], [caps[2] + 1, more[4], more[5]]), np.zeros(7), chunk=4)
    assert len(plain) == 14
    assert len(records_of(tstorage, cid)) == 14  # nothing of the refused chunk
    notes = TimeSeries(client, "notes/1")
    with pytest.raises(DataError, match="one number"):
        notes.extend(caps, np.arange(10.0))
    # reads of a rule without columns fall back to JSON
    znsocket.List(client, "notes/1").extend([{"a": 1}, "text"])
    assert notes.range().v.tolist() == [{"a": 1}, "text"] and not notes.columns


def test_extend_accepts_pandas(setup: tuple[znsocket.Client, int]) -> None:
    pd = pytest.importorskip("pandas")
    client, _ = setup
    ts = TimeSeries(client, "meters/7/4")
    index = pd.date_range("2026-11-22T08:00", periods=5, freq="s", tz="UTC")
    assert ts.extend(pd.Series(np.arange(5.0), index=index)) == 5
    frame = pd.DataFrame({"v": [5.0, 6.0]}, index=index[-1] + pd.to_timedelta([1, 2], unit="s"))
    assert ts.extend(frame) == 7
    got = ts.range().to_pandas()
    assert got["v"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert got.index[0] == index[0]  # a UTC DatetimeIndex
    # a naive index of another unit (pandas may infer seconds or microseconds) is UTC
    later = pd.DatetimeIndex(["2026-11-22T09:00:00"]).as_unit("s")
    assert ts.extend(pd.Series([7.0], index=later)) == 8
    assert ts.latest(1).t[0] == np.datetime64("2026-11-22T09:00:00", "ns")


def test_extend_announces_one_refresh_to_other_clients(
    setup: tuple[znsocket.Client, int],
) -> None:
    client, _ = setup
    other = znsocket.Client.from_url(client.address)
    try:
        lst = znsocket.List(other, "meters/7/3")
        seen: list[object] = []
        lst.on_refresh(seen.append)
        caps = T0 + np.arange(3, dtype=np.int64)
        TimeSeries(client, "meters/7/3").extend(caps, np.arange(3.0))
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen == [{"start": 0, "stop": None}]
    finally:
        other.sio.disconnect()


def test_default_chunks_fit_the_servers_message_limit(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    # an event's two columns together fit the limit: 8 bytes of time and the value per point
    assert extend_chunk(None, np.dtype("<f8")) == (1_000_000 - 4096) // 16
    assert extend_chunk(10 * 2**20, np.dtype("<f4")) == 524_288  # the most per message
    cid = fresh_cid()
    extra = "\n[server]\nmax_message_size = 65536\n"
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid(), extra))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        ts = TimeSeries(client, "meters/7/3")
        caps = T0 + np.arange(20_000, dtype=np.int64)
        # 320 kB in all: messages of 3,840 points, both attachments together under 64 KiB
        assert ts.extend(caps, np.arange(20_000.0)) == 20_000
        assert len(records_of(tstorage, cid)) == 20_000
        assert gw.alive()
    finally:
        client.sio.disconnect()
