"""The shared znsocket storage suite, run against the gateway's generic keys on TStorage.

Every key of the suite is unmapped, so this checks that generic keys behave like Redis.
``test_expiry_*`` run too: expiry is stored with the log. After every test a second gateway
is rebuilt from TStorage and must hold exactly what the first holds: the log records
replay every command of the suite. The suite runs twice: with values in memory, and with
(almost) every value kept in TStorage behind a reference and a tiny cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gateway.storage import GatewayStorage
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.znsocket.storage_suite import *  # noqa: F403


@pytest.fixture(params=["in memory", "large values in TStorage"])
def storage(
    request: pytest.FixtureRequest,
    make_storage: Callable[[str], GatewayStorage],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> Iterator[GatewayStorage]:
    text = meter_config(tstorage, fresh_cid(), fresh_cid())
    if request.param != "in memory":  # every value of 2 characters or more is a reference
        text = text.replace("[generic]", "[generic]\nlarge_value_bytes = 2\nvalue_cache_bytes = 8")
    backend = make_storage(text)
    backend.flushall()
    yield backend
    backend.generic.catch_up(force=True)
    assert held(make_storage(text)) == held(backend)
    backend.flushall()


def held(gw: GatewayStorage) -> dict[str, tuple[str, object, bool]]:
    """Every generic key: type, whole value, and whether it has a time to live."""
    out = {}
    for name in sorted(gw.generic.mem.content):
        state = gw.generic.state(name)
        if state is not None:
            out[name] = (state["t"], state.get("v"), state.get("x") is not None)
    return out
