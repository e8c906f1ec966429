"""What a bulk write costs the gateway, next to what it costs TStorage to store it.

A ``TimeSeries.extend`` of a million points goes through the gateway (check, numpy PUT,
its index) and comes back to it through the change feed (the acq of every own record);
the gateway's CPU for all of it is measured against the CPU the TStorage server spends on
the same points (decoding, sorting, committing, answering the feed's GET). Both are
processes on this machine doing numpy work on the same data, so their ratio does not
depend on how fast or loaded the machine is; it grows when the gateway handles a record
more often than once per pass (a chunk-by-chunk scan of the whole write, a re-sort of what
is already sorted).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import pytest

import znsocket
from gateway import TimeSeries
from tests._servers import ServerProcess, cpu_seconds
from tests.gateway.conftest import meter_config
from tstorage_client.timestamp import EPOCH_OFFSET_NS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = 800_000_000 * 10**9  # TStorage ns
POINTS = 1_000_000
#: the gateway's CPU per point at most this many times TStorage's (about 1 today)
MAX_CPU_RATIO = 2.0


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc (Linux)")
def test_bulk_write_costs_the_gateway_about_what_it_costs_tstorage(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    gw = start_gateway(meter_config(tstorage, fresh_cid(), fresh_cid()))
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        ts = TimeSeries(client, "meters/7/3")
        caps = T0 + np.arange(POINTS, dtype=np.int64) * 1_000_000
        values = np.sin(np.arange(POINTS) / 1000.0)
        assert len(ts) == 0  # the series' index exists before the clock starts
        gw0, ts0 = cpu_seconds(gw.pid), cpu_seconds(tstorage.pid)
        assert ts.extend((caps + EPOCH_OFFSET_NS).astype("datetime64[ns]"), values) == POINTS
        # the follower (every 0.25 s) brings the last own records back meanwhile
        time.sleep(1.5)
        gw_cpu = cpu_seconds(gw.pid) - gw0
        ts_cpu = cpu_seconds(tstorage.pid) - ts0
    finally:
        client.sio.disconnect()
    assert ts_cpu > 0
    assert gw_cpu <= MAX_CPU_RATIO * ts_cpu, (
        f"the gateway spent {gw_cpu:.2f} s of CPU on {POINTS:,} points written in bulk, "
        f"TStorage {ts_cpu:.2f} s (ratio {gw_cpu / ts_cpu:.2f}, at most {MAX_CPU_RATIO})"
    )
