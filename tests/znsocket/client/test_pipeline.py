"""Pipelines of our Client against our server."""

from __future__ import annotations

import pytest
import redis.exceptions

import znsocket

pytestmark = pytest.mark.integration


def test_pipeline_results_in_order(client: znsocket.Client) -> None:
    p = client.pipeline()
    p.set("p1", "v1")
    p.get("p1")
    p.hset("ph", mapping={"a": "1", "b": "2"})
    p.hgetall("ph")
    p.rpush("pl", "x")
    p.rpush("pl", "y")
    p.sadd("ps", "m")
    p.smembers("ps")
    p.lindex("pl", 5)
    results = p.execute()
    del results[6]  # sadd's answer differs between stores (upstream memory: None; Redis: 1)
    assert results == [True, "v1", 2, {"a": "1", "b": "2"}, 1, 2, {"m"}, None]


def test_pipeline_calls_chain(client: znsocket.Client) -> None:
    client.set("a", "1")
    assert client.pipeline().exists("a").exists("b").execute() == [1, 0]


def test_pipeline_stops_at_first_error(client: znsocket.Client) -> None:
    p = client.pipeline()
    p.set("before", "1")
    p.set("bad", None)
    p.set("after", "1")
    with pytest.raises(redis.exceptions.DataError):
        p.execute()
    assert client.get("before") == "1"


def test_pipeline_keeps_its_queue_like_upstream(client: znsocket.Client) -> None:
    p = client.pipeline()
    p.incr("counter")
    assert p.execute() == [1]
    assert p.execute() == [2]


def test_thousand_command_pipeline(client: znsocket.Client) -> None:
    p = client.pipeline()
    for i in range(1000):
        p.hset("big", f"f{i}", "v")
    assert p.execute() == [1] * 1000
    assert client.hlen("big") == 1000
