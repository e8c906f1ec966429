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
  build the binary form (a 1,000-envelope pipeline reply: ~1 ms of scanning saved).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Sequence
from typing import Any

import socketio

from znsocket.protocol import jsoncodec
from znsocket.protocol.events import Event

__all__ = ["BACKGROUND_EVENTS", "ZnSocketServer"]

#: Events whose handlers may block waiting for a client, so run in their own green thread.
BACKGROUND_EVENTS = frozenset({Event.ADAPTER_GET})
#: Events carrying another call; they run where the call they carry would run.
_WRAPPERS = frozenset({Event.COMPRESSED_MESSAGE, Event.CHUNKED_MESSAGE})

_ACK_ID = re.compile(r"[0-9]{1,15}")
_dumps_plain = jsoncodec.dumps_plain
_loads = jsoncodec.loads


class ZnSocketServer(socketio.Server):
    """``socketio.Server`` that handles non-blocking events inline on the reader."""

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
        fast = self._fast
        if fast is not None and type(data) is str and eio_sid not in self._binary_packet:
            prefix, namespace, commands, run, principals, handlers = fast
            if data.startswith(prefix):
                start = len(prefix)
                match = _ACK_ID.match(data, start)
                if match is not None and self._answer(
                    eio_sid, data, match, namespace, commands, run, principals, handlers
                ):
                    return
        super()._handle_eio_message(eio_sid, data)

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
            self._send_packet(
                eio_sid,
                self.packet_class(
                    socketio.packet.ACK, namespace=namespace, id=ack_id, data=payload
                ),
            )
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
            return
        if self._blocks(data):
            self.start_background_task(self._answer_event, eio_sid, namespace, sid, id, data)
        else:
            self._answer_event(eio_sid, namespace, sid, id, data)

    def _blocks(self, data: Any) -> bool:
        """Whether the event (or the call a wrapper carries) is a background event."""
        if not data:
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
        if not data:
            result: Any = self.not_handled
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
