"""The ``gateway`` command line as a user meets it: its version, and a missing configuration."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests._servers import ROOT, VENV_BIN


def gateway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "gateway"), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_version_is_the_package_version(tmp_path: Path) -> None:
    done = gateway("--version", cwd=tmp_path)
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version is not None
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"gateway (tstorage-gateway) {version.group(1)}"


@pytest.mark.parametrize("command", [["run"], ["export", "--key", "meters/7/3"]])
def test_no_config_outside_a_checkout_names_the_default_and_how_to_give_one(
    tmp_path: Path, command: list[str]
) -> None:
    done = gateway(*command, cwd=tmp_path)
    assert done.returncode == 2
    assert "no --config given" in done.stderr
    assert f"config/gateway.toml is not in the current folder ({tmp_path})" in done.stderr
    assert f"gateway {command[0]} --config FILE" in done.stderr
    assert "check the path given to --config" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was started or created


def test_a_missing_config_given_blames_the_path(tmp_path: Path) -> None:
    done = gateway("run", "--config", "missing.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert "check the path given to --config" in done.stderr
    assert "no --config given" not in done.stderr
