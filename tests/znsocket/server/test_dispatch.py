"""The sans-IO dispatcher and the wiring helpers, without sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest
import socketio

from znsocket.exceptions import PermissionDeniedError
from znsocket.protocol.sio_packets import has_binary
from znsocket.server import Dispatcher, attach_events, create_app
from znsocket.server.routing import RouteTable
from znsocket.server.transport import BufferedSocket, unmask
from znsocket.storage import COMMANDS, MemoryStorage
from znsocket.storage.base import StorageCommands


def test_only_interface_commands_are_bound() -> None:
    dispatcher = Dispatcher(MemoryStorage())
    assert set(dispatcher.commands) == set(COMMANDS)
    assert "execute_many" not in dispatcher.commands
    assert dispatcher.command(None, "__init__", [[], {}])["error"]["type"] == "UnknownEventError"


def test_duck_typed_storage_offers_only_what_it_has() -> None:
    class Tiny:
        def get(self, name: str) -> str:
            return "v"

        def secret(self) -> str:  # not an interface command
            return "leak"

    dispatcher = Dispatcher(Tiny())
    assert dispatcher.command(None, "get", [["k"], {}]) == {"data": "v"}
    assert dispatcher.command(None, "secret", [[], {}])["error"]["type"] == "UnknownEventError"
    assert dispatcher.command(None, "set", [["k", "v"], {}])["error"]["type"] == "UnknownEventError"


def test_authorization_hook_refuses_commands_and_pipeline_entries() -> None:
    seen: list[tuple[Any, str]] = []

    def authorize(principal: Any, command: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        seen.append((principal, command))
        if command == "flushall" or (args and str(args[0]).startswith("private:")):
            raise PermissionDeniedError(f"{principal} may not {command}")

    storage = MemoryStorage()
    dispatcher = Dispatcher(storage, authorize=authorize)
    assert dispatcher.command("alice", "set", [["k", "v"], {}]) == {"data": True}
    assert dispatcher.command("alice", "flushall", [[], {}]) == {
        "error": {"msg": "alice may not flushall", "type": "PermissionDeniedError"}
    }
    message = [["set", [["a", "1"], {}]], ["get", [["private:x"], {}]], ["set", [["b", "1"], {}]]]
    reply = dispatcher.pipeline("bob", [[], {"message": message}])
    assert reply["error"]["type"] == "PermissionDeniedError"
    assert storage.get("a") == "1"  # commands before the refused one ran
    assert storage.get("b") is None
    assert ("alice", "set") in seen


def test_compressed_message_is_unwrapped_into_its_call() -> None:
    dispatcher = Dispatcher(MemoryStorage())
    buffer = b"\x00" + json.dumps([[], {"message": [["set", [["k", "v"], {}]]]}]).encode()
    assert dispatcher.decompress({"event": "pipeline", "data": buffer}) == (
        "pipeline",
        [[], {"message": [["set", [["k", "v"], {}]]]}],
    )


def test_decoded_size_limit_applies_to_compressed_messages() -> None:
    dispatcher = Dispatcher(MemoryStorage(), max_decoded_bytes=100)
    buffer = b"\x00" + json.dumps([["k", "v" * 200], {}]).encode()
    reply = dispatcher.decompress({"event": "set", "data": buffer})
    assert reply["error"]["type"] == "DeserializationError"


def test_attach_events_registers_on_an_existing_server() -> None:
    sio = socketio.Server(async_mode="threading")
    assert attach_events(sio, storage=MemoryStorage()) is sio
    handlers = sio.handlers["/znsocket"]
    for event in (
        "*",
        "connect",
        "disconnect",
        "server_config",
        "pipeline",
        "get_chunked_result",
        "refresh",
        "register_adapter",
        "check_adapter",
        "adapter_exists",
        "adapter:get",
    ):
        assert event in handlers
    assert handlers["*"]("set", "sid", [["k", "v"], {}]) == {"data": True}
    assert handlers["*"]("get", "sid", [["k"], {}]) == {"data": "v"}


def test_create_app_options() -> None:
    app = create_app(
        MemoryStorage(), max_http_buffer_size=1234, cors_allowed_origins="*", namespace="/other"
    )
    assert app.sio.eio.max_http_buffer_size == 1234
    assert app.sio.eio.cors_allowed_origins == "*"
    assert app.namespace == "/other"
    assert "/other" in app.sio.handlers
    assert app.wsgi_app is not None


def test_has_binary() -> None:
    assert not has_binary({"data": ["a", "b", 1, None, [1.5, {"x": "y"}]]})
    assert has_binary({"data": ["a", {"x": [b"bytes"]}]})
    assert has_binary((1, bytearray(b"x")))
    assert not has_binary({"data": ("a", 1.0)})


@pytest.mark.parametrize("size", [768, 70_003])  # the Python-integer and the numpy path
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 5])
def test_unmask_matches_the_definition(offset: int, size: int) -> None:
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    mask = (0x12, 0x34, 0x56, 0x78)
    expected = bytes(b ^ mask[(offset + i) % 4] for i, b in enumerate(data))
    assert unmask(data, mask, offset=offset) == expected
    assert unmask(b"", mask) == b""


def test_buffered_socket_reads_in_large_pieces() -> None:
    class Fake:
        def __init__(self) -> None:
            self.calls = 0
            self.parts = [b"abcdefgh", b"ij"]

        def recv(self, size: int) -> bytes:
            self.calls += 1
            return self.parts.pop(0)[:size] if self.parts else b""

        def sendall(self, data: bytes) -> None:
            self.sent = data

    raw = Fake()
    sock = BufferedSocket(raw)
    assert [sock.recv(2), sock.recv(3), sock.recv(10)] == [b"ab", b"cde", b"fgh"]
    assert raw.calls == 1
    assert sock.recv(5) == b"ij"
    sock.sendall(b"x")
    assert raw.sent == b"x"


def test_unserialisable_acknowledgements_become_error_envelopes() -> None:
    from socketio import packet

    from znsocket.server.fastpacket import FastPacket

    ack = FastPacket(packet.ACK, data=[{"data": object()}], namespace="/znsocket", id=3)
    encoded = ack.encode()
    assert encoded.startswith('3/znsocket,3[{"error":')
    assert "SerializationError" in encoded
    plain = FastPacket(packet.ACK, data=[{"data": [1, "a"]}], namespace="/znsocket", id=4)
    assert plain.encode() == '3/znsocket,4[{"data":[1,"a"]}]'


def test_json_codec_matches_the_standard_library_where_json_is_defined() -> None:
    from znsocket.protocol import jsoncodec

    for value in (
        [{"data": ["a", 1, 2.5, None, True]}],
        {"k": {"n": [1, [2, [3]]]}},
        [2**70],
        ["ü\u2603"],
    ):
        assert json.loads(jsoncodec.dumps(value)) == value
    assert jsoncodec.dumps({5: "int key"}) == '{"5":"int key"}'
    assert jsoncodec.dumps([{"data": float("inf")}]) == '[{"data":null}]'
    assert jsoncodec.loads("[NaN, 1]")[1] == 1
    with pytest.raises(TypeError):
        jsoncodec.dumps({"x": object()})


def test_attach_events_routes_wrapped_calls_to_registered_handlers() -> None:
    """On a plain ``socketio.Server`` (no :class:`ZnSocketServer`) the wrappers route too."""
    sio = socketio.Server(async_mode="threading")
    attach_events(sio, storage=MemoryStorage())
    seen: list[tuple[str, Any]] = []

    @sio.on("app:echo", namespace="/znsocket")
    def echo(sid: str, data: Any) -> Any:
        seen.append((sid, data))
        return {"data": data[1]}

    handlers = sio.handlers["/znsocket"]
    # the wrappers are unwrapped by the catch-all, before routing
    assert "compressed_message" not in handlers and "chunked_message" not in handlers
    buffer = b"\x00" + json.dumps([[], {"n": 1}]).encode()
    reply = handlers["*"]("compressed_message", "sid-1", {"event": "app:echo", "data": buffer})
    assert reply == {"data": {"n": 1}}
    assert seen == [("sid-1", [[], {"n": 1}])]
    chunk = {
        "chunk_id": "c1",
        "chunk_index": 0,
        "total_chunks": 1,
        "event": "app:echo",
        "data": buffer,
        "size": len(buffer),
    }
    assert handlers["*"]("chunked_message", "sid-1", chunk) == {"status": "complete"}
    assert handlers["get_chunked_result"]("sid-1", {"chunk_id": "c1"}) == {"data": {"n": 1}}
    for event in ("disconnect", "connect", "chunked_message", "server_config"):
        refused = handlers["*"]("compressed_message", "sid-1", {"event": event, "data": buffer})
        assert refused["error"]["type"] == "UnknownEventError"
    # the catch-all shares the routing: storage commands, then unknown names
    assert handlers["*"]("set", "sid-1", [["k", "v"], {}]) == {"data": True}
    assert handlers["*"]("__init__", "sid-1", [[], {}])["error"]["type"] == "UnknownEventError"
    assert len(seen) == 2


def test_router_answers_every_kind_of_name() -> None:
    ran: list[str] = []

    def command(sid: str, event: str, data: Any) -> Any:
        ran.append(event)
        return {"data": event}

    def broken(sid: str, *args: Any) -> Any:
        raise TypeError("bad arguments")

    dispatcher = Dispatcher(MemoryStorage())
    router = RouteTable({"app:broken": broken, "set": broken}, dispatcher, command)
    # a handler registered under a command's name wins over the command
    assert router.command_for("get") is not None
    assert router.command_for("set") is None
    assert router.command_for("app:broken") is None
    assert router.route("s", "get", [[["k"], {}]]) == {"data": "get"}
    assert router.route("s", "get", [])["error"]["type"] == "MalformedMessageError"
    assert router.route("s", ["get"], [[[], {}]])["error"]["type"] == "MalformedMessageError"
    assert router.route("s", "app:broken", [[[], {}]]) == {
        "error": {"msg": "Invalid arguments for app:broken: bad arguments", "type": "TypeError"}
    }
    assert router.route("s", "server_config", [], via="compressed_message") == {
        "error": {
            "msg": "Unknown event: server_config (not accepted inside compressed_message)",
            "type": "UnknownEventError",
        }
    }
    assert router.route("s", "connect", [[[], {}]])["error"]["type"] == "UnknownEventError"
    assert ran == ["get"]


def test_memory_execute_many_matches_the_sequential_default() -> None:
    calls: list[Any] = [
        ("hset", ["h", "a", "1"], {}),
        ("hset", ["h", "a", "2"], {}),
        ("hset", ["h", 1, 2.5], {}),
        ("rpush", ["l", "x"], {}),
        ("hset", ["l", "f", "v"], {}),  # WRONGTYPE: the batch stops here
        ("hset", ["h", "late", "1"], {}),
    ]
    batched, sequential = MemoryStorage(), MemoryStorage()
    got = batched.execute_many(calls)
    want = StorageCommands.execute_many(sequential, calls)
    assert got[:-1] == want[:-1] == [1, 0, 1, 1]
    assert type(got[-1]) is type(want[-1]) and str(got[-1]) == str(want[-1])
    assert batched.content == sequential.content
    assert batched.hgetall("h") == {"a": "2", "1": "2.5"}
