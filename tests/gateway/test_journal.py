"""Writes acknowledged from the gateway's journal (``[tstorage.journal]``), end to end.

Real processes throughout: a gateway, its TStorage (a server of the test's own, so that it
can be stopped or killed, or the embedded one), clients over the wire. What a user
checks: every write that was acknowledged is stored, once, in order, whatever was killed;
a write refused is never stored; reads through the gateway see acknowledged writes at once.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import znsocket
from gateway.config import load_config
from gateway.config.schema import JournalConfig
from gateway.errors import ConfigError
from gateway.storage import LinkSettings, TStorageLink
from tests._servers import ServerProcess
from tests.gateway.conftest import tstorage_server
from tests.gateway.test_e2e import client, eventually
from tests.gateway.test_faults import SLACK, TIMEOUT, config_text, health, wait_for
from tests.gateway.test_storage_series import records_of
from tests.tstorage_client._proxy import Relay
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key

pytestmark = pytest.mark.slow
LO, HI = -(2**63), 2**63 - 1


def with_journal(text: str, journal: Path, extra: str = "") -> str:
    return text + f'\n[tstorage.journal]\ndir = "{journal}"\n{extra}'


def journalled(
    start: Callable[[str], ServerProcess],
    ts: ServerProcess,
    fresh_cid: Callable[[], int],
    journal: Path,
    extra: str = "",
) -> tuple[ServerProcess, str, int]:
    """A gateway on ``ts`` with a journal in ``journal``: it, its config text and its cid."""
    cid = fresh_cid()
    text = with_journal(config_text(ts, cid, fresh_cid()), journal, extra)
    return start(text), text, cid


def values_in_tstorage(ts: ServerProcess, cid: int) -> dict[int, float]:
    """cap -> value of the series meters/1/1 as TStorage holds it (newest of equal caps)."""
    return {k[3]: struct.unpack("<d", v)[0] for k, v in records_of(ts, cid) if k[1:3] == (1, 1)}


def test_writes_acknowledged_before_a_kill_9_of_the_gateway_are_stored_at_its_restart(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    gw, text, cid = journalled(start_gateway, own_tstorage, fresh_cid, tmp_path / "journal")
    lst = znsocket.List(client(gw), "meters/1/1")
    lst.append(0.0)
    os.kill(own_tstorage.pid, signal.SIGSTOP)  # TStorage takes nothing from here on
    try:
        t0 = time.monotonic()
        for i in range(1, 101):
            lst.append(float(i))
        assert time.monotonic() - t0 < TIMEOUT  # acknowledged without TStorage's answer
        assert len(lst) == 101
        gw.kill()
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)
    time.sleep(0.5)  # TStorage commits the PUT that was on the wire at the kill, if any
    assert len(values_in_tstorage(own_tstorage, cid)) < 101  # the journal must bring the rest
    again = start_gateway(text)
    assert znsocket.List(client(again), "meters/1/1")[:] == [float(i) for i in range(101)]
    # every acknowledged cap with its value (the PUT on the wire at the kill may have been
    # stored and replayed too: the same record twice, which reads back once)
    stored = values_in_tstorage(own_tstorage, cid)
    assert sorted(stored.values()) == [float(i) for i in range(101)]
    assert "not yet in TStorage: storing them now" in again.text()


def test_a_killed_embedded_tstorage_loses_no_acknowledged_write(
    start_gateway: Callable[[str], ServerProcess], tmp_path: Path
) -> None:
    gw = start_gateway(
        f"""
        [tstorage]
        timeout = 5

        [tstorage.embedded]
        data_dir = "{tmp_path / "data"}"
        sync = "interval"
        restart_delay = 0.2

        [tstorage.journal]
        dir = "{tmp_path / "journal"}"

        [[map]]
        pattern = "meters/{{mid:int}}/{{moid:int}}"
        cid = 1
        mid = "{{mid}}"
        moid = "{{moid}}"
        codec = "struct:<d"
        """
    )
    lst = znsocket.List(client(gw), "meters/1/1")
    acknowledged: list[float] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            try:
                lst.append(float(i))
            except BaseException as exc:
                errors.append(exc)
                return
            acknowledged.append(float(i))
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        wait_for(lambda: len(acknowledged) > 200)
        first = health(gw)[1]["tstorage"]["embedded"]["pid"]
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: health(gw)[1]["tstorage"]["embedded"]["restarts"] == 1)
        at_restart = len(acknowledged)
        wait_for(lambda: len(acknowledged) > at_restart + 200)
    finally:
        stop.set()
        writer.join(30)
    assert not errors, errors  # writes were acknowledged all along, TStorage down or not
    assert lst[:] == acknowledged
    eventually(lambda: assert_equal(health(gw)[1]["journal"]["pending_records"], 0))
    emb = health(gw)[1]["tstorage"]["embedded"]
    port = int(emb["address"].rsplit(":", 1)[1])
    with Channel("127.0.0.1", port, BytesPayloadType(), timeout=10) as ch:
        res = ch.get(Key(1, 1, 1, LO, LO), Key(2, 2, 2, HI, HI))
        newest = {r.key.cap: struct.unpack("<d", r.value)[0] for r in res.data}
    assert [newest[c] for c in sorted(newest)] == acknowledged  # in TStorage itself


def test_the_queue_is_bounded_and_a_refused_write_is_never_stored(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    gw, _, cid = journalled(
        start_gateway, own_tstorage, fresh_cid, tmp_path / "journal", f"max_bytes = {1 << 20}\n"
    )
    lst = znsocket.List(client(gw), "meters/1/1")
    lst.append(-1.0)
    eventually(lambda: assert_equal(health(gw)[1]["journal"]["pending_records"], 0))
    batch = 1000  # 72,000 bytes as the queue counts them: 14 fit in 1 MiB
    os.kill(own_tstorage.pid, signal.SIGSTOP)
    try:
        for b in range(14):
            lst.extend([float(b * batch + i) for i in range(batch)])
        t0 = time.monotonic()
        with pytest.raises(znsocket.exceptions.ZnSocketError) as refused:
            lst.extend([1e9 + i for i in range(batch)])
        took = time.monotonic() - t0
        state = health(gw)[1]["journal"]
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)
    assert TIMEOUT * 0.9 < took < TIMEOUT + SLACK
    assert "max_bytes" in str(refused.value) and "not stored" in str(refused.value)
    assert state["pending_records"] == 14 * batch
    # a stalled TStorage is waited for (the PUT is never sent twice): the age says it
    assert state["oldest_pending_s"] > TIMEOUT * 0.9 and state["last_error"] is None
    assert "the oldest for" in str(refused.value)
    expected = [-1.0] + [float(i) for i in range(14 * batch)]
    assert lst[:] == expected
    eventually(lambda: assert_equal(health(gw)[1]["journal"]["pending_records"], 0))
    assert sorted(values_in_tstorage(own_tstorage, cid).values()) == expected


def assert_equal(a: object, b: object) -> None:
    assert a == b


def test_reads_see_acknowledged_writes_at_once_and_other_gateways_soon(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    cid, gcid = fresh_cid(), fresh_cid()
    plain = config_text(own_tstorage, cid, gcid, staleness=0.1).replace(
        "follow_interval = 60", "follow_interval = 0.1"
    )
    gw = start_gateway(with_journal(plain, tmp_path / "journal"))
    other = start_gateway(plain)  # no journal: it reads TStorage
    writer, reader = client(gw), client(gw)
    lst = znsocket.List(writer, "meters/1/1")
    seen = znsocket.List(reader, "meters/1/1")
    meter = znsocket.Dict(writer, "meters/2")
    for i in range(300):
        lst.append(float(i))
        if i % 50 == 0:  # reads that go to TStorage for the newest chunk
            assert seen[-1] == float(i) and len(seen) == i + 1
    meter["7"] = 1.5
    writer.set("note", "unmapped, through the journal too")
    assert seen[:] == [float(i) for i in range(300)]
    assert znsocket.Dict(reader, "meters/2")["7"] == 1.5
    assert reader.get("note") == "unmapped, through the journal too"
    far = client(other)
    eventually(lambda: assert_equal(znsocket.List(far, "meters/1/1")[:], seen[:]))
    eventually(lambda: assert_equal(dict(znsocket.Dict(far, "meters/2")), {"7": 1.5}))


def test_a_clean_stop_stores_everything_and_leaves_nothing_to_replay(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    gw, text, cid = journalled(start_gateway, own_tstorage, fresh_cid, tmp_path / "journal")
    lst = znsocket.List(client(gw), "meters/1/1")
    lst.extend([float(i) for i in range(500)])
    for i in range(500, 600):
        lst.append(float(i))
    assert gw.stop() == 0
    assert sorted(values_in_tstorage(own_tstorage, cid).values()) == [float(i) for i in range(600)]
    again = start_gateway(text)
    assert len(znsocket.List(client(again), "meters/1/1")) == 600
    assert "storing them now" not in again.text()


def test_one_journal_folder_serves_one_gateway(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    text = with_journal(config_text(own_tstorage, fresh_cid(), fresh_cid()), tmp_path / "j")
    start_gateway(text)
    path = tmp_path / "second.toml"
    path.write_text(text)
    second = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert "used by another gateway" in second.stderr


@pytest.mark.parametrize(
    ("embedded", "needle"),
    [
        ('sync = "commit"', 'set sync = "interval"'),
        ('sync = "interval"\ndata_dir = "j"', "is the embedded TStorage's data_dir"),
        (
            'sync = "interval"\n[tstorage.embedded.limits]\nmax_request_bytes = 1000000',
            "below 4 x",
        ),
        # the same folder, written once relative and once absolute
        ('sync = "interval"\ndata_dir = "{tmp}/j"', "is the embedded TStorage's data_dir"),
    ],
)
def test_a_journal_that_would_break_a_promise_is_refused(
    tmp_path: Path, embedded: str, needle: str
) -> None:
    data_dir = "" if "data_dir" in embedded else 'data_dir = "data"\n'
    embedded = embedded.replace("{tmp}", str(tmp_path))
    path = tmp_path / "g.toml"
    path.write_text(f'[tstorage.embedded]\n{data_dir}{embedded}\n\n[tstorage.journal]\ndir = "j"\n')
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_config(path)


def test_a_relative_journal_folder_is_the_config_files(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "g.toml"
    path.write_text(
        '[tstorage.embedded]\ndata_dir = "data"\nsync = "interval"\n\n'
        '[tstorage.journal]\ndir = "journal"\n'
    )
    journal = load_config(path).tstorage.journal
    assert journal is not None and journal.dir == tmp_path / "conf" / "journal"


def test_every_request_to_tstorage_waits_for_the_writes_acknowledged_before_it(
    own_tstorage: ServerProcess, fresh_cid: Callable[[], int], tmp_path: Path
) -> None:
    # The link's promise, which reads of records no longer in memory, summary saves and
    # catch-ups rely on: whatever it asks TStorage, TStorage already holds every write
    # acknowledged before (the background PUT lingers 0.1 s here).
    cid = fresh_cid()
    link = TStorageLink(LinkSettings("127.0.0.1", own_tstorage.port, timeout=TIMEOUT))
    link.write_behind(JournalConfig(dir=tmp_path / "journal", linger=0.1))
    try:
        for n in range(1, 6):
            link.put([((cid, 1, 1, n), b"v%d" % n)], replayable=True)
            got, _ = link.get((cid, 1, 1, LO, LO), (cid + 1, 2, 2, HI, HI))
            assert [k.cap for k, _ in got] == list(range(1, n + 1))
        caps = np.arange(10, 20, dtype=np.int64)
        link.put([((cid, 2, 1, 1), b"first")], replayable=True)
        link.put_columns((cid, 2, 1), caps, np.zeros((10, 2), dtype=np.uint8))
        # a column write too goes after the writes acknowledged before it
        assert [k.cap for k, _ in link.get((cid, 2, 1, LO, LO), (cid + 1, 3, 2, HI, HI))[0]] == [
            1,
            *caps.tolist(),
        ]
    finally:
        link.close()
    assert link.journal is not None and link.journal.pending_records == 0


def test_writes_tstorage_refuses_together_are_stored_apart_and_a_big_one_is_not_journalled(
    start_gateway: Callable[[str], ServerProcess],
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    ts = tstorage_server(tmp_path / "ts", 0, "--max-request-bytes", "100000")
    try:
        gw, _, cid = journalled(start_gateway, ts, fresh_cid, tmp_path / "j")
        lst = znsocket.List(client(gw), "meters/1/1")
        lst.append(-1.0)
        eventually(lambda: assert_equal(health(gw)[1]["journal"]["pending_records"], 0))
        # queued while TStorage is stopped: one PUT of all of them is over its request limit
        os.kill(ts.pid, signal.SIGSTOP)
        try:
            writes = [[float(w * 500 + i) for i in range(500)] for w in range(20)]
            for values in writes:
                lst.extend(values)  # each about 20 KB on the wire, acknowledged at once
        finally:
            os.kill(ts.pid, signal.SIGCONT)
        # one write over the limit alone, under max_write_bytes: stored in parts of its records
        writes.append([float(10_000 + i) for i in range(5000)])  # about 200 KB on the wire
        lst.extend(writes[-1])
        eventually(lambda: assert_equal(health(gw)[1]["journal"]["pending_records"], 0), 30)
        expected = [-1.0] + [v for values in writes for v in values]
        assert sorted(values_in_tstorage(ts, cid).values()) == expected
        # a write of more than 1 MiB is not journalled: TStorage's refusal reaches the writer
        with pytest.raises(znsocket.exceptions.ZnSocketError, match="refused the write; not"):
            lst.extend([0.5] * 40_000)
        assert lst[:] == expected
        assert sorted(values_in_tstorage(ts, cid).values()) == expected
    finally:
        ts.stop()


def test_unmapped_keys_are_not_journalled_but_wait_for_what_was(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    # An unmapped key's records are operations (a second copy would push twice): they
    # are stored at once, after the List writes acknowledged before them.
    gw, _, _ = journalled(start_gateway, own_tstorage, fresh_cid, tmp_path / "j")
    c = client(gw)
    lst = znsocket.List(c, "meters/1/1")
    lst.append(0.0)
    os.kill(own_tstorage.pid, signal.SIGSTOP)
    try:
        lst.append(1.0)  # acknowledged from the journal
        t0 = time.monotonic()
        with pytest.raises(znsocket.exceptions.ZnSocketError, match="not stored"):
            c.rpush("plain", "a")
        assert TIMEOUT * 0.9 < time.monotonic() - t0 < TIMEOUT + SLACK
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)
    c.rpush("plain", "b")
    assert lst[:] == [0.0, 1.0]
    assert c.lrange("plain", 0, -1) == ["b"]


def test_commands_beside_a_stopped_gateway_wait_for_its_journal(
    start_gateway: Callable[[str], ServerProcess],
    own_tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> None:
    gw, text, _ = journalled(start_gateway, own_tstorage, fresh_cid, tmp_path / "j")
    lst = znsocket.List(client(gw), "meters/1/1")
    lst.append(0.0)
    os.kill(own_tstorage.pid, signal.SIGSTOP)
    try:
        lst.append(1.0)
        gw.kill()
    finally:
        os.kill(own_tstorage.pid, signal.SIGCONT)
    path = tmp_path / "export.toml"
    path.write_text(text)
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "export", "--config", str(path), "--key", "meters/1/1",
         "-o", str(tmp_path / "out.csv")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert "acknowledged record(s) that a stopped gateway has not stored" in out.stderr
    start_gateway(text).stop()  # it stores them first
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "export", "--config", str(path), "--key", "meters/1/1",
         "-o", str(tmp_path / "out.csv")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.csv").read_text().count("\n") == 3  # header + 2 rows


def test_a_slow_put_is_waited_for_never_sent_again_to_land_after_a_later_write(
    own_tstorage: ServerProcess, fresh_cid: Callable[[], int], tmp_path: Path
) -> None:
    # Sent again on another connection while the first copy was held up, a PUT would
    # land twice, the old copy last: a correction made meanwhile would be undone.
    cid = fresh_cid()
    hold_s = 2.5  # more than twice the link's timeout
    with Relay(own_tstorage.port) as relay:
        link = TStorageLink(LinkSettings("127.0.0.1", relay.port, timeout=1.0))
        behind = link.write_behind(JournalConfig(dir=tmp_path / "j", linger=0))
        try:
            link.put([((cid, 1, 1, 1), b"warm")], replayable=True)
            eventually(lambda: assert_equal(behind.pending_records, 0))
            relay.hold_next(hold_s)
            held_until = time.monotonic() + hold_s
            link.put([((cid, 1, 1, 5), b"first")], replayable=True)
            link.put([((cid, 1, 1, 5), b"correction")], replayable=True)
            eventually(lambda: assert_equal(behind.pending_records, 0), timeout=20)
            time.sleep(max(held_until - time.monotonic(), 0.0) + 1.0)  # what was held lands
        finally:
            link.close()
    with Channel("127.0.0.1", own_tstorage.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(Key(cid, 1, 1, 5, LO), Key(cid + 1, 2, 2, 6, HI))
    by_acq = [r.value for r in sorted(res.data, key=lambda r: r.key.acq)]
    assert by_acq == [b"first", b"correction"]
