"""Build hooks: the wheel and the sdist carry the built dashboard (gateway/dashboard/dist/).

Everything else about the package is in pyproject.toml. In a checkout, where the dashboard's
sources are, building either artefact first builds the bundle with node through
scripts/bootstrap-js.sh (which skips what is up to date), and fails with a clear message
when node or npm is missing. An sdist carries the built bundle and not its sources, so a
wheel built from it needs no node; neither does installing a wheel. An editable install
leaves the bundle to scripts/bootstrap.sh, as the two README commands do.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import ExecError

HERE = Path(__file__).resolve().parent
BUNDLE = HERE / "gateway" / "dashboard" / "dist"
SOURCES = HERE / "gateway" / "dashboard" / "src"
BUILDER = HERE / "scripts" / "bootstrap-js.sh"


def build_dashboard() -> None:
    """Build the dashboard bundle from its sources, or check the one an sdist carries."""
    if not (SOURCES.is_dir() and BUILDER.is_file()):
        if not (BUNDLE / "index.html").is_file():
            raise ExecError(
                f"the dashboard bundle is missing ({BUNDLE}) and its sources are not here: "
                "build from a checkout of the repository, or from an sdist made from one"
            )
        return
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise ExecError(
            f"building tstorage-gateway needs {' and '.join(missing)} (Node.js 20 or later, "
            "on PATH) to build the dashboard it serves at /; install Node.js and build again. "
            "Installing the built wheel needs no node."
        )
    done = subprocess.run(["bash", str(BUILDER)], cwd=HERE, check=False)
    if done.returncode != 0 or not (BUNDLE / "index.html").is_file():
        raise ExecError(
            f"building the dashboard failed (bash {BUILDER.relative_to(HERE)} exited with "
            f"status {done.returncode}; its message is above)"
        )


class BuildPyWithDashboard(build_py):
    """``build_py`` that builds the dashboard first, so the wheel carries it."""

    def run(self) -> None:
        if not self.editable_mode:
            build_dashboard()
        super().run()


class SdistWithDashboard(sdist):
    """``sdist`` that builds the dashboard first, so the sdist carries it."""

    def run(self) -> None:
        build_dashboard()
        super().run()


setup(cmdclass={"build_py": BuildPyWithDashboard, "sdist": SdistWithDashboard})
