"""Bulk column reads read the next page ahead (``gateway/timeseries/read_ahead.py``), over
the wire to a ``gateway run`` process: the pages read ahead are used, and dropped when the
series changed meanwhile, so a paged read stays exact; ``[server] read_ahead_pages = 0``
turns it off."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import znsocket
from gateway import TimeSeries
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_index_build import put
from tstorage_client.timestamp import EPOCH_OFFSET_NS

pytestmark = pytest.mark.integration

T0 = 800_000_000 * 10**9  # TStorage ns
SEC = 10**9
N = 300_000
PAGE = 100_000


def _read_ahead(gw: ServerProcess) -> dict[str, int]:
    with urllib.request.urlopen(f"{gw.url}/health", timeout=10) as res:
        out: dict[str, Any] = json.loads(res.read())
    counts: dict[str, int] = out["read_ahead"]
    return counts


def _series(tstorage: ServerProcess, cid: int) -> np.ndarray:
    caps = T0 + np.arange(N, dtype=np.int64) * 2 * SEC  # even seconds: odd ones stay free
    put(tstorage, cid, 7, 3, caps, np.arange(N, dtype=np.float64))
    return caps


def _gateway(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    cid: int,
    extra: str = "",
) -> tuple[ServerProcess, znsocket.Client]:
    text = meter_config(tstorage, cid, fresh_cid())
    gw = start_gateway(text.replace("[tstorage]", f"[server]\n{extra}\n\n[tstorage]", 1))
    return gw, znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")


def test_pages_read_ahead_are_used_and_dropped_once_the_series_changed(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    caps = _series(tstorage, cid)
    gw, client = _gateway(start_gateway, tstorage, fresh_cid, cid)
    try:
        ts = TimeSeries(client, "meters/7/3")
        pages = list(ts.pages(page=PAGE))
        assert [len(p) for p in pages] == [PAGE] * 3
        got = np.concatenate([p.v for p in pages])
        assert got.tolist() == np.arange(N, dtype=np.float64).tolist()
        assert _read_ahead(gw) == {"used": 2, "dropped": 0, "pages": 2}
        # a late record lands in the second page's span after the first page was answered
        # (and its next read ahead): the page read ahead no longer holds what a read would
        it = ts.pages(page=PAGE)
        first = next(it)
        late = int(caps[150_000]) + SEC
        put(tstorage, cid, 7, 3, np.array([late]), np.array([-1.0]))
        time.sleep(0.3)  # longer than max_staleness: the next read catches up
        rest = list(it)
        t = np.concatenate([first.t, *(p.t for p in rest)]).astype(np.int64) - EPOCH_OFFSET_NS
        v = np.concatenate([first.v, *(p.v for p in rest)])
        assert len(t) == N + 1 and bool((np.diff(t) > 0).all())
        assert v[t == late].tolist() == [-1.0]
        counts = _read_ahead(gw)
        # four pages now (the last of one record): three taken, the one the record changed dropped
        assert counts["dropped"] >= 1 and counts["used"] + counts["dropped"] == 5
    finally:
        client.sio.disconnect()


def test_read_ahead_pages_zero_reads_nothing_ahead(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    _series(tstorage, cid)
    gw, client = _gateway(start_gateway, tstorage, fresh_cid, cid, "read_ahead_pages = 0")
    try:
        window = TimeSeries(client, "meters/7/3").range()
        assert window.v.tolist() == np.arange(N, dtype=np.float64).tolist()
        assert _read_ahead(gw) == {"used": 0, "dropped": 0, "pages": 0}
    finally:
        client.sio.disconnect()
