"""Upstream znsocket 0.3.0 and ours, mixed: every pairing must give what upstream gives
against upstream. The expectation is computed by running the same driver
upstream-vs-upstream in the test, never written down."""

from __future__ import annotations

from typing import Any

import pytest

from tests._servers import ServerProcess
from tests.znsocket.interop.conftest import HERE, run_driver, url_of

pytestmark = [pytest.mark.interop, pytest.mark.integration, pytest.mark.slow]

DRIVER = HERE / "driver.py"


@pytest.fixture(scope="module")
def expected(upstream_server: ServerProcess) -> Any:
    """What upstream's client observes on upstream's server."""
    return run_driver("upstream", DRIVER, url_of(upstream_server))


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert set(got) == set(want)
    for section in want:
        if isinstance(want[section], dict):
            for step in want[section]:
                assert got[section].get(step) == want[section][step], f"{section}.{step}"
        else:
            assert got[section] == want[section], section


def test_expectation_covers_every_area(expected: Any) -> None:
    assert expected["large"]["roundtrip"] is True
    assert expected["commands"]["get"] == "Fabian"
    assert len(expected["refresh"]) == 6


def test_upstream_client_on_our_server(expected: Any, our_server: ServerProcess) -> None:
    assert_same(run_driver("upstream", DRIVER, url_of(our_server)), expected)


def test_our_client_on_upstream_server(expected: Any, upstream_server: ServerProcess) -> None:
    assert_same(run_driver("ours", DRIVER, url_of(upstream_server)), expected)


def test_our_client_on_our_server(expected: Any, our_server: ServerProcess) -> None:
    assert_same(run_driver("ours", DRIVER, url_of(our_server)), expected)
