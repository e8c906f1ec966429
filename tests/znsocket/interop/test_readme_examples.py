"""Upstream's README examples, unchanged, from upstream's client and ours, on our server.

Tried as a new user would: what the examples print (or raise) must equal what they do
with upstream's client on upstream's server.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests._servers import ServerProcess
from tests.znsocket.interop.conftest import HERE, run_driver

pytestmark = [pytest.mark.interop, pytest.mark.integration, pytest.mark.slow]

SCRIPT = HERE / "readme_examples.py"


def address(server: ServerProcess) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def expected(upstream_server: ServerProcess) -> Any:
    return run_driver("upstream", SCRIPT, address(upstream_server))


def test_examples_print_what_the_readme_says(expected: Any) -> None:
    assert expected["lists"]["printed"] == "['a', 'c']\n"
    assert expected["dicts"]["printed"] == "World\n"
    assert expected["list_adapter"]["printed"] == "5\n1\n[2, 3]\n6\n6\n"
    assert "raised" not in expected["client"]


@pytest.mark.parametrize("side", ["upstream", "ours"])
def test_examples_on_our_server(side: str, expected: Any, our_server: ServerProcess) -> None:
    assert run_driver(side, SCRIPT, address(our_server)) == expected


def test_our_client_runs_examples_on_upstream_server(
    expected: Any, upstream_server: ServerProcess
) -> None:
    assert run_driver("ours", SCRIPT, address(upstream_server)) == expected
