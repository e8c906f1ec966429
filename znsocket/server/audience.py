"""Who receives a ``refresh``: per-connection rooms instead of a broadcast to everyone.

Upstream relays every ``refresh`` (target key and data) to every client of the namespace.
A server whose clients may read only some keys passes an :class:`Audience` to
:func:`~znsocket.server.app.create_app`: each connection joins one socket.io room when it
connects (:meth:`Audience.room`, from its principal), and each refresh is sent only to the
rooms allowed to read its target (:meth:`Audience.rooms`).

Strategy: rooms rather than a check per recipient. python-socketio encodes an event once
for any number of rooms, and the room names travel with the event through a message queue
(``socketio.RedisManager``), so clients of other server processes are filtered too, by the
room they joined there. Without an audience a refresh is one broadcast, as upstream's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["Audience"]


class Audience(Protocol):
    """Decides which connections hear about a key."""

    def room(self, principal: Any) -> str | None:
        """The room a connection with this principal joins (``None``: none, so it
        receives no refresh at all)."""

    def rooms(self, target: str) -> Sequence[str]:
        """The rooms whose connections may read ``target`` (the full key of a refresh);
        empty: nobody is told."""
