"""The znsocket server: socket.io events over a storage command interface.

* :class:`Server` - upstream's dataclass (``port``, ``storage``, ``run()``, ``from_url``).
* :func:`attach_events` - register the events on an existing ``socketio.Server``.
* :func:`create_app` / :class:`ZnSocketApp` - build a server for any storage implementing
  :class:`~znsocket.storage.base.StorageCommands`, with options for message size, CORS,
  authentication and per-command authorization; ``ZnSocketApp.emit_refresh`` sends
  server-originated refresh events, to the clients an :class:`Audience` allows.
* :func:`serve` - bind, print ``listening on HOST:PORT``, run until SIGTERM/SIGINT.
* :func:`token_authenticator` - shared-token authentication.
"""

from znsocket.server.app import ZnSocketApp, attach_events, create_app
from znsocket.server.audience import Audience
from znsocket.server.auth import extract_token, token_authenticator
from znsocket.server.dispatch import Authorize, Dispatcher
from znsocket.server.serve import serve
from znsocket.server.server import Server, resolve_storage

__all__ = [
    "Audience",
    "Authorize",
    "Dispatcher",
    "Server",
    "ZnSocketApp",
    "attach_events",
    "create_app",
    "extract_token",
    "resolve_storage",
    "serve",
    "token_authenticator",
]
