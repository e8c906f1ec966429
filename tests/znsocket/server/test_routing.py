"""A call is routed the same whether it arrives plain, compressed or in chunks.

The server under test is built with ``create_app`` as an embedding application does, with
events of its own registered on the namespace: ``app:digest`` (runs on the reader) and
``app:slow`` (a background event, as the gateway's ``ts:*`` events are).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio

import znsocket
from tests._servers import ServerProcess, spawn
from tests.znsocket.server.conftest import NAMESPACE, RawClient

pytestmark = pytest.mark.integration

MAX_PACKET = 20_000

SCRIPT = textwrap.dedent(
    '''
    """An application with events of its own next to the storage commands."""
    import hashlib
    import json

    from znsocket.exceptions import PermissionDeniedError
    from znsocket.server import create_app, serve, token_authenticator
    from znsocket.storage import MemoryStorage


    def authorize(principal, command, args, kwargs):
        if principal is None:
            raise PermissionDeniedError("not authenticated")
        if principal == "token-1" and command == "set":
            raise PermissionDeniedError(f"{principal} is read-only: set refused")
        if principal == "token-1" and kwargs.get("tag") == "private":
            raise PermissionDeniedError(f"{principal} may not read private {command}")


    app = create_app(
        MemoryStorage(),
        authenticate=token_authenticator(["writer", "reader"]),
        authorize=authorize,
        max_http_buffer_size=MAX_PACKET,
    )
    principals = app.principals


    def digest(event, sid, args):
        if len(args) != 1 or not isinstance(args[0], list) or len(args[0]) != 2:
            return {"error": {"msg": "bad request", "type": "MalformedMessageError"}}
        positional, kwargs = args[0]
        authorize(principals.get(sid), event, positional, kwargs)
        if kwargs.get("fail"):
            raise ValueError("asked to fail")
        text = json.dumps(args[0], sort_keys=True, separators=(",", ":"))
        return {"data": {"event": event, "n": len(positional),
                         "sha256": hashlib.sha256(text.encode()).hexdigest()}}


    @app.sio.on("app:digest", namespace=app.namespace)
    def app_digest(sid, *args):
        return digest("app:digest", sid, args)


    @app.sio.on("app:slow", namespace=app.namespace)
    def app_slow(sid, *args):
        app.sio.sleep(0.05)
        return digest("app:slow", sid, args)


    @app.sio.on("llen", namespace=app.namespace)
    def app_llen(sid, *args):
        # an application's own answer under a storage command's name
        return {"data": "app:llen"}


    app.sio.background_events = frozenset(app.sio.background_events | {"app:slow"})
    serve(app.wsgi_app, "127.0.0.1", 0)
    '''
).replace("MAX_PACKET", str(MAX_PACKET))


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    script = Path(tmp_path_factory.mktemp("routing")) / "app_server.py"
    script.write_text(SCRIPT)
    with spawn([sys.executable, str(script)]) as proc:
        yield proc


@pytest.fixture
def writer(app_server: ServerProcess) -> Iterator[RawClient]:
    client = RawClient(app_server.url, auth={"token": "writer"})
    yield client
    client.close()


@pytest.fixture
def reader(app_server: ServerProcess) -> Iterator[RawClient]:
    client = RawClient(app_server.url, auth={"token": "reader"})
    yield client
    client.close()


def expected(event: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``app:digest`` / ``app:slow`` answer, computed here."""
    text = json.dumps([args, kwargs], sort_keys=True, separators=(",", ":"))
    return {
        "data": {
            "event": event,
            "n": len(args),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        }
    }


def items(n: int) -> list[str]:
    """``n`` distinct strings (about 20 bytes each in JSON, and compressible)."""
    return [f"meters/{i}/value" for i in range(n)]


def gzip_buffer(args: list[Any], kwargs: dict[str, Any]) -> bytes:
    """The flagged gzip buffer of the protocol, built by hand (spec §4.1)."""
    raw = json.dumps([args, kwargs], separators=(",", ":")).encode()
    return b"\x01" + struct.pack(">I", len(raw)) + gzip.compress(raw)


