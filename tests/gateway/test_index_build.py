"""The first build of a series' index, streamed from a real TStorage in many batches:
the same answers as a record-by-record model, whatever order and versions the records
come in, and nothing half-built when the stream stops mid-way."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import numpy as np
import pytest

import gateway.storage.series_index as series_module
from gateway.errors import TStorageUnavailable
from gateway.storage import GatewayStorage
from gateway.timeseries.reads import TimeSeriesReads
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.tstorage_client._proxy import Relay
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType, NumpyPayloadType
from tstorage_client.record import Key, Record

Make = Callable[[str], GatewayStorage]
Model = dict[tuple[int, int], float]  # (moid, cap) -> newest value


def put(
    ts: ServerProcess, cid: int, mid: int, moid: int, caps: np.ndarray, vals: np.ndarray
) -> None:
    """One PUT of ``<d`` records (TStorage gives them one acq, newer than earlier PUTs')."""
    n = len(caps)
    with Channel("127.0.0.1", ts.port, NumpyPayloadType("<f8"), timeout=30) as ch:
        res = ch.put(
            {  # type: ignore[arg-type]  # numpy payload types take a dict of columns
                "cid": np.full(n, cid, dtype=np.int32),
                "mid": np.full(n, mid, dtype=np.int64),
                "moid": np.full(n, moid, dtype=np.int32),
                "cap": np.asarray(caps, dtype=np.int64),
                "v0": np.asarray(vals, dtype=np.float64),
            }
        )
        assert res.is_ok()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Builds stream in ~50-record batches, so versions of a cap straddle batch ends."""
    monkeypatch.setattr(series_module, "_STREAM_BATCH_BYTES", 2048)
    yield


def write_history(ts: ServerProcess, cid: int, mid: int) -> Model:
    """Several PUTs: appends, out-of-order caps, corrections of held caps, three moids."""
    rng = np.random.default_rng(7)
    model: Model = {}

    def put_model(moid: int, caps: np.ndarray, vals: np.ndarray) -> None:
        put(ts, cid, mid, moid, caps, vals)
        for c, v in zip(caps.tolist(), vals.tolist(), strict=True):
            model[(moid, c)] = v

    caps = np.arange(0, 3000, dtype=np.int64) * 10
    put_model(1, caps, caps / 10)
    put_model(2, caps[::3], -caps[::3] / 10)
    put_model(1, caps[1000:1500], -(caps[1000:1500] / 10))  # corrections (newer acq)
    shuffled = rng.permutation(np.arange(3000, 3200, dtype=np.int64) * 10)
    put_model(1, shuffled, shuffled / 7)  # later caps, in no order
    put_model(1, caps[::17] + 5, caps[::17] + 0.5)  # caps between held ones
    put_model(3, caps[:100], caps[:100] * 2.0)
    put_model(1, caps[1200:1300], caps[1200:1300] * 3.0)  # correcting a correction
    return model


def test_a_streamed_build_equals_the_model(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    small_batches: None,
) -> None:
    cid = fresh_cid()
    model = write_history(tstorage, cid, 5)
    gw = make_storage(meter_config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(gw)
    for moid in (1, 2, 3):
        want = sorted((c, v) for (m, c), v in model.items() if m == moid)
        window = reads.range(reads.target(f"meters/5/{moid}"), limit=100_000)
        assert window.caps.tolist() == [c for c, _ in want]
        assert window.values == [v for _, v in want]
        assert gw.llen(f"znsocket.List:meters/5/{moid}") == len(want)
    buckets = reads.downsampled(reads.target("meters/5/1"), 10).buckets
    ones = [v for (m, _), v in model.items() if m == 1]
    assert buckets.n.sum() == len(ones) and buckets.max.max() == max(ones)
    # a Dict's box holds several moids: each field's latest value
    latest = {str(m): max((c, v) for (mm, c), v in model.items() if mm == m)[1] for m in (1, 2, 3)}
    assert {k: float(v) for k, v in gw.hgetall("znsocket.Dict:meters/5").items()} == latest


def test_a_payload_of_another_size_falls_back_to_records(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    small_batches: None,
) -> None:
    cid = fresh_cid()
    caps = np.arange(500, dtype=np.int64)
    put(tstorage, cid, 6, 1, caps, caps * 1.5)
    with Channel("127.0.0.1", tstorage.port, BytesPayloadType(), timeout=5) as ch:
        assert ch.put([Record(Key(cid, 6, 1, 1000, 0), b"odd!")]).is_ok()
    gw = make_storage(meter_config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(gw)
    count, first, last, _ = reads.info(reads.target("meters/6/1"))
    assert (count, first, last) == (501, 0, 1000)
    assert gw.lindex("znsocket.List:meters/6/1", 499) == str(499 * 1.5)


def test_a_stream_that_stops_midway_leaves_nothing_half_built(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    small_batches: None,
) -> None:
    cid = fresh_cid()
    caps = np.arange(20_000, dtype=np.int64)
    put(tstorage, cid, 7, 1, caps, caps / 2)
    put(tstorage, cid, 7, 1, caps[::2], -(caps[::2] / 2))  # a newer version of every other
    with Relay(tstorage.port, cut_after=300_000) as relay:  # about 7,000 of 30,000 records
        text = meter_config(tstorage, cid, fresh_cid()).replace(
            f"port = {tstorage.port}", f"port = {relay.port}"
        )
        gw = make_storage(text)
        reads = TimeSeriesReads(gw)
        t = reads.target("meters/7/1")
        with pytest.raises(TStorageUnavailable):
            reads.info(t)
        # what arrived before the cut is not kept (the next build starts in order)
        assert sum(box.size for box in gw.series._boxes.values()) == 0
        relay.cut_after = None  # TStorage answers in full again
        count, first, last, _ = reads.info(t)
        assert (count, first, last) == (20_000, 0, 19_999)
        window = reads.range(t, limit=100_000)
        want = np.where(caps % 2 == 0, -(caps / 2), caps / 2)
        assert window.values == want.tolist()


def test_series_keep_their_values_as_binary_doubles(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    """The downsample reads the index's payload bytes as numbers without a copy: the
    exact doubles written come back (NaN, infinities, -0.0 and subnormals included)."""
    cid = fresh_cid()
    vals = np.asarray([1.0, -0.0, np.inf, -np.inf, 5e-324, 2.5, np.nan])
    put(tstorage, cid, 8, 1, np.arange(len(vals), dtype=np.int64), vals)
    gw = make_storage(meter_config(tstorage, cid, fresh_cid()))
    reads = TimeSeriesReads(gw)
    b = reads.downsampled(reads.target("meters/8/1"), len(vals)).buckets
    assert b.n.tolist() == [1] * len(vals)
    got = b.last.tobytes()
    assert [got[i : i + 8] for i in range(0, len(got), 8)] == [
        struct.pack("<d", v) for v in vals.tolist()
    ]
