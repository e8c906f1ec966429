"""The README's snippets, run as a new user would run them, against real servers.

Every fenced ``sh`` and ``python`` block of README.md is executed in order, in a scratch
folder that looks like a checkout (``.venv`` and ``config/gateway.toml``), against a
gateway whose storage is a separate ``tstorage-server`` process (so that ``gateway import``
can reach the same TStorage while the gateway runs). The only edits are the addresses:
``127.0.0.1:5000`` becomes the gateway's and port ``2025`` the TStorage server's.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import ROOT, ServerProcess, spawn

pytestmark = pytest.mark.integration

FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of README.md, in order."""
    text = (ROOT / "README.md").read_text()
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, ServerProcess, ServerProcess]]:
    work = tmp_path_factory.mktemp("readme")
    with spawn(["tstorage-server", "--data-dir", str(work / "tstorage"), "--port", "0"]) as ts:
        (work / ".venv").symlink_to(ROOT / ".venv")
        (work / "config").mkdir()
        example = (ROOT / "config" / "gateway.toml").read_text()
        # The example's embedded TStorage becomes the separate server started above.
        remote = re.sub(
            r"\[tstorage\.embedded\]\n[^\[]*",
            f'[tstorage]\nhost = "127.0.0.1"\nport = {ts.port}\n\n',
            example,
        )
        assert remote != example, "config/gateway.toml no longer has a [tstorage.embedded] table"
        config = work / "config" / "gateway.toml"
        config.write_text(remote)
        with spawn(["gateway", "run", "--config", str(config), "--port", "0"]) as gw:
            yield work, ts, gw


def run_block(lang: str, code: str, work: Path, ts: ServerProcess, gw: ServerProcess) -> str:
    code = code.replace("127.0.0.1:5000", f"127.0.0.1:{gw.port}")
    code = code.replace('"127.0.0.1", 2025', f'"127.0.0.1", {ts.port}')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if lang == "python":
        argv = [sys.executable, "-c", code]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (
        f"README {lang} block failed:\n{code}\n--- output:\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def test_every_readme_snippet_runs(servers: tuple[Path, ServerProcess, ServerProcess]) -> None:
    work, ts, gw = servers
    blocks = readme_blocks()
    langs = [lang for lang, _ in blocks]
    assert langs.count("python") >= 4 and langs.count("sh") >= 2, langs
    outputs = [run_block(lang, code, work, ts, gw) for lang, code in blocks]

    # Operator: check-config passes on the example; import then export round-trips the CSV.
    exported = (work / "out.csv").read_text().splitlines()
    assert exported[0] == "t,v" and len(exported) == 3
    assert [line.split(",")[1] for line in exported[1:]] == ["230.5", "231.0"]

    # Python user: two imported readings plus three appended ones, the appended last.
    python_out = [out for (lang, _), out in zip(blocks, outputs, strict=True) if lang == "python"]
    length, last3 = python_out[0].splitlines()[0].split(" ", 1)
    assert int(length) == 5 and ast.literal_eval(last3) == [230.5, 231.0, 229.8]
    assert float(python_out[0].splitlines()[1]) == 229.8  # Dict("meters/7")["3"]: latest of moid 3
    assert "'count': 5" in python_out[1]
    # tstorage_client: its own record joins the five.
    assert python_out[2].split() == ["True", "6"]
    # python-socketio speaking the events by hand.
    assert python_out[3].strip() == "{'data': 6}"
