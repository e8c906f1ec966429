"""A lean blocking Socket.IO client over one websocket (the I/O half of
:mod:`znsocket.protocol.sio_packets`).

Why not ``socketio.Client``: each of its calls crosses several threads and queues and
starts over HTTP long-polling; a direct websocket (``transport=websocket``) with one
reader thread answers a call in about half the time. The surface mirrors the part of
``socketio.Client`` that znsocket code and its users touch (``connect``, ``emit``,
``call``, ``on``, ``disconnect``, ``connected``, ``sleep``), so ``client.sio`` keeps
working as it does upstream.

Threads: a caller sends its request and then reads the websocket itself until its
acknowledgement arrives (one reader at a time, under ``_read_lock``); handing every
answer from a reader thread to the caller would cost two thread switches per call,
which is what limits many client processes sharing few cores. While no call is in
flight, a *background* thread reads instead, so heartbeats and server events are
served, and it reconnects after a drop. Server events (``refresh``, ``adapter:get``)
run on a separate *dispatcher* thread, because their handlers may themselves make calls.

The websocket itself is a :class:`~znsocket.client.link.WebSocketLink`: opened by
websocket-client, then framed by our own codec (:mod:`znsocket.client.frames`).
"""

from __future__ import annotations

import _thread
import contextlib
import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import socketio.exceptions
import websocket

from znsocket.client.frames import OP_TEXT, FrameError
from znsocket.client.link import WebSocketLink
from znsocket.exceptions import ZnSocketError
from znsocket.protocol.sio_packets import (
    Ack,
    Close,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    Open,
    Ping,
    ProtocolError,
    SocketIOProtocol,
)

log = logging.getLogger(__name__)

Handler = Callable[..., Any]
_STOP = object()
# Reconnect jitter draws from its own generator: a background thread must not move the
# global ``random`` state that a program may have seeded for its own, reproducible use.
_jitter = random.Random()


class ConnectionLostError(ZnSocketError, socketio.exceptions.DisconnectedError):
    """The connection dropped before a call was answered (or could not be re-established)."""


class NamespaceRefusedError(socketio.exceptions.ConnectionError):
    """The server refused to let us join a namespace (e.g. missing or wrong token).

    Attributes:
        namespace: The refused namespace.
        reason: The server's message.
    """

    def __init__(self, namespace: str, reason: Any) -> None:
        self.namespace = namespace
        self.reason = reason
        super().__init__(f"namespace {namespace} refused the connection: {reason}")


class _Waiter:
    """One pending call: a locked lock that the reader releases with the answer."""

    __slots__ = ("error", "lock", "value")

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.lock.acquire()
        self.value: list[Any] | None = None
        self.error: BaseException | None = None


