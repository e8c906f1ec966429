"""The shared storage suite against MemoryStorage and RedisStorage (on a real redis-server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.znsocket.storage_suite import *  # noqa: F403  (collects the suite's tests)
from znsocket.storage import MemoryStorage, RedisStorage


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    backend = RedisStorage.from_url(request.getfixturevalue("redis_url"))
    backend.flushall()
    yield backend
    backend.flushall()
    backend.client.close()
