"""Commands over the wire: envelopes exactly as upstream clients expect them (spec §2-§3)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.znsocket.server.conftest import RawClient

pytestmark = pytest.mark.integration


def test_set_get_envelopes(client: RawClient) -> None:
    assert client.cmd("set", "name", "Alice") == {"data": True}
    assert client.cmd("get", "name") == {"data": "Alice"}
    assert client.cmd("get", "missing") == {"data": None}


def test_set_replies_carry_the_set_type(client: RawClient) -> None:
    assert client.cmd("sadd", "s", "m1") == {"data": 1}
    assert client.cmd("smembers", "s") == {"data": ["m1"], "type": "set"}
    assert client.cmd("smembers", "none") == {"data": [], "type": "set"}


def test_tuples_and_hash_order(client: RawClient) -> None:
    client.cmd("zadd", "z", mapping={"a": 1, "b": 2})
    assert client.cmd("zrange", "z", 0, -1, withscores=True) == {"data": [["a", 1.0], ["b", 2.0]]}
    client.cmd("hset", "h", mapping={"b": "1", "a": "2"})
    assert client.cmd("hkeys", "h") == {"data": ["b", "a"]}
    assert client.cmd("hgetall", "h") == {"data": {"b": "1", "a": "2"}}


def test_typescript_client_hset_forms(client: RawClient) -> None:
    # hSet: [[], {name, mapping}], hMSet: [[key], {mapping}]
    assert client.call("hset", [[], {"name": "h", "mapping": {"f": "v"}}]) == {"data": 1}
    assert client.call("hset", [["h"], {"mapping": {"g": "w"}}]) == {"data": 1}
    assert client.cmd("hexists", "h", "f") == {"data": 1}
    assert client.cmd("hgetall", "h") == {"data": {"f": "v", "g": "w"}}


def test_integer_replies_for_the_typescript_client(client: RawClient) -> None:
    client.cmd("hset", "h", "f", "v")
    for name, args in [("hexists", ["h", "f"]), ("exists", ["h"]), ("hdel", ["h", "f"])]:
        reply = client.cmd(name, *args)
        assert reply == {"data": 1}
        assert type(reply["data"]) is int


def test_list_commands_used_by_proxies(client: RawClient) -> None:
    assert client.cmd("rpush", "znsocket.List:l", '{"a": 1}') == {"data": 1}
    assert client.cmd("rpush", "znsocket.List:l", "[1,2]") == {"data": 2}
    assert client.cmd("lindex", "znsocket.List:l", 0) == {"data": '{"a": 1}'}
    assert client.cmd("lindex", "znsocket.List:l", 9) == {"data": None}
    assert client.cmd("lset", "znsocket.List:l", 0, "__DELETED__") == {"data": True}
    assert client.cmd("lrem", "znsocket.List:l", 0, "__DELETED__") == {"data": 1}
    assert client.cmd("lrange", "znsocket.List:l", 0, -1) == {"data": ["[1,2]"]}
    assert client.cmd("copy", "znsocket.List:l", "znsocket.List:m") == {"data": True}
    assert client.cmd("copy", "znsocket.List:l", "znsocket.List:m") == {"data": False}


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "error"),
    [
        ("lset", ["nolist", 0, "x"], {}, {"msg": "no such key", "type": "ResponseError"}),
        (
            "lindex",
            ["l", None],
            {},
            {
                "msg": "Invalid input of type: 'NoneType'. Convert to a bytes, string, int or float first.",
                "type": "DataError",
            },
        ),
        (
            "hset",
            ["h"],
            {"mapping": {}},
            {"msg": "'hset' with no key value pairs", "type": "DataError"},
        ),
        (
            "set",
            ["n", True],
            {},
            {
                "msg": "Invalid input of type: 'bool'. Convert to a bytes, string, int or float first.",
                "type": "DataError",
            },
        ),
        ("nosuchcmd", [], {}, {"msg": "Unknown event: nosuchcmd", "type": "UnknownEventError"}),
    ],
)
def test_error_envelopes(
    client: RawClient,
    name: str,
    args: list[object],
    kwargs: dict[str, object],
    error: dict[str, str],
) -> None:
    assert client.call(name, [args, kwargs]) == {"error": error}


def test_wrong_arity_is_a_type_error_envelope(client: RawClient) -> None:
    reply = client.cmd("get", "a", "b", "c")
    assert reply["error"]["type"] == "TypeError"
    assert reply["error"]["msg"].startswith("Invalid arguments for get: ")
    reply = client.cmd("get", "a", nosuchoption=1)
    assert reply["error"]["type"] == "TypeError"


def test_wrongtype_is_a_response_error(client: RawClient) -> None:
    client.cmd("set", "s", "v")
    reply = client.cmd("hset", "s", "f", "v")
    assert reply == {
        "error": {
            "msg": "WRONGTYPE Operation against a key holding the wrong kind of value",
            "type": "ResponseError",
        }
    }


def test_binary_attachment_values_are_decoded(client: RawClient) -> None:
    assert client.cmd("set", "b", b"bytes") == {"data": True}
    assert client.cmd("get", "b") == {"data": "bytes"}


def test_pipeline(client: RawClient) -> None:
    message = [["set", [["p1", "v1"], {}]], ["get", [["p1"], {}]], ["smembers", [["none"], {}]]]
    reply = client.call("pipeline", [[], {"message": message}])
    assert reply == {"data": [{"data": True}, {"data": "v1"}, {"data": [], "type": "set"}]}


def test_pipeline_stops_at_the_first_error(client: RawClient) -> None:
    message = [
        ["set", [["a", "1"], {}]],
        ["set", [["b", None], {}]],
        ["set", [["c", "1"], {}]],
    ]
    reply = client.call("pipeline", [[], {"message": message}])
    assert reply["error"]["type"] == "DataError"
    assert client.cmd("get", "a") == {"data": "1"}
    assert client.cmd("get", "c") == {"data": None}


def test_pipeline_refuses_unknown_and_nested_commands(client: RawClient) -> None:
    for name in ("pipeline", "__init__", "execute_command", "scan_iter"):
        message = [["set", [["a", "1"], {}]], [name, [[], {}]], ["set", [["b", "1"], {}]]]
        reply = client.call("pipeline", [[], {"message": message}])
        assert reply == {"error": {"msg": f"Unknown event: {name}", "type": "UnknownEventError"}}
    assert client.cmd("get", "b") == {"data": None}


def test_pipeline_of_a_thousand_commands(client: RawClient) -> None:
    message = [["hset", [["h", f"f{i}", "v"], {}]] for i in range(1000)]
    reply = client.call("pipeline", [[], {"message": message}])
    assert reply == {"data": [{"data": 1}] * 1000}
    assert client.cmd("hlen", "h") == {"data": 1000}


def test_pipeline_hset_counts_new_fields_and_stops_at_a_wrong_type(client: RawClient) -> None:
    client.cmd("hset", "h", "old", "1")
    client.cmd("set", "s", "text")
    message = [
        ["hset", [["h", "old", "2"], {}]],  # existing field: 0
        ["hset", [["h", "new", "2"], {}]],  # new field: 1
        ["hset", [["h", 7, 8], {}]],  # numbers are encoded as redis-py encodes them
        ["hset", [["h"], {"mapping": {"m": "1"}}]],
        ["hset", [["fresh", "f", "v"], {}]],  # a new key
    ]
    reply = client.call("pipeline", [[], {"message": message}])
    assert reply == {"data": [{"data": 0}, {"data": 1}, {"data": 1}, {"data": 1}, {"data": 1}]}
    assert client.cmd("hgetall", "h") == {"data": {"old": "2", "new": "2", "7": "8", "m": "1"}}
    assert client.cmd("hgetall", "fresh") == {"data": {"f": "v"}}

    message = [
        ["hset", [["h", "before", "1"], {}]],
        ["hset", [["s", "f", "v"], {}]],  # a string key: WRONGTYPE ends the pipeline
        ["hset", [["h", "after", "1"], {}]],
    ]
    reply = client.call("pipeline", [[], {"message": message}])
    assert reply["error"]["type"] == "ResponseError"
    assert reply["error"]["msg"].startswith("WRONGTYPE")
    assert client.cmd("hget", "h", "before") == {"data": "1"}
    assert client.cmd("hget", "h", "after") == {"data": None}
    assert client.cmd("get", "s") == {"data": "text"}


def test_pipeline_hset_on_an_expired_hash_starts_a_new_one(client: RawClient) -> None:
    client.cmd("hset", "gone", "a", "1")
    client.cmd("expire", "gone", 1)
    time.sleep(1.1)
    message = [["hset", [["gone", "b", "2"], {}]], ["ttl", [["gone"], {}]]]
    reply = client.call("pipeline", [[], {"message": message}])
    assert reply == {"data": [{"data": 1}, {"data": -1}]}
    assert client.cmd("hgetall", "gone") == {"data": {"b": "2"}}


def test_server_config(client: RawClient) -> None:
    assert client.call("server_config") == {
        "max_http_buffer_size": 1000000,
        "async_mode": "eventlet",
        "namespace": "/znsocket",
    }


def test_clients_share_data(connect: Callable[..., RawClient], client: RawClient) -> None:
    other = connect()
    client.cmd("set", "shared", "1")
    assert other.cmd("get", "shared") == {"data": "1"}


def test_fast_path_and_generic_path_answer_alike(client: RawClient) -> None:
    # the same command as a text event (fast path) and with a binary attachment (generic path)
    assert client.cmd("set", "same", "v") == client.cmd("set", "same", b"v") == {"data": True}
    assert client.cmd("hset", "h", "f", "v") == client.cmd("hset", "h", "g", b"v") == {"data": 1}
    text_error = client.cmd("lset", "nolist", 0, "x")
    binary_error = client.cmd("lset", "nolist", 0, b"x")
    assert text_error == binary_error == {"error": {"msg": "no such key", "type": "ResponseError"}}


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"], ["websocket"]])
def test_every_transport_path_answers_in_order(
    connect: Callable[..., RawClient], transports: list[str]
) -> None:
    client = connect(transports=transports)
    watcher = connect(transports=transports)
    client.cmd("delete", f"order-{transports[-1]}")
    for i in range(100):
        assert client.cmd("rpush", f"order-{transports[-1]}", str(i)) == {"data": i + 1}
        client.emit("refresh", {"target": "t", "data": {"indices": [i]}})
    assert client.cmd("lrange", f"order-{transports[-1]}", 0, -1) == {
        "data": [str(i) for i in range(100)]
    }
    import time

    deadline = time.monotonic() + 10
    while len(watcher.refreshes) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r["data"]["indices"][0] for r in watcher.refreshes] == list(range(100))
