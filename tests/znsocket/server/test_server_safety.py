"""Bad input gets a clear error, changes nothing, and the server stays up for others."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import socketio

from tests._servers import ServerProcess
from tests.znsocket.server.conftest import NAMESPACE, RawClient

pytestmark = pytest.mark.integration

REFUSED_EVENTS = [
    "__init__",
    "__class__",
    "__repr__",
    "__setattr__",
    "__getattribute__",
    "__dict__",
    "__reduce__",
    "_lock",
    "_data",
    "_lookup",
    "content",
    "execute_command",
    "execute_many",
    "shutdown",
    "config_set",
    "config_get",
    "flushdb",
    "scan_iter",
    "keys",
    "eval",
    "client",
    "from_url",
    "storage",
]


def snapshot(client: RawClient) -> dict[str, Any]:
    return {
        "s": client.cmd("get", "sentinel"),
        "h": client.cmd("hgetall", "sentinel-hash"),
        "l": client.cmd("lrange", "sentinel-list", 0, -1),
    }


@pytest.fixture
def seeded(client: RawClient) -> RawClient:
    client.cmd("set", "sentinel", "kept")
    client.cmd("hset", "sentinel-hash", mapping={"a": "1"})
    client.cmd("rpush", "sentinel-list", "x", "y")
    return client


@pytest.mark.parametrize("event", REFUSED_EVENTS)
def test_non_interface_events_are_refused_and_change_nothing(seeded: RawClient, event: str) -> None:
    before = snapshot(seeded)
    payloads: list[Any] = [[[], {}], [["content", {}], {}], [["FLUSHALL"], {}], [["sentinel"], {}]]
    for payload in payloads:
        assert seeded.call(event, payload) == {
            "error": {"msg": f"Unknown event: {event}", "type": "UnknownEventError"}
        }
    assert snapshot(seeded) == before


def test_refused_events_inside_compressed_and_pipeline(seeded: RawClient) -> None:
    before = snapshot(seeded)
    raw = json.dumps([["content", {}], {}]).encode()
    reply = seeded.call("compressed_message", {"event": "__setattr__", "data": b"\x00" + raw})
    assert reply["error"]["type"] == "UnknownEventError"
    message = [["__setattr__", [["content", {}], {}]]]
    reply = seeded.call("pipeline", [[], {"message": message}])
    assert reply["error"]["type"] == "UnknownEventError"
    assert snapshot(seeded) == before


@pytest.mark.parametrize(
    "payload",
    [
        "not a list",
        [["k"]],
        [["k"], {}, 1],
        ["k", {}],
        [["k"], []],
        [["k"], None],
        {"args": ["k"], "kwargs": {}},
        None,
    ],
)
def test_malformed_command_payloads(client: RawClient, payload: Any) -> None:
    reply = client.call("get", payload)
    assert reply["error"]["type"] == "MalformedMessageError"
    assert reply["error"]["msg"].startswith("Malformed message for get: ")
    assert client.cmd("set", "still", "works") == {"data": True}


def test_two_data_arguments(client: RawClient) -> None:
    reply = client.sio.call("get", (["k"], {}), namespace=NAMESPACE, timeout=10)
    assert reply["error"]["type"] == "MalformedMessageError"


@pytest.mark.parametrize(
    "payload",
    [
        "x",
        [],
        [[], []],
        [[], {"message": "set"}],
        [[], {"message": [["set"]]}],
        [[], {"message": [[1, []]]}],
    ],
)
def test_malformed_pipelines(client: RawClient, payload: Any) -> None:
    reply = client.call("pipeline", payload)
    assert reply["error"]["type"] == "MalformedMessageError"


def test_wrong_argument_types_never_crash(client: RawClient) -> None:
    cases: list[tuple[str, list[Any], dict[str, Any]]] = [
        ("hset", ["h"], {"mapping": ["not", "a", "dict"]}),
        ("hset", [["name", "as", "list"], "f", "v"], {}),
        ("lindex", ["l", {"i": 1}], {}),
        ("lrange", ["l", "a", "b"], {}),
        ("zadd", ["z", [1, 2]], {}),
        ("rpush", ["l", {"a": 1}], {}),
        ("expire", ["k", [1]], {}),
        ("set", ["k"], {"ex": "soon"}),
        ("incr", ["k", 1.5], {}),
    ]
    for name, args, kwargs in cases:
        reply = client.call(name, [args, kwargs])
        assert set(reply) == {"error"}, (name, reply)
        assert reply["error"]["type"] in {"TypeError", "DataError", "ResponseError"}, (name, reply)
    assert client.cmd("exists", "h", "l", "z", "k") == {"data": 0}


def test_server_config_with_a_payload(client: RawClient) -> None:
    reply = client.call("server_config", {"unexpected": True})
    assert reply["error"]["type"] == "MalformedMessageError"
    assert client.call("server_config")["max_http_buffer_size"] == 1000000


# ------------------------------------------------------------------ compression
def compressed(client: RawClient, event: str, data: Any) -> Any:
    return client.call("compressed_message", {"event": event, "data": data})


def gz(args: list[Any], kwargs: dict[str, Any]) -> bytes:
    raw = json.dumps([args, kwargs]).encode()
    return b"\x01" + len(raw).to_bytes(4, "big") + gzip.compress(raw)


def test_compressed_command_and_pipeline(client: RawClient) -> None:
    assert compressed(client, "set", gz(["k", "v" * 5000], {})) == {"data": True}
    assert client.cmd("strlen", "k")["error"]["type"] == "UnknownEventError"
    assert client.cmd("get", "k") == {"data": "v" * 5000}
    message = [["get", [["k"], {}]], ["exists", [["k"], {}]]]
    assert compressed(client, "pipeline", gz([], {"message": message})) == {
        "data": [{"data": "v" * 5000}, {"data": 1}]
    }
    assert compressed(client, "set", b"\x00" + json.dumps([["j", "1"], {}]).encode()) == {
        "data": True
    }
    assert compressed(client, "set", json.dumps([["legacy", "1"], {}]).encode()) == {"data": True}


def test_compressed_errors_are_mapped_like_plain_ones(client: RawClient) -> None:
    reply = compressed(client, "hset", gz(["h"], {"mapping": {}}))
    assert reply == {"error": {"msg": "'hset' with no key value pairs", "type": "DataError"}}


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "Empty assembled message"),
        (b"\x01\x00\x00\x00\x10not gzip at all!", "Failed to deserialize message"),
        (b"\x01\x00\x00", "truncated header"),
        (b"\x00[not json", "Failed to deserialize message"),
        (b"\x00{}", "two-element list"),
        (b"\x05 unknown flag, not JSON", "Failed to deserialize message"),
        ("text instead of bytes", "not binary"),
        (None, "not binary"),
    ],
)
def test_broken_compressed_messages(client: RawClient, data: Any, detail: str) -> None:
    reply = compressed(client, "set", data)
    assert reply["error"]["type"] == "DeserializationError"
    assert detail in reply["error"]["msg"]


def test_compressed_size_mismatch(client: RawClient) -> None:
    raw = json.dumps([["k", "v"], {}]).encode()
    data = b"\x01" + (len(raw) + 1).to_bytes(4, "big") + gzip.compress(raw)
    reply = compressed(client, "set", data)
    assert reply["error"] == {
        "msg": "Failed to deserialize message: Decompressed size mismatch",
        "type": "DeserializationError",
    }
    assert client.cmd("exists", "k") == {"data": 0}


def test_gzip_bomb_is_bounded(client: RawClient) -> None:
    bomb = gzip.compress(b" " * 300_000_000, compresslevel=9)
    assert len(bomb) < 1_000_000
    small_claim = b"\x01" + (100).to_bytes(4, "big") + bomb
    reply = compressed(client, "set", small_claim)
    assert "exceeds 100 bytes" in reply["error"]["msg"]
    huge_claim = b"\x01" + (300_000_000).to_bytes(4, "big") + bomb
    reply = compressed(client, "set", huge_claim)
    assert "exceeds" in reply["error"]["msg"]
    assert client.cmd("set", "alive", "1") == {"data": True}


def test_malformed_compressed_envelopes(client: RawClient) -> None:
    for payload in ["x", [1, 2], {"data": b"\x00[[],{}]"}, {"event": 5, "data": b""}]:
        assert (
            client.call("compressed_message", payload)["error"]["type"] == "MalformedMessageError"
        )


# ------------------------------------------------------------------ chunking
def chunk(
    client: RawClient,
    cid: str,
    index: int,
    total: int,
    data: Any,
    event: str = "set",
    size: int | None = None,
) -> Any:
    return client.call(
        "chunked_message",
        {
            "chunk_id": cid,
            "chunk_index": index,
            "total_chunks": total,
            "event": event,
            "data": data,
            "size": len(data) if size is None and isinstance(data, bytes) else (size or 0),
        },
    )


def test_chunked_round_trip(client: RawClient) -> None:
    value = "x" * 30_000
    buffer = b"\x00" + json.dumps([["big", value], {}]).encode()
    parts = [buffer[i : i + 10_000] for i in range(0, len(buffer), 10_000)]
    cid = str(uuid.uuid4())
    for i, part in enumerate(parts[:-1]):
        assert chunk(client, cid, i, len(parts), part) == {
            "status": "waiting",
            "received": i + 1,
            "total": len(parts),
        }
    assert chunk(client, cid, len(parts) - 1, len(parts), parts[-1]) == {"status": "complete"}
    assert client.call("get_chunked_result", {"chunk_id": cid}) == {"data": True}
    assert client.cmd("get", "big") == {"data": value}
    assert client.call("get_chunked_result", {"chunk_id": cid}) == {
        "error": {"msg": f"Chunk ID {cid} not found", "type": "ChunkNotFoundError"}
    }


def test_chunked_pipeline_and_errors_in_results(client: RawClient) -> None:
    message = [["set", [["a", "1"], {}]], ["set", [["b", None], {}]]]
    buffer = gz([], {"message": message})
    assert chunk(client, "p", 0, 1, buffer, event="pipeline") == {"status": "complete"}
    assert client.call("get_chunked_result", {"chunk_id": "p"})["error"]["type"] == "DataError"
    assert chunk(client, "bad", 0, 1, b"\x01\x00\x00\x00\x05nope") == {"status": "complete"}
    result = client.call("get_chunked_result", {"chunk_id": "bad"})
    assert result["error"]["type"] == "DeserializationError"


def test_resent_final_chunk_runs_the_command_once(client: RawClient) -> None:
    buffer = b"\x00" + json.dumps([["counter"], {}]).encode()
    head, tail = buffer[:5], buffer[5:]
    assert chunk(client, "c", 0, 2, head, event="incr")["status"] == "waiting"
    assert chunk(client, "c", 1, 2, tail, event="incr") == {"status": "complete"}
    assert chunk(client, "c", 1, 2, tail, event="incr") == {"status": "complete"}
    assert client.call("get_chunked_result", {"chunk_id": "c"}) == {"data": 1}
    assert client.cmd("get", "counter") == {"data": "1"}


def test_incomplete_and_unknown_results(client: RawClient) -> None:
    chunk(client, "half", 0, 2, b"\x00[[")
    assert client.call("get_chunked_result", {"chunk_id": "half"}) == {
        "error": {"msg": "Chunk ID half not complete", "type": "ChunkIncompleteError"}
    }
    for payload in [{"chunk_id": "nope"}, {}, "x", {"chunk_id": 5}]:
        reply = client.call("get_chunked_result", payload)
        assert reply["error"]["type"] == "ChunkNotFoundError"


@pytest.mark.parametrize(
    ("kwargs", "error_type"),
    [
        ({"index": 0, "total": 2, "data": b"abc", "size": 7}, "ChunkSizeError"),
        ({"index": 2, "total": 2, "data": b"abc"}, "ChunkError"),
        ({"index": -1, "total": 2, "data": b"abc"}, "ChunkError"),
        ({"index": 0, "total": 10**9, "data": b"abc"}, "ChunkLimitError"),
        ({"index": 0, "total": 0, "data": b"abc"}, "ChunkLimitError"),
        ({"index": 0, "total": 2, "data": "text"}, "ChunkDecodeError"),
        ({"index": "0", "total": 2, "data": b"abc"}, "ChunkDecodeError"),
    ],
)
def test_bad_chunks(client: RawClient, kwargs: dict[str, Any], error_type: str) -> None:
    reply = chunk(client, "bad-" + error_type, **kwargs)
    assert reply["error"]["type"] == error_type
    assert client.cmd("set", "alive", "1") == {"data": True}


def test_chunk_metadata_must_not_change(client: RawClient) -> None:
    chunk(client, "m", 0, 3, b"a")
    assert chunk(client, "m", 1, 4, b"b")["error"]["type"] == "ChunkError"
    assert chunk(client, "m", 1, 3, b"b", event="hset")["error"]["type"] == "ChunkError"


def test_malformed_chunk_payload(client: RawClient) -> None:
    for payload in ["x", [1], {}]:
        assert client.call("chunked_message", payload)["error"]["type"] == "ChunkDecodeError"
    assert client.call("chunked_message")["error"]["type"] == "MalformedMessageError"


def test_open_chunk_ids_per_connection_are_bounded(client: RawClient) -> None:
    for i in range(16):
        assert chunk(client, f"open-{i}", 0, 2, b"x")["status"] == "waiting"
    reply = chunk(client, "one-too-many", 0, 2, b"x")
    assert reply["error"]["type"] == "ChunkLimitError"
    assert "this connection" in reply["error"]["msg"]


def test_disconnecting_mid_chunked_message_frees_its_state(
    connect: Callable[..., RawClient],
) -> None:
    # 70 connections x 16 abandoned messages exceed the server-wide bound (1024) unless
    # every disconnect releases its connection's messages
    for round_ in range(70):
        c = connect()
        for i in range(16):
            assert chunk(c, f"r{round_}-{i}", 0, 2, b"x" * 100)["status"] == "waiting", round_
        c.close()
    survivor = connect()
    assert chunk(survivor, "after", 0, 1, b"\x00" + b'[["k","v"],{}]') == {"status": "complete"}
    assert survivor.call("get_chunked_result", {"chunk_id": "after"}) == {"data": True}


def test_chunk_results_are_private_to_the_connection(connect: Callable[..., RawClient]) -> None:
    a, b = connect(), connect()
    chunk(a, "mine", 0, 1, b"\x00" + b'[["k","v"],{}]')
    assert (
        b.call("get_chunked_result", {"chunk_id": "mine"})["error"]["type"] == "ChunkNotFoundError"
    )
    assert a.call("get_chunked_result", {"chunk_id": "mine"}) == {"data": True}


# ------------------------------------------------------------------ transport limits
def test_oversized_packet_drops_only_that_connection(
    server: ServerProcess, connect: Callable[..., RawClient]
) -> None:
    bystander = connect()
    offender = connect()
    disconnected: list[bool] = []
    offender.sio.on("disconnect", lambda *a: disconnected.append(True), namespace=NAMESPACE)
    with pytest.raises(socketio.exceptions.TimeoutError):
        offender.sio.call(
            "set", [["oversized", "v" * 1_200_000], {}], namespace=NAMESPACE, timeout=3
        )
    assert bystander.cmd("set", "bystander", "ok") == {"data": True}
    assert bystander.cmd("exists", "oversized") == {"data": 0}
    assert server.alive()
    assert not offender.sio.connected or disconnected


def test_abrupt_disconnect_mid_request(
    server: ServerProcess, connect: Callable[..., RawClient]
) -> None:
    import socket as pysocket

    # half a websocket handshake, then a truncated frame, then a reset
    with pysocket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
    with pysocket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        raw.recv(4096)
        raw.sendall(b"\x81\xfe\x10\x00\x00\x00\x00\x00partial")
    assert connect().cmd("set", "after-reset", "1") == {"data": True}
    assert server.alive()


def test_garbage_socketio_packets_close_only_that_connection(
    server: ServerProcess, connect: Callable[..., RawClient]
) -> None:
    import websocket

    bystander = connect()
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket", timeout=10
    )
    assert str(ws.recv()).startswith("0{")  # Engine.IO OPEN (a text frame)
    ws.send("40/znsocket,")
    assert str(ws.recv()).startswith("40/znsocket,")
    for garbage in ('42/znsocket,1["get",[["k"],{}', "42/znsocket,1" + "[" * 100_000, "4x", "9"):
        try:
            ws.send(garbage)
        except OSError:
            break
    ws.close()
    assert bystander.cmd("set", "still-up", "1") == {"data": True}
    assert server.alive()
