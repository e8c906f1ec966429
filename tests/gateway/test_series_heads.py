"""Series heads: the dashboard's listing answers a page from the heads saved with the
summaries (count, first/last time, latest value), proven current by one read of what
arrived since; a head that is stale, unreadable or missing is never trusted."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gateway.dashboard import DashboardReads
from gateway.storage import GatewayStorage
from gateway.storage.heads import Head, head_cap
from gateway.timeseries.reads import TimeSeriesReads
from gateway.timeseries.times import cap_in_unit
from tests._servers import ServerProcess
from tests.gateway.test_index_build import put
from tests.gateway.test_persisted_summaries import INDEX_CID, config
from tests.gateway.test_storage_series import put_direct
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key

Make = Callable[[str], GatewayStorage]
T0 = 800_000_000 * 10**9
SERIES = [(1, 1), (1, 2), (2, 1), (2, 3)]
Model = dict[tuple[int, int], dict[int, float]]


def write(ts: ServerProcess, cid: int, model: Model, mid: int, moid: int, caps: Any) -> None:
    """One PUT from an outside writer (newest acq wins per cap), mirrored in the model."""
    caps = np.asarray(caps, dtype=np.int64)
    vals = np.sin(caps / 1e9) + len(model.get((mid, moid), {}))
    put(ts, cid, mid, moid, caps, vals)
    model.setdefault((mid, moid), {}).update(zip(caps.tolist(), vals.tolist(), strict=True))


def recount(model: Model) -> dict[str, tuple[int, Any, Any, float]]:
    """Brute force: count, first/last time and latest value of every series of the model."""
    out = {}
    for (mid, moid), held in model.items():
        caps = sorted(held)
        out[f"meters/{mid}/{moid}"] = (
            len(caps), cap_in_unit(caps[0], "unix_s"), cap_in_unit(caps[-1], "unix_s"),
            held[caps[-1]],
        )  # fmt: skip
    return out


class Listing:
    """The listing of one gateway, counting the series it answered from their summaries."""

    def __init__(self, gw: GatewayStorage) -> None:
        self.dashboard = DashboardReads(TimeSeriesReads(gw))
        self.from_summaries: list[str] = []
        real = self.dashboard.reads.info

        def info(t: Any) -> Any:
            self.from_summaries.append(t.key)
            return real(t)

        self.dashboard.reads.info = info  # type: ignore[method-assign]

    def __call__(self, **kwargs: Any) -> dict[str, tuple[int, Any, Any, float]]:
        self.from_summaries.clear()
        got = self.dashboard.series(lambda _: True, **kwargs)["series"]
        return {e["key"]: (e["count"], e["first_time"], e["last_time"], e["latest"]) for e in got}


def saved_head(ts: ServerProcess, cid: int, mid: int, moid: int) -> Head | None:
    cap = head_cap(cid)
    with Channel("127.0.0.1", ts.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(INDEX_CID, mid, moid, cap, -(2**63)),
                     Key(INDEX_CID + 1, mid + 1, moid + 1, cap + 1, 2**63 - 1))  # fmt: skip
    assert res.is_ok()
    if not res.data:
        return None
    return Head.decode(max(res.data, key=lambda r: r.key.acq).value)


def loaded(ts: ServerProcess, cid: int) -> Model:
    model: Model = {}
    for n, (mid, moid) in enumerate(SERIES):
        write(ts, cid, model, mid, moid, T0 + np.arange(100 + 30 * n, dtype=np.int64) * 10**9)
    return model


def test_heads_agree_with_a_recount_and_two_gateways_share_them(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    model = loaded(tstorage, cid)
    first = Listing(make_storage(config(tstorage, cid, fresh_cid())))
    assert first() == recount(model)
    # each series' head is saved with its summaries, and is a recount of its records
    for mid, moid in SERIES:
        head = saved_head(tstorage, cid, mid, moid)
        held = model[(mid, moid)]
        assert head is not None
        assert (head.count, head.first, head.last) == (len(held), min(held), max(held))
        assert head.payload == struct.pack("<d", held[max(held)])
    # another gateway answers the whole page from the heads, not from each series' summaries
    second = Listing(make_storage(config(tstorage, cid, fresh_cid())))
    assert second(limit=10) == recount(model)
    assert second.from_summaries == []
    # an outside writer: appends to one series (the heads catch up from their watermark),
    # a correction and a late record to others (those are read from their summaries)
    write(tstorage, cid, model, 1, 1, T0 + np.arange(100, 140, dtype=np.int64) * 10**9)
    write(tstorage, cid, model, 1, 2, [T0 + 5 * 10**9])
    write(tstorage, cid, model, 2, 1, [T0 + 5 * 10**9 + 1])
    third = Listing(make_storage(config(tstorage, cid, fresh_cid())))
    assert third(limit=10) == recount(model)
    assert sorted(third.from_summaries) == ["znsocket.List:meters/1/2", "znsocket.List:meters/2/1"]
    # and the gateway that saw them first agrees too
    assert second(limit=10) == recount(model)


@pytest.mark.parametrize(
    "damage",
    [
        lambda h: b"\x00not json",
        lambda h: h.replace(b'"n":', b'"n":1'),  # a count changed: the CRC fails
        lambda h: h.replace(b'"format":1', b'"format":9'),
    ],
    ids=["unreadable", "checksum", "format"],
)
def test_a_damaged_head_is_never_trusted_and_is_saved_again(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    damage: Callable[[bytes], bytes],
) -> None:
    cid = fresh_cid()
    model = loaded(tstorage, cid)
    Listing(make_storage(config(tstorage, cid, fresh_cid())))()
    good = saved_head(tstorage, cid, 1, 2)
    assert good is not None
    put_direct(tstorage, [((INDEX_CID, 1, 2, head_cap(cid)), damage(good.encode()))])
    assert saved_head(tstorage, cid, 1, 2) is None
    listing = Listing(make_storage(config(tstorage, cid, fresh_cid())))
    assert listing(limit=10) == recount(model)
    assert listing.from_summaries == ["znsocket.List:meters/1/2"]
    again = saved_head(tstorage, cid, 1, 2)  # written again, at a newer watermark
    assert again is not None and again.watermark > good.watermark
    assert again == Head(again.watermark, good.count, good.first, good.last, good.payload)
    after = Listing(make_storage(config(tstorage, cid, fresh_cid())))
    assert after(limit=10) == recount(model)
    assert after.from_summaries == []


def test_summaries_saved_without_heads_get_them_at_the_first_listing(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    model = loaded(tstorage, cid)
    older = make_storage(config(tstorage, cid, fresh_cid()))
    older.series.heads = None  # summaries saved as before heads existed
    assert Listing(older)() == recount(model)
    assert all(saved_head(tstorage, cid, *s) is None for s in SERIES)
    listing = Listing(make_storage(config(tstorage, cid, fresh_cid())))
    assert listing(limit=10) == recount(model)
    assert len(listing.from_summaries) == len(SERIES)
    assert all(saved_head(tstorage, cid, *s) is not None for s in SERIES)
    after = Listing(make_storage(config(tstorage, cid, fresh_cid())))
    assert after(limit=10) == recount(model)
    assert after.from_summaries == []


def test_each_listing_reads_only_what_arrived_since_the_one_before(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    # A series written between listings (a live page re-lists every few seconds) must not
    # make every listing re-read all it received since its head was last saved.
    cid = fresh_cid()
    model = loaded(tstorage, cid)
    gw = make_storage(config(tstorage, cid, fresh_cid()))
    listing = Listing(gw)
    assert listing() == recount(model)
    heads = gw.series.heads
    assert heads is not None
    streamed: list[int] = []

    class Counted:
        # the heads' link, counting the records of the feed they read
        def __init__(self, link: Any) -> None:
            self.link = link

        def __getattr__(self, name: str) -> Any:
            return getattr(self.link, name)

        def stream(self, lo: Any, hi: Any, sink: Any, batch_bytes: Any = None) -> int:
            def count(batch: Any) -> None:
                streamed.append(len(batch))
                sink(batch)

            return int(self.link.stream(lo, hi, count, batch_bytes))

    heads.link = Counted(heads.link)  # type: ignore[assignment]
    write(tstorage, cid, model, 1, 1, T0 + np.arange(100, 140, dtype=np.int64) * 10**9)
    streamed.clear()
    assert listing() == recount(model)
    assert listing.from_summaries == [] and sum(streamed) == 40
    streamed.clear()
    assert listing() == recount(model)
    assert sum(streamed) == 0
    write(tstorage, cid, model, 1, 1, T0 + np.arange(140, 150, dtype=np.int64) * 10**9)
    streamed.clear()
    assert listing() == recount(model)
    assert sum(streamed) == 10
    # a correction after the proven head still sends that series to its summaries
    write(tstorage, cid, model, 1, 1, [T0 + 3 * 10**9])
    listing()
    assert listing.from_summaries == ["znsocket.List:meters/1/1"]
