"""The JavaScript suites, run by pytest so that ``scripts/test.sh`` runs them too.

* ``js/test/*.test.js``: the JS client against real gateway processes (node's test runner).
* ``tests/browser/dashboard.test.js``: the dashboard in headless Chromium.

Each test runs ``node --test`` and fails with the runner's output when a JS test fails.
``scripts/bootstrap-js.sh --with-test-deps`` (run by ``scripts/test.sh``) installs the
packages, builds the dashboard and installs Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = "scripts/bootstrap-js.sh --with-test-deps"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_node(files: list[Path], needs: list[Path]) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not installed; the JS suites need node >= 20 ({BOOTSTRAP})")
    missing = [str(p.relative_to(ROOT)) for p in needs if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run {BOOTSTRAP}")
    env = dict(os.environ, PROJECT_VENV_BIN=str(Path(sys.executable).parent))
    proc = subprocess.run(
        [node, "--test", "--test-reporter=tap", *map(str, files)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if proc.returncode != 0:
        failed = [line for line in proc.stdout.splitlines() if line.startswith("not ok")]
        pytest.fail(
            f"node --test failed ({len(failed)} failing): {failed}\n"
            f"--- stdout ---\n{proc.stdout[-20000:]}\n--- stderr ---\n{proc.stderr[-5000:]}",
            pytrace=False,
        )


def test_js_client_suite() -> None:
    """The JS client: commands, errors, List/Dict, time-window reads, vs the Python client."""
    files = sorted((ROOT / "js" / "test").glob("*.test.js"))
    assert files, "no JS client tests found"
    _run_node(files, [ROOT / "js" / "node_modules" / "socket.io-client"])


def test_dashboard_in_chromium() -> None:
    """The dashboard in a real browser: live updates, zoom, outages, ranges, gaps, downloads."""
    _run_node(
        sorted((ROOT / "tests" / "browser").glob("*.test.js")),
        [
            ROOT / "tests" / "browser" / "node_modules" / "playwright-core",
            ROOT / "gateway" / "dashboard" / "dist" / "index.html",
            Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")),
        ],
    )
