"""Engine.IO v4 / Socket.IO v5 packets over a websocket, without any I/O.

The one place where the packets we build ourselves are encoded and decoded: by the client
(:class:`SocketIOProtocol`) and by the server's fast path (:func:`parse_header`,
:func:`ack_text`); the server hands every other packet to python-socketio's packet class.

Theory of operation: on a websocket, every Engine.IO packet is one websocket message.
Text messages start with one digit (the Engine.IO type: ``0`` open, ``1`` close, ``2``
ping, ``3`` pong, ``4`` message, ``6`` noop); binary messages carry no type and are
always the attachments of the preceding Socket.IO binary packet. An Engine.IO
``message`` holds one Socket.IO packet::

    <type>[<attachments>-][/<namespace>,][<ack id>][<json array or object>]

``SocketIOProtocol`` turns received websocket messages into event objects
(``receive_text``/``receive_binary``) and builds the websocket messages to send
(``connect``/``emit``/``ack``/...). It never touches a socket, so the client's I/O layer
stays a thin loop and the codec is tested on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from znsocket.exceptions import ZnSocketError
from znsocket.protocol import jsoncodec

__all__ = [
    "MAX_ACK_ID_DIGITS",
    "Ack",
    "Close",
    "ConnectError",
    "Connected",
    "Disconnected",
    "Event",
    "Header",
    "Open",
    "Ping",
    "ProtocolError",
    "SocketIOProtocol",
    "ack_text",
    "event_prefix",
    "has_binary",
    "parse_header",
    "read_ack_id",
]

# Engine.IO packet types (first character of a text message).
EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_NOOP = "0", "1", "2", "3", "4", "6"
# Socket.IO packet types.
SIO_CONNECT, SIO_DISCONNECT, SIO_EVENT, SIO_ACK = "0", "1", "2", "3"
SIO_CONNECT_ERROR, SIO_BINARY_EVENT, SIO_BINARY_ACK = "4", "5", "6"

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = jsoncodec.loads


class ProtocolError(ZnSocketError):
    """The peer sent something that is not valid Engine.IO v4 / Socket.IO v5."""


@dataclass(frozen=True, slots=True)
class Open:
    """Engine.IO handshake: session id and the timing/size limits of the server."""

    sid: str
    ping_interval: float
    ping_timeout: float
    max_payload: int | None


@dataclass(frozen=True, slots=True)
class Ping:
    """Server heartbeat; must be answered with :meth:`SocketIOProtocol.pong`."""


@dataclass(frozen=True, slots=True)
class Close:
    """The server closed the Engine.IO session."""


@dataclass(frozen=True, slots=True)
class Connected:
    """The namespace accepted our connection."""

    namespace: str
    sid: str | None


@dataclass(frozen=True, slots=True)
class ConnectError:
    """The namespace refused our connection."""

    namespace: str
    data: Any


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The server removed us from a namespace."""

    namespace: str


@dataclass(frozen=True, slots=True)
class Event:
    """A server-initiated event; answer with :meth:`SocketIOProtocol.ack` if ``ack_id``."""

    namespace: str
    name: str
    args: list[Any]
    ack_id: int | None


@dataclass(frozen=True, slots=True)
class Ack:
    """The acknowledgement of one of our calls."""

    namespace: str
    ack_id: int
    args: list[Any]


ProtocolEvent = Open | Ping | Close | Connected | ConnectError | Disconnected | Event | Ack


@dataclass(slots=True)
class _PendingBinary:
    """A binary packet whose attachments are still arriving."""

    kind: str
    namespace: str
    ack_id: int | None
    data: Any
    needed: int
    attachments: list[bytes] = field(default_factory=list)


def has_binary(data: Any) -> bool:
    """Whether ``data`` holds ``bytes``, ``bytearray`` or ``memoryview`` anywhere (lists,
    tuples, dict values): whether it travels as a binary packet with attachments."""
    kind = type(data)
    if kind is str or kind is int or kind is float or kind is bool or data is None:
        return False
    if kind is bytes or kind is bytearray or kind is memoryview:
        return True
    # explicit loops: a generator in any() costs a frame per call on this hot path
    if kind is list or kind is tuple:
        for item in data:  # noqa: SIM110
            if type(item) is not str and has_binary(item):
                return True
        return False
    if kind is dict:
        for item in data.values():  # noqa: SIM110
            if type(item) is not str and has_binary(item):
                return True
        return False
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, (list, tuple)):
        return any(has_binary(item) for item in data)
    if isinstance(data, dict):
        return any(has_binary(item) for item in data.values())
    return False


