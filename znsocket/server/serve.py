"""Serving a WSGI app with eventlet: bind, announce, run until SIGTERM/SIGINT.

:func:`serve` binds the listening socket itself (so ``port=0`` works), prints
``listening on HOST:PORT`` with the real port once the socket accepts connections, runs
``eventlet.wsgi.server`` in a green thread and returns when SIGTERM or SIGINT arrives.

Strategy: the signal handler only sets a flag; the main green thread polls it and then
stops the server thread and closes the socket. Touching eventlet's hub from inside a
signal handler is unsafe, and ``eventlet.wsgi.server``'s own shutdown waits for every open
websocket, which may never end.

At most ``max_connections`` connections are served at once (more wait in the listen
backlog), so each HTTP request must arrive whole: its request line and headers within
``request_timeout_s`` of the connection becoming idle, and its body within
``request_timeout_s`` of the headers; every socket read or write also times out after
that long. Otherwise the connection is closed, and half-finished requests cannot hold
every slot. A WebSocket, once open, is python-engineio's: its heartbeat decides.
"""

from __future__ import annotations

import contextlib
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

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_REQUEST_TIMEOUT_S", "serve"]

log = logging.getLogger(__name__)

_POLL_S = 0.2
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_REQUEST_TIMEOUT_S = 60.0


class _DeadlineInput:
    """A request body whose every read must finish within ``timeout_s``.

    At the deadline the connection is shut down before the error is raised: the
    application may answer the error anyway (python-engineio answers ``ok`` to a failed
    POST), and no answer must reach the client for a body that did not arrive.
    """

    def __init__(self, body: Any, sock: Any, timeout_s: float) -> None:
        self._body = body
        self._sock = sock
        self._timeout_s = timeout_s

    def read(self, *args: Any) -> bytes:
        try:
            with eventlet.Timeout(self._timeout_s, TimeoutError("request body timed out")):
                data: bytes = self._body.read(*args)
                return data
        except TimeoutError:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


def _protocol(timeout_s: float) -> type[eventlet.wsgi.HttpProtocol]:
    """eventlet's HTTP protocol with a deadline on each request's line, headers and body."""

    class DeadlineProtocol(eventlet.wsgi.HttpProtocol):
        _deadline: Any = None

        def handle_one_request(self) -> None:
            # a TimeoutError (socket.timeout) is how eventlet.wsgi drops a connection quietly
            self._deadline = eventlet.Timeout(timeout_s, TimeoutError("request timed out"))
            try:
                super().handle_one_request()
            finally:
                self._deadline.cancel()

        def get_environ(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            self._deadline.cancel()  # the headers are in: the application's time starts
            environ: dict[str, Any] = super().get_environ(*args, **kwargs)
            environ["wsgi.input"] = _DeadlineInput(
                environ["wsgi.input"], self.connection, timeout_s
            )
            return environ

    return DeadlineProtocol


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
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
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
        max_connections: Connections served at once; more wait in the listen backlog.
        request_timeout_s: Seconds an HTTP request's line and headers, and then its body,
            may take to arrive, and the limit of every socket read or write; a connection
            that passes it is closed.

    Raises:
        ValueError: ``max_connections`` or ``request_timeout_s`` is not positive.
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, not {max_connections!r}")
    if not request_timeout_s > 0:
        raise ValueError(f"request_timeout_s must be positive, not {request_timeout_s!r}")
    # no SO_REUSEPORT (eventlet sets it by default): a second server on a port in use must
    # fail, not share the port and take half of the first one's connections
    sock = eventlet.listen((host, port), backlog=backlog, reuse_port=False)
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
        max_size=max_connections,
        socket_timeout=request_timeout_s,
        protocol=_protocol(request_timeout_s),
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
