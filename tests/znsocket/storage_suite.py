"""Reusable test-suite for any implementation of the znsocket storage command interface.

Every test takes one fixture, ``storage``: an empty object implementing
:class:`znsocket.storage.StorageCommands`. The expected values are Redis's (checked by
running this very suite against a real redis-server through ``RedisStorage``), so a
backend that passes behaves like Redis for every znsocket client.

How to run it against a backend (this is how ``tests/znsocket/server/
test_storage_backends.py`` runs it for ``MemoryStorage`` and ``RedisStorage``)::

    # tests/<your_package>/test_storage_suite.py
    import pytest
    from tests.znsocket.storage_suite import *  # noqa: F403  (collects the tests)

    @pytest.fixture
    def storage():
        backend = MyStorage(...)
        backend.flushall()          # each test starts empty
        yield backend
        backend.flushall()

Tests named ``test_expiry_*`` need time-to-live support (one sleeps about a second);
deselect them with ``-k "not expiry"`` for a backend without it, and say so.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis.exceptions

from znsocket.storage import COMMANDS

# The backends raise znsocket's or redis-py's errors; both derive from redis-py's classes.
ResponseError = redis.exceptions.ResponseError
DataError = redis.exceptions.DataError
WRONGTYPE = "WRONGTYPE"

__all__ = [name for name in dir() if name.startswith("test_")]  # refreshed at the end


def _is_int(value: Any) -> bool:
    return type(value) is int


# ------------------------------------------------------------------ interface
def test_storage_offers_every_interface_command(storage: Any) -> None:
    missing = sorted(name for name in COMMANDS if not callable(getattr(storage, name, None)))
    assert missing == []


# --------------------------------------------------------------------- strings
def test_set_get(storage: Any) -> None:
    assert storage.set("name", "Alice") is True
    assert storage.get("name") == "Alice"
    assert storage.get("missing") is None


def test_set_encodes_numbers_and_bytes(storage: Any) -> None:
    storage.set("i", 5)
    storage.set("f", 1.5)
    storage.set("b", b"bytes")
    assert storage.get("i") == "5"
    assert storage.get("f") == "1.5"
    assert storage.get("b") == "bytes"


@pytest.mark.parametrize("value", [None, True, {"a": 1}, [1, 2]])
def test_set_refuses_values_redis_cannot_hold(storage: Any, value: Any) -> None:
    with pytest.raises(DataError, match="Invalid input of type"):
        storage.set("k", value)
    assert storage.exists("k") == 0


def test_set_nx_xx(storage: Any) -> None:
    assert storage.set("k", "1", nx=True) is True
    assert storage.set("k", "2", nx=True) is None
    assert storage.get("k") == "1"
    assert storage.set("other", "1", xx=True) is None
    assert storage.exists("other") == 0
    assert storage.set("k", "3", xx=True) is True
    assert storage.get("k") == "3"


def test_set_get_option_returns_old_value(storage: Any) -> None:
    assert storage.set("k", "a", get=True) is None
    assert storage.set("k", "b", get=True) == "a"
    assert storage.get("k") == "b"


def test_set_overwrites_other_types(storage: Any) -> None:
    storage.rpush("k", "x")
    assert storage.set("k", "v") is True
    assert storage.type("k") == "string"


def test_get_on_wrong_type(storage: Any) -> None:
    storage.rpush("l", "x")
    with pytest.raises(ResponseError, match=WRONGTYPE):
        storage.get("l")


def test_mget(storage: Any) -> None:
    storage.set("a", "1")
    storage.set("b", "2")
    storage.rpush("l", "x")
    assert storage.mget(["a", "b", "missing", "l"]) == ["1", "2", None, None]
    assert storage.mget("a", "b") == ["1", "2"]
    assert storage.mget([]) == []  # redis-py answers without asking the server


def test_incr_decr(storage: Any) -> None:
    assert storage.incr("n") == 1
    assert storage.incr("n", 5) == 6
    assert storage.decr("n") == 5
    assert storage.decr("n", 10) == -5
    assert storage.get("n") == "-5"
    storage.set("s", "abc")
    with pytest.raises(ResponseError, match="not an integer"):
        storage.incr("s")
    storage.set("f", "1.5")
    with pytest.raises(ResponseError, match="not an integer"):
        storage.incr("f")


def test_incr_overflow(storage: Any) -> None:
    storage.set("n", str(2**63 - 1))
    with pytest.raises(ResponseError, match="overflow"):
        storage.incr("n")
    assert storage.get("n") == str(2**63 - 1)


# ---------------------------------------------------------------------- keys
def test_delete_and_exists(storage: Any) -> None:
    storage.set("a", "1")
    storage.set("b", "1")
    assert storage.exists("a") == 1
    assert storage.exists("a", "a", "b", "c") == 3
    assert storage.delete("a") == 1
    assert storage.delete("a") == 0
    assert storage.delete("b", "c") == 1
    assert storage.exists("a") == 0
    assert _is_int(storage.exists("a"))


def test_type(storage: Any) -> None:
    storage.set("s", "v")
    storage.rpush("l", "v")
    storage.hset("h", "f", "v")
    storage.sadd("st", "v")
    storage.zadd("z", {"v": 1})
    assert [storage.type(k) for k in ("s", "l", "h", "st", "z", "none")] == [
        "string",
        "list",
        "hash",
        "set",
        "zset",
        "none",
    ]


def test_flushall(storage: Any) -> None:
    storage.set("a", "1")
    storage.rpush("l", "x")
    assert storage.flushall() is True
    assert storage.exists("a", "l") == 0


def test_copy(storage: Any) -> None:
    storage.hset("h", mapping={"a": "1", "b": "2"})
    assert storage.copy("h", "h2") is True
    assert storage.hgetall("h2") == {"a": "1", "b": "2"}
    storage.hset("h2", "a", "changed")
    assert storage.hget("h", "a") == "1"  # a deep copy
    assert storage.copy("h", "h2") is False  # target exists
    assert storage.copy("missing", "x") is False
    assert storage.copy("h", "h2", replace=True) is True
    assert storage.hget("h2", "a") == "1"


def test_copy_string_and_list(storage: Any) -> None:
    storage.set("s", "v")
    storage.rpush("l", "a", "b")
    assert storage.copy("s", "s2") is True
    assert storage.copy("l", "l2") is True
    storage.rpush("l2", "c")
    assert storage.get("s2") == "v"
    assert storage.lrange("l", 0, -1) == ["a", "b"]
    assert storage.lrange("l2", 0, -1) == ["a", "b", "c"]


def test_copy_onto_itself_is_an_error(storage: Any) -> None:
    storage.set("s", "v")
    with pytest.raises(ResponseError, match="same"):
        storage.copy("s", "s")


# -------------------------------------------------------------------- hashes
def test_hset_hget(storage: Any) -> None:
    assert storage.hset("h", "f", "v") == 1
    assert storage.hset("h", "f", "w") == 0  # updated, not new
    assert storage.hget("h", "f") == "w"
    assert storage.hget("h", "missing") is None
    assert storage.hget("missing", "f") is None


def test_hset_mapping_items_and_keyword_name(storage: Any) -> None:
    assert storage.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert storage.hset("h", items=["c", "3", "a", "x"]) == 1
    assert storage.hset(name="h", mapping={"d": 4}) == 1
    assert storage.hset("h", "e", 5.5, mapping={"f": "6"}) == 2
    assert storage.hgetall("h") == {"a": "x", "b": "2", "c": "3", "d": "4", "e": "5.5", "f": "6"}


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"mapping": {}}, "'hset' with no key value pairs"),
        ({}, "'hset' with no key value pairs"),
        ({"key": "f"}, "Invalid input of type: 'NoneType'"),
        ({"value": "v"}, "'hset' with no key value pairs"),
        ({"key": "f", "value": True}, "Invalid input of type: 'bool'"),
        ({"key": "f", "value": {"a": 1}}, "Invalid input of type: 'dict'"),
        ({"mapping": {"a": "1", "b": None}}, "Invalid input of type: 'NoneType'"),
    ],
)
def test_hset_data_errors(storage: Any, kwargs: dict[str, Any], text: str) -> None:
    with pytest.raises(DataError, match=text):
        storage.hset("h", **kwargs)
    assert storage.exists("h") == 0  # nothing written, not even partially


def test_hset_on_wrong_type(storage: Any) -> None:
    storage.set("s", "v")
    with pytest.raises(ResponseError, match=WRONGTYPE):
        storage.hset("s", "f", "v")


def test_hash_field_order_is_insertion_order(storage: Any) -> None:
    storage.hset("h", "b", "1")
    storage.hset("h", "a", "2")
    storage.hset("h", "c", "3")
    storage.hset("h", "b", "4")  # overwrite keeps the position
    assert storage.hkeys("h") == ["b", "a", "c"]
    assert storage.hvals("h") == ["4", "2", "3"]
    assert list(storage.hgetall("h").items()) == [("b", "4"), ("a", "2"), ("c", "3")]


def test_hash_fields_are_strings(storage: Any) -> None:
    storage.hset("h", 5, "v")
    assert storage.hkeys("h") == ["5"]
    assert storage.hget("h", 5) == "v"
    assert storage.hget("h", "5") == "v"


def test_hmget(storage: Any) -> None:
    storage.hset("h", mapping={"a": "1", "b": "2"})
    assert storage.hmget("h", ["a", "b", "c"]) == ["1", "2", None]
    assert storage.hmget("h", "a", "b") == ["1", "2"]
    assert storage.hmget("missing", ["a"]) == [None]


def test_hlen_hexists_hdel(storage: Any) -> None:
    storage.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    assert storage.hlen("h") == 3
    assert storage.hexists("h", "a") == 1
    assert _is_int(storage.hexists("h", "a"))
    assert storage.hexists("h", "z") == 0
    assert storage.hexists("missing", "a") == 0
    assert storage.hdel("h", "a") == 1
    assert storage.hdel("h", "a") == 0
    assert storage.hdel("h", "b", "c", "z") == 2
    assert storage.exists("h") == 0  # an emptied hash is gone
    assert storage.hlen("missing") == 0
    assert storage.hkeys("missing") == []
    assert storage.hvals("missing") == []
    assert storage.hgetall("missing") == {}


def test_hash_reads_on_wrong_type(storage: Any) -> None:
    storage.set("s", "v")
    for call in (
        lambda: storage.hgetall("s"),
        lambda: storage.hget("s", "f"),
        lambda: storage.hkeys("s"),
        lambda: storage.hlen("s"),
    ):
        with pytest.raises(ResponseError, match=WRONGTYPE):
            call()


# --------------------------------------------------------------------- lists
def test_rpush_lpush_return_length(storage: Any) -> None:
    assert storage.rpush("l", "a") == 1
    assert storage.rpush("l", "b", "c") == 3
    assert storage.lpush("l", "z") == 4
    assert storage.lpush("l", "y", "x") == 6
    assert storage.lrange("l", 0, -1) == ["x", "y", "z", "a", "b", "c"]
    assert storage.llen("l") == 6
    assert storage.llen("missing") == 0


def test_push_refuses_none_and_containers(storage: Any) -> None:
    with pytest.raises(DataError):
        storage.rpush("l", None)
    with pytest.raises(DataError):
        storage.rpush("l", ["a"])
    assert storage.exists("l") == 0


def test_push_on_wrong_type(storage: Any) -> None:
    storage.set("s", "v")
    with pytest.raises(ResponseError, match=WRONGTYPE):
        storage.rpush("s", "x")


def test_lindex(storage: Any) -> None:
    storage.rpush("l", "a", "b", "c")
    assert storage.lindex("l", 0) == "a"
    assert storage.lindex("l", -1) == "c"
    assert storage.lindex("l", 3) is None
    assert storage.lindex("l", -4) is None
    assert storage.lindex("missing", 0) is None
    with pytest.raises(DataError):
        storage.lindex("l", None)
    with pytest.raises(ResponseError, match="not an integer"):
        storage.lindex("l", "one")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, -1, ["a", "b", "c", "d"]),
        (1, 2, ["b", "c"]),
        (1, -2, ["b", "c"]),
        (-2, 1, []),
        (-2, -1, ["c", "d"]),
        (2, 100, ["c", "d"]),
        (-100, 0, ["a"]),
        (3, 1, []),
        (5, 10, []),
        (0, -5, []),
    ],
)
def test_lrange(storage: Any, start: int, end: int, expected: list[str]) -> None:
    storage.rpush("l", "a", "b", "c", "d")
    assert storage.lrange("l", start, end) == expected


def test_lrange_missing(storage: Any) -> None:
    assert storage.lrange("missing", 0, -1) == []


def test_lset(storage: Any) -> None:
    storage.rpush("l", "a", "b")
    assert storage.lset("l", 0, "x") is True
    assert storage.lset("l", -1, "y") is True
    assert storage.lrange("l", 0, -1) == ["x", "y"]
    with pytest.raises(ResponseError, match="index out of range"):
        storage.lset("l", 2, "z")
    with pytest.raises(ResponseError, match="no such key"):
        storage.lset("missing", 0, "z")


def test_lrem(storage: Any) -> None:
    storage.rpush("l", "a", "b", "a", "c", "a")
    assert storage.lrem("l", 1, "a") == 1
    assert storage.lrange("l", 0, -1) == ["b", "a", "c", "a"]
    assert storage.lrem("l", -1, "a") == 1
    assert storage.lrange("l", 0, -1) == ["b", "a", "c"]
    assert storage.lrem("l", 5, "a") == 1  # fewer matches than asked is fine
    assert storage.lrem("l", 0, "zzz") == 0
    assert storage.lrem("missing", 0, "a") == 0


def test_lrem_all_and_deleted_marker_pattern(storage: Any) -> None:
    # how List.__delitem__ deletes: overwrite with a marker, then remove all markers
    storage.rpush("l", *"abcde")
    storage.lset("l", 1, "__DELETED__")
    storage.lset("l", 3, "__DELETED__")
    assert storage.lrem("l", 0, "__DELETED__") == 2
    assert storage.lrange("l", 0, -1) == ["a", "c", "e"]


def test_lrem_none_arguments(storage: Any) -> None:
    storage.rpush("l", "a")
    with pytest.raises(DataError):
        storage.lrem("l", None, "a")
    with pytest.raises(DataError):
        storage.lrem("l", 0, None)


def test_emptied_list_is_deleted(storage: Any) -> None:
    storage.rpush("l", "a", "a")
    storage.lrem("l", 0, "a")
    assert storage.exists("l") == 0
    assert storage.llen("l") == 0


def test_linsert(storage: Any) -> None:
    storage.rpush("l", "a", "c", "c")
    assert storage.linsert("l", "BEFORE", "c", "b") == 4  # before the first match
    assert storage.linsert("l", "after", "c", "d") == 5
    assert storage.lrange("l", 0, -1) == ["a", "b", "c", "d", "c"]
    assert storage.linsert("l", "BEFORE", "zzz", "x") == -1
    assert storage.linsert("missing", "BEFORE", "a", "x") == 0
    with pytest.raises(ResponseError, match="syntax error"):
        storage.linsert("l", "MIDDLE", "a", "x")


def test_lpop_rpop(storage: Any) -> None:
    storage.rpush("l", "a", "b", "c", "d")
    assert storage.lpop("l") == "a"
    assert storage.rpop("l") == "d"
    assert storage.lpop("l", 5) == ["b", "c"]
    assert storage.lpop("l") is None
    assert storage.exists("l") == 0
    storage.rpush("l", "a", "b", "c")
    assert storage.rpop("l", 2) == ["c", "b"]
    assert storage.lpop("missing") is None


# ---------------------------------------------------------------------- sets
def test_sadd_smembers_srem(storage: Any) -> None:
    assert storage.sadd("s", "a") == 1
    assert storage.sadd("s", "a", "b", "c") == 2
    assert storage.smembers("s") == {"a", "b", "c"}
    assert isinstance(storage.smembers("s"), set)
    assert storage.scard("s") == 3
    assert storage.srem("s", "a") == 1
    assert storage.srem("s", "a") == 0
    assert storage.srem("s", "b", "c") == 2
    assert storage.exists("s") == 0
    assert storage.smembers("missing") == set()
    assert storage.scard("missing") == 0


def test_sismember_smove(storage: Any) -> None:
    storage.sadd("s", "a", "b")
    assert storage.sismember("s", "a") == 1
    assert _is_int(storage.sismember("s", "a"))
    assert storage.sismember("s", "z") == 0
    assert storage.smove("s", "t", "a") == 1
    assert storage.smove("s", "t", "zzz") == 0
    assert storage.smembers("t") == {"a"}
    assert storage.smembers("s") == {"b"}
    assert storage.smove("missing", "t", "a") == 0


def test_srandmember(storage: Any) -> None:
    assert storage.srandmember("missing") is None
    assert storage.srandmember("missing", 2) == []
    storage.sadd("s", "a", "b", "c")
    assert storage.srandmember("s") in {"a", "b", "c"}
    picked = storage.srandmember("s", 2)
    assert len(picked) == 2
    assert len(set(picked)) == 2
    assert set(storage.srandmember("s", 10)) == {"a", "b", "c"}
    assert len(storage.srandmember("s", -5)) == 5


def test_set_commands_on_wrong_type(storage: Any) -> None:
    storage.hset("h", "f", "v")
    for call in (
        lambda: storage.smembers("h"),
        lambda: storage.sadd("h", "x"),
        lambda: storage.sismember("h", "x"),
        lambda: storage.srandmember("h"),
    ):
        with pytest.raises(ResponseError, match=WRONGTYPE):
            call()


# --------------------------------------------------------------- sorted sets
def test_zadd_zrange(storage: Any) -> None:
    assert storage.zadd("z", {"b": 2, "a": 1, "c": 3}) == 3
    assert storage.zadd("z", {"a": 5}) == 0
    assert storage.zadd("z", {"a": 1, "d": 0}, ch=True) == 2
    assert storage.zrange("z", 0, -1) == ["d", "a", "b", "c"]
    assert storage.zrange("z", 0, 1, withscores=True) == [("d", 0.0), ("a", 1.0)]
    assert storage.zrange("z", 0, 0, desc=True) == ["c"]
    assert storage.zcard("z") == 4
    assert storage.zscore("z", "b") == 2.0
    assert storage.zscore("z", "zzz") is None


def test_zadd_nx_xx_and_ties(storage: Any) -> None:
    storage.zadd("z", {"b": 1, "a": 1})
    assert storage.zadd("z", {"a": 9, "c": 1}, nx=True) == 1
    assert storage.zadd("z", {"a": 9, "e": 1}, xx=True) == 0
    assert storage.zrange("z", 0, -1, withscores=True) == [("b", 1.0), ("c", 1.0), ("a", 9.0)]


def test_zadd_errors(storage: Any) -> None:
    with pytest.raises(DataError):
        storage.zadd("z", {})
    with pytest.raises(ResponseError, match="not a valid float"):
        storage.zadd("z", {"a": "abc"})
    storage.set("s", "v")
    with pytest.raises(ResponseError, match=WRONGTYPE):
        storage.zadd("s", {"a": 1})


def test_zrangebyscore(storage: Any) -> None:
    storage.zadd("z", {"a": 1, "b": 2, "c": 3, "d": 4})
    assert storage.zrangebyscore("z", 2, 3) == ["b", "c"]
    assert storage.zrangebyscore("z", "(2", "+inf") == ["c", "d"]
    assert storage.zrangebyscore("z", "-inf", "(3", withscores=True) == [("a", 1.0), ("b", 2.0)]
    assert storage.zrangebyscore("z", 1, 4, start=1, num=2) == ["b", "c"]
    assert storage.zrevrangebyscore("z", 4, 2) == ["d", "c", "b"]
    assert storage.zrevrangebyscore("z", "+inf", "-inf", start=0, num=1) == ["d"]
    assert storage.zcount("z", 2, 3) == 2
    assert storage.zcount("z", "(1", "(4") == 2
    assert storage.zrangebyscore("missing", 0, 1) == []
    with pytest.raises(DataError):
        storage.zrangebyscore("z", 1, 2, start=1)
    with pytest.raises(ResponseError, match="not a float"):
        storage.zrangebyscore("z", "low", 2)


def test_zrem(storage: Any) -> None:
    storage.zadd("z", {"a": 1, "b": 2})
    assert storage.zrem("z", "a", "zzz") == 1
    assert storage.zrem("z", "b") == 1
    assert storage.exists("z") == 0
    assert storage.zcard("z") == 0


# -------------------------------------------------------------------- expiry
def test_expiry_expire_and_ttl(storage: Any) -> None:
    storage.set("k", "v")
    assert storage.ttl("k") == -1
    assert storage.ttl("missing") == -2
    assert storage.expire("k", 100) == 1
    assert _is_int(storage.expire("k", 100))
    assert storage.ttl("k") == 100
    assert storage.expire("missing", 100) == 0
    storage.set("k", "w")  # SET clears the time to live
    assert storage.ttl("k") == -1


def test_expiry_keys_expire(storage: Any) -> None:
    storage.set("s", "v", px=150)
    storage.setex("s2", 1, "v")
    storage.rpush("l", "a")
    storage.expire("l", 1)
    storage.hset("h", "f", "v")
    storage.expire("h", 1)
    assert storage.ttl("s2") == 1
    time.sleep(1.1)
    assert storage.get("s") is None
    assert storage.get("s2") is None
    assert storage.llen("l") == 0
    assert storage.hget("h", "f") is None
    assert storage.exists("s", "s2", "l", "h") == 0
    assert storage.set("s", "new", nx=True) is True  # an expired key is gone for writes too
    assert storage.ttl("s") == -1


def test_expiry_cleared_by_delete(storage: Any) -> None:
    storage.set("k", "v", ex=100)
    storage.delete("k")
    storage.rpush("k", "a")
    assert storage.ttl("k") == -1


def test_expiry_copied_with_the_value(storage: Any) -> None:
    storage.set("k", "v", ex=100)
    assert storage.copy("k", "k2") is True
    assert 99 <= storage.ttl("k2") <= 100


def test_expiry_non_positive_deletes(storage: Any) -> None:
    storage.set("k", "v")
    assert storage.expire("k", 0) == 1
    assert storage.exists("k") == 0


def test_expiry_validation(storage: Any) -> None:
    with pytest.raises(ResponseError, match="invalid expire time"):
        storage.set("k", "v", ex=0)
    with pytest.raises(ResponseError, match="invalid expire time"):
        storage.setex("k", -1, "v")


# ------------------------------------------------------------ batches
def test_execute_many_runs_in_order(storage: Any) -> None:
    results = storage.execute_many(
        [("set", ["p1", "v1"], {}), ("get", ["p1"], {}), ("rpush", ["l", "a", "b"], {})]
    )
    assert results == [True, "v1", 2]


def test_execute_many_stops_at_the_first_error(storage: Any) -> None:
    results = storage.execute_many(
        [("set", ["a", "1"], {}), ("lset", ["nolist", 0, "x"], {}), ("set", ["b", "1"], {})]
    )
    assert results[0] is True
    assert isinstance(results[1], ResponseError)
    assert len(results) == 2
    assert storage.get("a") == "1"


def test_execute_many_argument_error(storage: Any) -> None:
    results = storage.execute_many([("set", ["a", None], {})])
    assert len(results) == 1
    assert isinstance(results[0], DataError)


def test_execute_many_integer_replies(storage: Any) -> None:
    storage.hset("h", "f", "v")
    results = storage.execute_many([("hexists", ["h", "f"], {}), ("hexists", ["h", "x"], {})])
    assert results == [1, 0]
    assert all(_is_int(r) for r in results)


# ------------------------------------------------------ what znsocket objects store
def test_values_are_returned_byte_identical(storage: Any) -> None:
    texts = ['{"a": 1}', '{"a":1}', '"\\u00fc"', "ü", "[1, 2]", "null", " padded ", ""]
    storage.rpush("znsocket.List:l", *texts)
    storage.hset("znsocket.Dict:d", mapping={str(i): t for i, t in enumerate(texts)})
    assert storage.lrange("znsocket.List:l", 0, -1) == texts
    assert storage.hvals("znsocket.Dict:d") == texts


__all__ = [name for name in dir() if name.startswith("test_")]
