"""Limits of a real tstorage-server process: what one client can make it hold, and for how long.

Each limit is set low with its flag; the offending client gets the error shape of its
request (status -1) and is closed, the log says what happened to its data, and the other
clients go on.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import ServerProcess, spawn

from .conftest import server_argv
from .wire import (
    ERROR_GET,
    ERROR_GET_ACQ,
    ERROR_PUT,
    GET,
    GET_ACQ,
    HEADER,
    I32,
    KEY_MAX,
    KEY_MIN,
    PUT,
    Raw,
    key_range,
    put_request,
)

pytestmark = pytest.mark.integration


def limited(data_dir: Path, *flags: str) -> ServerProcess:
    return spawn([*server_argv(data_dir), *flags])


def wait_for_log(server: ServerProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in server.text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in server.text()
    return server.text()


def open_put(records: list[tuple[tuple[int, int, int, int, int], bytes]]) -> bytes:
    """A PUTA request with its batches complete but without the end marker."""
    return put_request(records, with_acq=True)[:-4]


def rows(cid: int, count: int, size: int) -> list[tuple[tuple[int, int, int, int, int], bytes]]:
    return [((cid, i, 0, 0, 1), bytes([cid]) * size) for i in range(count)]


# -- incomplete requests and idle connections -------------------------------------------------
def test_a_put_held_open_without_its_end_marker_is_refused_after_the_request_timeout(
    data_dir: Path,
) -> None:
    with limited(data_dir, "--request-timeout", "1.5") as server:
        held = Raw(server.port)
        held.send(open_put(rows(1, 100, 1000)))
        started = time.monotonic()
        with Raw(server.port) as other:  # served meanwhile
            assert other.put(rows(2, 3, 10), with_acq=True)[0] == 0
        assert held.recv_until_close(timeout=10) == ERROR_PUT
        assert 1.0 < time.monotonic() - started < 8
        held.close()
        log = wait_for_log(server, "--request-timeout")
        assert "nothing of this PUTA was stored" in log
        with Raw(server.port) as c:
            status, got, _ = c.get()
            assert status == 0 and {k[0] for k, _ in got} == {2}


@pytest.mark.parametrize(
    ("partial", "answer"),
    [
        (HEADER.pack(GET, 64)[:7], ERROR_PUT),  # half a header: no request known yet
        (key_range(GET, KEY_MIN, KEY_MAX)[:40], ERROR_GET),
        (key_range(GET_ACQ, KEY_MIN, KEY_MAX)[:70], ERROR_GET_ACQ),
        (HEADER.pack(PUT, 0) + struct.pack("<iii", 1, 28, 24) + bytes(10), ERROR_PUT),
    ],
    ids=["header", "get", "get_acq", "put"],
)
def test_any_request_left_incomplete_is_answered_with_its_error_and_closed(
    data_dir: Path, partial: bytes, answer: bytes
) -> None:
    with limited(data_dir, "--request-timeout", "1") as server, Raw(server.port) as c:
        c.send(partial)
        assert c.recv_until_close(timeout=10) == answer


def test_an_idle_connection_is_closed_quietly_and_a_busy_one_is_not(data_dir: Path) -> None:
    with limited(data_dir, "--idle-timeout", "1") as server:
        idle = Raw(server.port)
        assert idle.get_acq(KEY_MIN, KEY_MAX)[0] == 0
        with Raw(server.port) as busy:
            for _ in range(12):  # 2.4 s of requests 0.2 s apart
                assert busy.get_acq(KEY_MIN, KEY_MAX)[0] == 0
                time.sleep(0.2)
        idle.sock.settimeout(5)
        assert idle.sock.recv(100) == b""  # closed, and nothing was sent
        idle.close()
        wait_for_log(server, "--idle-timeout")


# -- bytes held for requests -------------------------------------------------------------------
def test_a_record_larger_than_the_request_bound_is_refused_while_it_arrives(
    data_dir: Path,
) -> None:
    # A 20 MB payload is announced and half sent: the undecoded bytes count too.
    with limited(data_dir, "--max-request-bytes", "1000000") as server, Raw(server.port) as c:
        n = 20 + 20_000_000
        c.send(HEADER.pack(PUT, 0) + struct.pack("<ii", 1, 4 + n) + I32.pack(n))
        with contextlib.suppress(OSError):  # the server may close before all is sent
            c.send(bytes(10_000_000))
        assert c.recv_until_close(timeout=10) == ERROR_PUT
        assert "--max-request-bytes" in wait_for_log(server, "nothing of this PUT was stored")


def test_the_request_that_passes_the_server_wide_bound_is_refused_and_the_others_go_on(
    data_dir: Path,
) -> None:
    flags = ("--max-buffered-bytes", "3000000", "--max-request-bytes", "2000000")
    with limited(data_dir, *flags) as server:
        first, second = Raw(server.port), Raw(server.port)
        first.send(open_put(rows(1, 1200, 1000)))  # about 1.2 MB held each
        second.send(open_put(rows(2, 1200, 1000)))
        time.sleep(1)  # both are read and held
        with Raw(server.port) as third:
            third.send(put_request(rows(3, 1200, 1000), with_acq=True))
            assert third.recv_until_close(timeout=10) == ERROR_PUT
        log = wait_for_log(server, "--max-buffered-bytes")
        assert "nothing of this PUTA was stored" in log
        for c in (first, second):  # the end markers: both PUTs complete
            c.send(I32.pack(-1))
            status, size = HEADER.unpack(c.recv_exactly(12))
            assert (status, size) == (0, 16)
            c.recv_exactly(16)
            c.close()
        with Raw(server.port) as c:
            status, got, _ = c.get()
            assert status == 0 and sorted({k[0] for k, _ in got}) == [1, 2] and len(got) == 2400


# -- connections -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (key_range(GET_ACQ, KEY_MIN, KEY_MAX), ERROR_GET_ACQ),
        (key_range(GET, KEY_MIN, KEY_MAX), ERROR_GET),
        (put_request(rows(5, 2, 10), with_acq=True), ERROR_PUT),
    ],
    ids=["get_acq", "get", "puta"],
)
def test_a_connection_over_the_cap_gets_the_error_answer_and_a_later_one_is_served(
    data_dir: Path, request_bytes: bytes, answer: bytes
) -> None:
    with limited(data_dir, "--max-connections", "2") as server:
        first, second = Raw(server.port), Raw(server.port)
        for c in (first, second):
            assert c.get_acq(KEY_MIN, KEY_MAX)[0] == 0
        with Raw(server.port) as extra:
            extra.send(request_bytes)
            assert extra.recv_until_close(timeout=10) == answer
        wait_for_log(server, "--max-connections")
        first.close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the close within moments
            with Raw(server.port) as later:
                later.send(key_range(GET_ACQ, KEY_MIN, KEY_MAX))
                reply = later.recv_exactly(20)
            if reply != ERROR_GET_ACQ or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert reply[:12] == HEADER.pack(0, 8)
        assert second.get_acq(KEY_MIN, KEY_MAX)[0] == 0
        second.close()
        with Raw(server.port) as c:
            assert c.get()[1] == []  # the turned-away PUTA stored nothing


def test_clients_that_leave_mid_request_log_no_unexpected_failure(data_dir: Path) -> None:
    with limited(data_dir) as server:
        for i in range(6):
            c = Raw(server.port)
            c.send(open_put(rows(1, 200, 500)))
            if i % 2:  # a reset instead of a close
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        time.sleep(0.5)
        with Raw(server.port) as c:
            assert c.get()[1] == []
        assert "unexpected failure" not in server.text()
        assert "Traceback" not in server.text()


# -- memory ------------------------------------------------------------------------------------
def rss_anon_mb(pid: int) -> float:
    """Anonymous resident memory of a process (heap, not the store's file mapping)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc status")


def settle(pid: int, until: float, *, above: bool, timeout: float = 15.0) -> float:
    """Waits until the server's RssAnon is above (or below) ``until`` MB; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        mb = rss_anon_mb(pid)
        if (mb > until) == above or time.monotonic() > deadline:
            return mb
        time.sleep(0.1)


@pytest.fixture
def plain_server(data_dir: Path) -> Iterator[ServerProcess]:
    with limited(data_dir) as server:
        with Raw(server.port) as c:  # warm up: modules loaded, store open
            assert c.put(rows(9, 10, 100), with_acq=True)[0] == 0
            assert c.get()[0] == 0
        yield server


@pytest.mark.slow
def test_memory_held_for_unfinished_puts_is_returned_when_their_clients_leave(
    plain_server: ServerProcess,
) -> None:
    # Three clients hold about 60 MB of PUT batches each, then leave (closed or reset);
    # three rounds. The server must give the memory back each time.
    server = plain_server
    base = rss_anon_mb(server.pid)
    batch = open_put(rows(1, 6000, 10_000))  # about 60 MB
    for round_ in range(3):
        clients = [Raw(server.port) for _ in range(3)]
        for c in clients:
            c.send(batch)
        held = settle(server.pid, base + 150, above=True)
        assert held > base + 150, f"round {round_}: the server did not take the data"
        for i, c in enumerate(clients):
            if (round_ + i) % 2:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        after = settle(server.pid, base + 40, above=False)
        assert after <= base + 40, f"round {round_}: {after:.0f} MB after, {base:.0f} MB before"
    assert "unexpected failure" not in server.text()


@pytest.mark.slow
def test_a_get_whose_client_does_not_read_costs_a_bounded_buffer(
    plain_server: ServerProcess,
) -> None:
    server = plain_server
    with Raw(server.port) as c:  # 40 MB of records, every other one in moid 1
        records = [((1, i, i % 2, 0, 1), b"r" * 500) for i in range(80_000)]
        assert c.put(records, with_acq=True)[0] == 0
        del records
    base = rss_anon_mb(server.pid)
    every_other = (1, KEY_MIN[1], 0, KEY_MIN[3], KEY_MIN[4]), (2, KEY_MAX[1], 1, *KEY_MAX[3:])
    stalled = []
    for kmin, kmax in [(KEY_MIN, KEY_MAX), every_other] * 10:  # whole blocks, or a sieve
        c = Raw(server.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(key_range(GET, kmin, kmax))
        stalled.append(c)
    time.sleep(3)  # every answer has filled what the sockets take
    held = rss_anon_mb(server.pid) - base
    assert held < 20 * 4, f"20 GETs that nobody reads hold {held:.0f} MB"
    with Raw(server.port) as c:  # others are served meanwhile
        status, got, _ = c.get((1, 0, 0, 0, 0), (2, 10, 2, 1, 2))
        assert status == 0 and len(got) == 10
    for c in stalled:
        c.close()
    after = settle(server.pid, base + 20, above=False)
    assert after <= base + 20, f"{after:.0f} MB after the clients left, {base:.0f} MB before"
