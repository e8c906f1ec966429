"""Faults of TStorage seen through a running gateway: stalls, crashes, refusals.

Each test runs its own TStorage server process (stopping or killing the session's would
disturb the other tests) and a gateway on it, and checks what a client sees: answers
within ``[tstorage] timeout``, and errors that say truly whether a write was stored.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import znsocket
from gateway.errors import TStorageOutcomeUnknown, TStorageUnavailable
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config, tstorage_server
from tests.gateway.test_e2e import client, eventually
from tests.gateway.test_storage_series import records_of
from tests.znsocket.server.conftest import RawClient
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key

TIMEOUT = 2.0
#: how late an answer may come beyond the timeout on a loaded machine
SLACK = 1.2
#: no catch-up reads or follow polls of their own: each call makes exactly the requests
#: the test expects (a write sends its PUT)
QUIET = """
[server]
follow_interval = 60
"""


def config_text(ts: ServerProcess, cid: int, gcid: int, staleness: float = 60) -> str:
    text = meter_config(ts, cid, gcid)
    tuning = f"timeout = {TIMEOUT}\nmax_staleness = {staleness}\n"
    return QUIET + text.replace("[tstorage]\n", "[tstorage]\n" + tuning)


def timed(call: Callable[[], object]) -> tuple[float, str]:
    """Seconds ``call`` took to fail, and its error message."""
    t0 = time.monotonic()
    with pytest.raises(znsocket.exceptions.ZnSocketError) as info:
        call()
    return time.monotonic() - t0, str(info.value)


@pytest.mark.slow
def test_a_stalled_tstorage_answers_within_the_timeout_and_says_a_write_may_be_stored(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid, gcid = fresh_cid(), fresh_cid()
    gw = start_gateway(config_text(own_tstorage, cid, gcid))
    c = client(gw)
    lst = znsocket.List(c, "meters/1/1")
    lst.extend([1.0, 2.0])
    c.set("status", "ok")
    raw = RawClient(gw.url)
    os.kill(own_tstorage.pid, signal.SIGSTOP)  # as a hung or swapped-out server
    try:
        took, msg = timed(lambda: lst.append(9.0))
        assert took < TIMEOUT + SLACK, took
        assert "may or may not be stored" in msg
        took, msg = timed(lambda: c.set("status", "stalled"))
        assert took < TIMEOUT + SLACK, took
        assert "may or may not be stored" in msg
        # the envelope's type names the case for clients of any language
        assert raw.cmd("set", "raw", "1")["error"]["type"] == "TStorageOutcomeUnknown"
        # a read of a series not read before needs TStorage too
        took, msg = timed(lambda: len(znsocket.List(c, "meters/2/1")))
        assert took < TIMEOUT + SLACK, took
        assert "stored" not in msg and "not done" in msg
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)

    # "may or may not": the resumed server does store what it had received
    def stored() -> None:
        values = [struct.unpack("<d", v)[0] for k, v in records_of(own_tstorage, cid)]
        assert values == [1.0, 2.0, 9.0]

    eventually(stored)
    raw.close()
    lst.append(10.0)  # and the gateway works on
    assert c.get("status") in ("ok", "stalled")


def test_a_write_tstorage_never_received_is_reported_not_stored(
    start_gateway: Callable[[str], ServerProcess], tmp_path: Path, fresh_cid: Callable[[], int]
) -> None:
    cid, gcid = fresh_cid(), fresh_cid()
    ts = tstorage_server(tmp_path / "ts")
    gw = start_gateway(config_text(ts, cid, gcid))
    c = client(gw)
    lst = znsocket.List(c, "meters/1/1")
    lst.append(1.0)  # the gateway now holds a pooled connection, which the crash breaks
    ts.kill()
    took, msg = timed(lambda: lst.append(2.0))
    assert "not stored" in msg and "may or may not" not in msg
    assert took < TIMEOUT + SLACK
    _, msg = timed(lambda: c.set("k", "v"))
    assert "not stored" in msg and "may or may not" not in msg
    raw = RawClient(gw.url)
    assert raw.cmd("set", "k", "v")["error"]["type"] == "TStorageUnavailable"
    raw.close()
    with tstorage_server(tmp_path / "ts", ts.port) as again:
        assert [struct.unpack("<d", v)[0] for _, v in records_of(again, cid)] == [1.0]
        assert records_of(again, gcid) == []
        lst.append(3.0)  # the gateway reconnects by itself
        assert lst[:] == [1.0, 3.0]


def test_a_write_tstorage_refuses_is_reported_not_stored(
    make_storage: Callable[[str], GatewayStorage], tmp_path: Path, fresh_cid: Callable[[], int]
) -> None:
    # the server refuses a PUT larger than --max-request-bytes: an answer, so certain
    with tstorage_server(tmp_path / "ts", 0, "--max-request-bytes", "4096") as ts:
        cid, gcid = fresh_cid(), fresh_cid()
        storage = make_storage(config_text(ts, cid, gcid))
        with pytest.raises(TStorageUnavailable, match="refused the write; not stored") as info:
            storage.rpush("znsocket.List:meters/1/1", *[str(float(i)) for i in range(1000)])
        assert not isinstance(info.value, TStorageOutcomeUnknown)
        with pytest.raises(TStorageUnavailable, match="refused the write; not stored") as info:
            storage.link.put_columns(
                (cid, 1, 1), np.arange(1000, dtype=np.int64), np.zeros((1000, 8), np.uint8)
            )
        assert not isinstance(info.value, TStorageOutcomeUnknown)
        assert records_of(ts, cid) == []
        storage.rpush("znsocket.List:meters/1/1", "1.0")  # a small one is stored
        assert len(records_of(ts, cid)) == 1


def test_link_errors_are_typed_by_outcome(
    own_tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    link = TStorageLink(LinkSettings("127.0.0.1", own_tstorage.port, timeout=TIMEOUT))
    link.put([((cid, 1, 1, 1), b"a")])
    os.kill(own_tstorage.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(TStorageOutcomeUnknown, match="may or may not be stored"):
            link.put([((cid, 1, 1, 2), b"b")])
        assert time.monotonic() - t0 < TIMEOUT + SLACK
        # the column PUT of ts:extend tells the cases apart too
        with pytest.raises(TStorageOutcomeUnknown, match="may or may not be stored"):
            link.put_columns((cid, 1, 2), np.arange(3, dtype=np.int64), np.zeros((3, 8), np.uint8))
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)
    link.close()
    down = TStorageLink(LinkSettings("127.0.0.1", 1, timeout=0.5, reconnect_max_delay=0.1))
    with pytest.raises(TStorageUnavailable, match="not sent, not stored") as info:
        down.put([((cid, 1, 1, 3), b"c")])
    assert type(info.value) is TStorageUnavailable


def health(gw: ServerProcess) -> tuple[int, dict[str, Any]]:
    """Status code and JSON of the gateway's ``GET /health``."""
    try:
        with urllib.request.urlopen(f"{gw.url}/health", timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_embedded_tstorage_is_restarted_with_what_was_acknowledged(
    start_gateway: Callable[[str], ServerProcess], tmp_path: Path
) -> None:
    gw = start_gateway(
        f"""
        [tstorage]
        timeout = {TIMEOUT}

        [tstorage.embedded]
        data_dir = "{tmp_path / "data"}"
        restart_delay = 0.3
        restart_max_delay = 5

        [[map]]
        pattern = "meters/{{mid:int}}/{{moid:int}}"
        cid = 1
        mid = "{{mid}}"
        moid = "{{moid}}"
        codec = "struct:<d"
        """
    )
    c = client(gw)
    lst = znsocket.List(c, "meters/1/1")
    lst.extend([1.0, 2.0, 3.0])
    c.set("name", "plant 7")
    code, state = health(gw)
    emb = state["tstorage"]["embedded"]
    assert code == 200 and emb["running"] and emb["restarts"] == 0
    first = emb["pid"]
    port = int(emb["address"].rsplit(":", 1)[1])
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: health(gw)[1]["tstorage"]["embedded"]["restarts"] == 1)
    code, state = health(gw)
    emb = state["tstorage"]["embedded"]
    assert code == 200 and emb["running"] and emb["pid"] != first
    assert emb["address"].endswith(f":{port}")  # the same port: other programs find it
    # the dead child was reaped, not left a zombie
    assert not Path(f"/proc/{first}").exists()
    # what was acknowledged before the kill is in the restarted server ...
    with Channel("127.0.0.1", port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(1, 1, 1, -(2**63), -(2**63)), Key(2, 2, 2, 2**63 - 1, 2**63 - 1))
        assert [struct.unpack("<d", r.value)[0] for r in res.data] == [1.0, 2.0, 3.0]
    # ... and the gateway serves on, through it
    lst.append(4.0)
    assert lst[:] == [1.0, 2.0, 3.0, 4.0]
    assert c.get("name") == "plant 7"
    eventually(lambda: "embedded TStorage restarted (restart 1" in gw.text())
    assert f"embedded TStorage (pid {first}) exited with status -9" in gw.text()


