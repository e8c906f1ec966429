"""MemoryStorage against a real redis-server: random command sequences give equal answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from znsocket.storage import MemoryStorage, RedisStorage

KEYS = st.sampled_from(["a", "b", "l", "h"])
VALUES = st.sampled_from(["x", "y", "", "1", "-2", "__DELETED__", 3, 1.5])
INDICES = st.integers(min_value=-4, max_value=4)

COMMANDS = st.one_of(
    st.tuples(st.just("set"), KEYS, VALUES),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("exists"), KEYS),
    st.tuples(st.just("type"), KEYS),
    st.tuples(st.just("incr"), KEYS, st.integers(-3, 3)),
    st.tuples(st.just("rpush"), KEYS, VALUES),
    st.tuples(st.just("lpush"), KEYS, VALUES),
    st.tuples(st.just("llen"), KEYS),
    st.tuples(st.just("lindex"), KEYS, INDICES),
    st.tuples(st.just("lrange"), KEYS, INDICES, INDICES),
    st.tuples(st.just("lset"), KEYS, INDICES, VALUES),
    st.tuples(st.just("lrem"), KEYS, INDICES, VALUES),
    st.tuples(st.just("linsert"), KEYS, st.sampled_from(["BEFORE", "AFTER"]), VALUES, VALUES),
    st.tuples(st.just("lpop"), KEYS),
    st.tuples(st.just("rpop"), KEYS),
    st.tuples(st.just("hset"), KEYS, VALUES, VALUES),
    st.tuples(st.just("hget"), KEYS, VALUES),
    st.tuples(st.just("hdel"), KEYS, VALUES),
    st.tuples(st.just("hgetall"), KEYS),
    st.tuples(st.just("hexists"), KEYS, VALUES),
    st.tuples(st.just("sadd"), KEYS, VALUES),
    st.tuples(st.just("srem"), KEYS, VALUES),
    st.tuples(st.just("smembers"), KEYS),
    st.tuples(st.just("copy"), KEYS, KEYS),
)


def outcome(storage: Any, command: tuple[Any, ...]) -> Any:
    name, *args = command
    try:
        return ("ok", getattr(storage, name)(*args))
    except Exception as exc:  # compare the error kind and text, not the class identity
        return ("error", type(exc).__name__, str(exc).split(":")[0])


@pytest.fixture(scope="module")
def redis_storage(redis_url: str) -> Iterator[RedisStorage]:
    storage = RedisStorage.from_url(redis_url)
    yield storage
    storage.flushall()
    storage.client.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(COMMANDS, min_size=1, max_size=25))
def test_memory_storage_answers_like_redis(
    redis_storage: RedisStorage, commands: list[tuple[Any, ...]]
) -> None:
    memory = MemoryStorage()
    redis_storage.flushall()
    for command in commands:
        assert outcome(memory, command) == outcome(redis_storage, command), command
    for key in ("a", "b", "l", "h"):
        assert outcome(memory, ("type", key)) == outcome(redis_storage, ("type", key))
