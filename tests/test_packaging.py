"""The package as a Python user installs it: built, then installed into a fresh virtualenv.

``python -m build`` makes the sdist from the checkout (building the dashboard with node) and
the wheel from that sdist; the wheel is installed with its ``[pandas]`` extra at the tested
versions (``constraints.txt``) into a virtualenv in a temporary folder, outside the
repository, and its console scripts run from there with no ``PYTHONPATH``: what they import
and serve is what the wheel carries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._servers import ROOT, ServerProcess, spawn

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Nothing of the checkout on the path: the installed package alone.
OUTSIDE = {"PYTHONPATH": ""}
BUNDLE = "gateway/dashboard/dist/"

CONFIG = """\
[server]
host = "127.0.0.1"
port = 0

[tstorage.embedded]
data_dir = "data"

[[map]]
pattern = "meters/{mid:int}/{moid:int}"
cid = 1
mid = "{mid}"
moid = "{moid}"
codec = "struct:<d"
"""

# Run by the installed interpreter: append to a series, read it back, as upstream's users do.
CLIENT = """\
import json, sys
import znsocket
from gateway import TimeSeries

client = znsocket.Client.from_url(sys.argv[1])
series = znsocket.List(client, sys.argv[2])
series.append(230.5)
series.extend([231.0, 229.8])
out = {"len": len(series), "tail": series[-3:], "files": [znsocket.__file__]}
if sys.argv[3] == "gateway":
    out["pandas"] = TimeSeries(client, sys.argv[2]).latest(3).to_pandas()["v"].tolist()
client.sio.disconnect()
print(json.dumps(out))
"""


def run(argv: list[str], cwd: Path, timeout: float) -> str:
    env = dict(os.environ, **OUTSIDE)
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(wheel, sdist)`` built by ``python -m build`` from the checkout."""
    try:  # a dev extra: a clear failure rather than a skip, so the suite cannot lose this test
        import build  # noqa: F401
    except ImportError:
        pytest.fail("the `build` package is missing: run scripts/bootstrap.sh --with-test-deps")
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], ROOT, timeout=600)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def venv_bin(
    artefacts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The ``bin`` folder of a fresh virtualenv, outside the repository, holding the wheel."""
    venv = tmp_path_factory.mktemp("venv")
    assert not venv.is_relative_to(ROOT)
    run([sys.executable, "-m", "venv", str(venv)], venv, timeout=120)
    wheel = artefacts[0]
    constraints = str(ROOT / "constraints.txt")
    argv = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", constraints]
    run([*argv, f"{wheel}[pandas]"], venv, timeout=600)
    yield venv / "bin"


def test_wheel_and_sdist_carry_the_dashboard(artefacts: tuple[Path, Path]) -> None:
    wheel, sdist = artefacts
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    for name in ("index.html", "assets/dashboard.js", "assets/dashboard.css"):
        assert BUNDLE + name in in_wheel, sorted(in_wheel)
    assert not any("node_modules" in n or "/dashboard/src/" in n for n in in_wheel)
    scripts = zipfile.ZipFile(wheel).read(
        next(n for n in in_wheel if n.endswith(".dist-info/entry_points.txt"))
    )
    for script in (b"gateway =", b"znsocket =", b"tstorage-server ="):
        assert script in scripts
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert BUNDLE + "index.html" in in_sdist and BUNDLE + "assets/dashboard.js" in in_sdist
    assert {"setup.py", "pyproject.toml", "constraints.txt"} <= in_sdist
    # The sdist carries the bundle and not its sources: a wheel built from it needs no node.
    assert not any(n.startswith("gateway/dashboard/src/") for n in in_sdist)


def test_installed_gateway_serves_the_dashboard_and_series(venv_bin: Path, tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text(CONFIG)
    version = run([str(venv_bin / "gateway"), "--version"], tmp_path, timeout=60)
    assert version.startswith("gateway (tstorage-gateway) ")
    argv = [str(venv_bin / "gateway"), "run", "--config", "gateway.toml"]
    with spawn(argv, cwd=tmp_path, env=OUTSIDE, timeout=60) as gw:
        page = fetch(gw, "/")
        assert page == installed_file(venv_bin, "index.html")
        assert b'src="/assets/dashboard.js"' in page
        assert fetch(gw, "/assets/dashboard.js") == installed_file(venv_bin, "assets/dashboard.js")
        got = client_run(venv_bin, tmp_path, gw, "meters/7/3", "gateway")
        assert got["len"] == 3 and got["tail"] == [230.5, 231.0, 229.8]
        assert got["pandas"] == [230.5, 231.0, 229.8]
        assert gw.alive()
        assert gw.stop() == 0, gw.text()
    assert (tmp_path / "data").is_dir()  # the embedded TStorage kept its data beside the config


def test_installed_znsocket_and_tstorage_server_start(venv_bin: Path, tmp_path: Path) -> None:
    with spawn([str(venv_bin / "znsocket"), "--port", "0"], cwd=tmp_path, env=OUTSIDE) as zn:
        got = client_run(venv_bin, tmp_path, zn, "readings", "znsocket")
        assert got["len"] == 3 and got["tail"] == [230.5, 231.0, 229.8]
        assert not Path(got["files"][0]).is_relative_to(ROOT)
    argv = [str(venv_bin / "tstorage-server"), "--data-dir", "ts", "--port", "0"]
    with spawn(argv, cwd=tmp_path, env=OUTSIDE) as ts:
        assert ts.alive()
        assert ts.stop() == 0, ts.text()


def fetch(server: ServerProcess, path: str) -> bytes:
    with urllib.request.urlopen(server.url + path, timeout=10) as answer:
        assert answer.status == 200
        return bytes(answer.read())


def installed_file(venv_bin: Path, name: str) -> bytes:
    (site,) = venv_bin.parent.glob("lib/python3*/site-packages")
    return (site / BUNDLE / name).read_bytes()


def client_run(
    venv_bin: Path, cwd: Path, server: ServerProcess, key: str, kind: str
) -> dict[str, Any]:
    """What :data:`CLIENT` saw, run by the installed interpreter against ``server``."""
    url = f"znsocket://127.0.0.1:{server.port}"
    out = run([str(venv_bin / "python"), "-c", CLIENT, url, key, kind], cwd, timeout=120)
    got: dict[str, Any] = json.loads(out.splitlines()[-1])
    return got