@pytest.mark.slow
def test_restarts_back_off_up_to_the_bound_and_are_counted(
    start_gateway: Callable[[str], ServerProcess], tmp_path: Path
) -> None:
    gw = start_gateway(
        f"""
        [tstorage.embedded]
        data_dir = "{tmp_path / "data"}"
        restart_delay = 0.5
        restart_max_delay = 1.5
        """
    )
    for n in (1, 2, 3):
        pid = health(gw)[1]["tstorage"]["embedded"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda n=n: health(gw)[1]["tstorage"]["embedded"]["restarts"] == n)
    delays = re.findall(r"exited with status -9; restarting in ([\d.]+) s", gw.text())
    assert delays == ["0.5", "1.0", "1.5"]  # doubling, bounded by restart_max_delay
    assert len(re.findall(r"embedded TStorage restarted \(restart \d", gw.text())) == 3
    c = client(gw)
    c.set("after", "3 restarts")
    assert c.get("after") == "3 restarts"


def test_queued_writes_to_a_stalled_tstorage_answer_in_time_and_truly(
    own_tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    # Group commit: one PUT on the wire, the others queued behind it. Every caller hears
    # within the timeout, and a write reported "not stored" is indeed never stored.
    cid = fresh_cid()
    link = TStorageLink(LinkSettings("127.0.0.1", own_tstorage.port, timeout=TIMEOUT))
    link.put([((cid, 0, 0, 1), b"warm")])  # a pooled connection, as in a running gateway
    outcomes: dict[int, tuple[BaseException | None, float]] = {}

    def put(n: int) -> None:
        t0 = time.monotonic()
        try:
            link.put([((cid, n, 0, 1), b"v")])
            outcomes[n] = (None, time.monotonic() - t0)
        except BaseException as exc:
            outcomes[n] = (exc, time.monotonic() - t0)

    os.kill(own_tstorage.pid, signal.SIGSTOP)
    try:
        threads = [threading.Thread(target=put, args=(n,)) for n in range(1, 9)]
        for t in threads:
            t.start()
            time.sleep(0.1)
        for t in threads:
            t.join(30)
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)
    assert all(took < TIMEOUT + SLACK for _, took in outcomes.values()), outcomes
    unknown = {n for n, (e, _) in outcomes.items() if isinstance(e, TStorageOutcomeUnknown)}
    not_stored = {n for n, (e, _) in outcomes.items() if type(e) is TStorageUnavailable}
    assert unknown and unknown | not_stored == set(range(1, 9)), outcomes
    assert all("not stored" in str(outcomes[n][0]) for n in not_stored)
    time.sleep(1.0)  # let the resumed server commit what it had received
    mids = {k[1] for k, _ in records_of(own_tstorage, cid)}
    assert not mids & not_stored
    link.put([((cid, 99, 0, 1), b"after")])  # and the link works on
    link.close()


