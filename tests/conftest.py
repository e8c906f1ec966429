"""Suite-wide fixtures. Package-specific fixtures live in each tests/<package>/conftest.py."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def redis_server_path() -> str:
    """Path of Debian's redis-server (installed by scripts/bootstrap.sh)."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.fail("redis-server is not installed: run scripts/bootstrap.sh --with-test-deps")
    return path
