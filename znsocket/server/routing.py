"""Where an event of the znsocket namespace goes: one route table for every way a call arrives.

A call reaches the server as a plain event, inside ``compressed_message`` or as the
reassembled ``chunked_message``. :meth:`RouteTable.unwrap` takes the call out of its
wrapper first - once, before anything is looked up - and :meth:`RouteTable.route` then
answers it the same however it travelled:

1. ``connect``, ``disconnect`` and ``*`` are refused (they are not requests), and so, inside
   a wrapper, are the wrapper events themselves and ``server_config`` (no nesting);
2. a handler registered for the event on the namespace (``sio.on(event, namespace=...)``:
   ``pipeline``, ``refresh``, the adapter events, or an embedding application's own);
3. a storage command of the interface (which answers ``UnknownEventError`` for any other
   name, dunders and attributes included).

Rule 2 before 3 is decided in one place, :meth:`RouteTable.command_for`, which the
server's command fast path asks too. The table of registered handlers is python-socketio's
own, read at call time, so handlers registered after the server was built are routed too.
A handler that raises answers with an error envelope rather than leaving the request
unanswered. The wrapper names are unwrapped, never routed: a handler registered under one
of them is not called.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from znsocket.protocol.chunks import Assembled
from znsocket.protocol.events import Event
from znsocket.protocol.payload import Envelope, error_envelope, error_envelope_for
from znsocket.server.dispatch import Dispatcher, malformed

__all__ = ["LIFECYCLE_EVENTS", "NOT_WRAPPABLE", "WRAPPERS", "Call", "RouteTable"]

log = logging.getLogger(__name__)

#: Names python-socketio gives to connection events; a client may not send them as requests.
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect", "*"})
#: Events that carry another call.
WRAPPERS = frozenset({Event.COMPRESSED_MESSAGE, Event.CHUNKED_MESSAGE})
#: Events that carry, fetch or describe calls: never the inner event of a wrapper.
NOT_WRAPPABLE = WRAPPERS | {Event.GET_CHUNKED_RESULT, Event.SERVER_CONFIG}

#: ``(sid, event, data) -> envelope``: run a storage command for a connection.
Command = Callable[[str, str, Any], Envelope]


@dataclass(slots=True)
class Call:
    """A call to route, out of its wrapper (:meth:`RouteTable.unwrap`)."""

    event: Any
    args: Sequence[Any]
    #: The wrapper it arrived in; ``None`` for a plain event.
    via: str | None = None
    #: For a chunked message: the completed message, whose answer is kept for
    #: ``get_chunked_result`` (the last chunk is answered with its progress).
    chunked: Assembled | None = None


class RouteTable:
    """Routes the events of one namespace.

    Args:
        handlers: The namespace's handler table (python-socketio's ``sio.handlers[ns]``);
            handlers are called as ``handler(sid, *args)``.
        dispatcher: Holds the storage commands and unwraps large messages.
        command: Runs a storage command (with the connection's authorization).
    """

    def __init__(
        self,
        handlers: Mapping[str, Callable[..., Any]],
        dispatcher: Dispatcher,
        command: Command,
    ) -> None:
        self.handlers = handlers
        self.dispatcher = dispatcher
        self.commands = dispatcher.commands
        self.command = command

    def command_for(self, event: str) -> Callable[..., Any] | None:
        """The storage command ``event`` runs; ``None`` if it runs none. A handler
        registered under a command's name wins over the command."""
        if event in self.handlers:
            return None
        return self.commands.get(event)

    def unwrap(self, sid: str, event: Any, args: Sequence[Any]) -> Call | Any:
        """Take the call out of a ``compressed_message`` or ``chunked_message``.

        Args:
            sid: The connection.
            event: The event name.
            args: The event's data arguments.

        Returns:
            The :class:`Call` to route (a plain event is its own call), or the answer when
            there is none to route (a chunk that completes nothing, a message that fails
            to decode).
        """
        if event == Event.COMPRESSED_MESSAGE:
            if len(args) != 1:
                return malformed(event, "expected exactly one data argument")
            decoded = self.dispatcher.decompress(args[0])
            if type(decoded) is not tuple:
                return decoded
            return Call(decoded[0], (decoded[1],), event)
        if event == Event.CHUNKED_MESSAGE:
            if len(args) != 1:
                return malformed(event, "expected exactly one data argument")
            taken = self.dispatcher.chunk(sid, args[0], time.monotonic())
            if type(taken) is not tuple:
                return taken
            return Call(taken[0], (taken[1],), event, taken[2])
        return Call(event, args)

    def run(self, sid: str, call: Call) -> Any:
        """Answer an unwrapped call (a chunked message's answer is kept, its progress
        returned)."""
        result = self.route(sid, call.event, call.args, call.via)
        if call.chunked is not None:
            return self.dispatcher.keep_result(sid, call.chunked, result)
        return result

    def answer(self, sid: str, event: Any, args: Sequence[Any]) -> Any:
        """Unwrap and answer one event, as python-socketio's ``*`` handler."""
        call = self.unwrap(sid, event, args)
        return self.run(sid, call) if type(call) is Call else call

    def route(self, sid: str, event: Any, args: Sequence[Any], via: str | None = None) -> Any:
        """Answer one unwrapped call exactly as a plain event of that name would be answered.

        Args:
            sid: The connection.
            event: The event name.
            args: The event's data arguments (one ``[args, kwargs]`` for a call).
            via: The wrapper it arrived in, ``None`` for a plain event.

        Returns:
            The acknowledgement: the handler's return value or an envelope.
        """
        if type(event) is not str:
            return malformed(str(event), "the event name must be a string")
        if event in LIFECYCLE_EVENTS or (via is not None and event in NOT_WRAPPABLE):
            return refused(event, via)
        if self.command_for(event) is None:
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
