"""Redis-like commands of our Client against our server, as a user calls them."""

from __future__ import annotations

import datetime
import os
import threading
import time

import pytest
import redis.exceptions
import socketio.exceptions

import znsocket
import znsocket.exceptions
from tests._servers import ServerProcess
from tests._upstream import free_port

pytestmark = pytest.mark.integration


def test_from_url_set_get(client: znsocket.Client) -> None:
    assert client.set("name", "Fabian") is True
    assert client.get("name") == "Fabian"
    assert client.get("missing") is None


def test_address_with_http_and_server_limit(server: ServerProcess) -> None:
    c = znsocket.Client(server.url)
    try:
        assert c.max_message_size_bytes is not None and c.max_message_size_bytes > 100_000
        assert c.sio.connected
        assert c.exists("nothing") == 0
    finally:
        c.sio.disconnect()
    assert not c.sio.connected


def test_connection_refused_is_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(znsocket.exceptions.ConnectionError) as info:
        znsocket.Client.from_url(f"znsocket://127.0.0.1:{port}")
    assert isinstance(info.value, socketio.exceptions.ConnectionError)
    assert f"Could not connect to http://127.0.0.1:{port}" in str(info.value)


def test_decode_responses_false_is_refused(server: ServerProcess) -> None:
    before = threading.active_count()
    with pytest.raises(NotImplementedError):
        znsocket.Client(server.url, decode_responses=False)
    # the refused client closed its connection: none of its threads stay behind
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_hash_commands(client: znsocket.Client) -> None:
    assert client.hset("h", "f1", "v1") == 1
    assert client.hset("h", mapping={"f2": "v2", "f3": "v3"}) == 2
    assert client.hget("h", "f1") == "v1"
    assert client.hget("h", "nope") is None
    assert client.hgetall("h") == {"f1": "v1", "f2": "v2", "f3": "v3"}
    assert client.hkeys("h") == ["f1", "f2", "f3"]
    assert client.hvals("h") == ["v1", "v2", "v3"]
    assert client.hmget("h", ["f1", "nope"]) == ["v1", None]
    assert client.hexists("h", "f2") == 1 and client.hexists("h", "x") == 0
    assert client.hdel("h", "f2") == 1
    assert client.hlen("h") == 2


def test_list_commands(client: znsocket.Client) -> None:
    assert client.rpush("l", "a") == 1
    assert client.rpush("l", "b") == 2
    assert client.lpush("l", "z") == 3
    assert client.lrange("l", 0, -1) == ["z", "a", "b"]
    assert client.lindex("l", 1) == "a"
    assert client.lindex("l", 10) is None
    client.lset("l", 0, "y")
    assert client.llen("l") == 3
    assert client.lpop("l") == "y"


def test_set_commands_return_python_sets(client: znsocket.Client) -> None:
    client.sadd("s", "m1")
    client.sadd("s", "m2")
    assert client.smembers("s") == {"m1", "m2"}
    assert client.srem("s", "m1") == 1
    assert client.scard("s") == 1
    assert client.smembers("nothing") == set()


def test_copy_delete_flushall(client: znsocket.Client) -> None:
    client.set("a", "1")
    assert client.copy("a", "b") is True
    assert client.copy("a", "b") is False
    assert client.get("b") == "1"
    assert client.delete("a") == 1
    assert client.delete("a") == 0
    client.flushall()
    assert client.exists("b") == 0


def test_errors_are_mapped(client: znsocket.Client) -> None:
    with pytest.raises(znsocket.exceptions.ResponseError, match="no such key"):
        client.lset("nolist", 0, "x")
    with pytest.raises(redis.exceptions.ResponseError):  # also redis-py's class
        client.lset("nolist", 0, "x")
    with pytest.raises(znsocket.exceptions.DataError):
        client.lindex("l", None)
    with pytest.raises(redis.exceptions.DataError):
        client.hset("h", mapping={})
    with pytest.raises(TypeError, match="Invalid arguments for get"):
        client.get("a", "b", "c", "d")
    client.set("str", "x")
    with pytest.raises(znsocket.exceptions.ResponseError, match="WRONGTYPE"):
        client.smembers("str")


def test_unknown_names(client: znsocket.Client) -> None:
    with pytest.raises(AttributeError):
        client.no_such_command("x")  # not a redis.Redis attribute: refused locally
    envelope = client.call("nosuchcmd", "x")
    assert envelope["error"]["type"] == "UnknownEventError"


def test_hmset_is_deprecated_but_works(client: znsocket.Client) -> None:
    with pytest.warns(DeprecationWarning):
        client.hmset("hm", {"a": "1", "b": "2"})
    assert client.hgetall("hm") == {"a": "1", "b": "2"}


def test_bytes_values_travel_as_attachments(client: znsocket.Client) -> None:
    assert client.set("b", b"binary-ok") is True
    assert client.get("b") == "binary-ok"


def test_delay_between_calls(server: ServerProcess) -> None:
    c = znsocket.Client(server.url, delay_between_calls=datetime.timedelta(milliseconds=100))
    try:
        t0 = time.monotonic()
        for _ in range(4):
            c.get("x")
        assert time.monotonic() - t0 >= 0.3
    finally:
        c.sio.disconnect()


def test_token_is_accepted_by_an_open_server(server: ServerProcess) -> None:
    c = znsocket.Client(server.url, token="secret")
    try:
        assert c.set("t", "1") is True
    finally:
        c.sio.disconnect()


def test_unanswered_call_times_out_after_retries(
    server: ServerProcess, client: znsocket.Client
) -> None:
    # An adapter whose owner never answers: the server gets no reply and sends no ack.
    owner = znsocket.Client(server.url)
    asker = znsocket.Client(server.url, call_timeout=0.5, retry=1)
    try:
        assert owner.call("register_adapter", key="znsocket.List:silent") is True
        t0 = time.monotonic()
        with pytest.raises(socketio.exceptions.TimeoutError):
            asker.call("adapter:get", key="znsocket.List:silent", method="__len__")
        # two attempts of 0.5 s with a 1 s pause between them, and no more
        assert 1.9 < time.monotonic() - t0 < 10
        assert asker.set("still", "usable") is True
    finally:
        owner.sio.disconnect()
        asker.sio.disconnect()


def test_token_protected_server() -> None:
    from tests.znsocket.client.conftest import start_server

    if os.environ.get("ZNSOCKET_TEST_SERVER") == "upstream":
        pytest.skip("upstream has no authentication")
    guarded = start_server("--token", "s3cret")
    try:
        c = znsocket.Client(guarded.url, token="s3cret")
        assert c.set("k", "v") is True
        c.sio.disconnect()
        with pytest.raises(znsocket.exceptions.AuthenticationError, match="refused"):
            znsocket.Client(guarded.url, token="wrong")
        with pytest.raises(znsocket.exceptions.AuthenticationError):
            znsocket.Client(guarded.url)
        assert guarded.alive()
    finally:
        guarded.stop()