def send_compressed(client: RawClient, event: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return client.call("compressed_message", {"event": event, "data": gzip_buffer(args, kwargs)})


def send_chunked(
    client: RawClient, event: str, args: list[Any], kwargs: dict[str, Any], size: int = 0
) -> Any:
    """Send a call as ``chunked_message`` pieces of plain JSON (two unless ``size`` is
    given), then fetch its result."""
    buffer = b"\x00" + json.dumps([args, kwargs], separators=(",", ":")).encode()
    size = size or (len(buffer) + 1) // 2
    pieces = [buffer[i : i + size] for i in range(0, len(buffer), size)]
    assert len(pieces) > 1
    chunk_id = str(uuid.uuid4())
    for index, piece in enumerate(pieces):
        ack = client.call(
            "chunked_message",
            {
                "chunk_id": chunk_id,
                "chunk_index": index,
                "total_chunks": len(pieces),
                "event": event,
                "data": piece,
                "size": len(piece),
            },
        )
        assert "error" not in ack, ack
    assert ack == {"status": "complete"}
    return client.call("get_chunked_result", {"chunk_id": chunk_id})


# ------------------------------------------------------------------ same answer


@pytest.mark.parametrize("event", ["app:digest", "app:slow"])
def test_registered_event_answers_alike_by_hand(writer: RawClient, event: str) -> None:
    small = items(100)  # ~2 KB: a client would compress it
    want = expected(event, small, {"tag": "x"})
    assert writer.call(event, [small, {"tag": "x"}]) == want
    assert send_compressed(writer, event, small, {"tag": "x"}) == want
    assert send_chunked(writer, event, small, {"tag": "x"}, size=500) == want
    large = items(3_000)  # ~60 KB of JSON: above the 20 KB packet limit
    assert send_chunked(writer, event, large, {}, size=10_000) == expected(event, large, {})


@pytest.mark.parametrize("event", ["app:digest", "app:slow"])
def test_registered_event_answers_alike_with_the_znsocket_client(
    app_server: ServerProcess, event: str
) -> None:
    client = znsocket.Client.from_url(app_server.url, token="writer")
    try:
        small, medium, large = items(10), items(100), items(3_000)
        # what the client chose is not visible; the sizes force each path
        assert len(json.dumps([small, {}])) < 1024
        assert 1024 < len(json.dumps([medium, {}])) < MAX_PACKET
        assert len(json.dumps([large, {}])) > MAX_PACKET
        for payload in (small, medium, large):
            assert client.call(event, *payload) == expected(event, payload, {})
        assert client.call(event, *medium, tag="t") == expected(event, medium, {"tag": "t"})
    finally:
        client.sio.disconnect()


def test_storage_commands_and_pipeline_still_routed(writer: RawClient) -> None:
    value = "v" * 5_000
    assert send_compressed(writer, "set", ["big", value], {}) == {"data": True}
    assert writer.cmd("get", "big") == {"data": value}
    message = [["set", [["p", "1"], {}]], ["get", [["big"], {}]]]
    assert send_chunked(writer, "pipeline", [], {"message": message}) == {
        "data": [{"data": True}, {"data": value}]
    }


def test_a_handler_under_a_command_name_wins_on_every_path(writer: RawClient) -> None:
    """The command fast path and the wrapped paths ask one route table."""
    writer.cmd("rpush", "l", "a", "b")
    want = {"data": "app:llen"}
    assert writer.cmd("llen", "l") == want  # a text command event: the fast path's frame
    assert writer.cmd("llen", b"l") == want  # a binary event: python-socketio's packets
    assert send_compressed(writer, "llen", ["l"], {}) == want
    assert send_chunked(writer, "llen", ["l"], {"pad": "x" * 200}, size=100) == want
    message = [["llen", [["l"], {}]]]  # inside a pipeline, commands stay commands
    assert writer.call("pipeline", [[], {"message": message}]) == {"data": [{"data": 2}]}


def test_a_failing_handler_answers_an_error_on_every_path(writer: RawClient) -> None:
    want = {"error": {"msg": "asked to fail", "type": "ValueError"}}
    assert writer.call("app:digest", [items(3), {"fail": True}]) == want
    assert send_compressed(writer, "app:digest", items(100), {"fail": True}) == want
    assert send_chunked(writer, "app:digest", items(100), {"fail": True}, size=500) == want
    assert writer.cmd("set", "still", "up") == {"data": True}


def test_background_event_inside_a_wrapper_does_not_block_the_reader(writer: RawClient) -> None:
    """``adapter:get`` compressed and served by the asking client itself: a reader that
    ran it inline would wait for its own answer until the adapter timeout."""
    key = "znsocket.List:self-served-compressed"
    writer.adapter_answer = 11
    assert writer.call("register_adapter", [[], {"key": key}]) is True
    reply = send_compressed(writer, "adapter:get", [], {"key": key, "method": "__len__"})
    assert reply == 11
    reply = send_chunked(writer, "adapter:get", [], {"key": key, "pad": "x" * 3_000}, size=1_000)
    assert reply == 11


# ------------------------------------------------------------------ refusals


def snapshot(client: RawClient) -> dict[str, Any]:
    return {"s": client.cmd("get", "sentinel"), "l": client.cmd("lrange", "sentinel-list", 0, -1)}


REFUSED_INSIDE = [
    "connect",
    "disconnect",
    "compressed_message",
    "chunked_message",
    "get_chunked_result",
    "server_config",
    "*",
    "no-such-event",
    "__init__",
    "__class__",
    "_lookup",
    "execute_command",
]


@pytest.mark.parametrize("event", REFUSED_INSIDE)
def test_wrappers_refuse_what_a_call_may_not_name(
    writer: RawClient, reader: RawClient, event: str
) -> None:
    writer.cmd("set", "sentinel", "kept")
    writer.cmd("delete", "sentinel-list")
    writer.cmd("rpush", "sentinel-list", "x")
    before = snapshot(writer)
    payloads: list[tuple[list[Any], dict[str, Any]]] = [
        ([], {}),
        ([{"HTTP_AUTHORIZATION": "Bearer writer"}, {"token": "writer"}], {}),
        (["sentinel"], {"event": "set", "data": "x", "chunk_id": "c"}),
    ]
    for args, kwargs in payloads:
        for send in (send_compressed, send_chunked):
            reply = send(reader, event, args, kwargs)
            assert reply["error"]["type"] == "UnknownEventError", (send, reply)
            assert f"Unknown event: {event}" in reply["error"]["msg"]
    assert snapshot(writer) == before
    # the reader kept its identity: still read-only, not unauthenticated, not the writer
    assert reader.cmd("set", "sentinel", "changed") == {
        "error": {"msg": "token-1 is read-only: set refused", "type": "PermissionDeniedError"}
    }
    assert reader.cmd("get", "sentinel") == {"data": "kept"}


def test_lifecycle_names_sent_plain_are_refused(reader: RawClient) -> None:
    for event in ("disconnect", "connect"):
        # python-socketio's client sends these names as ordinary events
        reply = reader.call(event, [[], {}])
        assert reply["error"]["type"] == "UnknownEventError", reply
    # the disconnect handler did not run: the reader is still known as itself
    assert reader.cmd("set", "k", "v")["error"]["msg"] == "token-1 is read-only: set refused"


# ------------------------------------------------------------------ authorization


def test_authorization_applies_on_every_path(writer: RawClient, reader: RawClient) -> None:
    writer.cmd("set", "guarded", "original")
    refused_set = {
        "error": {"msg": "token-1 is read-only: set refused", "type": "PermissionDeniedError"}
    }
    value = "w" * 5_000
    assert reader.cmd("set", "guarded", value) == refused_set
    assert send_compressed(reader, "set", ["guarded", value], {}) == refused_set
    assert send_chunked(reader, "set", ["guarded", value], {}, size=1_000) == refused_set
    message = [["set", [["guarded", value], {}]]]
    assert send_compressed(reader, "pipeline", [], {"message": message}) == refused_set
    assert reader.cmd("get", "guarded") == {"data": "original"}

    private = {
        "error": {
            "msg": "token-1 may not read private app:digest",
            "type": "PermissionDeniedError",
        }
    }
    assert reader.call("app:digest", [items(3), {"tag": "private"}]) == private
    assert send_compressed(reader, "app:digest", items(100), {"tag": "private"}) == private
    assert send_chunked(reader, "app:digest", items(100), {"tag": "private"}, size=500) == private
    # the writer may
    assert send_compressed(writer, "app:digest", items(100), {"tag": "private"}) == expected(
        "app:digest", items(100), {"tag": "private"}
    )


def test_unauthenticated_clients_still_refused(app_server: ServerProcess) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        RawClient(app_server.url)
    sio = socketio.Client(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            sio.connect(app_server.url, namespaces=[NAMESPACE], auth={"token": "nope"})
    finally:
        sio.disconnect()
    assert app_server.alive()
