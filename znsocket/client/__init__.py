"""The znsocket client: :class:`Client`, :class:`Pipeline` and the Socket.IO transport.

Wire-compatible with upstream znsocket 0.3.0 in both directions (our client on upstream's
server, upstream's client on ours). Where it behaves differently, on purpose:

* It opens a websocket directly (Engine.IO ``transport=websocket``) instead of starting
  with HTTP long-polling, and ``Client.sio`` is :class:`SocketIOTransport`, which offers
  the part of ``socketio.Client`` znsocket code uses (``connect``, ``emit``, ``call``,
  ``on``, ``disconnect``, ``connected``, ``sleep``, ``wait``).
* A call whose connection drops fails at once with :class:`ConnectionLostError` instead
  of waiting for its timeout; it is not retried (the command may have run), and the next
  call reconnects.
* ``token`` (sent as the Socket.IO ``auth`` payload) and ``call_timeout`` are extra
  ``Client`` fields; a refused token raises ``znsocket.exceptions.AuthenticationError``.
"""

from znsocket.client.client import Client
from znsocket.client.pipeline import Pipeline
from znsocket.client.transport import ConnectionLostError, NamespaceRefusedError, SocketIOTransport
from znsocket.client.url import parse_url

__all__ = [
    "Client",
    "ConnectionLostError",
    "NamespaceRefusedError",
    "Pipeline",
    "SocketIOTransport",
    "parse_url",
]
