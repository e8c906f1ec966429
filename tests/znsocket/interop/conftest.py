"""Fixtures for interop: upstream's server and ours, and a runner for the driver with
either implementation's interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import ServerProcess, spawn
from tests._upstream import run_upstream_json, start_upstream_server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[ServerProcess]:
    proc = start_upstream_server()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def our_server() -> Iterator[ServerProcess]:
    proc = spawn(["znsocket", "--port", "0", "--host", "127.0.0.1"])
    yield proc
    proc.stop()


def run_ours_json(script: Path, *args: str, timeout: float = 240) -> Any:
    """Run a driver with our interpreter (our znsocket); decode its last stdout line."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_driver(side: str, script: Path, *args: str) -> Any:
    """``side`` is ``"upstream"`` or ``"ours"``: which znsocket package runs the driver."""
    if side == "upstream":
        return run_upstream_json(script, *args)
    return run_ours_json(script, *args)


def url_of(server: ServerProcess) -> str:
    return f"znsocket://127.0.0.1:{server.port}"
