"""Serving a WSGI app with eventlet: bind, announce, run until SIGTERM/SIGINT.

:func:`serve` binds the listening socket itself (so ``port=0`` works), prints
``listening on HOST:PORT`` with the real port once the socket accepts connections, runs
``eventlet.wsgi.server`` in a green thread and returns when SIGTERM or SIGINT arrives.

Strategy: the signal handler only sets a flag; the main green thread polls it and then
stops the server thread and closes the socket. Touching eventlet's hub from inside a
signal handler is unsafe, and ``eventlet.wsgi.server``'s own shutdown waits for every open
websocket, which may never end.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import warnings
from collections.abc import Callable
from typing import Any, TextIO

with warnings.catch_warnings():
    # eventlet announces its maintenance mode on import; the product owner chose it
    warnings.simplefilter("ignore")
    import eventlet
    import eventlet.wsgi

from znsocket.server.gc_tuning import tune_gc_for_serving

__all__ = ["serve"]

log = logging.getLogger(__name__)

_POLL_S = 0.2


class _QuietLog:
    """A ``log`` for eventlet.wsgi that drops access lines (no per-request logging)."""

    def write(self, _text: str) -> None:
        pass


def serve(
    wsgi_app: Any,
    host: str = "0.0.0.0",
    port: int = 5000,
    *,
    announce: TextIO | None = None,
    on_shutdown: Callable[[], None] | None = None,
    backlog: int = 1024,
    tune_gc: bool = True,
) -> None:
    """Serve ``wsgi_app`` until SIGTERM or SIGINT (blocking).

    Args:
        wsgi_app: The WSGI application (e.g. ``ZnSocketApp.wsgi_app``).
        host: Address to bind; ``"0.0.0.0"`` for every interface.
        port: TCP port; ``0`` lets the OS choose (the chosen port is announced).
        announce: Stream for the ``listening on HOST:PORT`` line (default: stdout).
        on_shutdown: Called once after the server stopped accepting (close storages here).
        backlog: Listen backlog.
        tune_gc: Apply :func:`~znsocket.server.gc_tuning.tune_gc_for_serving` (the
            process is the server's: this changes the interpreter's collector settings).
    """
    sock = eventlet.listen((host, port), backlog=backlog)
    # accepted sockets inherit this: a reply of several frames (binary attachments) must
    # not wait for the peer's delayed ACK (Nagle's algorithm)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound_host, bound_port = sock.getsockname()[:2]
    stop = {"requested": False}

    def request_stop(signum: int, _frame: Any) -> None:
        stop["requested"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    server = eventlet.spawn(
        eventlet.wsgi.server,
        sock,
        wsgi_app,
        log=_QuietLog(),
        log_output=False,
        debug=False,
        max_size=10_000,
        socket_timeout=None,
    )
    if tune_gc:
        tune_gc_for_serving()
    stream = announce or sys.stdout
    print(f"listening on {bound_host}:{bound_port}", file=stream, flush=True)
    try:
        while not stop["requested"] and not server.dead:
            eventlet.sleep(_POLL_S)
    finally:
        server.kill()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if on_shutdown is not None:
            on_shutdown()
        log.info("server on %s:%s stopped", bound_host, bound_port)
