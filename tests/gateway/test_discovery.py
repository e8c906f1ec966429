"""Series discovery saved in TStorage (markers and a watermark) and the paged listing.

A gateway saves what it discovered under ``[tstorage] index_cid``; the next gateway lists
from that plus the change feed since the watermark, and still lists every series that has
records, whoever wrote them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import znsocket
from gateway.keymap import KeyMap, Rule, SeriesKey, boxes_without, compile_pattern
from gateway.storage import GatewayStorage
from gateway.timeseries import catalog
from gateway.timeseries.catalog import _list_keys, _series_of, _template
from gateway.timeseries.reads import TimeSeriesReads
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_keymap import _JSON, _rules, mids, moids
from tests.gateway.test_storage_series import put_direct
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key

INDEX_CID = 2_147_483_001  # the default [tstorage] index_cid
T0 = 800_000_000 * 10**9


def records(cid: int, mid: int, moid: int, n: int, start: int = 0) -> list[Any]:
    return [
        ((cid, mid, moid, T0 + (start + i) * 10**9), struct.pack("<d", start + i)) for i in range(n)
    ]


def listing(gw: ServerProcess, **kwargs: Any) -> dict[str, Any]:
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        answer = c.call("dashboard:series", **kwargs)
    finally:
        c.sio.disconnect()
    assert "data" in answer, answer
    data: dict[str, Any] = answer["data"]
    return data


def markers(ts: ServerProcess, cid: int) -> set[tuple[int, int]]:
    cap = -1 - cid
    with Channel("127.0.0.1", ts.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(
            Key(INDEX_CID, -(2**63), -(2**31), cap, -(2**63)),
            Key(INDEX_CID + 1, 2**63 - 1, 2**31 - 1, cap + 1, 2**63 - 1),
        )
    assert res.is_ok()
    return {(r.key.mid, r.key.moid) for r in res.data if r.key.cap == cap}


def test_a_new_gateway_lists_from_the_saved_discovery_and_the_feed(
    tstorage: ServerProcess,
    start_gateway: Callable[[str], ServerProcess],
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    config = meter_config(tstorage, cid, fresh_cid())
    put_direct(tstorage, records(cid, 1, 1, 5) + records(cid, 1, 2, 3) + records(cid, 2, 1, 4))
    first = start_gateway(config)
    got = [(e["key"], e["count"]) for e in listing(first)["series"]]
    assert got == [("meters/1/1", 5), ("meters/1/2", 3), ("meters/2/1", 4)]
    first.stop()
    # what it discovered is saved: one marker per series with records
    assert markers(tstorage, cid) == {(1, 1), (1, 2), (2, 1)}
    # records another writer stores afterwards: a new series and one more of an old one
    put_direct(tstorage, records(cid, 3, 7, 2) + records(cid, 1, 1, 1, start=5))
    second = start_gateway(config)
    data = listing(second)
    now = [(e["key"], e["count"], e["latest"]) for e in data["series"]]
    assert now == [
        ("meters/1/1", 6, 5.0),
        ("meters/1/2", 3, 2.0),
        ("meters/2/1", 4, 3.0),
        ("meters/3/7", 2, 1.0),
    ]
    assert data["next"] is None
    assert markers(tstorage, cid) == {(1, 1), (1, 2), (2, 1), (3, 7)}
    assert second.alive()


def test_the_first_discovery_does_not_stream_the_longest_series_whose_summaries_are_held(
    tstorage: ServerProcess,
    make_storage: Callable[[str], GatewayStorage],
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (at the defaults a series left out holds 65,536 records or more, 32 at most per box)
    monkeypatch.setattr(catalog, "LEAVE_OUT_RECORDS", 10_000)
    monkeypatch.setattr(catalog, "LEAVE_OUT_MOST", 1)
    cid = fresh_cid()
    put_direct(
        tstorage,
        records(cid, 1, 1, 20_000)
        + records(cid, 1, 2, 10)
        + records(cid, 2, 5, 5)
        + records(cid, 3, 1, 15_000),
    )
    storage = make_storage(meter_config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(storage)
    for key, n in (("1/1", 20_000), ("3/1", 15_000), ("1/2", 10)):  # their summaries are held
        assert storage.llen(f"znsocket.List:meters/{key}") == n
    streamed, gets = [0], [0]
    stream_columns = storage.link.stream_columns

    def counting(lo: Any, hi: Any, size: int, take: Any, *args: Any) -> int:
        def counted(arr: Any) -> None:
            streamed[0] += len(arr)
            take(arr)

        gets[0] += 1
        return stream_columns(lo, hi, size, counted, *args)

    storage.link.stream_columns = counting  # type: ignore[method-assign,assignment]
    keys = reads.series_keys()
    assert keys == [f"znsocket.List:meters/{k}" for k in ("1/1", "1/2", "2/5", "3/1")]
    # the longest series held is left out (four boxes around it: mids before and after,
    # moids before and after at its mid; one more GET reads the saved markers), the
    # others are read
    assert (streamed[0], gets[0]) == (15_015, 5)
    # what it found is saved, the series left out too; later records of any series show
    assert markers(tstorage, cid) == {(1, 1), (1, 2), (2, 5), (3, 1)}
    put_direct(tstorage, records(cid, 1, 1, 1, start=20_000) + records(cid, 4, 4, 2))
    assert reads.series_keys()[-1] == "znsocket.List:meters/4/4"


@given(
    st.integers(0, 4),
    st.integers(1, 5),
    st.integers(0, 4),
    st.integers(1, 5),
    st.sets(st.tuples(st.integers(-1, 9), st.integers(-1, 9)), max_size=12),
)
def test_a_box_without_some_series_covers_every_other_key_once(
    m0: int, dm: int, o0: int, do: int, left_out: set[tuple[int, int]]
) -> None:
    box = ((7, m0, o0, 11, 12), (8, m0 + dm, o0 + do, 13, 14))
    parts = boxes_without(box, left_out)
    for lo, hi in parts:
        assert (lo[0], lo[3], lo[4], hi[0], hi[3], hi[4]) == (7, 11, 12, 8, 13, 14)
        assert lo[1] < hi[1] and lo[2] < hi[2]
    for mid in range(m0 - 1, m0 + dm + 1):
        for moid in range(o0 - 1, o0 + do + 1):
            inside = m0 <= mid < m0 + dm and o0 <= moid < o0 + do
            covered = sum(lo[1] <= mid < hi[1] and lo[2] <= moid < hi[2] for lo, hi in parts)
            assert covered == (1 if inside and (mid, moid) not in left_out else 0)


def test_the_listing_pages_by_prefix_glob_and_cursor(
    tstorage: ServerProcess,
    start_gateway: Callable[[str], ServerProcess],
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    put_direct(
        tstorage,
        [
            r
            for mid, moid in [(1, 1), (1, 2), (1, 3), (2, 1), (12, 1)]
            for r in records(cid, mid, moid, 2)
        ],
    )
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    keys: list[str] = []
    after = None
    pages = 0
    while True:
        page = listing(gw, limit=2, after=after) if after else listing(gw, limit=2)
        assert len(page["series"]) <= 2
        keys += [e["key"] for e in page["series"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert keys == ["meters/1/1", "meters/1/2", "meters/1/3", "meters/12/1", "meters/2/1"]
    assert pages == 3
    assert [e["key"] for e in listing(gw, prefix="meters/1/")["series"]] == keys[:3]
    assert [e["key"] for e in listing(gw, match="meters/*/1")["series"]] == [
        "meters/1/1",
        "meters/12/1",
        "meters/2/1",
    ]
    one = listing(gw, match="meters/1?/*", limit=1)
    assert [e["key"] for e in one["series"]] == ["meters/12/1"] and one["next"] is None
    # without arguments: every series, as before
    assert len(listing(gw)["series"]) == 5
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        for bad in ({"limit": 0}, {"limit": "2"}, {"match": 3}, {"pages": 1}):
            answer = c.call("dashboard:series", **bad)
            assert answer["error"]["type"] == "DataError", (bad, answer)
        assert "data" in c.call("dashboard:series")
    finally:
        c.sio.disconnect()
    assert gw.alive()


def test_a_watermark_record_of_another_box_or_unreadable_is_not_trusted(
    tstorage: ServerProcess,
    start_gateway: Callable[[str], ServerProcess],
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    config = meter_config(tstorage, cid, fresh_cid())
    put_direct(tstorage, records(cid, 1, 1, 2))
    first = start_gateway(config)
    assert [e["key"] for e in listing(first)["series"]] == ["meters/1/1"]
    first.stop()
    put_direct(tstorage, records(cid, 2, 2, 2))
    # newer records at the watermark key of the rule's box claiming everything is counted
    key = (INDEX_CID, -(2**63), -(2**31), -(2**32) - 1 - cid)
    other = {"format": 1, "box": [[cid, 0, 0, 0, 0], [cid + 1, 1, 1, 1, 1]], "w": 2**62}
    for payload in (json.dumps(other).encode(), b"not json"):
        put_direct(tstorage, [(key, payload)])
        gw = start_gateway(config)
        assert [e["key"] for e in listing(gw)["series"]] == ["meters/1/1", "meters/2/2"]
        gw.stop()


def test_the_listing_shows_each_rules_unit_and_label_and_examples_only_of_writable_rules(
    tstorage: ServerProcess,
    start_gateway: Callable[[str], ServerProcess],
    fresh_cid: Callable[[], int],
) -> None:
    cid, volts, archive = fresh_cid(), fresh_cid(), fresh_cid()
    extra = f"""
        [[map]]
        pattern = "volts/{{moid:int}}"
        cid = {volts}
        mid = 1
        moid = "{{moid}}"
        codec = "struct:<d"
        unit = "V"
        label = "mains voltage"

        [[map]]
        pattern = "archive/{{moid:int}}"
        cid = {archive}
        mid = 1
        moid = "{{moid}}"
        codec = "struct:<d"
        read_only = true
        """
    put_direct(
        tstorage, records(cid, 1, 1, 2) + records(volts, 1, 4, 3) + records(archive, 1, 2, 1)
    )
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid(), extra))
    data = listing(gw)
    shown = {e["key"]: (e["count"], e["unit"], e["label"]) for e in data["series"]}
    assert shown == {
        "meters/1/1": (2, None, None),
        "volts/4": (3, "V", "mains voltage"),
        "archive/2": (1, None, None),
    }
    # a page shows how to add data only with keys a client may write
    assert data["examples"] == ["meters/1/1", "volts/1"]


def _keymaps() -> list[KeyMap]:
    general = Rule(
        1, "list", compile_pattern("meters/{mid:int}/{moid:int}"), 1, "mid", "moid", shape=_JSON
    )
    swapped = Rule(
        2, "list", compile_pattern("m{moid:int}-{mid:int}/x"), 1, "mid", "moid", shape=_JSON
    )
    return [
        _rules(),  # a fixed series first, shadowing part of the general rule
        KeyMap([general, swapped]),  # the general rule first, another after it
        KeyMap([swapped, general]),
    ]


@given(st.sampled_from([1, 9]), mids, moids)
def test_listed_keys_are_those_the_key_map_shows_for_the_series(
    cid: int, mid: int, moid: int
) -> None:
    s = SeriesKey(cid, mid, moid)
    for km in _keymaps():
        lists = [(rule, _template(rule)) for rule in km.rules if rule.kind == "list"]
        assert _list_keys(km, lists, s) == [k for k, f in km.keys_for_series(s) if f is None]


@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(-2, 2), st.integers(0, 3)), max_size=60),
    st.booleans(),
)
def test_a_batchs_series_are_found_in_any_row_order(
    rows: list[tuple[int, int, int]], in_key_order: bool
) -> None:
    """Discovery takes the rows that start a run of one series: every series of a batch is
    found, whether the rows come in key order (as streams do) or not."""
    if in_key_order:
        rows = sorted(rows)
    arr = np.zeros(len(rows), dtype=[("cid", "<i4"), ("mid", "<i8"), ("moid", "<i4")])
    for i, row in enumerate(rows):
        arr[i] = row
    assert _series_of(arr) == set(rows)
