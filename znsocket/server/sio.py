"""The python-socketio server class used by znsocket, with its measured shortcuts.

Three costs of python-socketio dominate a small command (``bench/znsocket_server_profile.md``):

* every event may run in a new green thread (``async_handlers``), one more trip through
  the event hub per command. :class:`ZnSocketServer` runs handlers on the connection's
  reader instead, except for ``BACKGROUND_EVENTS`` (``adapter:get`` waits for the adapter
  owner - possibly the very client that asked - and would deadlock its reader). A
  ``compressed_message`` or ``chunked_message`` runs where the call it carries would run.
  ``async_handlers`` stays on, so ``call()`` keeps working.
* events of a namespace with a router (:meth:`ZnSocketServer.route_events`) are answered
  by it, so plain and wrapped calls share one routing
  (:class:`~znsocket.server.routing.EventRouter`).
* every packet is parsed into a ``Packet`` object, scanned for binary data, routed
  through the handler tables and re-encoded. For the hot case - a text command event
  with an acknowledgement id in the znsocket namespace whose name is a storage command -
  :meth:`ZnSocketServer.enable_command_fast_path` parses the frame with one ``json.loads``,
  calls the dispatcher and writes the ``ACK`` frame itself. Everything else (connects,
  binary events, non-command events, malformed frames) takes python-socketio's own path,
  which produces the same replies and errors.
* every acknowledgement is scanned for ``bytes`` before it is encoded. Here it is encoded
  once with orjson, which refuses ``bytes``; only then does python-socketio's packet class
  build the binary form, which saves a recursive scan of every large reply.

Hostile input: python-socketio buffers the binary attachments a binary event announces
without any bound, and drops malformed packets without a word. Here a binary event may
announce at most ``max_attachments`` attachments of at most ``max_attachment_bytes``
together; past either, the pending event is dropped, its remaining attachments are
discarded as they arrive, and its acknowledgement id (if any) gets a
``MessageTooLargeError`` envelope. A packet that cannot be decoded (broken JSON, nesting
beyond the decoder's depth, no event name) or that names a namespace the connection did
not join is answered with an error envelope whenever its header carries an
acknowledgement id. The connection stays open in every case.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Container, Sequence
from typing import Any

import socketio
from socketio import packet as sio_packet

from znsocket.protocol import jsoncodec
from znsocket.protocol.events import Event
from znsocket.protocol.payload import error_envelope

__all__ = ["BACKGROUND_EVENTS", "DEFAULT_MAX_ATTACHMENTS", "ZnSocketServer"]

log = logging.getLogger(__name__)

#: Binary attachments one event may announce (upstream clients send one per message).
DEFAULT_MAX_ATTACHMENTS = 1000

#: Events whose handlers may block waiting for a client, so run in their own green thread.
BACKGROUND_EVENTS = frozenset({Event.ADAPTER_GET})
#: Events carrying another call; they run where the call they carry would run.
_WRAPPERS = frozenset({Event.COMPRESSED_MESSAGE, Event.CHUNKED_MESSAGE})

_ACK_ID = re.compile(r"[0-9]{1,15}")
#: The header of an EVENT or BINARY_EVENT packet: type, attachments, namespace, ack id.
_EVENT_HEADER = re.compile(r"([25])(?:([0-9]{1,10})-)?(?:(/[^,]*),)?([0-9]{1,15})?")
_dumps_plain = jsoncodec.dumps_plain
_loads = jsoncodec.loads


class ZnSocketServer(socketio.Server):
    """``socketio.Server`` that handles non-blocking events inline on the reader.

    Args:
        max_attachments: Most binary attachments one event may announce.
        max_attachment_bytes: Most bytes the attachments of one event may hold together;
            ``None``: the Engine.IO packet limit (``max_http_buffer_size``).
        *args, **kwargs: ``socketio.Server``'s arguments.
    """

    background_events: frozenset[str] = BACKGROUND_EVENTS
    _fast: (
        tuple[
            str,
            str,
            Container[str],
            Callable[[Any, str, Any], Any],
            dict[str, Any] | None,
            Container[str],
        ]
        | None
    ) = None
    _routes: dict[str, Callable[[str, Any, Sequence[Any]], Any]] | None = None

    def __init__(
        self,
        *args: Any,
        max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
        max_attachment_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_attachments = max_attachments
        self.max_attachment_bytes = max_attachment_bytes
        # per connection: bytes of the pending event's attachments so far, and how many
        # attachments of a refused event are still to be thrown away
        self._attachment_bytes: dict[str, int] = {}
        self._discarding: dict[str, int] = {}

    def enable_command_fast_path(
        self,
        namespace: str,
        commands: Container[str],
        run: Callable[[Any, str, Any], Any],
        principals: dict[str, Any] | None,
    ) -> None:
        """Answer storage-command events without python-socketio's packet objects.

        Args:
            namespace: The znsocket namespace.
            commands: Event names that are storage commands.
            run: ``(principal, event, data) -> envelope`` (``Dispatcher.command``).
            principals: Connection id -> principal, when authorization is on.
        """
        # a handler registered for a command's name takes precedence, as in the router
        handlers = self.handlers.setdefault(namespace, {})
        self._fast = ("2" + namespace + ",", namespace, commands, run, principals, handlers)

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
        fast = self._fast
        if fast is not None and type(data) is str:
            prefix, namespace, commands, run, principals, handlers = fast
            if data.startswith(prefix):
                start = len(prefix)
                match = _ACK_ID.match(data, start)
                if match is not None and self._answer(
                    eio_sid, data, match, namespace, commands, run, principals, handlers
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

    def _answer(
        self,
        eio_sid: str,
        data: str,
        match: re.Match[str],
        namespace: str,
        commands: Container[str],
        run: Callable[[Any, str, Any], Any],
        principals: dict[str, Any] | None,
        handlers: Container[str],
    ) -> bool:
        """Run one command event; ``False`` hands the frame to python-socketio instead."""
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
        envelope = run(principals.get(sid) if principals is not None else None, event[0], event[1])
        self._send_ack(eio_sid, namespace, int(match.group()), [envelope])
        return True

    def _send_ack(self, eio_sid: str, namespace: str, ack_id: int, payload: list[Any]) -> None:
        """Write an ACK frame, encoding the payload once.

        Payloads orjson cannot encode (``bytes`` for attachments, huge integers, unknown
        objects) go through python-socketio's packet class, which builds binary
        attachments or, via :class:`~znsocket.server.fastpacket.FastPacket`, an error
        envelope.
        """
        try:
            text = _dumps_plain(payload)
        except TypeError:
            try:
                pkt = self.packet_class(
                    socketio.packet.ACK, namespace=namespace, id=ack_id, data=payload
                )
            except RecursionError:  # the binary scan of a value nested too deeply
                text = _dumps_plain(
                    [
                        error_envelope(
                            "SerializationError",
                            "The result cannot be sent: it is nested too deeply",
                        )
                    ]
                )
            else:
                self._send_packet(eio_sid, pkt)
                return
        prefix = "3" if namespace == "/" else "3" + namespace + ","
        self.eio.send(eio_sid, prefix + str(ack_id) + text)

    def route_events(self, namespace: str, route: Callable[[str, Any, Sequence[Any]], Any]) -> None:
        """Answer the events of ``namespace`` with ``route`` instead of the handler lookup.

        Args:
            namespace: The namespace.
            route: ``(sid, event, args) -> acknowledgement``
                (:meth:`~znsocket.server.routing.EventRouter.route`).
        """
        if self._routes is None:
            self._routes = {}
        self._routes[namespace] = route

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
        if self._blocks(data):
            self.start_background_task(self._answer_event, eio_sid, namespace, sid, id, data)
        else:
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
