"""End to end: `gateway run` processes on a TStorage server process, driven over the wire.

Clients: our ``znsocket.Client`` with ``List``/``Dict`` (upstream 0.3.0 in its own
virtualenv is exercised in ``test_upstream_interop.py``), and ``tstorage_client`` talking to
TStorage directly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

import znsocket
from tests._servers import ServerProcess, spawn
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct, records_of
from tstorage_server import runfile

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Retry ``check`` until it stops failing (the change feed lags by up to 0.1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except (AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def cids(fresh_cid: Callable[[], int]) -> tuple[int, int]:
    return fresh_cid(), fresh_cid()


def client(proc: ServerProcess) -> znsocket.Client:
    return znsocket.Client.from_url(f"znsocket://127.0.0.1:{proc.port}")


def test_lists_and_dicts_over_series(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    cid, gcid = cids
    gw = start_gateway(meter_config(tstorage, cid, gcid))
    c = client(gw)
    lst = znsocket.List(c, "meters/7/3")
    lst.append(1.5)
    lst.extend([2.5, 3.5, 4.5])
    assert len(lst) == 4
    assert lst[0] == 1.5 and lst[-1] == 4.5
    assert lst[-3:] == [2.5, 3.5, 4.5]
    assert list(lst) == [1.5, 2.5, 3.5, 4.5]
    d = znsocket.Dict(c, "meters/7")
    assert dict(d) == {"3": 4.5}
    d["4"] = 10.0
    assert d["4"] == 10.0 and sorted(d.keys()) == ["3", "4"]
    # appended through the gateway, read back by tstorage_client with keys and payloads
    recs = records_of(tstorage, cid)
    assert [(k[:3], struct.unpack("<d", v)[0]) for k, v in recs] == [
        ((cid, 7, 3), 1.5),
        ((cid, 7, 3), 2.5),
        ((cid, 7, 3), 3.5),
        ((cid, 7, 3), 4.5),
        ((cid, 7, 4), 10.0),
    ]
    # generic keys and plain znsocket objects still work next to the mapped ones
    notes = znsocket.Dict(c, "notes")
    notes["a"] = {"nested": [1, 2]}
    assert notes["a"] == {"nested": [1, 2]}
    c.set("plain", "value")
    assert c.get("plain") == "value"


def test_records_put_directly_appear(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    cid, gcid = cids
    gw = start_gateway(meter_config(tstorage, cid, gcid))
    c = client(gw)
    lst = znsocket.List(c, "meters/1/2")
    d = znsocket.Dict(c, "meters/1")
    assert len(lst) == 0
    put_direct(tstorage, [((cid, 1, 2, cap), struct.pack("<d", cap)) for cap in (300, 100, 200)])
    put_direct(tstorage, [((cid, 1, 5, 50), struct.pack("<d", -1))])

    def visible() -> None:
        assert lst[:] == [100.0, 200.0, 300.0]
        assert dict(d) == {"2": 300.0, "5": -1.0}

    eventually(visible)


@pytest.mark.parametrize("sync", ["commit", "interval"])
def test_kill_9_loses_nothing_acknowledged(
    start_gateway: Callable[[str], ServerProcess],
    tmp_path: Path,
    fresh_cid: Callable[[], int],
    sync: str,
) -> None:
    # The child TStorage notices that the gateway died and stops by itself, and the
    # restart waits for the data directory.
    # sync = "interval": the writes are in the OS, not yet fsynced, when the process dies.
    config = f"""
    [tstorage.embedded]
    data_dir = "{tmp_path / "data"}"
    sync = "{sync}"
    sync_interval = 1.0

    [[map]]
    pattern = "meters/{{mid:int}}/{{moid:int}}"
    cid = 1
    mid = "{{mid}}"
    moid = "{{moid}}"
    codec = "struct:<d"
    """
    gw = start_gateway(config)
    c = client(gw)
    lst = znsocket.List(c, "meters/1/1")
    acked = []
    for i in range(200):
        lst.append(float(i))
        acked.append(float(i))
    c.set("last", "199")
    c.hset("znsocket.Dict:state", "phase", '"done"')
    gw.kill()
    gw2 = start_gateway(config)
    c2 = client(gw2)
    assert znsocket.List(c2, "meters/1/1")[:] == acked
    assert c2.get("last") == "199"
    assert znsocket.Dict(c2, "state")["phase"] == "done"


def test_two_gateways_see_each_others_writes(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    cid, gcid = cids
    text = meter_config(tstorage, cid, gcid)
    a, b = client(start_gateway(text)), client(start_gateway(text))
    znsocket.List(a, "meters/3/1").extend([1.0, 2.0])
    znsocket.Dict(b, "meters/3")["2"] = 5.0
    znsocket.Dict(a, "shared")["from_a"] = "hello"
    b.set("from_b", "hi")

    def coherent() -> None:
        assert znsocket.List(b, "meters/3/1")[:] == [1.0, 2.0]
        assert dict(znsocket.Dict(a, "meters/3")) == {"1": 2.0, "2": 5.0}
        assert znsocket.Dict(b, "shared")["from_a"] == "hello"
        assert a.get("from_b") == "hi"

    eventually(coherent)


def test_bad_input_gets_clear_errors_and_writes_nothing(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    cid, gcid = cids
    extra = f"""
    [[map]]
    pattern = "events/{{mid:int}}"
    cid = {cid + 300000}
    mid = "{{mid}}"
    moid = 1000
    codec = "struct:<d"
    element = "timestamped"
    """
    text = meter_config(tstorage, cid, gcid, extra).replace(
        "[generic]", '[generic]\nunmapped = "reject"'
    )
    gw = start_gateway(text)
    c = client(gw)
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="no map rule matches"):
        c.set("unmapped", "1")
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="not a canonical integer"):
        znsocket.List(c, "meters/abc/1").append(1.0)
    with pytest.raises(znsocket.exceptions.DataError, match="needs a number"):
        znsocket.List(c, "meters/1/1").append("text")
    with pytest.raises(znsocket.exceptions.DataError, match="outside TStorage's time range"):
        znsocket.List(c, "events/1").append({"t": 2**70, "v": 1.0})
    assert records_of(tstorage, cid) == [] and records_of(tstorage, gcid) == []
    assert records_of(tstorage, cid + 300000) == []
    # the gateway stays up for this and other clients
    other = client(gw)
    znsocket.List(other, "meters/1/1").append(2.0)
    assert znsocket.List(c, "meters/1/1")[:] == [2.0]
    # no inserts before, no deletes of, records of a series
    with pytest.raises(znsocket.exceptions.ResponseError, match="head"):
        znsocket.List(c, "meters/1/1").insert(0, 1.0)
    with pytest.raises(IndexError):
        del znsocket.List(c, "meters/1/1")[0]
    assert znsocket.List(c, "meters/1/1")[:] == [2.0]
    assert gw.alive()


def test_invalid_config_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = "x"\n')
    with pytest.raises(RuntimeError, match="refuses to start"):
        spawn(["gateway", "run", "--config", str(path)], timeout=20)


def test_tstorage_outage_gives_errors_then_recovers(
    start_gateway: Callable[[str], ServerProcess], tmp_path: Path, fresh_cid: Callable[[], int]
) -> None:
    data = tmp_path / "ts"
    ts = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])
    port = ts.port
    cid = fresh_cid()
    config = meter_config(ts, cid, fresh_cid()).replace("port = ", "timeout = 1.0\nport = ", 1)
    gw = start_gateway(config)
    c = client(gw)
    lst = znsocket.List(c, "meters/1/1")
    lst.append(1.0)
    c.set("k", "before")
    ts.kill()
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="unreachable"):
        lst.append(2.0)
    with pytest.raises(znsocket.exceptions.ZnSocketError, match="unreachable"):
        c.set("k", "during")
    assert gw.alive()
    ts2 = spawn(["tstorage-server", "--data-dir", str(data), "--port", str(port)])
    try:

        def recovered() -> None:
            assert c.get("k") == "before"  # the refused write was not kept
            lst.append(3.0)

        eventually(recovered, timeout=10)
        assert lst[:] == [1.0, 3.0]
    finally:
        ts2.stop()


def test_server_section_reaches_clients(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    cid, gcid = cids
    text = "[server]\nmax_message_size = 200000\n" + meter_config(tstorage, cid, gcid)
    c = client(start_gateway(text))
    assert c.max_message_size_bytes == 200_000
    big = znsocket.List(c, "big")  # a generic list: larger calls are chunked by the client
    big.append("x" * 500_000)
    assert big[0] == "x" * 500_000


def test_writes_through_another_gateway_are_announced(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    cid, gcid = cids
    text = meter_config(tstorage, cid, gcid)
    a, b = client(start_gateway(text)), client(start_gateway(text))
    seen: dict[str, list[object]] = {"list": [], "dict": [], "generic": []}
    watched = znsocket.List(b, "meters/4/1")
    assert len(watched) == 0  # b's gateway now follows this series
    watched.on_refresh(seen["list"].append)
    meter = znsocket.Dict(b, "meters/4")
    assert dict(meter) == {}
    meter.on_refresh(seen["dict"].append)
    notes = znsocket.Dict(b, "notes")
    notes.on_refresh(seen["generic"].append)
    znsocket.List(a, "meters/4/1").extend([1.0, 2.0])
    put_direct(tstorage, [((cid, 4, 2, 10), struct.pack("<d", 7.0))])  # not through any gateway
    znsocket.Dict(a, "notes")["x"] = 1

    def announced() -> None:
        assert {"start": 0, "stop": None} in seen["list"]
        assert any(set(p["keys"]) >= {"1", "2"} for p in seen["dict"] if isinstance(p, dict)) or (
            {"keys": ["1"]} in seen["dict"] and {"keys": ["2"]} in seen["dict"]
        )
        assert {"keys": ["x"]} in seen["generic"]

    eventually(announced, timeout=10)
    assert watched[:] == [1.0, 2.0]


def test_concurrent_appenders_lose_nothing(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    import threading

    cid, gcid = cids
    gw = start_gateway(meter_config(tstorage, cid, gcid))
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            lst = znsocket.List(client(gw), "meters/9/9")
            for i in range(50):
                lst.append(float(w * 1000 + i))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = znsocket.List(client(gw), "meters/9/9")[:]
    assert sorted(got) == sorted(float(w * 1000 + i) for w in range(4) for i in range(50))
    caps = [k[3] for k, _ in records_of(tstorage, cid)]
    assert len(caps) == len(set(caps)) == 200


def test_browser_origins_follow_allowed_origins(
    start_gateway: Callable[[str], ServerProcess], tstorage: ServerProcess, cids: tuple[int, int]
) -> None:
    import urllib.error
    import urllib.request

    cid, gcid = cids
    text = '[server]\nallowed_origins = ["http://dashboard.test"]\n' + meter_config(
        tstorage, cid, gcid
    )
    gw = start_gateway(text)

    def handshake(origin: str) -> int:
        req = urllib.request.Request(
            f"http://127.0.0.1:{gw.port}/socket.io/?EIO=4&transport=polling",
            headers={"Origin": origin},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as res:
                return int(res.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    assert handshake("http://dashboard.test") == 200
    assert handshake("http://elsewhere.test") == 400


def test_start_failures_are_reported_plainly(tmp_path: Path) -> None:
    path = tmp_path / "down.toml"
    path.write_text('[tstorage]\nhost = "127.0.0.1"\nport = 1\ntimeout = 0.5\n')
    with pytest.raises(
        RuntimeError,
        match=r"cannot start: TStorage at 127\.0\.0\.1:1 is unreachable: connection refused",
    ):
        spawn(["gateway", "run", "--config", str(path), "--port", "0"], timeout=30)
    data = tmp_path / "data"
    config = tmp_path / "embedded.toml"
    config.write_text(f'[tstorage.embedded]\ndata_dir = "{data}"\n')
    first = spawn(["gateway", "run", "--config", str(config), "--port", "0"])
    try:
        with pytest.raises(RuntimeError, match="cannot start"):
            spawn(["gateway", "run", "--config", str(config), "--port", "0"], timeout=30)
    finally:
        first.stop()


def test_a_second_gateway_on_a_port_in_use_refuses_to_start(tmp_path: Path) -> None:
    """The port is not shared (eventlet would set SO_REUSEPORT, and the two gateways would
    take turns answering): the second one says the port is in use and exits, its own
    embedded TStorage with it; the first keeps serving its data."""
    first_cfg, second_cfg = tmp_path / "first.toml", tmp_path / "second.toml"
    first_cfg.write_text(f'[tstorage.embedded]\ndata_dir = "{tmp_path / "a"}"\n')
    second_cfg.write_text(f'[tstorage.embedded]\ndata_dir = "{tmp_path / "b"}"\n')
    # a port given (a port picked by the OS at bind time is never shared anyway)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    first = spawn(["gateway", "run", "--config", str(first_cfg), "--port", str(free)])
    try:
        c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{first.port}")
        znsocket.List(c, "kept").append(1)
        port = ["--port", str(first.port)]
        try:
            second = spawn(["gateway", "run", "--config", str(second_cfg), *port], timeout=60)
        except RuntimeError as exc:
            assert f"127.0.0.1:{first.port} is in use by another server" in str(exc)
        else:
            second.stop()
            pytest.fail("a second gateway started on the port in use")
        for _ in range(20):  # every client of the port reaches the first gateway
            c2 = znsocket.Client.from_url(f"znsocket://127.0.0.1:{first.port}")
            assert list(znsocket.List(c2, "kept")) == [1]
            c2.close()
        c.close()

        # the second one's embedded TStorage exited with it
        def gone() -> None:
            assert runfile.read(tmp_path / "b") is None

        eventually(gone, timeout=10)
    finally:
        first.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_gateways_process_group_stops_it_and_its_tstorage_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group. The embedded
    TStorage runs in a session of its own, so the signal reaches the gateway alone, which
    stops it: the gateway exits 0, its TStorage with it, and the log never says the
    TStorage "exited ... restarting" (it did when both got the signal)."""
    config = tmp_path / "embedded.toml"
    config.write_text(f'[tstorage.embedded]\ndata_dir = "{tmp_path / "data"}"\n')
    gw = spawn(["gateway", "run", "--config", str(config), "--port", "0"], session=True)
    try:
        with urllib.request.urlopen(f"{gw.url}/health", timeout=10) as res:
            child = int(json.loads(res.read())["tstorage"]["embedded"]["pid"])
        assert os.getsid(child) != os.getsid(gw.pid)
        os.killpg(gw.pid, sig)
        assert gw.proc.wait(30) == 0
    finally:
        gw.stop()
    assert "restarting" not in gw.text() and "exited with status" not in gw.text()

    def gone() -> None:
        assert runfile.read(tmp_path / "data") is None

    eventually(gone, timeout=10)