class SocketIOTransport:
    """Blocking Socket.IO v5 client speaking Engine.IO v4 directly over a websocket.

    Args:
        reconnection: Reconnect automatically (in the background and before the next
            call) after the connection drops.
        reconnection_delay: First delay between background attempts, in seconds.
        reconnection_delay_max: Upper bound of the growing delay, in seconds.
    """

    def __init__(
        self,
        reconnection: bool = True,
        reconnection_delay: float = 0.5,
        reconnection_delay_max: float = 5.0,
    ) -> None:
        self.reconnection = reconnection
        self.reconnection_delay = reconnection_delay
        self.reconnection_delay_max = reconnection_delay_max
        self.connected = False
        self.namespaces: dict[str, str | None] = {}
        self.handlers: dict[str, dict[str, Handler]] = {}
        self.eio_sid: str | None = None
        self.max_payload: int | None = None
        self._ws: WebSocketLink | None = None
        self._proto = SocketIOProtocol()
        self._ids = itertools.count(1)
        self._waiters: dict[int, _Waiter | Callable[..., Any]] = {}
        self._send_lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._background: threading.Thread | None = None
        self._closing = False
        self._conn_args: dict[str, Any] | None = None
        self._disconnected = threading.Event()
        self._read_lock = threading.Lock()  # held by whichever thread reads the websocket
        self._state = threading.Condition(threading.Lock())
        self._inflight = 0  # calls waiting for their acknowledgement
        self._last_activity = 0.0  # monotonic time the last call finished
        self._last_recv = 0.0  # monotonic time of the last message from the server
        self._heartbeat = 45.0  # seconds of silence after which the server counts as gone

    # --------------------------------------------------------------- handlers
    def on(self, event: str, handler: Handler | None = None, namespace: str | None = None) -> Any:
        """Register ``handler`` for a server event (usable as a decorator)."""
        ns = namespace or "/"

        def register(fn: Handler) -> Handler:
            self.handlers.setdefault(ns, {})[event] = fn
            return fn

        return register(handler) if handler is not None else register

    # --------------------------------------------------------------- connection
    def connect(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        auth: Any = None,
        transports: Any = None,
        namespaces: list[str] | str | None = None,
        socketio_path: str = "socket.io",
        wait: bool = True,
        wait_timeout: float = 1,
    ) -> None:
        """Open the websocket and join ``namespaces``.

        Raises:
            socketio.exceptions.ConnectionError: The server is unreachable, refused the
                namespace, or did not answer within ``wait_timeout`` seconds.
        """
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        self._conn_args = {
            "url": url,
            "headers": dict(headers or {}),
            "auth": auth,
            "namespaces": list(namespaces or ["/"]),
            "path": socketio_path.strip("/") or "socket.io",
            "timeout": max(float(wait_timeout), 0.1),
        }
        self._closing = False
        with self._connect_lock:
            self._open()

    def _ws_url(self) -> str:
        assert self._conn_args is not None
        parts = urlsplit(self._conn_args["url"])
        scheme = {"https": "wss", "wss": "wss"}.get(parts.scheme, "ws")
        return f"{scheme}://{parts.netloc}/{self._conn_args['path']}/?EIO=4&transport=websocket"

    def _open(self) -> None:
        """Handshake synchronously, then start the reader. Holds ``_connect_lock``."""
        args = self._conn_args
        assert args is not None
        timeout = args["timeout"]
        proto = SocketIOProtocol()
        pending = set(args["namespaces"])
        joined: dict[str, str | None] = {}
        ws: WebSocketLink | None = None
        try:
            header = [f"{k}: {v}" for k, v in args["headers"].items()]
            ws = WebSocketLink(self._ws_url(), timeout, header)
            deadline = time.monotonic() + timeout
            opened: Open | None = None
            while pending:
                ws.settimeout(max(deadline - time.monotonic(), 0.01))
                opcode, data = ws.recv_message()
                if opcode != OP_TEXT:
                    raise ProtocolError("unexpected message during the handshake")
                ev = proto.receive_text(data.decode())
                if isinstance(ev, Open):
                    opened = ev
                    for ns in args["namespaces"]:
                        ws.send_text(proto.connect(ns, args["auth"]))
                elif isinstance(ev, Ping):
                    ws.send_text(proto.pong())
                elif isinstance(ev, Connected) and ev.namespace in pending:
                    pending.discard(ev.namespace)
                    joined[ev.namespace] = ev.sid
                elif isinstance(ev, ConnectError):
                    msg = ev.data.get("message") if isinstance(ev.data, dict) else ev.data
                    raise NamespaceRefusedError(ev.namespace, msg)
                elif isinstance(ev, Close):
                    raise socketio.exceptions.ConnectionError("server closed the connection")
        except socketio.exceptions.ConnectionError:
            if ws is not None:
                ws.close()
            raise
        except (
            OSError,
            websocket.WebSocketException,
            FrameError,
            ProtocolError,
            ValueError,
        ) as err:
            if ws is not None:
                ws.close()
            raise socketio.exceptions.ConnectionError(f"Connection error: {err}") from err
        assert opened is not None and ws is not None
        # A silent server is detected by the missing heartbeat, as Engine.IO specifies.
        self._heartbeat = opened.ping_interval + opened.ping_timeout + 5
        ws.settimeout(self._heartbeat)
        self._last_recv = time.monotonic()
        self._ws, self._proto = ws, proto
        self.eio_sid, self.max_payload = opened.sid, opened.max_payload
        self.namespaces = joined
        self._disconnected.clear()
        self.connected = True
        if self._dispatcher is None or not self._dispatcher.is_alive():
            self._dispatcher = threading.Thread(
                target=self._dispatch_loop, name="znsocket-dispatch", daemon=True
            )
            self._dispatcher.start()
        if self._background is None or not self._background.is_alive():
            self._background = threading.Thread(
                target=self._background_loop, name="znsocket-reader", daemon=True
            )
            self._background.start()
        for ns in joined:
            self._events.put((self._run_handler, (ns, "connect", [], None)))

    def disconnect(self) -> None:
        """Leave every namespace and close the connection; no reconnection follows."""
        self._closing = True
        ws = self._ws
        if ws is not None and self.connected:
            try:
                with self._send_lock:
                    for ns in self.namespaces:
                        ws.send_text(self._proto.disconnect(ns))
                    ws.send_text(self._proto.close())
            except OSError:
                pass
        self._drop(ws, reason="client disconnected")
        with self._state:
            self._state.notify_all()
        self._events.put(_STOP)  # after the queued "disconnect" handlers
        for thread in (self._background, self._dispatcher):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2)

    def shutdown(self) -> None:
        """Alias of :meth:`disconnect` (``socketio.Client`` compatibility)."""
        self.disconnect()

    def wait(self) -> None:
        """Block until the connection is closed for good."""
        while True:
            self._disconnected.wait()
            if self._closing or not self.reconnection:
                return
            time.sleep(0.1)
            if not self.connected and not self._reconnecting():
                return

    @staticmethod
    def sleep(seconds: float = 0) -> None:
        """Sleep (``socketio.Client.sleep`` compatibility)."""
        time.sleep(seconds)

    def get_sid(self, namespace: str | None = None) -> str | None:
        """Session id of ``namespace``."""
        return self.namespaces.get(namespace or "/")

    # --------------------------------------------------------------- sending
    def _ensure_connected(self, namespace: str) -> WebSocketLink:
        ws = self._ws
        if self.connected and ws is not None and namespace in self.namespaces:
            return ws
        if not self._closing and self.reconnection and self._conn_args is not None:
            with self._connect_lock:
                if not self.connected:
                    try:
                        self._open()
                    except socketio.exceptions.ConnectionError as err:
                        raise ConnectionLostError(
                            f"not connected and reconnecting failed: {err}"
                        ) from err
            ws = self._ws
            if self.connected and ws is not None and namespace in self.namespaces:
                return ws
        raise socketio.exceptions.BadNamespaceError(f"{namespace} is not a connected namespace.")

    def _send(self, ws: WebSocketLink, messages: list[str | bytes]) -> None:
        try:
            with self._send_lock:  # a binary packet and its attachments stay together
                for m in messages:
                    if isinstance(m, str):
                        ws.send_text(m)
                    else:
                        ws.send_binary(m)
        except OSError as err:
            self._drop(ws, reason=f"send failed: {err}")
            raise ConnectionLostError(f"connection lost while sending: {err}") from err

    def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Callable[..., Any] | None = None,
    ) -> None:
        """Send ``event``; ``callback(*ack_args)`` runs when the server acknowledges it.

        ``data`` is one argument; a tuple is expanded into several (as in python-socketio).
        """
        ns = namespace or "/"
        ws = self._ensure_connected(ns)
        args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        ack_id = None
        if callback is not None:
            ack_id = next(self._ids)
            self._waiters[ack_id] = callback
        self._send(ws, self._proto.emit(ns, event, args, ack_id))

    def call(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        timeout: float | None = 60,
    ) -> Any:
        """Send ``event`` and wait for its acknowledgement.

        Returns:
            The single acknowledgement argument, a tuple if there are several, ``None``
            if there is none.

        Raises:
            socketio.exceptions.TimeoutError: No answer within ``timeout`` seconds.
            ConnectionLostError: The connection dropped before the answer arrived.
        """
        ns = namespace or "/"
        args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        return self._request(ns, timeout, lambda ack_id: self._proto.emit(ns, event, args, ack_id))

    def call_json(
        self, event: str, json_args: str, namespace: str, timeout: float | None = 60
    ) -> Any:
        """Like :meth:`call` with one argument given as ready JSON text (no bytes inside)."""
        return self._request(
            namespace,
            timeout,
            lambda ack_id: [self._proto.emit_json(namespace, event, json_args, ack_id)],
        )

    def _request(
        self, ns: str, timeout: float | None, build: Callable[[int], list[str | bytes]]
    ) -> Any:
        ws = self._ensure_connected(ns)
        ack_id = next(self._ids)
        waiter = _Waiter()
        self._waiters[ack_id] = waiter
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        with self._state:
            self._inflight += 1
        try:
            self._send(ws, build(ack_id))
            if not self._await(ws, waiter, deadline):
                raise socketio.exceptions.TimeoutError()
        finally:
            self._waiters.pop(ack_id, None)
            with self._state:
                self._inflight -= 1
                self._last_activity = time.monotonic()
        if waiter.error is not None:
            raise waiter.error
        value = waiter.value or []
        if len(value) > 1:
            return tuple(value)
        return value[0] if value else None

    def _await(self, ws: WebSocketLink, waiter: _Waiter, deadline: float) -> bool:
        """Wait until ``waiter`` is answered, reading the socket ourselves when free."""
        done = waiter.lock
        while not done.acquire(False):
            if ws is not self._ws or not self.connected:
                return self._lost(waiter)
            if self._read_lock.acquire(False):
                try:
                    while not done.acquire(False):
                        if ws is not self._ws or not self.connected:
                            return self._lost(waiter)
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        # With time to spare beyond the heartbeat window, block in the
                        # read itself (a silent server trips the socket timeout);
                        # otherwise wait with select so the deadline is kept.
                        self._read_once(
                            ws, None if remaining > self._heartbeat else min(remaining, 1.0)
                        )
                    return True
                finally:
                    self._read_lock.release()
            # Another thread reads and will hand our answer over; retry soon in case it
            # stops reading first.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if done.acquire(timeout=min(remaining, 0.002)):
                return True
        return True

    # --------------------------------------------------------------- receiving
    @staticmethod
    def _lost(waiter: _Waiter) -> bool:
        """The connection of ``waiter`` is gone; keep the reason ``_drop`` is recording."""
        if not waiter.lock.acquire(timeout=0.5) and waiter.error is None:
            waiter.error = ConnectionLostError("connection lost before the answer arrived")
        return True

    def _read_once(self, ws: WebSocketLink, timeout: float | None) -> None:
        """Read and dispatch at most one message within ``timeout``; a failure drops ``ws``.

        ``timeout=None`` blocks in the read itself (bounded by the heartbeat window).

        Must be called holding ``_read_lock``.
        """
        if ws is not self._ws or not self.connected:
            self._drop(ws, "connection replaced")
            return
        try:
            if timeout is not None and not ws.readable(timeout):
                if time.monotonic() - self._last_recv > self._heartbeat:
                    self._drop(ws, "no heartbeat from the server")
                return
            opcode, data = ws.recv_message()
            self._last_recv = time.monotonic()
            proto = self._proto
            if opcode == OP_TEXT:
                ev = proto.receive_text(data.decode())
            else:
                ev = proto.receive_binary(data)
        except TimeoutError:
            self._drop(ws, "no heartbeat from the server")
            return
        except FrameError as err:
            log.error("closing connection: websocket protocol error from the server: %s", err)
            self._drop(ws, f"websocket protocol error from the server: {err}")
            return
        except (OSError, ValueError) as err:
            self._drop(ws, f"connection lost: {err}")
            return
        except ProtocolError as err:
            log.error("closing connection: protocol error from the server: %s", err)
            self._drop(ws, f"protocol error from the server: {err}")
            return
        if ev is None:
            return
        kind = type(ev)
        if kind is Ack:
            assert isinstance(ev, Ack)
            w = self._waiters.pop(ev.ack_id, None)
            if isinstance(w, _Waiter):
                w.value = ev.args
                w.lock.release()
            elif w is not None:
                self._events.put((w, tuple(ev.args)))
        elif kind is Ping:
            try:
                with self._send_lock:
                    ws.send_text(proto.pong())
            except OSError as err:
                self._drop(ws, f"connection lost: {err}")
        elif kind is Event:
            assert isinstance(ev, Event)
            self._events.put((self._run_handler, (ev.namespace, ev.name, ev.args, ev.ack_id)))
        elif kind is Close:
            self._drop(ws, "connection closed by the server")
        elif kind is Disconnected:
            assert isinstance(ev, Disconnected)
            self.namespaces.pop(ev.namespace, None)
            self._events.put((self._run_handler, (ev.namespace, "disconnect", [], None)))
            if not self.namespaces:
                self._drop(ws, "the server left every namespace")

    def _background_loop(self) -> None:
        """Read while no call is in flight; reconnect after a drop."""
        grace = 0.01  # a caller making calls back to back is never this slow between them
        while not self._closing:
            ws = self._ws
            if ws is None or not self.connected:
                if self._reconnecting():
                    self._reconnect_loop()
                    continue
                return
            with self._state:
                # Busy callers read for themselves; stay out of their way.
                quiet_for = time.monotonic() - self._last_activity
                if self._inflight or quiet_for < grace:
                    self._state.wait(grace if self._inflight else grace - quiet_for)
                    continue
            if not self._read_lock.acquire(timeout=grace):
                continue
            try:
                if self._inflight == 0 and ws is self._ws:
                    self._read_once(ws, grace)
            finally:
                self._read_lock.release()

    def _drop(self, ws: WebSocketLink | None, reason: str) -> None:
        """Mark the connection dead and fail every pending call."""
        if ws is not None and ws is not self._ws:
            return  # an older connection; a newer one is already in place
        was_connected = self.connected
        self.connected = False
        waiters = self._waiters
        for ack_id in list(waiters):
            w = waiters.pop(ack_id, None)
            if type(w) is _Waiter:
                w.error = ConnectionLostError(f"{reason} before the answer arrived")
                w.lock.release()
        if ws is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                ws.shutdown()
        if was_connected:
            for ns in list(self.namespaces):
                self._events.put((self._run_handler, (ns, "disconnect", [], None)))
        self._disconnected.set()

    def _reconnecting(self) -> bool:
        return not self._closing and self.reconnection and self._conn_args is not None

    def _reconnect_loop(self) -> None:
        delay = self.reconnection_delay
        while self._reconnecting() and not self.connected:
            time.sleep(delay * (0.5 + _jitter.random()))
            with self._connect_lock:
                if self.connected or not self._reconnecting():
                    return
                try:
                    self._open()
                    log.info("reconnected to %s", self._conn_args and self._conn_args["url"])
                    return
                except socketio.exceptions.ConnectionError as err:
                    log.debug("reconnect failed: %s", err)
            delay = min(delay * 2, self.reconnection_delay_max)

    def _dispatch_loop(self) -> None:
        while True:
            item = self._events.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:
                log.exception("error in a Socket.IO handler")

    def _run_handler(self, namespace: str, name: str, args: list[Any], ack_id: int | None) -> None:
        handler = self.handlers.get(namespace, {}).get(name)
        if handler is None:
            handler = self.handlers.get(namespace, {}).get("*")
            if handler is None:
                return
            args = [name, *args]
        result = handler(*args)
        if ack_id is None:
            return
        ws = self._ws
        if ws is None or not self.connected:
            return
        answer = list(result) if isinstance(result, tuple) else [result]
        if result is None:
            answer = []
        with contextlib.suppress(ConnectionLostError):
            self._send(ws, self._proto.ack(namespace, ack_id, answer))
