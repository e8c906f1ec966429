"""Channel.deadline, bytes_sent and peer_closed against a real server that stalls or dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests._servers import ROOT
from tests.tstorage_client.conftest import start_server
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record
from tstorage_client.response import ResponseStatus

LO = Key(1, 0, 0, 0, 0)
HI = Key(2, 10, 10, 2**63 - 1, 2**63 - 1)


def test_a_deadline_bounds_a_request_to_a_stalled_server(tmp_path: Path) -> None:
    with start_server(tmp_path) as server:
        ch: Channel[bytes] = Channel("127.0.0.1", server.port, BytesPayloadType(), timeout=30)
        assert ch.connect().is_ok() and ch.bytes_sent == 0
        assert ch.put([Record(Key(1, 1, 1, 1), b"x")]).is_ok()
        sent = ch.bytes_sent
        assert sent > 0 and not ch.peer_closed()  # idle and healthy
        os.kill(server.pid, signal.SIGSTOP)
        try:
            ch.deadline = time.monotonic() + 1.0
            t0 = time.monotonic()
            res = ch.put([Record(Key(1, 1, 1, 2), b"y")])
            took = time.monotonic() - t0
            assert res.status == ResponseStatus.DISCONNECTED
            assert 0.9 < took < 2.5, took  # the deadline, not the 30 s timeout
            assert ch.bytes_sent > sent  # the request went out: its outcome is unknown
            assert not ch.connected
            # past the deadline, connecting fails at once
            late: Channel[bytes] = Channel("127.0.0.1", server.port, BytesPayloadType(), 30)
            late.deadline = time.monotonic() - 1
            assert not late.connect().is_ok() and late.bytes_sent == 0
        finally:
            os.kill(server.pid, signal.SIGCONT)
        ch.deadline = None
        assert ch.connect().is_ok()
        # the resumed server commits the PUT it had received: "unknown" was right
        deadline = time.monotonic() + 10
        while [r.value for r in ch.get(LO, HI).data] != [b"x", b"y"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ch.close()


def test_peer_closed_spots_an_idle_connection_the_server_dropped(tmp_path: Path) -> None:
    with start_server(tmp_path) as server:
        ch: Channel[bytes] = Channel("127.0.0.1", server.port, BytesPayloadType(), timeout=5)
        assert ch.connect().is_ok()
        assert ch.get_acq(LO, HI).is_ok()
        assert not ch.peer_closed()
        server.kill()
        deadline = time.monotonic() + 5
        while not ch.peer_closed():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ch.close()
        assert ch.peer_closed() and not ch.connected


def test_peer_closed_under_eventlet_answers_without_yielding_to_other_green_threads(
    tmp_path: Path,
) -> None:
    # The gateway checks every pooled connection before a request; the check must not
    # hand the hub a turn (a green select did, on every PUT) and must still be right.
    script = textwrap.dedent(
        """
        import sys, time, warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import eventlet
        eventlet.monkey_patch()
        from tstorage_client.channel import Channel
        from tstorage_client.payload_type import BytesPayloadType
        from tstorage_client.record import Key

        ch = Channel("127.0.0.1", int(sys.argv[1]), BytesPayloadType(), timeout=5)
        assert ch.connect().is_ok()
        assert ch.get_acq(Key(1, 0, 0, 0, 0), Key(2, 1, 1, 1, 1)).is_ok()
        ran = []
        eventlet.spawn(ran.append, "other")
        print(ch.peer_closed(), ran)
        sys.stdout.flush()
        sys.stdin.readline()  # the server is killed meanwhile
        deadline = time.monotonic() + 5
        while not ch.peer_closed() and time.monotonic() < deadline:
            time.sleep(0.02)
        print(ch.peer_closed())
        """
    )
    with start_server(tmp_path) as server:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(server.port)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdin is not None
            assert proc.stdout.readline().strip() == "False []"  # open; no turn handed over
            server.kill()
            proc.stdin.write("\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert out.strip() == "True", err
