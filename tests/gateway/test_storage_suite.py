"""The shared znsocket storage suite, run against the gateway's generic keys on TStorage.

Every key of the suite is unmapped, so this checks that generic keys behave like Redis.
``test_expiry_*`` run too: expiry is stored with the log. After every test a second gateway
is rebuilt from TStorage and must hold exactly what the first holds: the log records
replay every command of the suite. The suite runs three times: with values in memory, with
(almost) every value kept in TStorage behind a reference and a tiny cache, and with writes
acknowledged from the journal (``[tstorage.journal]``) and stored in TStorage behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.storage import GatewayStorage
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.znsocket.storage_suite import *  # noqa: F403


@pytest.fixture(params=["in memory", "large values in TStorage", "writes through the journal"])
def storage(
    request: pytest.FixtureRequest,
    make_storage: Callable[[str], GatewayStorage],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    tmp_path: Path,
) -> Iterator[GatewayStorage]:
    text = meter_config(tstorage, fresh_cid(), fresh_cid())
    if request.param == "large values in TStorage":  # a value of 2 characters or more
        text = text.replace("[generic]", "[generic]\nlarge_value_bytes = 2\nvalue_cache_bytes = 8")
    journal = f'\n[tstorage.journal]\ndir = "{tmp_path / "journal"}"\nlinger = 0.02\n'
    backend = make_storage(text + journal if request.param.endswith("journal") else text)
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
