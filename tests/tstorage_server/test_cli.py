"""The ``tstorage-server`` command: start, listen line, clean stop, clear start-up errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests._servers import VENV_BIN, spawn

from .conftest import server_argv
from .wire import KEY_MAX, KEY_MIN, Raw

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signal(data_dir: Path, sig: signal.Signals) -> None:
    proc = spawn(server_argv(data_dir))
    with Raw(proc.port) as c:
        assert c.put([((1, 1, 1, 1, 1), b"x")], with_acq=True)[0] == 0
    proc.proc.send_signal(sig)
    assert proc.proc.wait(15) == 0
    assert "listening on 127.0.0.1:" in proc.text()


def test_second_server_on_the_same_data_dir_is_refused(data_dir: Path) -> None:
    with spawn(server_argv(data_dir)) as first:
        out = subprocess.run(
            [str(VENV_BIN / "tstorage-server"), "--data-dir", str(data_dir), "--port", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 2
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
