"""The python-socketio server class used by znsocket.

python-socketio can run every event handler in a new green thread (``async_handlers``)
or on the connection's reader. A new green thread per event costs a trip through the
event hub for every command; running on the reader is cheaper, but a handler that waits
for another acknowledgement on the same connection would then deadlock.

:class:`ZnSocketServer` runs handlers on the reader, except for the events listed in
``BACKGROUND_EVENTS`` (``adapter:get``, which waits for the adapter owner - possibly the
very client that asked). ``async_handlers`` stays on, so ``call()`` keeps working.
"""

from __future__ import annotations

from typing import Any

import socketio

from znsocket.protocol.events import Event

__all__ = ["BACKGROUND_EVENTS", "ZnSocketServer"]

#: Events whose handlers may block waiting for a client, so run in their own green thread.
BACKGROUND_EVENTS = frozenset({Event.ADAPTER_GET})


class ZnSocketServer(socketio.Server):
    """``socketio.Server`` that handles non-blocking events inline on the reader."""

    background_events: frozenset[str] = BACKGROUND_EVENTS

    def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        handle = getattr(self, "_handle_event_internal", None)
        if handle is None or (data and data[0] in self.background_events):
            super()._handle_event(eio_sid, namespace, id, data)
            return
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            return
        handle(self, sid, eio_sid, data, namespace, id)
