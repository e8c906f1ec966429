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


def test_memory_reclaims_expired_keys_nobody_reads() -> None:
    """Expired keys leave memory without being touched (Redis's active expiry)."""
    import time

    store = MemoryStorage()
    for i in range(2000):
        store.set(f"session:{i}", "x" * 100, px=50)
    store.set("kept", "v")
    store.expire("kept-later", 60)  # no such key: nothing to schedule
    store.set("later", "v", ex=60)
    assert len(store.content) == 2002
    time.sleep(0.2)
    assert store.get("kept") == "v"  # any command gives the sweep its turn
    assert set(store.content) == {"kept", "later"}
    assert store.ttl("later") > 50


def test_memory_expiry_changed_many_times_keeps_the_newest() -> None:
    import time

    store = MemoryStorage()
    store.set("k", "v")
    store.expire("k", 0)  # deletes at once, as Redis does
    store.set("k", "v", px=50)
    for _ in range(5000):  # the newest deadline wins, the 50 ms one no longer applies
        store.expire("k", 60)
    time.sleep(0.2)
    assert store.exists("other") == 0
    assert store.get("k") == "v" and "k" in store.content
    assert 55 < store.ttl("k") <= 60
