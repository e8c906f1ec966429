"""The ``tstorage-server`` command: start, listen line, clean stop, clear start-up errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._servers import VENV_BIN, spawn

from .conftest import server_argv
from .wire import GET, KEY_MAX, KEY_MIN, Raw, key_range

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signal(data_dir: Path, sig: signal.Signals) -> None:
    proc = spawn(server_argv(data_dir))
    with Raw(proc.port) as c:
        assert c.put([((1, 1, 1, 1, 1), b"x")], with_acq=True)[0] == 0
    proc.proc.send_signal(sig)
    assert proc.proc.wait(15) == 0
    assert "listening on 127.0.0.1:" in proc.text()


def test_stops_while_a_client_has_stopped_reading_a_large_get(data_dir: Path) -> None:
    # The GET answer (40 MB) is far larger than the socket buffers: the server's write
    # waits for a reader that never comes, and a stop must not wait for it.
    with spawn(server_argv(data_dir)) as proc, Raw(proc.port) as c:
        for start in range(0, 400_000, 100_000):
            rows = [((1, 1, 1, cap, cap + 1), b"x" * 60) for cap in range(start, start + 100_000)]
            assert c.put(rows, with_acq=True)[0] == 0
        c.send(key_range(GET, KEY_MIN, KEY_MAX))
        assert len(c.recv_exactly(12)) == 12  # the answer is being written; read no more
        time.sleep(0.3)  # the socket buffers fill within milliseconds
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0


def test_second_server_on_the_same_data_dir_is_refused(data_dir: Path) -> None:
    with spawn(server_argv(data_dir)) as first:
        out = subprocess.run(
            [str(VENV_BIN / "tstorage-server"), "--data-dir", str(data_dir), "--port", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 3  # EXIT_DATA_DIR_IN_USE: an embedder may retry
        assert "used by another server" in out.stderr
        with Raw(first.port) as c:
            assert c.get_acq(KEY_MIN, KEY_MAX)[0] == 0


def test_port_in_use_is_reported(data_dir: Path, tmp_path: Path) -> None:
    with spawn(server_argv(data_dir)) as first:
        out = subprocess.run(
            [
                str(VENV_BIN / "tstorage-server"),
                "--data-dir",
                str(tmp_path / "other"),
                "--port",
                str(first.port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 1
        assert "cannot listen" in out.stderr


def test_help_and_missing_data_dir() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "tstorage_server", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0 and "--data-dir" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tstorage_server"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and "--data-dir" in bad.stderr


def test_exit_with_parent_stops_when_the_parent_is_killed(tmp_path: Path) -> None:
    """``--exit-with-parent``: a server whose parent dies by SIGKILL lets go of its data."""
    data = tmp_path / "data"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            f"p = subprocess.Popen([sys.executable, '-m', 'tstorage_server', '--data-dir', "
            f"{str(data)!r}, '--port', '0', '--exit-with-parent'])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    # the child shares the parent's stdout: once it says it listens, it holds the directory
    assert "listening on" in parent.stdout.readline()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not _running(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the orphaned server kept running")
    with spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"]) as again:
        assert again.alive()


def _running(pid: int) -> bool:
    # an orphan that exited may linger as a zombie until its new parent reaps it
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--sync", "never"], "--sync"),
        (["--sync", "interval", "--sync-interval", "2"], "at most 1"),
    ],
)
def test_bad_durability_options_are_refused(data_dir: Path, args: list[str], needle: str) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "tstorage_server", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and needle in bad.stderr
    assert not data_dir.exists()  # refused before the store was opened
