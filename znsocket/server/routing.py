"""Where an event of the znsocket namespace goes: one routing for every way a call arrives.

A call reaches the server as a plain event, inside ``compressed_message`` or as the
reassembled ``chunked_message``. Each ends in :meth:`EventRouter.route`, so an event is
handled the same however it travelled:

1. ``connect``, ``disconnect`` and ``*`` are refused (they are not requests), and so, inside
   a wrapper, are the wrapper events themselves and ``server_config`` (no nesting);
2. a handler registered for the event on the namespace (``sio.on(event, namespace=...)``:
   ``pipeline``, ``refresh``, the adapter events, or an embedding application's own);
3. a storage command of the interface (which answers ``UnknownEventError`` for any other
   name, dunders and attributes included).

Strategy: the table of registered handlers is python-socketio's own, read at call time,
so handlers registered after the server was built are routed too. A handler that raises
answers with an error envelope rather than leaving the request unanswered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from znsocket.protocol.events import Event
from znsocket.protocol.payload import Envelope, error_envelope, error_envelope_for
from znsocket.server.dispatch import malformed

__all__ = ["LIFECYCLE_EVENTS", "NOT_WRAPPABLE", "EventRouter"]

log = logging.getLogger(__name__)

#: Names python-socketio gives to connection events; a client may not send them as requests.
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect", "*"})
#: Events that carry, fetch or describe calls: never the inner event of a wrapper.
NOT_WRAPPABLE = frozenset(
    {
        Event.COMPRESSED_MESSAGE,
        Event.CHUNKED_MESSAGE,
        Event.GET_CHUNKED_RESULT,
        Event.SERVER_CONFIG,
    }
)

#: ``(sid, event, data) -> envelope``: run a storage command for a connection.
Command = Callable[[str, str, Any], Envelope]


class EventRouter:
    """Routes the events of one namespace.

    Args:
        handlers: The namespace's handler table (python-socketio's ``sio.handlers[ns]``);
            handlers are called as ``handler(sid, *args)``.
        command: Runs a storage command (with the connection's authorization).
    """

    def __init__(self, handlers: dict[str, Callable[..., Any]], command: Command) -> None:
        self.handlers = handlers
        self.command = command

    def route(self, sid: str, event: Any, args: Sequence[Any], via: str | None = None) -> Any:
        """Answer one event exactly as a plain event of that name would be answered.

        Args:
            sid: The connection.
            event: The event name.
            args: The event's data arguments (one ``[args, kwargs]`` for a call).
            via: The wrapper it arrived in (``compressed_message``, ``chunked_message``),
                ``None`` for a plain event.

        Returns:
            The acknowledgement: the handler's return value or an envelope.
        """
        if type(event) is not str:
            return malformed(str(event), "the event name must be a string")
        if event in LIFECYCLE_EVENTS or (via is not None and event in NOT_WRAPPABLE):
            return refused(event, via)
        handler = self.handlers.get(event)
        if handler is not None:
            try:
                return handler(sid, *args)
            except Exception as exc:
                log.exception("handler of %r failed", event)
                return error_envelope_for(exc, event)
        if len(args) != 1:
            return malformed(event, "expected exactly one data argument [args, kwargs]")
        return self.command(sid, event, args[0])


def refused(event: str, via: str | None) -> Envelope:
    """The envelope for an event name a client may not send (here)."""
    where = f" inside {via}" if via is not None else ""
    return error_envelope("UnknownEventError", f"Unknown event: {event} (not accepted{where})")
