"""The README's snippets, run as a new user would run them, against real servers.

Every fenced ``sh`` and ``python`` block of README.md is executed in order, in a scratch
folder that looks like a checkout (``.venv`` and an unchanged copy of
``config/gateway.toml``), against a gateway started the way ``scripts/run.sh`` starts it:
``gateway run --config config/gateway.toml`` from that folder, on the embedded TStorage
(``data/tstorage``). So the snippets meet what a user meets after ``scripts/run.sh``: the
gateway running, its TStorage on a port picked at start, its data directory in use. The
only edit is the gateway's address, ``127.0.0.1:5000``, which becomes the port the test's
gateway got (another program on this machine may hold 5000).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import znsocket
from tests._servers import ROOT, VENV_BIN, ServerProcess, spawn

pytestmark = pytest.mark.integration

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of README.md, in order."""
    text = (ROOT / "README.md").read_text()
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    work = tmp_path_factory.mktemp("readme")
    (work / ".venv").symlink_to(VENV_BIN.parent)
    (work / "config").mkdir()
    shutil.copy(ROOT / "config" / "gateway.toml", work / "config" / "gateway.toml")
    with spawn(
        ["gateway", "run", "--config", "config/gateway.toml", "--port", "0"], cwd=work
    ) as gw:
        assert "TStorage: embedded" in gw.text(), gw.text()
        yield work, gw


def run_block(lang: str, code: str, work: Path, gw: ServerProcess) -> tuple[str, str]:
    code = code.replace("127.0.0.1:5000", f"127.0.0.1:{gw.port}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if lang == "python":
        argv = [sys.executable, "-c", code]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"README {lang} block failed:\n{code}\n--- output:\n{done.stdout}{done.stderr}"
    )
    return done.stdout, done.stderr


def test_every_readme_snippet_runs(servers: tuple[Path, ServerProcess]) -> None:
    work, gw = servers
    blocks = readme_blocks()
    langs = [lang for lang, _ in blocks]
    assert langs.count("python") >= 4 and langs.count("sh") >= 2, langs
    outputs = [run_block(lang, code, work, gw) for lang, code in blocks]

    # Operator: check-config passes on the example; import (run twice: the second skips
    # what is stored) then export round-trips the CSV, in unix ns and in ISO-8601.
    operator_out, operator_err = outputs[langs.index("sh", 1)]
    assert "imported 0 row(s) into meters/1/1 (2 skipped: already stored)" in operator_err
    exported = (work / "out.csv").read_text().splitlines()
    assert exported == ["t,v", "1700000000000000000,230.5", "1700000060000000000,231.0"]
    assert "2023-11-14T22:14:20.000000000Z,231.0" in operator_out
    assert (work / "meter1.csv").read_text().splitlines()[1:] == [
        "1,1700000000000000000,230.5",
        "1,1700000060000000000,231.0",
    ]

    # Python user: its own series, three appended readings.
    python_out = [
        out for (lang, _), (out, _) in zip(blocks, outputs, strict=True) if lang == "python"
    ]
    length, last3 = python_out[0].splitlines()[0].split(" ", 1)
    assert int(length) == 3 and ast.literal_eval(last3) == [230.5, 231.0, 229.8]
    assert float(python_out[0].splitlines()[1]) == 229.8  # Dict("meters/7")["3"]: latest of moid 3
    assert "'count': 3" in python_out[1]
    # tstorage_client, at the address the run file gives: a record of another series.
    assert python_out[2].split() == ["True", "1"]
    # python-socketio speaking the events by hand.
    assert python_out[3].strip() == "{'data': 3}"

    # What the dashboard then shows: one series per example, none mixed with another's.
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        assert len(znsocket.List(client, "meters/1/1")) == 2  # the operator's 2023 readings
        assert len(znsocket.List(client, "meters/7/3")) == 3  # the Python user's, now
        assert len(znsocket.List(client, "meters/7/9")) == 100_000  # the bulk example's
        assert len(znsocket.List(client, "meters/8/1")) == 1  # appended at a given time
        assert sorted(znsocket.Dict(client, "meters/7").keys()) == ["3", "4", "9"]
    finally:
        client.close()


def test_the_python_block_of_the_time_series_page_runs(
    servers: tuple[Path, ServerProcess],
) -> None:
    """``docs/time-series-events.md`` shows the whole ``TimeSeries`` API in one block: it
    runs as written too, on its own series, after ``scripts/run.sh``."""
    work, gw = servers
    text = (ROOT / "docs" / "time-series-events.md").read_text()
    blocks = [m.group(2) for m in FENCE.finditer(text) if m.group(1) == "python"]
    assert len(blocks) == 1
    run_block("python", blocks[0], work, gw)
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    try:
        assert len(znsocket.List(client, "meters/7/5")) == 2 + 3600 + 1 + 1
    finally:
        client.close()
