"""The first build of a series' summaries runs in the background: the request that starts
it (or joins it) waits at most ``[tstorage] build_wait`` seconds, then gets a clear
``IndexBuilding`` error (nothing read, a write not stored) while the build goes on with its
progress in the log; once it is over the series answers in full."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import pytest

import gateway.storage.series_index as series_module
import znsocket
from gateway.errors import IndexBuilding
from gateway.storage import GatewayStorage
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_index_build import put
from tests.gateway.test_persisted_summaries import full_reads
from tstorage_client.channel import Channel
from tstorage_client.payload_type import NumpyPayloadType
from tstorage_client.record import Key

Make = Callable[[str], GatewayStorage]
T0 = 800_000_000 * 10**9
N = 200_000
KEY = "znsocket.List:meters/3/1"


def loaded(ts: ServerProcess, cid: int) -> None:
    caps = T0 + np.arange(N, dtype=np.int64) * 1000
    put(ts, cid, 3, 1, caps, np.arange(N, dtype=np.float64))


def build_wait(ts: ServerProcess, cid: int, generic: int, wait: float) -> str:
    return meter_config(ts, cid, generic).replace(
        "[generic]", f"build_wait = {wait}\n\n[generic]", 1
    )


def stored(ts: ServerProcess, cid: int) -> int:
    with Channel("127.0.0.1", ts.port, NumpyPayloadType("<f8"), timeout=30) as ch:
        res = ch.get(Key(cid, 3, 1, -(2**63), -(2**63)), Key(cid + 1, 4, 2, 2**63 - 1, 2**63 - 1))
        assert res.is_ok()
        data = res.data if isinstance(res.data, list) else [res.data]
        return sum(len(a) for a in data)


def test_a_long_build_answers_index_building_then_the_whole_series(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cid = fresh_cid()
    loaded(tstorage, cid)
    monkeypatch.setattr(series_module, "_STREAM_BATCH_BYTES", 16 * 1024)  # many batches
    monkeypatch.setattr(series_module._Progress, "EVERY_S", 0.0)  # a progress line each
    gw = make_storage(build_wait(tstorage, cid, fresh_cid(), 0))
    builds = full_reads(gw)
    with caplog.at_level(logging.INFO, logger="gateway.index"):
        with pytest.raises(IndexBuilding, match=r"being built.*nothing was read or stored"):
            gw.llen(KEY)
        # a write meanwhile is refused, not stored; a read joins the same build
        with pytest.raises(IndexBuilding):
            gw.rpush(KEY, "1.5")
        with pytest.raises(IndexBuilding):
            gw.lindex(KEY, 0)
        deadline = time.monotonic() + 120
        while True:
            try:
                assert gw.llen(KEY) == N
                break
            except IndexBuilding:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    assert len(builds) == 1  # one streamed build, joined by every request
    assert stored(tstorage, cid) == N
    assert gw.lindex(KEY, -1) == str(float(N - 1))
    progress = [r.getMessage() for r in caplog.records if "records read" in r.getMessage()]
    assert progress and all("/s)" in line for line in progress)


def test_a_short_build_is_waited_for(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    loaded(tstorage, cid)
    gw = make_storage(build_wait(tstorage, cid, fresh_cid(), 60))
    assert gw.llen(KEY) == N  # within build_wait: the request just waits


def test_a_client_sees_index_building_and_the_gateway_stays_up(
    tstorage: ServerProcess,
    start_gateway: Callable[[str], ServerProcess],
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    loaded(tstorage, cid)
    gw = start_gateway(build_wait(tstorage, cid, fresh_cid(), 0))
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        lst = znsocket.List(c, "meters/3/1")
        with pytest.raises(Exception, match="being built"):
            len(lst)
        deadline = time.monotonic() + 120
        while True:
            try:
                assert len(lst) == N
                break
            except Exception as exc:
                assert "being built" in str(exc) and time.monotonic() < deadline
                time.sleep(0.1)
        assert lst[-1] == float(N - 1)
    finally:
        c.sio.disconnect()
    assert gw.alive()
