"""MemoryStorage used in process, as code embedding a server uses it: ``scan_iter`` and
``pipeline`` behave as upstream's store and redis-py's pipeline do."""

from __future__ import annotations

import time

import pytest

from znsocket import Storage
from znsocket.exceptions import ResponseError


def test_scan_iter_yields_live_keys_matching_a_glob() -> None:
    s = Storage()
    for name in ("user:1", "user:2", "post:1", "room:1:lock:a", "room:2:lock:b", "room:1:data"):
        s.set(name, "x")
    s.setex("user:tmp", 1, "x")
    assert sorted(s.scan_iter()) == sorted(s.content)
    assert sorted(s.scan_iter("user:*")) == ["user:1", "user:2", "user:tmp"]
    assert sorted(s.scan_iter(match="*:lock:*")) == ["room:1:lock:a", "room:2:lock:b"]
    assert list(s.scan_iter("nothing:*")) == []
    assert len(list(s.scan_iter("user:*", count=2))) == 2  # upstream: a hard limit
    assert len(list(s.scan_iter(count=100))) == 7
    time.sleep(1.1)
    assert sorted(s.scan_iter("user:*")) == ["user:1", "user:2"]  # expired keys are gone


def test_scan_iter_tolerates_writes_while_iterating() -> None:
    s = Storage()
    for i in range(100):
        s.set(f"k{i}", "x")
    seen: list[str] = []
    deleted: set[str] = set()
    for name in s.scan_iter("k*"):
        assert name not in deleted  # a key deleted before the scan reaches it is skipped
        seen.append(name)
        victim = f"k{99 - len(seen)}"
        s.delete(victim)
        deleted.add(victim)
        s.set(f"knew{len(seen)}", "x")  # keys created meanwhile are not yielded
    assert seen == [f"k{i}" for i in range(50)] + ["k99"]


def test_pipeline_queues_and_executes_like_redis_py() -> None:
    s = Storage()
    pipe = s.pipeline()
    assert pipe.set("a", "1").rpush("l", "x", "y") is pipe  # calls chain
    pipe.get("a").zadd("z", {"p": 2, "q": 1}).zrange("z", 0, -1)
    assert len(pipe) == 5
    assert pipe.execute() == [True, 2, "1", 2, ["q", "p"]]
    assert len(pipe) == 0
    assert pipe.set("b", "2").get("b").execute() == [True, "2"]  # reusable
    with s.pipeline() as p:
        p.set("c", "3")
    assert s.get("c") is None  # leaving the block without execute discards, as redis-py


def test_a_failing_pipeline_command_does_not_stop_the_others() -> None:
    s = Storage()
    s.set("str", "v")
    pipe = s.pipeline().rpush("str", "x").set("after", "1")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        pipe.execute()
    assert s.get("after") == "1"
    res = s.pipeline().rpush("str", "x").set("after", "2").execute(raise_on_error=False)
    assert isinstance(res[0], ResponseError) and res[1] is True
    with pytest.raises(AttributeError, match="not a storage command"):
        s.pipeline().execute_command("FLUSHALL")


def test_mget_with_no_keys_is_empty() -> None:
    assert Storage().mget([]) == []
