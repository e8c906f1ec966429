"""Transport edge cases: the server vanishes mid-call, comes back, or misbehaves."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import znsocket
from tests._servers import ServerProcess, spawn
from tests._upstream import start_upstream_server
from tests.znsocket.client.conftest import start_server
from tests.znsocket.client.peers import MisbehavingPeer
from znsocket.client import ConnectionLostError, SocketIOTransport

pytestmark = pytest.mark.integration


@pytest.fixture
def own_server() -> Iterator[ServerProcess]:
    """A server only this test uses (it gets killed)."""
    proc = start_server()
    yield proc
    proc.stop()


def restart_on(port: int) -> ServerProcess:
    if os.environ.get("ZNSOCKET_TEST_SERVER") == "upstream":
        return start_upstream_server(port=port)
    return spawn(["znsocket", "--port", str(port), "--host", "127.0.0.1"])


class SlowSequence(list):
    """Answers ``len`` only after a while: keeps a call pending on the server."""

    def __len__(self) -> int:
        time.sleep(3)
        return super().__len__()


def test_server_dies_mid_call_gives_a_clear_error(own_server: ServerProcess) -> None:
    owner = znsocket.Client(own_server.url)
    asker = znsocket.Client(own_server.url)
    asker.sio.reconnection = False
    znsocket.ListAdapter(key="slow", socket=owner, object=SlowSequence([1, 2]))
    lst = znsocket.List(asker, "slow")
    threading.Timer(0.5, own_server.kill).start()
    t0 = time.monotonic()
    with pytest.raises(ConnectionLostError):
        len(lst)
    assert time.monotonic() - t0 < 2.5  # not the 60 s call timeout
    assert not asker.sio.connected
    with pytest.raises(Exception, match="not a connected namespace"):
        asker.get("x")
    asker.sio.disconnect()
    owner.sio.disconnect()  # it would try to reconnect for the rest of the session


def test_reconnecting_leaves_the_global_random_state_alone(own_server: ServerProcess) -> None:
    # A program that seeds ``random`` gets the same numbers while a client reconnects.
    c = znsocket.Client(own_server.url)
    c.sio.reconnection_delay = 0.02
    c.sio.reconnection_delay_max = 0.02
    try:
        random.seed(1234)
        expected = [random.random() for _ in range(3)]
        random.seed(1234)
        own_server.kill()
        deadline = time.monotonic() + 5
        while c.sio.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not c.sio.connected
        time.sleep(0.5)  # about 20 reconnect attempts, each after a jittered delay
        assert [random.random() for _ in range(3)] == expected
    finally:
        c.sio.disconnect()


def test_reconnects_after_a_restart(own_server: ServerProcess) -> None:
    port = own_server.port
    c = znsocket.Client(own_server.url)
    watcher = znsocket.Client(own_server.url)
    seen: list[Any] = []
    watcher.refresh_callbacks["znsocket.Dict:after"] = seen.append
    assert c.set("k", "v") is True
    own_server.kill()
    deadline = time.monotonic() + 5
    while c.sio.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not c.sio.connected
    with pytest.raises(ConnectionLostError):
        c.get("k")  # nothing listens: the reconnect attempt fails at once
    again = restart_on(port)
    try:
        assert c.set("k", "v2") is True  # the call reconnects first
        assert c.get("k") == "v2"
        deadline = time.monotonic() + 15
        while not watcher.sio.connected and time.monotonic() < deadline:
            time.sleep(0.05)  # the idle client reconnects in the background
        assert watcher.sio.connected
        znsocket.Dict(c, "after")["x"] = 1
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [{"keys": ["x"]}]
    finally:
        c.sio.disconnect()
        watcher.sio.disconnect()
        again.stop()


def test_disconnect_is_clean_and_final(own_server: ServerProcess) -> None:
    c = znsocket.Client(own_server.url)
    c.sio.disconnect()
    assert not c.sio.connected
    with pytest.raises(Exception, match="not a connected namespace"):
        c.get("x")
    other = znsocket.Client(own_server.url)  # the server is unaffected
    assert other.set("a", "1") is True
    other.sio.disconnect()


@pytest.mark.parametrize("how", ["close", "disconnect", "with"])
def test_a_client_is_closed_by_close_disconnect_or_with(
    own_server: ServerProcess, how: str
) -> None:
    if how == "with":
        with znsocket.Client(own_server.url) as c:
            assert c.set("closing", "1") is True
    else:
        c = znsocket.Client(own_server.url)
        getattr(c, how)()
    assert not c.sio.connected
    with pytest.raises(Exception, match="not a connected namespace"):
        c.get("closing")


def test_many_threads_share_one_client(client: znsocket.Client) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(100):
                client.set(f"t{n}", str(i))
                assert client.get(f"t{n}") == str(i)
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [client.get(f"t{n}") for n in range(8)] == ["99"] * 8


def test_busy_owner_still_serves_its_adapter(
    client: znsocket.Client, client2: znsocket.Client
) -> None:
    """The owner reads its socket inside its own calls and must pass adapter requests on."""
    znsocket.ListAdapter(key="busy", socket=client, object=list(range(10)))
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            client.get("anything")

    t = threading.Thread(target=keep_busy)
    t.start()
    try:
        lst = znsocket.List(client2, "busy")
        assert [lst[i] for i in range(10)] == list(range(10))
    finally:
        stop.set()
        t.join(10)


def test_pings_are_answered_while_idle() -> None:
    peer = MisbehavingPeer(send_ping=True)
    sio = SocketIOTransport(reconnection=False)
    sio.connect(peer.url, namespaces=["/znsocket"])
    try:
        deadline = time.monotonic() + 5
        while b"3" not in peer.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b"3" in peer.received
    finally:
        sio.disconnect()


def test_silent_server_is_detected_by_the_heartbeat() -> None:
    # 0.2 s interval + 0.2 s timeout (+ 5 s slack): a server that never pings is gone.
    peer = MisbehavingPeer(ping_interval_ms=200, ping_timeout_ms=200)
    sio = SocketIOTransport(reconnection=False)
    sio.connect(peer.url, namespaces=["/znsocket"])
    deadline = time.monotonic() + 15
    while sio.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sio.connected
    sio.disconnect()


def test_closed_clients_leave_no_threads(server: ServerProcess) -> None:
    before = threading.active_count()
    for _ in range(5):
        c = znsocket.Client(server.url)
        c.get("x")
        c.sio.disconnect()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
