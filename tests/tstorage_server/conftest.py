"""Fixtures: a real ``tstorage-server`` process on 127.0.0.1 with its own data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import ServerProcess, spawn


def server_argv(data_dir: Path) -> list[str]:
    return ["tstorage-server", "--data-dir", str(data_dir), "--port", "0"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[ServerProcess]:
    proc = spawn(server_argv(data_dir))
    try:
        yield proc
    finally:
        code = proc.stop()
        if code not in (0, -9):
            print(proc.text())
