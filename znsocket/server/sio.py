"""The python-socketio server class used by znsocket.

:class:`ZnSocketServer` adds to ``socketio.Server`` the options and entry points the
znsocket events need; how it reaches into python-socketio for them - and what it falls
back to outside the tested versions - is :mod:`znsocket.server._socketio_private`'s
business:

* events of a namespace with a route table (:meth:`ZnSocketServer.route_events`) are
  unwrapped and answered by it, so plain and wrapped calls share one routing
  (:class:`~znsocket.server.routing.RouteTable`); they run on the connection's reader,
  except :attr:`ZnSocketServer.background_events` (also when a wrapper carries one);
* text command events are answered straight from the frame
  (:meth:`ZnSocketServer.enable_command_fast_path`);
* a binary event may announce at most ``max_attachments`` attachments of at most
  ``max_attachment_bytes`` together, and malformed packets with an ack id are answered
  with an error envelope. The connection stays open in every case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from znsocket.protocol.events import Event
from znsocket.server._socketio_private import DOOR, BaseServer
from znsocket.server.routing import RouteTable

__all__ = ["BACKGROUND_EVENTS", "DEFAULT_MAX_ATTACHMENTS", "ZnSocketServer"]

#: Binary attachments one event may announce (upstream clients send one per message).
DEFAULT_MAX_ATTACHMENTS = 1000

#: Events whose handlers may block waiting for a client, so run in their own green thread.
BACKGROUND_EVENTS = frozenset({Event.ADAPTER_GET})


class ZnSocketServer(BaseServer):
    """``socketio.Server`` that routes and bounds the znsocket events.

    Args:
        max_attachments: Most binary attachments one event may announce.
        max_attachment_bytes: Most bytes the attachments of one event may hold together;
            ``None``: the Engine.IO packet limit (``max_http_buffer_size``).
        *args, **kwargs: ``socketio.Server``'s arguments.
    """

    #: Events run in a green thread of their own rather than on the connection's reader.
    background_events: frozenset[str] = BACKGROUND_EVENTS

    def __init__(
        self,
        *args: Any,
        max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
        max_attachment_bytes: int | None = None,
        **kwargs: Any,
    ) -> None:
        DOOR.announce()
        super().__init__(*args, **kwargs)
        self.max_attachments = max_attachments
        self.max_attachment_bytes = max_attachment_bytes

    def enable_command_fast_path(
        self,
        namespace: str,
        run: Callable[[Any, str, Any], Any],
        principals: dict[str, Any] | None,
    ) -> None:
        """Answer storage-command events without python-socketio's packet objects.

        Takes effect once :meth:`route_events` gave the namespace its route table, which
        says which events are storage commands.

        Args:
            namespace: The znsocket namespace.
            run: ``(principal, event, data) -> envelope`` (``Dispatcher.command``).
            principals: Connection id -> principal, when authorization is on.
        """
        hook = getattr(self, "hook_commands", None)
        if hook is not None:
            hook(namespace, run, principals)

    def route_events(self, namespace: str, routes: RouteTable) -> None:
        """Answer the events of ``namespace`` with ``routes`` instead of the handler lookup.

        Args:
            namespace: The namespace.
            routes: Its route table.
        """
        hook = getattr(self, "hook_routes", None)
        if hook is not None:
            hook(namespace, routes)
