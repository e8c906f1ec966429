"""Following TStorage: refresh events for outside writes, resume after a cut, several gateways.

Real processes on 127.0.0.1: the session's TStorage server, `gateway run` processes, a
Redis server for the multi-gateway fan-out, upstream znsocket 0.3.0 in its own virtualenv,
and ``tstorage_client`` as the outside writer.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import znsocket
from tests._servers import ServerProcess
from tests._upstream import upstream_python
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct

pytestmark = pytest.mark.integration

T0 = 800_000_000 * 10**9
KEY = "znsocket.List:meters/7/3"


def values(
    cid: int, caps: list[int], start: float = 0.0
) -> list[tuple[tuple[int, int, int, int], bytes]]:
    return [((cid, 7, 3, c), struct.pack("<d", start + i)) for i, c in enumerate(caps)]


class Refreshes:
    """Collects the refresh payloads a client receives for one key."""

    def __init__(self, client: znsocket.Client, key: str = KEY) -> None:
        self.got: list[Any] = []
        self.cond = threading.Condition()
        client.refresh_callbacks[key] = self.on_refresh

    def on_refresh(self, data: Any) -> None:
        with self.cond:
            self.got.append(data)
            self.cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0) -> list[Any]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= count, timeout)
            return list(self.got)


UPSTREAM_WATCHER = r"""
import json, sys, threading, time
import znsocket
client = znsocket.Client.from_url(sys.argv[1])
lst = znsocket.List(client, "meters/7/3")
n0 = len(lst)  # reading the key makes the gateway follow it
got, arrived = [], threading.Event()
def on_refresh(data):
    got.append(data)
    arrived.set()
