"""Every use of python-socketio's non-public API, behind one door.

python-socketio offers no seam between "a packet arrived" and "a handler runs", so the
server overrides ``Server._handle_eio_message`` and ``Server._handle_event`` and reads
``_binary_packet``, and writes acknowledgements past ``_send_packet``. All of it is here,
in :class:`ServerHooks`, which :class:`~znsocket.server.sio.ZnSocketServer` extends while
the installed python-socketio is in the tested range (:data:`DOOR`); outside it,
``ZnSocketServer`` extends ``socketio.Server`` itself, events reach the namespace's
``*`` handler, and one warning says so.

Fast paths (``ZNSOCKET_FAST_PATHS=0`` turns them off; ``bench/znsocket_server_profile.md``
measured each):

* ``command_frames``: a text command event with an acknowledgement id in the znsocket
  namespace whose name routes to a storage command is parsed with one ``loads`` and
  answered by the dispatcher, without python-socketio's packet objects. Anything else
  (connects, binary events, other events, malformed frames) takes python-socketio's path.
* ``inline_events``: events run on the connection's reader instead of a new green thread
  each (``async_handlers``), except ``background_events`` (``adapter:get`` waits for the
  adapter owner - possibly the very client that asked - and would deadlock its reader).
* ``ack_encoding``: an acknowledgement is encoded once with orjson, which refuses
  ``bytes``; only then does the packet class build the binary form, which saves a
  recursive scan of every large reply.
* ``binary_check``: the packet class decides "does this carry bytes?" with a loop that
  stops at the first answer (:class:`PacketHooks`).

Guards (on with the fast paths off): a binary event may announce at most
``max_attachments`` attachments of at most ``max_attachment_bytes`` together (past either
the event is dropped, its remaining attachments are discarded as they arrive and its ack
id gets a ``MessageTooLargeError`` envelope); a packet that cannot be decoded, or names a
namespace the connection did not join, is answered with an error envelope whenever its
header carries an ack id; events are answered by the namespace's route
(:meth:`~znsocket.server.sio.ZnSocketServer.route_events`), which refuses lifecycle names.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Container, Sequence
from typing import TYPE_CHECKING, Any

import socketio
from socketio import packet as sio_packet

from znsocket.protocol import jsoncodec
from znsocket.protocol.events import Event
from znsocket.protocol.payload import error_envelope
from znsocket.server.doors import Door

__all__ = ["DOOR", "BasePacket", "BaseServer", "PacketHooks", "ServerHooks", "has_binary"]

log = logging.getLogger(__name__)

DOOR = Door(
    "python-socketio",
    "5.12",
    "5.19",
    ("command_frames", "inline_events", "ack_encoding", "binary_check"),
    "its fast paths, the bounds on binary attachments (max_attachments, "
    "max_attachment_bytes), error answers to malformed packets, and the refusal of "
    "lifecycle event names",
)
_used = DOOR.used

#: Events carrying another call; they run where the call they carry would run.
_WRAPPERS = frozenset({Event.COMPRESSED_MESSAGE, Event.CHUNKED_MESSAGE})
_ACK_ID = re.compile(r"[0-9]{1,15}")
#: The header of an EVENT or BINARY_EVENT packet: type, attachments, namespace, ack id.
_EVENT_HEADER = re.compile(r"([25])(?:([0-9]{1,10})-)?(?:(/[^,]*),)?([0-9]{1,15})?")
_dumps_plain = jsoncodec.dumps_plain
_loads = jsoncodec.loads


def has_binary(data: Any) -> bool:
    """Whether ``data`` contains ``bytes``/``bytearray`` anywhere (lists, tuples, dict values)."""
    kind = type(data)
    if kind is str or kind is int or kind is float or kind is bool or data is None:
        return False
    if kind is bytes or kind is bytearray:
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
    if isinstance(data, (bytes, bytearray)):
        return True
    if isinstance(data, (list, tuple)):
        return any(has_binary(item) for item in data)
    if isinstance(data, dict):
        return any(has_binary(item) for item in data.values())
    return False


class PacketHooks(sio_packet.Packet):
    """python-socketio's packet class with the ``binary_check`` fast path.

    ``data_is_binary`` is not among the methods python-socketio documents for a
    ``serializer=`` class (``encode``/``decode``), hence the door.
    """

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        if not DOOR.fast:
            return bool(super().data_is_binary(data))
        _used["binary_check"] += 1
        return has_binary(data)


#: ``(namespace, commands, run, principals, handlers)`` of the command fast path.
CommandPath = tuple[
    str,
    Container[str],
    Callable[[Any, str, Any], Any],
    "dict[str, Any] | None",
    Container[str],
]


class ServerHooks(socketio.Server):
    """``socketio.Server`` with the hooks this module's docstring lists.

    Subclasses set :attr:`max_attachments`, :attr:`max_attachment_bytes`,
    :attr:`background_events`, and through :meth:`hook_commands` / :meth:`hook_routes`
    the command fast path and the namespaces' routes.
    """

    background_events: frozenset[str] = frozenset()
    max_attachments: int = 1000
    max_attachment_bytes: int | None = None
    _fast_prefix: str | None = None
    _fast: CommandPath | None = None
    _routes: dict[str, Callable[[str, Any, Sequence[Any]], Any]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per connection: bytes of the pending event's attachments so far, and how many
        # attachments of a refused event are still to be thrown away
        self._attachment_bytes: dict[str, int] = {}
        self._discarding: dict[str, int] = {}

    def hook_commands(self, path: CommandPath) -> None:
        """Answer text command events of ``path[0]`` from the frame (if fast paths run)."""
        if DOOR.fast:
            self._fast_prefix = "2" + path[0] + ","
            self._fast = path

    def hook_routes(self, namespace: str, route: Callable[[str, Any, Sequence[Any]], Any]) -> None:
        """Answer the events of ``namespace`` with ``route``."""
        if self._routes is None:
            self._routes = {}
        self._routes[namespace] = route

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid in self._discarding:
            left = self._discarding[eio_sid] - 1
            if left > 0:
                self._discarding[eio_sid] = left
            else:
                del self._discarding[eio_sid]
            return
        pending = self._binary_packet.get(eio_sid)
        if pending is not None:
            self._attach(eio_sid, pending, data)
            return
        prefix = self._fast_prefix
        if prefix is not None and type(data) is str and data.startswith(prefix):
            match = _ACK_ID.match(data, len(prefix))
            if match is not None and self._answer(eio_sid, data, match):
                return
        try:
            super()._handle_eio_message(eio_sid, data)
        except Exception as exc:
            self._answer_undecodable(eio_sid, data, exc)
            return
        pending = self._binary_packet.get(eio_sid)
        if pending is not None and pending.attachment_count > self.max_attachments:
            self._refuse_binary(
                eio_sid,
                pending,
                f"a binary event may carry at most {self.max_attachments} attachments, "
                f"this one announced {pending.attachment_count}",
            )

    def _attach(self, eio_sid: str, pending: Any, data: Any) -> None:
        """Add one attachment to the pending binary event, within the byte bound."""
        limit = self.max_attachment_bytes or self.eio.max_http_buffer_size
        size = self._attachment_bytes.get(eio_sid, 0) + len(data)
        if size > limit:
            self._refuse_binary(
                eio_sid,
                pending,
                f"the binary attachments of one event exceed {limit} bytes",
                arrived=1,
            )
            return
        self._attachment_bytes[eio_sid] = size
        try:
            super()._handle_eio_message(eio_sid, data)
        except Exception as exc:
            self._binary_packet.pop(eio_sid, None)
            self._answer_packet(eio_sid, pending, "MalformedMessageError", _detail(exc))
        finally:
            if eio_sid not in self._binary_packet:
                self._attachment_bytes.pop(eio_sid, None)

    def _refuse_binary(self, eio_sid: str, pending: Any, reason: str, arrived: int = 0) -> None:
        """Drop a pending binary event; discard its remaining attachments; answer it.

        ``arrived`` counts attachments received but not stored (the one that passed the
        byte bound).
        """
        del self._binary_packet[eio_sid]
        self._attachment_bytes.pop(eio_sid, None)
        left = pending.attachment_count - len(pending.attachments) - arrived
        if left > 0:
            self._discarding[eio_sid] = left
        self._answer_packet(
            eio_sid,
            pending,
            "MessageTooLargeError",
            f"Message refused, not run: {reason}",
        )

    def _answer_packet(self, eio_sid: str, pkt: Any, kind: str, msg: str) -> None:
        """Answer an EVENT/BINARY_EVENT packet with an error envelope, if it has an ack id."""
        if pkt.packet_type not in (sio_packet.EVENT, sio_packet.BINARY_EVENT) or pkt.id is None:
            return
        self._send_ack(eio_sid, pkt.namespace or "/", pkt.id, [error_envelope(kind, msg)])

    def _answer_undecodable(self, eio_sid: str, data: Any, exc: Exception) -> None:
        """Answer a packet python-socketio could not decode, from its header alone."""
        header = _EVENT_HEADER.match(data) if type(data) is str else None
        if header is None:
            log.debug("dropped an undecodable packet: %s", exc)
            return
        kind, attachments, namespace, ack_id = header.groups()
        if kind == "5" and attachments:
            # its attachments follow; they belong to no event now
            self._discarding[eio_sid] = int(attachments)
        if ack_id is None:
            return
        namespace = (namespace or "/").split("?", 1)[0]
        self._send_ack(
            eio_sid,
            namespace,
            int(ack_id),
            [error_envelope("MalformedMessageError", f"Malformed message: {_detail(exc)}")],
        )

    def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self._attachment_bytes.pop(eio_sid, None)
        self._discarding.pop(eio_sid, None)
        super()._handle_eio_disconnect(eio_sid, reason)

    def _answer(self, eio_sid: str, data: str, match: re.Match[str]) -> bool:
        """Run one command event; ``False`` hands the frame to python-socketio instead."""
        namespace, commands, run, principals, handlers = self._fast  # type: ignore[misc]
        try:
            event = _loads(data[match.end() :])
        except ValueError:
            return False
        if (
            type(event) is not list
            or len(event) != 2
            or event[0] not in commands
            or event[0] in handlers
        ):
            return False
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return False
        _used["command_frames"] += 1
        envelope = run(principals.get(sid) if principals is not None else None, event[0], event[1])
        self._send_ack(eio_sid, namespace, int(match.group()), [envelope])
        return True

    def _send_ack(self, eio_sid: str, namespace: str, ack_id: int, payload: list[Any]) -> None:
        """Write an ACK frame.

        With the fast paths on it is encoded once with orjson; payloads orjson cannot
        encode (``bytes`` for attachments, huge integers, unknown objects) go through the
        packet class, which builds binary attachments or, via
        :class:`~znsocket.server.fastpacket.FastPacket`, an error envelope.
        """
        if DOOR.fast:
            try:
                text = _dumps_plain(payload)
            except TypeError:
                pass
            else:
                _used["ack_encoding"] += 1
                prefix = "3" if namespace == "/" else "3" + namespace + ","
                self.eio.send(eio_sid, prefix + str(ack_id) + text)
                return
        try:
            pkt = self.packet_class(sio_packet.ACK, namespace=namespace, id=ack_id, data=payload)
        except RecursionError:  # the binary scan of a value nested too deeply
            pkt = self.packet_class(
                sio_packet.ACK,
                namespace=namespace,
                id=ack_id,
                data=[
                    error_envelope(
                        "SerializationError", "The result cannot be sent: it is nested too deeply"
                    )
                ],
            )
        self._send_packet(eio_sid, pkt)

    def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            if id is not None:
                self._send_ack(
                    eio_sid,
                    namespace,
                    id,
                    [
                        error_envelope(
                            "UnknownNamespaceError",
                            f"Not connected to namespace {namespace}; the event was not run",
                        )
                    ],
                )
            return
        if not DOOR.fast or self._blocks(data):
            self.start_background_task(self._answer_event, eio_sid, namespace, sid, id, data)
        else:
            _used["inline_events"] += 1
            self._answer_event(eio_sid, namespace, sid, id, data)

    def _blocks(self, data: Any) -> bool:
        """Whether the event (or the call a wrapper carries) is a background event."""
        if type(data) is not list or not data:
            return False
        event = data[0]
        if type(event) is not str:
            return False
        if event in _WRAPPERS and len(data) == 2 and type(data[1]) is dict:
            event = data[1].get("event")
        return type(event) is str and event in self.background_events

    def _answer_event(self, eio_sid: str, namespace: str, sid: str, id: Any, data: Any) -> None:
        routes = self._routes
        route = routes.get(namespace) if routes is not None else None
        if type(data) is not list or not data:
            result: Any = error_envelope(
                "MalformedMessageError",
                "Malformed message: an event must be a JSON array starting with its name",
            )
        elif route is not None:
            result = route(sid, data[0], data[1:])
        else:
            result = self._trigger_event(data[0], namespace, sid, *data[1:])
        if result is self.not_handled or id is None:
            return
        if result is None:
            payload = []
        elif isinstance(result, tuple):
            payload = list(result)
        else:
            payload = [result]
        self._send_ack(eio_sid, namespace, id, payload)


def _detail(exc: Exception) -> str:
    """What is wrong with a packet that failed to decode, in words."""
    if isinstance(exc, jsoncodec.NestingError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ValueError):
        return f"invalid packet ({exc})"
    return f"invalid packet ({type(exc).__name__}: {exc})"


# Outside the tested range the server and its packets are python-socketio's own.
if TYPE_CHECKING:
    BaseServer = ServerHooks
    BasePacket = PacketHooks
else:
    BaseServer = ServerHooks if DOOR.open else socketio.Server
    BasePacket = PacketHooks if DOOR.open else sio_packet.Packet
