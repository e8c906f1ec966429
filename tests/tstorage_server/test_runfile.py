"""The run file: a server tells where it listens in its data directory, for other programs."""

from __future__ import annotations

import json
from pathlib import Path

from tests._servers import spawn
from tstorage_server import runfile


def test_a_server_publishes_its_address_while_it_serves(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert runfile.read(data) is None  # no server, no directory
    server = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])
    try:
        info = runfile.read(data)
        assert info is not None
        assert (info.host, info.port, info.pid, info.tls) == (
            "127.0.0.1",
            server.port,
            server.pid,
            False,
        )
        assert info.address == f"127.0.0.1:{server.port}"
    finally:
        assert server.stop() == 0
    # a clean exit removes it
    assert not (data / runfile.RUN_FILE).exists() and runfile.read(data) is None


def test_a_killed_servers_run_file_is_stale(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])
    server.kill()  # SIGKILL: no clean-up runs, the file stays
    left = json.loads((data / runfile.RUN_FILE).read_text())
    assert left["port"] == server.port
    assert runfile.read(data) is None  # the data directory's lock is free: nobody serves
    # the next server on that directory publishes its own address
    again = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])
    try:
        info = runfile.read(data)
        assert info is not None and (info.port, info.pid) == (again.port, again.pid)
    finally:
        again.stop()


def test_a_wildcard_bind_address_is_reached_on_loopback(tmp_path: Path) -> None:
    runfile.write(tmp_path, "0.0.0.0", 4321)
    with (tmp_path / runfile.LOCK_FILE).open("wb") as lock:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)  # as a serving store holds it
        info = runfile.read(tmp_path)
        assert info is not None and info.address == "127.0.0.1:4321"
    runfile.remove(tmp_path)
    assert not (tmp_path / runfile.RUN_FILE).exists()
