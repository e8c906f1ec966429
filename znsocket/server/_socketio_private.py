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
  namespace whose name the route table sends to a storage command
  (:meth:`~znsocket.server.routing.RouteTable.command_for`) is read with
  :func:`~znsocket.protocol.sio_packets.read_ack_id` and one ``loads``, answered by the
  dispatcher, without python-socketio's packet objects. Anything else (connects, binary
  events, other events, malformed frames) takes python-socketio's path.
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
header carries an ack id; events are unwrapped and answered by the namespace's route table
(:meth:`~znsocket.server.sio.ZnSocketServer.route_events`), which refuses lifecycle names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import socketio
from socketio import packet as sio_packet

from znsocket.protocol import jsoncodec
from znsocket.protocol.payload import error_envelope
from znsocket.protocol.sio_packets import (
    SIO_BINARY_EVENT,
    SIO_EVENT,
    ProtocolError,
    ack_text,
    event_prefix,
    has_binary,
    parse_header,
    read_ack_id,
)
from znsocket.server.doors import Door
from znsocket.server.routing import Call, RouteTable

__all__ = ["DOOR", "BasePacket", "BaseServer", "PacketHooks", "ServerHooks"]

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

_dumps_plain = jsoncodec.dumps_plain
_loads = jsoncodec.loads


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
    _fast: tuple[str, Callable[[Any, str, Any], Any], dict[str, Any] | None] | None = None
    _routes: dict[str, RouteTable] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per connection: bytes of the pending event's attachments so far, and how many
        # attachments of a refused event are still to be thrown away
        self._attachment_bytes: dict[str, int] = {}
        self._discarding: dict[str, int] = {}

    def hook_commands(
        self,
        namespace: str,
        run: Callable[[Any, str, Any], Any],
        principals: dict[str, Any] | None,
    ) -> None:
        """Answer the text command events of ``namespace`` from the frame (if fast paths
        run): ``run(principal, event, data)`` answers them."""
        if DOOR.fast:
            self._fast_prefix = event_prefix(namespace)
            self._fast = (namespace, run, principals)

    def hook_routes(self, namespace: str, routes: RouteTable) -> None:
        """Answer the events of ``namespace`` with ``routes``."""
        if self._routes is None:
            self._routes = {}
        self._routes[namespace] = routes

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
        if (
            prefix is not None
            and type(data) is str
            and data.startswith(prefix)
            and self._answer(eio_sid, data)
        ):
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
        try:
            kind, attachments, namespace, ack_id, _ = parse_header(data)
        except (ProtocolError, TypeError):
            kind = ""
        if kind != SIO_EVENT and kind != SIO_BINARY_EVENT:
            log.debug("dropped an undecodable packet: %s", exc)
            return
        if attachments:
            # its attachments follow; they belong to no event now
            self._discarding[eio_sid] = attachments
        if ack_id is None:
            return
        self._send_ack(
            eio_sid,
            namespace.split("?", 1)[0],
            ack_id,
            [error_envelope("MalformedMessageError", f"Malformed message: {_detail(exc)}")],
        )

    def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self._attachment_bytes.pop(eio_sid, None)
        self._discarding.pop(eio_sid, None)
        super()._handle_eio_disconnect(eio_sid, reason)

    def _answer(self, eio_sid: str, data: str) -> bool:
        """Run one command event; ``False`` hands the frame to python-socketio instead."""
        namespace, run, principals = self._fast  # type: ignore[misc]
        routes = self._routes.get(namespace) if self._routes is not None else None
        ack = read_ack_id(data, len(self._fast_prefix))  # type: ignore[arg-type]
        if ack is None or routes is None:
            return False
        ack_id, end = ack
        try:
            event = _loads(data[end:])
        except ValueError:
            return False
        if (
            type(event) is not list
            or len(event) != 2
            or type(event[0]) is not str
            or routes.command_for(event[0]) is None
        ):
            return False
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return False
        _used["command_frames"] += 1
        envelope = run(principals.get(sid) if principals is not None else None, event[0], event[1])
        self._send_ack(eio_sid, namespace, ack_id, [envelope])
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
                self.eio.send(eio_sid, ack_text(namespace, ack_id, text))
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
        routes = self._routes.get(namespace) if self._routes is not None else None
        if type(data) is not list or not data:
            call: Any = error_envelope(
                "MalformedMessageError",
                "Malformed message: an event must be a JSON array starting with its name",
            )
        elif routes is None:  # a namespace without a route table: python-socketio's lookup
            self.start_background_task(self._answer_call, eio_sid, namespace, sid, id, data)
            return
        else:
            call = routes.unwrap(sid, data[0], data[1:])
        if type(call) is not Call or routes is None:
            self._ack_result(eio_sid, namespace, id, call)
        elif not DOOR.fast or call.event in self.background_events:
            self.start_background_task(self._answer_call, eio_sid, namespace, sid, id, call)
        else:
            _used["inline_events"] += 1
            self._ack_result(eio_sid, namespace, id, routes.run(sid, call))

    def _answer_call(self, eio_sid: str, namespace: str, sid: str, id: Any, call: Any) -> None:
        """Answer an unwrapped call (or, without a route table, the event's data)."""
        routes = self._routes.get(namespace) if self._routes is not None else None
        if routes is not None:
            result = routes.run(sid, call)
        else:
            result = self._trigger_event(call[0], namespace, sid, *call[1:])
        self._ack_result(eio_sid, namespace, id, result)

    def _ack_result(self, eio_sid: str, namespace: str, id: Any, result: Any) -> None:
        """Acknowledge an event with a handler's result, as python-socketio does."""
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