lst.on_refresh(on_refresh)
print("ready", n0, flush=True)
arrived.wait(20)
sys.stdin.readline()  # the writer's PUTs are all answered (a slow fsync may take seconds)
time.sleep(1.0)  # more events would arrive within this second if the burst were split up
print(json.dumps({"events": got, "len": len(lst), "last": lst[-1]}), flush=True)
"""


def test_outside_writer_fires_an_upstream_on_refresh(
    start_gateway: Callable[..., ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    put_direct(tstorage, values(cid, [T0, T0 + 1]))
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    watcher = subprocess.Popen(
        [str(upstream_python()), "-c", UPSTREAM_WATCHER, f"znsocket://127.0.0.1:{gw.port}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd="/tmp",
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split() == ["ready", "2"]
        # a burst of 300 records in 3 PUTs from a plain TStorage client
        caps = [T0 + 2 + i for i in range(300)]
        for part in range(3):
            put_direct(tstorage, values(cid, caps[part * 100 : (part + 1) * 100], 100.0 * part))
        out, err = watcher.communicate("done\n", timeout=60)
    finally:
        watcher.kill()
    result = json.loads(out.strip().splitlines()[-1])
    # upstream's own payload shape for appended elements; the burst is coalesced
    assert result["events"], err
    assert result["events"][0] == {"start": 2, "stop": None}
    assert all(set(e) == {"start", "stop"} for e in result["events"])
    assert len(result["events"]) <= 3
    assert result["len"] == 302 and result["last"] == 299.0


def test_clients_that_watch_nothing_get_no_events_for_unread_keys(
    start_gateway: Callable[..., ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    idle = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    seen = Refreshes(idle)
    try:
        put_direct(tstorage, values(cid, [T0]))
        time.sleep(1.0)  # four follow intervals
        assert seen.got == []  # nobody read the key: it is not followed
        assert znsocket.List(idle, "meters/7/3")[-1] == 0.0  # now it is
        put_direct(tstorage, values(cid, [T0 + 1], 5.0))
        assert seen.wait(1) == [{"start": 1, "stop": None}]
    finally:
        idle.sio.disconnect()


def test_correction_announced_as_indices(
    start_gateway: Callable[..., ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    put_direct(tstorage, values(cid, [T0, T0 + 1, T0 + 2]))
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    seen = Refreshes(c)
    meter = Refreshes(c, "znsocket.Dict:meters/7")
    try:
        assert len(znsocket.List(c, "meters/7/3")) == 3
        assert dict(znsocket.Dict(c, "meters/7")) == {"3": 2.0}
        put_direct(tstorage, [((cid, 7, 3, T0 + 1), struct.pack("<d", 11.0))])
        assert seen.wait(1) == [{"indices": [1]}]
        assert meter.wait(1) == [{"keys": ["3"]}]
    finally:
        c.sio.disconnect()


def test_resume_after_a_five_second_cut_gets_exactly_the_missed_records(
    start_gateway: Callable[..., ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    put_direct(tstorage, values(cid, [T0 + i for i in range(10)], 1000.0))
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    url = f"znsocket://127.0.0.1:{gw.port}"
    first = znsocket.Client.from_url(url)
    seen = first.call("ts:range", "meters/7/3")["data"]
    assert len(seen["t"]) == 10
    watermark = seen["watermark"]
    first.sio.disconnect()
    # cut off for 5 s while 1,000 records arrive, in 20 PUTs
    caps = [T0 + 10 + i for i in range(1000)]
    for k in range(20):
        put_direct(tstorage, values(cid, caps[k * 50 : (k + 1) * 50], 50.0 * k))
        time.sleep(0.25)
    again = znsocket.Client.from_url(url)
    try:
        got = again.call("ts:resume", keys=["meters/7/3"], since=watermark, unit="tstorage_ns")[
            "data"
        ]
        part = got["changes"]["meters/7/3"]
        assert part["t"] == caps and part["v"] == [float(i) for i in range(1000)]
        assert len(set(part["acq"])) == 1000
        # and the new watermark continues without a gap or a repeat
        put_direct(tstorage, values(cid, [T0 + 5000], 7.0))
        nxt = again.call(
            "ts:resume", keys=["meters/7/3"], since=got["watermark"], unit="tstorage_ns"
        )["data"]
        assert nxt["changes"]["meters/7/3"]["t"] == [T0 + 5000]
    finally:
        again.sio.disconnect()


def test_two_gateways_share_refreshes_through_redis(
    start_gateway: Callable[..., ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    redis_url: str,
) -> None:
    cid, gcid = fresh_cid(), fresh_cid()
    extra = f'\n[server]\nmessage_queue = "{redis_url}"\n'
    text = meter_config(tstorage, cid, gcid).replace("[tstorage]", extra + "\n[tstorage]", 1)
    one, two = start_gateway(text), start_gateway(text)
    assert "message queue: redis://127.0.0.1" in one.text()
    writer = znsocket.Client.from_url(f"znsocket://127.0.0.1:{one.port}")
    reader = znsocket.Client.from_url(f"znsocket://127.0.0.1:{two.port}")
    try:
        seen = Refreshes(reader)
        # the reader has not read the key: gateway two does not follow it, so only the
        # message queue can bring gateway one's relay of the writer's refresh
        lst = znsocket.List(writer, "meters/7/3")
        lst.append(1.5)
        assert seen.wait(1) == [{"indices": [0]}]
        # data is shared through TStorage: gateway two serves what gateway one stored
        assert znsocket.List(reader, "meters/7/3")[:] == [1.5]
        # a write without a client refresh (a raw rpush) reaches the reader through
        # gateway two's follower, once (gateways do not relay what they find in TStorage)
        assert writer.call("rpush", KEY, "2.5") == {"data": 2}
        time.sleep(1.0)
        assert seen.got[1:] == [{"start": 1, "stop": None}]
    finally:
        writer.sio.disconnect()
        reader.sio.disconnect()


def test_without_a_message_queue_refreshes_stay_on_their_gateway(
    start_gateway: Callable[..., ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid, gcid = fresh_cid(), fresh_cid()
    one = start_gateway(meter_config(tstorage, cid, gcid))
    two = start_gateway(meter_config(tstorage, cid, gcid))
    writer = znsocket.Client.from_url(f"znsocket://127.0.0.1:{one.port}")
    reader = znsocket.Client.from_url(f"znsocket://127.0.0.1:{two.port}")
    try:
        seen = Refreshes(reader)
        znsocket.List(writer, "meters/7/3").append(1.5)
        time.sleep(1.0)
        assert seen.got == []
    finally:
        writer.sio.disconnect()
        reader.sio.disconnect()


def test_time_series_follow_receives_every_new_record_once(
    start_gateway: Callable[..., ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    from gateway import TimeSeries

    cid = fresh_cid()
    put_direct(tstorage, values(cid, [T0], 100.0))
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    got: list[float] = []
    done = threading.Event()

    def on_records(r: Any) -> None:
        got.extend(r.v.tolist())
        if len(got) >= 60:
            done.set()

    try:
        TimeSeries(c, "meters/7/3").follow(on_records)
        for k in range(6):  # bursts that land in different follow cycles
            put_direct(tstorage, values(cid, [T0 + 1 + 10 * k + i for i in range(10)], 10.0 * k))
            time.sleep(0.15)
        assert done.wait(10)
        time.sleep(0.5)
        assert got == [float(i) for i in range(60)]
    finally:
        c.sio.disconnect()