def _deconstruct(obj: Any, out: list[bytes]) -> Any:
    """Replace every bytes object by a placeholder, collecting the bytes in ``out``."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        out.append(bytes(obj))
        return {"_placeholder": True, "num": len(out) - 1}
    if isinstance(obj, (list, tuple)):
        return [_deconstruct(x, out) for x in obj]
    if isinstance(obj, dict):
        return {k: _deconstruct(v, out) for k, v in obj.items()}
    return obj


def _reconstruct(obj: Any, attachments: list[bytes]) -> Any:
    if isinstance(obj, list):
        return [_reconstruct(x, attachments) for x in obj]
    if isinstance(obj, dict):
        if obj.get("_placeholder") is True and len(obj) == 2 and "num" in obj:
            num = obj["num"]
            if not isinstance(num, int) or not 0 <= num < len(attachments):
                raise ProtocolError(f"binary placeholder {num!r} has no attachment")
            return attachments[num]
        return {k: _reconstruct(v, attachments) for k, v in obj.items()}
    return obj


#: Digits of an acknowledgement id read as the id; further digits belong to the data.
MAX_ACK_ID_DIGITS = 15
_ATTACHMENTS = re.compile(r"([0-9]{1,10})-")
_ACK_ID = re.compile(rf"[0-9]{{1,{MAX_ACK_ID_DIGITS}}}")


class Header(NamedTuple):
    """The header of one Socket.IO packet (:func:`parse_header`)."""

    #: The Socket.IO packet type (``SIO_*``).
    kind: str
    #: Attachments a binary packet announces; ``None`` if it announces none (malformed).
    attachments: int | None
    namespace: str
    ack_id: int | None
    #: Where the packet's JSON data starts (the text's length if it has none).
    end: int


def parse_header(text: str, start: int = 0) -> Header:
    """Read the header of the Socket.IO packet starting at ``text[start]``.

    Args:
        text: A Socket.IO packet (``start=0``) or an Engine.IO message (``start=1``).
        start: Where the Socket.IO packet type is.

    Raises:
        ProtocolError: There is no packet type.
    """
    n = len(text)
    if start >= n:
        raise ProtocolError("empty Socket.IO packet")
    kind = text[start]
    pos = start + 1
    attachments: int | None = 0
    if kind in (SIO_BINARY_EVENT, SIO_BINARY_ACK):
        count = _ATTACHMENTS.match(text, pos)
        if count is None:
            attachments = None
        else:
            attachments = int(count.group(1))
            pos = count.end()
    namespace = "/"
    if pos < n and text[pos] == "/":
        comma = text.find(",", pos)
        if comma < 0:
            namespace, pos = text[pos:], n
        else:
            namespace, pos = text[pos:comma], comma + 1
    ack = read_ack_id(text, pos)
    if ack is None:
        return Header(kind, attachments, namespace, None, pos)
    return Header(kind, attachments, namespace, ack[0], ack[1])


def read_ack_id(text: str, pos: int) -> tuple[int, int] | None:
    """The acknowledgement id at ``text[pos]`` and where it ends; ``None`` if none is there.

    The server's command fast path reads only this: its packets' start is known.
    """
    match = _ACK_ID.match(text, pos)
    if match is None:
        return None
    return int(match.group()), match.end()


def _header(kind: str, namespace: str, ack_id: int | None, attachments: int = 0) -> str:
    """The header of a Socket.IO packet (no Engine.IO type)."""
    head = kind
    if attachments:
        head += f"{attachments}-"
    if namespace != "/":
        head += namespace + ","
    if ack_id is not None:
        head += str(ack_id)
    return head


def _prefix(kind: str, namespace: str, ack_id: int | None, attachments: int = 0) -> str:
    """The start of an Engine.IO message carrying a Socket.IO packet."""
    return EIO_MESSAGE + _header(kind, namespace, ack_id, attachments)


def event_prefix(namespace: str) -> str:
    """How every EVENT packet of ``namespace`` starts (before its ack id)."""
    return _header(SIO_EVENT, namespace, None)


def ack_text(namespace: str, ack_id: int, json_args: str) -> str:
    """The Socket.IO ACK packet (no Engine.IO type) answering ``ack_id`` with the
    arguments already encoded as a JSON array."""
    # written out rather than through _header: the server sends one per command
    if namespace == "/":
        return f"3{ack_id}{json_args}"
    return f"3{namespace},{ack_id}{json_args}"


class SocketIOProtocol:
    """Sans-IO Engine.IO v4 / Socket.IO v5 client state over a websocket.

    Args:
        max_attachments: Upper bound on the attachments announced by one binary packet.
    """

    def __init__(self, max_attachments: int = 1024) -> None:
        self.max_attachments = max_attachments
        self._pending: _PendingBinary | None = None
        self._next_id = 0

    # ------------------------------------------------------------------ outgoing
    def next_ack_id(self) -> int:
        """A fresh acknowledgement id (one per call)."""
        self._next_id += 1
        return self._next_id

    @staticmethod
    def pong() -> str:
        """The answer to a server :class:`Ping`."""
        return EIO_PONG

    @staticmethod
    def close() -> str:
        """Closes the Engine.IO session."""
        return EIO_CLOSE

    @staticmethod
    def connect(namespace: str, auth: Any = None) -> str:
        """Joins ``namespace``, optionally with an ``auth`` payload."""
        msg = _prefix(SIO_CONNECT, namespace, None)
        if auth is not None:
            msg += _dumps(auth)
        return msg

    @staticmethod
    def disconnect(namespace: str) -> str:
        """Leaves ``namespace``."""
        return _prefix(SIO_DISCONNECT, namespace, None)

    @staticmethod
    def emit(
        namespace: str, event: str, args: list[Any] | tuple[Any, ...], ack_id: int | None = None
    ) -> list[str | bytes]:
        """Websocket messages that send ``event`` with positional ``args``.

        Bytes anywhere inside ``args`` travel as binary attachments.
        """
        payload = [event, *args]
        try:
            text = _dumps(payload)
        except TypeError:
            if not has_binary(payload):
                raise
        else:
            return [_prefix(SIO_EVENT, namespace, ack_id) + text]
        blobs: list[bytes] = []
        data = _deconstruct(payload, blobs)
        head = _prefix(SIO_BINARY_EVENT, namespace, ack_id, len(blobs))
        return [head + _dumps(data), *blobs]

    @staticmethod
    def emit_json(namespace: str, event: str, json_arg: str, ack_id: int | None = None) -> str:
        """The message for ``event`` with one argument already encoded as JSON text."""
        return f"{_prefix(SIO_EVENT, namespace, ack_id)}[{_dumps(event)},{json_arg}]"

    @staticmethod
    def ack(namespace: str, ack_id: int, args: list[Any] | tuple[Any, ...]) -> list[str | bytes]:
        """Websocket messages that acknowledge server event ``ack_id`` with ``args``."""
        payload = list(args)
        if has_binary(payload):
            blobs: list[bytes] = []
            data = _deconstruct(payload, blobs)
            head = _prefix(SIO_BINARY_ACK, namespace, ack_id, len(blobs))
            return [head + _dumps(data), *blobs]
        return [_prefix(SIO_ACK, namespace, ack_id) + _dumps(payload)]

    # ------------------------------------------------------------------ incoming
    def receive_text(self, text: str) -> ProtocolEvent | None:
        """Parse one text websocket message; ``None`` if it completes nothing yet.

        Raises:
            ProtocolError: The message is malformed.
        """
        if not text:
            raise ProtocolError("empty Engine.IO packet")
        kind = text[0]
        if kind == EIO_MESSAGE:
            return self._socketio(text)
        if kind == EIO_PING:
            return Ping()
        if kind == EIO_OPEN:
            try:
                info = _loads(text[1:])
                return Open(
                    sid=str(info["sid"]),
                    ping_interval=float(info.get("pingInterval", 25000)) / 1000,
                    ping_timeout=float(info.get("pingTimeout", 20000)) / 1000,
                    max_payload=info.get("maxPayload"),
                )
            except (ValueError, KeyError, TypeError) as err:
                raise ProtocolError(f"bad Engine.IO open packet: {text[:200]!r}") from err
        if kind == EIO_CLOSE:
            return Close()
        if kind in (EIO_PONG, EIO_NOOP):
            return None
        raise ProtocolError(f"unknown Engine.IO packet type {kind!r}")

    def receive_binary(self, data: bytes) -> ProtocolEvent | None:
        """Parse one binary websocket message (an attachment)."""
        pending = self._pending
        if pending is None:
            raise ProtocolError("binary message without a preceding binary packet")
        pending.attachments.append(data)
        if len(pending.attachments) < pending.needed:
            return None
        self._pending = None
        return self._finish(
            pending.kind,
            pending.namespace,
            pending.ack_id,
            _reconstruct(pending.data, pending.attachments),
        )

    def _socketio(self, text: str) -> ProtocolEvent | None:
        kind, attachments, namespace, ack_id, pos = parse_header(text, 1)
        if attachments is None:
            raise ProtocolError(f"bad attachment count in {text[:80]!r}")
        if attachments > self.max_attachments:
            raise ProtocolError(f"{attachments} attachments exceed the limit")
        try:
            data = _loads(text[pos:]) if pos < len(text) else None
        except ValueError as err:
            raise ProtocolError(f"bad JSON in Socket.IO packet {text[:80]!r}") from err
        if attachments:
            kind = SIO_EVENT if kind == SIO_BINARY_EVENT else SIO_ACK
            self._pending = _PendingBinary(kind, namespace, ack_id, data, attachments)
            return None
        return self._finish(kind, namespace, ack_id, data)

    @staticmethod
    def _finish(kind: str, namespace: str, ack_id: int | None, data: Any) -> ProtocolEvent:
        if kind == SIO_ACK:
            if ack_id is None or not isinstance(data, list):
                raise ProtocolError("acknowledgement without id or arguments")
            return Ack(namespace, ack_id, data)
        if kind == SIO_EVENT:
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                raise ProtocolError("event without a name")
            return Event(namespace, data[0], data[1:], ack_id)
        if kind == SIO_CONNECT:
            sid = data.get("sid") if isinstance(data, dict) else None
            return Connected(namespace, sid)
        if kind == SIO_CONNECT_ERROR:
            return ConnectError(namespace, data)
        if kind == SIO_DISCONNECT:
            return Disconnected(namespace)
        raise ProtocolError(f"unknown Socket.IO packet type {kind!r}")
