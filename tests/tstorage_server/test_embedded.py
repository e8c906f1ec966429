"""EmbeddedServer in-process, also inside an eventlet-monkey-patched process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests._servers import ROOT
from tstorage_server import EmbeddedServer, MemoryStore
from tstorage_server.store import DataDirInUse

from .wire import ERROR_PUT, KEY_MAX, KEY_MIN, Raw, put_request

pytestmark = pytest.mark.integration


def test_embedded_server_serves_stops_and_reopens(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        with Raw(server.port) as c:
            assert c.put([((1, 2, 3, 4, 5), b"kept")], with_acq=True)[0] == 0
        with pytest.raises(DataDirInUse):
            EmbeddedServer(tmp_path).start()
    with pytest.raises(OSError), Raw(server.port, timeout=2):
        pass
    with EmbeddedServer(tmp_path) as again, Raw(again.port) as c:
        assert c.get()[1] == [((1, 2, 3, 4, 5), b"kept")]


def test_embedded_server_over_a_memory_store() -> None:
    server = EmbeddedServer(None, store=MemoryStore()).start()
    try:
        with Raw(server.port) as c:
            assert c.get_acq(KEY_MIN, KEY_MAX)[0] == 0
    finally:
        server.stop()
        server.stop()


def test_embedded_server_in_an_eventlet_patched_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import eventlet
        eventlet.monkey_patch()
        import sys
        from tstorage_server import EmbeddedServer
        from tests.tstorage_server.wire import Raw

        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                eventlet.sleep(0.005)
        eventlet.spawn(ticker)

        def client(server, cid):
            with Raw(server.port) as c:  # a green socket talking to the real-thread server
                records = [((cid, i, 0, 0, 1), b"x" * 16) for i in range(5000)]
                assert c.put(records, with_acq=True)[0] == 0
                status, got, _ = c.get((cid, 0, 0, 0, 0), (cid + 1, 10**6, 1, 1, 2))
                assert status == 0 and got == records, (status, len(got))

        import logging
        logging.basicConfig(level=logging.INFO)  # server log lines come from its own thread

        from tstorage_client.channel import Channel
        from tstorage_client.payload_type import StructPayloadType
        from tstorage_client.record import Key, Record

        with EmbeddedServer(sys.argv[1]) as server:
            pool = eventlet.GreenPool()
            for cid in range(4):
                pool.spawn(client, server, cid)
            pool.waitall()
            with Raw(server.port) as c:
                assert len(c.get()[1]) == 20000
            with Channel(server.host, server.port, StructPayloadType("<q"), timeout=10) as ch:
                assert ch.put([Record(Key(9, i, 0, 0), i) for i in range(100)]).is_ok()
                resp = ch.get(Key(9, 0, 0, 0, 0), Key(10, 100, 1, 1, 2**63 - 1))
                assert resp.is_ok() and [r.value for r in resp.data] == list(range(100))
                assert not ch.get(Key(9, 0, 0, 0, 0), Key(9, 1, 1, 1, 1)).is_ok()  # rejected, logged
        print("OK", len(ticks))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr
    assert "GET rejected" in out.stderr  # logging from the server thread works
    word, ticks = out.stdout.split()
    assert word == "OK" and int(ticks) > 0


class _DiskFullStore(MemoryStore):
    """A store whose commits fail, as on a full disk."""

    def _persist(self, entries, clock_floor):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")


def test_a_failing_commit_answers_an_error_and_the_server_goes_on() -> None:
    with EmbeddedServer(None, store=_DiskFullStore()) as server:
        with Raw(server.port) as c:
            c.send(put_request([((1, 2, 3, 4, 5), b"lost")], with_acq=True))
            assert c.recv_until_close() == ERROR_PUT
        with Raw(server.port) as c:
            status, acq = c.get_acq(KEY_MIN, KEY_MAX)
            assert status == 0 and acq > 0
            status, got, _ = c.get()
            assert status == 0 and got == []
            # The acq values reserved for the failed PUT are not reused or waited for.
            assert c.get_acq(KEY_MIN, KEY_MAX)[1] > acq
