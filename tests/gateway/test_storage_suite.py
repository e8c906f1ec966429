"""The shared znsocket storage suite, run against the gateway's generic keys on TStorage.

Every key of the suite is unmapped, so this checks that generic keys behave like Redis.
``test_expiry_*`` run too: expiry is stored with each snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from gateway.storage import GatewayStorage
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.znsocket.storage_suite import *  # noqa: F403


@pytest.fixture
def storage(
    make_storage: Callable[[str], GatewayStorage],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> Iterator[GatewayStorage]:
    backend = make_storage(meter_config(tstorage, fresh_cid(), fresh_cid()))
    backend.flushall()
    yield backend
    backend.flushall()
