"""The sans-IO Engine.IO/Socket.IO codec of the client and the server's fast path."""

from __future__ import annotations

import pytest

from znsocket.protocol.sio_packets import (
    Ack,
    Close,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    Header,
    Open,
    Ping,
    ProtocolError,
    SocketIOProtocol,
    ack_text,
    event_prefix,
    has_binary,
    parse_header,
)


def test_handshake_and_heartbeat() -> None:
    p = SocketIOProtocol()
    ev = p.receive_text(
        '0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":5242880}'
    )
    assert ev == Open("abc", 25.0, 20.0, 5242880)
    assert p.receive_text("2") == Ping()
    assert p.pong() == "3"
    assert p.receive_text("1") == Close()
    assert p.receive_text("6") is None


def test_namespace_connect() -> None:
    p = SocketIOProtocol()
    assert p.connect("/znsocket") == "40/znsocket,"
    assert p.connect("/znsocket", {"token": "t"}) == '40/znsocket,{"token":"t"}'
    assert p.connect("/") == "40"
    assert p.receive_text('40/znsocket,{"sid":"s1"}') == Connected("/znsocket", "s1")
    assert p.receive_text('44/znsocket,{"message":"no"}') == ConnectError(
        "/znsocket", {"message": "no"}
    )
    assert p.receive_text("41/znsocket,") == Disconnected("/znsocket")


def test_emit_and_ack_text() -> None:
    p = SocketIOProtocol()
    assert p.emit("/znsocket", "get", [[["name"], {}]], 7) == ['42/znsocket,7["get",[["name"],{}]]']
    assert (
        p.emit_json("/znsocket", "get", '[["name"],{}]', 7) == '42/znsocket,7["get",[["name"],{}]]'
    )
    assert p.emit("/", "x", [], None) == ['42["x"]']
    assert p.receive_text('43/znsocket,7[{"data":"Alice"}]') == Ack(
        "/znsocket", 7, [{"data": "Alice"}]
    )
    assert p.receive_text('42/znsocket,["refresh",{"target":"k","data":{}}]') == Event(
        "/znsocket", "refresh", [{"target": "k", "data": {}}], None
    )


def test_binary_both_ways() -> None:
    p = SocketIOProtocol()
    msgs = p.emit("/znsocket", "compressed_message", [{"event": "set", "data": b"\x01abc"}], 10)
    assert msgs == [
        '451-/znsocket,10["compressed_message",{"event":"set","data":{"_placeholder":true,"num":0}}]',
        b"\x01abc",
    ]
    assert (
        p.receive_text(
            '452-/znsocket,3["adapter:get",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
        )
        is None
    )
    assert p.receive_binary(b"one") is None
    assert p.receive_binary(b"two") == Event("/znsocket", "adapter:get", [b"one", b"two"], 3)
    assert p.receive_text('461-/znsocket,4[{"_placeholder":true,"num":0}]') is None
    assert p.receive_binary(b"x") == Ack("/znsocket", 4, [b"x"])
    assert p.ack("/znsocket", 5, [b"y"]) == ['461-/znsocket,5[{"_placeholder":true,"num":0}]', b"y"]
    assert p.ack("/znsocket", 5, [True]) == ["43/znsocket,5[true]"]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "9",
        "4",
        "47",
        "45x-[]",
        '43/znsocket,{"a":1}',
        "42/znsocket,[1]",
        '42/znsocket,["x"',
        "0nojson",
    ],
)
def test_malformed_packets_raise_protocol_error(bad: str) -> None:
    with pytest.raises(ProtocolError):
        SocketIOProtocol().receive_text(bad)


def test_binary_without_packet_and_bad_placeholder() -> None:
    p = SocketIOProtocol()
    with pytest.raises(ProtocolError):
        p.receive_binary(b"stray")
    p.receive_text('451-/znsocket,1[{"_placeholder":true,"num":5}]')
    with pytest.raises(ProtocolError):
        p.receive_binary(b"x")
    with pytest.raises(ProtocolError):
        SocketIOProtocol(max_attachments=2).receive_text("453-/znsocket,1[{}]")


def test_unserialisable_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError):
        SocketIOProtocol.emit("/", "x", [object()], 1)


@pytest.mark.parametrize(
    ("text", "header"),
    [
        ('2/znsocket,7["get",[["k"],{}]]', Header("2", 0, "/znsocket", 7, 12)),
        ('2["x"]', Header("2", 0, "/", None, 1)),
        ("3/znsocket,12[]", Header("3", 0, "/znsocket", 12, 13)),
        ('52-/znsocket,3["a"]', Header("5", 2, "/znsocket", 3, 14)),
        ('5/znsocket,3["a"]', Header("5", None, "/znsocket", 3, 12)),  # no count: malformed
        ("1/znsocket", Header("1", 0, "/znsocket", None, 10)),
        # at most 15 digits are the id; the rest is data (and fails to decode there)
        ("2" + "9" * 16 + "[]", Header("2", 0, "/", int("9" * 15), 16)),
    ],
)
def test_headers_read_by_client_and_server_alike(text: str, header: Header) -> None:
    assert parse_header(text) == header
    assert parse_header("4" + text, 1) == header._replace(end=header.end + 1)


def test_server_acks_and_event_prefixes() -> None:
    assert ack_text("/znsocket", 7, '[{"data":1}]') == '3/znsocket,7[{"data":1}]'
    assert ack_text("/", 7, "[]") == "37[]"
    assert event_prefix("/znsocket") == "2/znsocket,"
    assert event_prefix("/") == "2"
    # what the client's ack builds, less the Engine.IO message type
    assert SocketIOProtocol.ack("/znsocket", 7, [{"data": 1}]) == [
        "4" + ack_text("/znsocket", 7, '[{"data":1}]')
    ]


def test_has_binary_finds_bytes_anywhere() -> None:
    assert not has_binary([{"data": ["a", 1, 2.5, None, True]}])
    assert has_binary([{"data": ["a", b"x"]}])
    assert has_binary({"k": (1, bytearray(b"x"))})
    assert has_binary([memoryview(b"x")])