@pytest.mark.slow
def test_every_command_answers_in_time_while_the_follower_waits_on_a_stalled_tstorage(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    # With the change feed on (the defaults), the follower's own reads to the stalled
    # TStorage hold the locks commands need; a command still answers within the timeout.
    cid, gcid = fresh_cid(), fresh_cid()
    text = meter_config(own_tstorage, cid, gcid).replace(
        "[tstorage]\n", f"[tstorage]\ntimeout = {TIMEOUT}\n"
    )
    gw = start_gateway(text)
    c = client(gw)
    lst = znsocket.List(c, "meters/1/1")
    lst.append(1.0)
    c.set("k", "v")
    os.kill(own_tstorage.pid, signal.SIGSTOP)
    try:
        time.sleep(0.5)  # the follower is now waiting on TStorage
        for call in (
            lambda: lst.append(2.0),
            lambda: c.set("k", "w"),
            lambda: lst.append(3.0),
            lambda: c.hset("znsocket.Dict:h", "f", '"x"'),
        ):
            took, msg = timed(call)
            assert took < TIMEOUT + SLACK, (took, msg)
            assert "not stored" in msg or "may or may not be stored" in msg, msg
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)

    def healed() -> None:
        try:
            c.set("k", "after")
        except znsocket.exceptions.ZnSocketError as exc:
            raise AssertionError(str(exc)) from exc

    eventually(healed, timeout=10)
    assert c.get("k") == "after"
