"""The WebSocket transport of the znsocket server (python-engineio's eventlet driver).

python-engineio serves WebSockets with ``eventlet.websocket``; profiling a ``get``
through it (``bench/znsocket_server_profile.md``) showed costs that have nothing to do
with znsocket, and python-engineio holds without bound what a slow reader leaves unread.
:func:`install` changes one server's transport:

* reads go through a buffer (one ``recv`` of up to 64 KiB instead of three to four per
  frame) and client frames are unmasked whole buffers at a time
  (:mod:`znsocket.server._eventlet_private`);
* answers are written by the green thread that produced them whenever nothing is queued
  ahead of them, and each connection's unsent answers are bounded
  (``send_buffer_bytes``, ``send_timeout_s``; :mod:`znsocket.server._engineio_private`);
* a message is refused (close code 1009) as soon as its fragments pass the frame limit,
  an empty text frame is skipped, and a frame python-engineio cannot decode closes that
  connection with code 1011.

Both libraries' internals are touched only in those two modules, which fall back to the
library's own path outside the tested versions (:mod:`znsocket.server.doors`).
"""

from __future__ import annotations

from znsocket.server._engineio_private import (
    DEFAULT_SEND_BUFFER_BYTES,
    DEFAULT_SEND_TIMEOUT_S,
    install,
)
from znsocket.server._eventlet_private import READ_SIZE_BYTES, TURN_S, BufferedSocket, unmask

__all__ = [
    "DEFAULT_SEND_BUFFER_BYTES",
    "DEFAULT_SEND_TIMEOUT_S",
    "READ_SIZE_BYTES",
    "TURN_S",
    "BufferedSocket",
    "install",
    "unmask",
]
