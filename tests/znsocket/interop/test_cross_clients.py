"""Two implementations in one session: one process owns adapters and watches objects, a
process of the other implementation reads the adapters and writes the watched objects.

The expectation is the same pair of drivers run with upstream on both sides against
upstream's server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests._servers import ServerProcess
from tests._upstream import upstream_python
from tests.znsocket.interop.conftest import HERE, run_driver, url_of

pytestmark = [pytest.mark.interop, pytest.mark.integration, pytest.mark.slow]

OWNER = HERE / "adapter_owner.py"
READER = HERE / "adapter_reader.py"


def run_pair(owner_side: str, reader_side: str, server: ServerProcess) -> tuple[Any, Any]:
    """Start the owner, run the reader to completion, then collect the owner's record."""
    python = str(upstream_python()) if owner_side == "upstream" else sys.executable
    # a PYTHONPATH naming this checkout would put our znsocket before upstream's
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" or owner_side != "upstream"}
    owner = subprocess.Popen(
        [python, str(OWNER), url_of(server)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/tmp",
        env=env,
    )
    try:
        assert owner.stdout is not None and owner.stdin is not None
        line = owner.stdout.readline()
        assert line.strip() == "ready", owner.stderr.read() if owner.stderr else line
        read = run_driver(reader_side, READER, url_of(server))
        owner.stdin.close()
        out = owner.stdout.read()
        assert owner.wait(60) == 0, owner.stderr.read() if owner.stderr else ""
        return read, json.loads(out.strip().splitlines()[-1])
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)


@pytest.fixture(scope="module")
def expected(upstream_server: ServerProcess) -> tuple[Any, Any]:
    return run_pair("upstream", "upstream", upstream_server)


def test_expectation_is_meaningful(expected: tuple[Any, Any]) -> None:
    read, refreshes = expected
    assert read["list_items"] == [1, 2.5, "three", {"four": [4]}, None]
    assert read["dict_frozen"] == {"raised": "FrozenStorageError"}
    assert len(refreshes) == 6


@pytest.mark.parametrize(
    ("owner", "reader", "server"),
    [
        ("upstream", "ours", "ours"),
        ("ours", "upstream", "ours"),
        ("upstream", "ours", "upstream"),
        ("ours", "upstream", "upstream"),
    ],
)
def test_mixed_owner_and_reader(
    owner: str,
    reader: str,
    server: str,
    expected: tuple[Any, Any],
    request: pytest.FixtureRequest,
) -> None:
    proc_server: ServerProcess = request.getfixturevalue(
        "our_server" if server == "ours" else "upstream_server"
    )
    # Each run writes the same keys: start from an empty store.
    run_driver("ours", HERE / "flush.py", url_of(proc_server))
    assert run_pair(owner, reader, proc_server) == expected
