"""socket.io wiring: the znsocket events on a python-socketio server, for any storage.

Two entry points:

* :func:`create_app` builds a ``socketio.Server`` and its WSGI app for a storage object
  and returns a :class:`ZnSocketApp` (the gateway uses this with its own storage).
* :func:`attach_events` registers the events on an existing ``socketio.Server``
  (upstream's API, e.g. to share a Flask app's server).

Events handled in the namespace (spec §2-§6): every storage command (catch-all),
``pipeline``, ``compressed_message``, ``chunked_message``, ``get_chunked_result``,
``server_config``, ``refresh`` (relayed to all other clients, or with an
:class:`~znsocket.server.audience.Audience` to those allowed to read its target), and the
adapter events ``register_adapter``, ``check_adapter``, ``adapter_exists`` and
``adapter:get`` (relayed to the owning client and back). Everything storage-facing is
delegated to :class:`~znsocket.server.dispatch.Dispatcher`; this module only moves data
between socket.io and it, and owns per-connection state (principals, adapters). Plain
events and the calls unwrapped from ``compressed_message`` / ``chunked_message`` all go
through one :class:`~znsocket.server.routing.RouteTable`, so a large call reaches every
event a plain one does, including handlers an embedding application registers with
``sio.on``.

Strategy: every handler answers every request. Bad payloads, refused commands and
storage errors become error envelopes; adapter owners that do not answer produce a
``TimeoutError`` envelope after ``adapter_timeout_s`` instead of leaving the requester
hanging. Nothing is logged per command.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import socketio
import socketio.exceptions

from znsocket.protocol.chunks import ChunkLimits
from znsocket.protocol.events import DEFAULT_NAMESPACE, Event
from znsocket.protocol.framing import DEFAULT_MAX_DECODED_BYTES
from znsocket.protocol.payload import Envelope, error_envelope
from znsocket.server import transport
from znsocket.server.adapters import AdapterRegistry, adapter_key
from znsocket.server.audience import Audience
from znsocket.server.auth import Authenticate
from znsocket.server.dispatch import Authorize, Dispatcher, malformed
from znsocket.server.fastpacket import FastPacket
from znsocket.server.routing import RouteTable
from znsocket.server.sio import DEFAULT_MAX_ATTACHMENTS, ZnSocketServer

__all__ = ["DEFAULT_ADAPTER_TIMEOUT_S", "ZnSocketApp", "attach_events", "create_app"]

log = logging.getLogger(__name__)

DEFAULT_ADAPTER_TIMEOUT_S = 5.0
#: How often abandoned chunked messages are looked for (they expire after ``ChunkLimits.ttl_s``).
CHUNK_SWEEP_INTERVAL_S = 30.0


@dataclass
class ZnSocketApp:
    """A znsocket server's socket.io side, ready to be served.

    Attributes:
        sio: The python-socketio server.
        wsgi_app: The WSGI application to serve (``socketio.WSGIApp``).
        namespace: The namespace of the znsocket events.
        dispatcher: Runs commands against the storage.
        adapters: Adapter ownership state.
    """

    sio: socketio.Server
    wsgi_app: Any
    namespace: str
    dispatcher: Dispatcher
    adapters: AdapterRegistry
    principals: dict[str, Any] = field(default_factory=dict)
    #: Who receives each ``refresh`` (``None``: every client, as upstream).
    audience: Audience | None = None

    @property
    def storage(self) -> object:
        """The storage the server dispatches to."""
        return self.dispatcher.storage

    def emit_refresh(
        self,
        target: str,
        data: dict[str, Any],
        skip_sid: str | None = None,
        *,
        ignore_queue: bool = False,
    ) -> None:
        """Send a server-originated ``refresh`` to the clients of the namespace.

        Clients receive ``{"target": target, "data": data}`` exactly as if another client
        had emitted it (spec §5), so their ``on_refresh`` callbacks run. With an
        :attr:`audience`, only the clients allowed to read ``target`` receive it. Call it
        from the server's own green threads (a handler, a storage command, or a task
        started with ``app.sio.start_background_task``): eventlet's hub is not thread-safe.

        Args:
            target: The full key that changed (e.g. ``"znsocket.List:frames"``).
            data: The refresh payload (``{"indices": [...]}``, ``{"keys": [...]}``,
                ``{"start": n, "stop": None}``).
            skip_sid: A connection not to notify (the one that caused the change).
            ignore_queue: With a message queue, send to this process's clients only.
        """
        self.announce(target, {"target": target, "data": data}, skip_sid, ignore_queue)

    def announce(
        self,
        target: str,
        payload: Any,
        skip_sid: str | None = None,
        ignore_queue: bool = False,
    ) -> None:
        """Send ``payload`` as a ``refresh`` about ``target`` to the clients allowed to
        read it (all of them without an :attr:`audience`), encoded once for all."""
        rooms: list[str] | None = None
        if self.audience is not None:
            rooms = list(self.audience.rooms(target))
            if not rooms:  # python-socketio would take an empty list for "everyone"
                return
        self.sio.emit(
            Event.REFRESH,
            payload,
            to=rooms,
            namespace=self.namespace,
            skip_sid=skip_sid,
            ignore_queue=ignore_queue,
        )


def create_app(
    storage: object,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    max_http_buffer_size: int | None = None,
    cors_allowed_origins: str | list[str] | None = None,
    async_mode: str | None = "eventlet",
    authenticate: Authenticate | None = None,
    authorize: Authorize | None = None,
    audience: Audience | None = None,
    chunk_limits: ChunkLimits | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    adapter_timeout_s: float = DEFAULT_ADAPTER_TIMEOUT_S,
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
    max_attachment_bytes: int | None = None,
    send_buffer_bytes: int | None = transport.DEFAULT_SEND_BUFFER_BYTES,
    send_timeout_s: float = transport.DEFAULT_SEND_TIMEOUT_S,
    logger: bool | logging.Logger = False,
    **socketio_options: Any,
) -> ZnSocketApp:
    """Build a znsocket server (socket.io server + WSGI app) for any storage.

    Args:
        storage: An object implementing :class:`~znsocket.storage.base.StorageCommands`;
            only the interface's commands are ever dispatched to it.
        namespace: The socket.io namespace (clients use ``/znsocket``).
        max_http_buffer_size: Largest inbound Engine.IO packet in bytes; advertised to
            clients by ``server_config`` (they chunk above it). ``None``: 1,000,000.
        cors_allowed_origins: Origins allowed for browser clients (``"*"`` for any);
            ``None`` keeps python-engineio's same-origin default.
        async_mode: python-socketio async mode; ``"eventlet"`` (measured fastest here,
            see ``bench/znsocket_server_profile.md``) or ``"threading"``.
        authenticate: ``(environ, auth) -> principal | None``; refuse connections for
            which it returns ``None`` (see :func:`~znsocket.server.auth.token_authenticator`).
        authorize: ``(principal, command, args, kwargs) -> None``; raise to refuse a
            command. Called for storage commands and also for the non-storage events
            ``refresh``, ``register_adapter``, ``check_adapter``, ``adapter_exists`` and
            ``adapter:get`` (``refresh`` with ``args=[]`` and its payload as ``kwargs``,
            the adapter events with their ``[args, kwargs]``). A refused ``check_adapter``
            or ``adapter_exists`` answers ``False`` (their answer must be a bare boolean)
            and records nothing.
        audience: Who receives each ``refresh`` (:class:`~znsocket.server.audience.Audience`);
            ``None``: every other client, as upstream.
        chunk_limits: Bounds on chunked-message reassembly (bytes per connection and in
            total, open messages, time to complete; see
            :class:`~znsocket.protocol.chunks.ChunkLimits`).
        max_decoded_bytes: Largest decoded JSON text of a compressed or chunked message.
        adapter_timeout_s: How long ``adapter:get`` waits for the owning client.
        max_attachments: Most binary attachments one socket.io event may announce.
        max_attachment_bytes: Most bytes the attachments of one event may hold together;
            ``None``: ``max_http_buffer_size``.
        send_buffer_bytes: Bytes of answers one connection may have waiting to be written
            (its client reads slower than it asks) before the server stops reading its
            further requests until they drain; ``None``: no bound (eventlet mode only).
        send_timeout_s: Seconds a connection may stay over ``send_buffer_bytes`` before
            it is dropped.
        logger: python-socketio/engineio logging (``False`` for none).
        **socketio_options: Further ``socketio.Server`` options, e.g. ``ping_interval``
            and ``ping_timeout`` (the Engine.IO heartbeat in seconds; 25 and 20 by default).

    Returns:
        The app; serve ``app.wsgi_app`` (see :func:`znsocket.server.serve.serve`).
    """
    options: dict[str, Any] = {
        "logger": logger,
        "engineio_logger": logger,
        "serializer": FastPacket,
        "namespaces": [namespace],
    }
    if async_mode is not None:
        options["async_mode"] = async_mode
    if max_http_buffer_size is not None:
        options["max_http_buffer_size"] = max_http_buffer_size
    if cors_allowed_origins is not None:
        options["cors_allowed_origins"] = cors_allowed_origins
    options.update(socketio_options)
    sio = ZnSocketServer(
        max_attachments=max_attachments, max_attachment_bytes=max_attachment_bytes, **options
    )
    transport.install(sio.eio, send_buffer_bytes, send_timeout_s)
    app = _install(
        sio,
        namespace,
        storage,
        authenticate=authenticate,
        authorize=authorize,
        audience=audience,
        chunk_limits=chunk_limits,
        max_decoded_bytes=max_decoded_bytes,
        adapter_timeout_s=adapter_timeout_s,
    )
    sio.enable_command_fast_path(
        namespace, app.dispatcher.command, app.principals if authorize is not None else None
    )
    app.wsgi_app = socketio.WSGIApp(sio)
    limits = app.dispatcher.chunks.limits
    sweep_s = min(CHUNK_SWEEP_INTERVAL_S, limits.ttl_s, limits.assembly_timeout_s)
    sio.start_background_task(_sweep_chunks, sio, app.dispatcher, sweep_s)
    return app


def _sweep_chunks(sio: socketio.Server, dispatcher: Dispatcher, interval_s: float) -> None:
    """Expire abandoned chunked messages even when no new ones arrive."""
    while True:
        sio.sleep(interval_s)
        dispatcher.chunks.expire(time.monotonic())


def attach_events(
    sio: socketio.Server,
    namespace: str = DEFAULT_NAMESPACE,
    storage: object | None = None,
    *,
    authenticate: Authenticate | None = None,
    authorize: Authorize | None = None,
    audience: Audience | None = None,
    chunk_limits: ChunkLimits | None = None,
) -> socketio.Server:
    """Register the znsocket events on an existing socket.io server (upstream API).

    Args:
        sio: The server, e.g. one shared with a Flask app through ``socketio.WSGIApp``.
        namespace: The namespace to serve.
        storage: The storage; ``None`` creates a fresh :class:`~znsocket.storage.MemoryStorage`.
        authenticate: See :func:`create_app`.
        authorize: See :func:`create_app`.
        audience: See :func:`create_app`.
        chunk_limits: See :func:`create_app`.

    Returns:
        ``sio`` itself.
    """
    if storage is None:
        from znsocket.storage.memory import MemoryStorage

        storage = MemoryStorage()
    _install(
        sio,
        namespace,
        storage,
        authenticate=authenticate,
        authorize=authorize,
        audience=audience,
        chunk_limits=chunk_limits,
        max_decoded_bytes=DEFAULT_MAX_DECODED_BYTES,
        adapter_timeout_s=DEFAULT_ADAPTER_TIMEOUT_S,
    )
    return sio


def _install(
    sio: socketio.Server,
    namespace: str,
    storage: object,
    *,
    authenticate: Authenticate | None,
    authorize: Authorize | None,
    audience: Audience | None,
    chunk_limits: ChunkLimits | None,
    max_decoded_bytes: int,
    adapter_timeout_s: float,
) -> ZnSocketApp:
    dispatcher = Dispatcher(
        storage,
        authorize=authorize,
        chunk_limits=chunk_limits,
        max_decoded_bytes=max_decoded_bytes,
        # other connections run between decompression steps of a large message
        pause=lambda: sio.sleep(0),
    )
    adapters = AdapterRegistry()
    app = ZnSocketApp(
        sio=sio,
        wsgi_app=None,
        namespace=namespace,
        dispatcher=dispatcher,
        adapters=adapters,
        audience=audience,
    )
    principals = app.principals
    command = dispatcher.command
    on = sio.on

    def principal_of(sid: str) -> Any:
        return principals.get(sid)

    def check(sid: str, event: str, args: list[Any], kwargs: dict[str, Any]) -> Envelope | None:
        """Run the authorization hook for a non-storage event; an envelope if refused."""
        if authorize is None:
            return None
        try:
            authorize(principals.get(sid), event, args, kwargs)
        except Exception as exc:
            return error_envelope(type(exc).__name__, str(exc))
        return None

    @on("connect", namespace=namespace)
    def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if authenticate is None:
            return
        try:
            principal = authenticate(environ, auth)
        except Exception:
            log.exception("authentication callback failed")
            principal = None
        if principal is None:
            raise socketio.exceptions.ConnectionRefusedError("authentication failed")
        principals[sid] = principal
        room = audience.room(principal) if audience is not None else None
        if room is not None:
            sio.enter_room(sid, room, namespace=namespace)

    @on("disconnect", namespace=namespace)
    def disconnect(sid: str, *_reason: Any) -> None:
        principals.pop(sid, None)
        dispatcher.forget(sid)
        adapters.drop_owner(sid)

    def run_command(sid: str, event: str, data: Any) -> Envelope:
        return command(principals.get(sid) if authorize is not None else None, event, data)

    routes = RouteTable(sio.handlers.setdefault(namespace, {}), dispatcher, run_command)
    if isinstance(sio, ZnSocketServer):
        sio.route_events(namespace, routes)

    @on("*", namespace=namespace)
    def catch_all(event: str, sid: str, *args: Any) -> Any:
        # reached on servers that are not ZnSocketServer (attach_events), and on
        # ZnSocketServer outside python-socketio's tested versions (_socketio_private)
        return routes.answer(sid, event, args)

    @on(Event.SERVER_CONFIG, namespace=namespace)
    def server_config(sid: str, *args: Any) -> dict[str, Any]:
        if args:
            return malformed(Event.SERVER_CONFIG, "server_config takes no data")
        return {
            "max_http_buffer_size": sio.eio.max_http_buffer_size,
            "async_mode": sio.async_mode,
            "namespace": namespace,
        }

    @on(Event.PIPELINE, namespace=namespace)
    def pipeline(sid: str, *args: Any) -> Envelope:
        if len(args) != 1:
            return malformed(Event.PIPELINE, "expected exactly one data argument")
        return dispatcher.pipeline(principal_of(sid), args[0])

    @on(Event.GET_CHUNKED_RESULT, namespace=namespace)
    def get_chunked_result(sid: str, *args: Any) -> Any:
        if len(args) != 1:
            return malformed(Event.GET_CHUNKED_RESULT, "expected exactly one data argument")
        return dispatcher.chunked_result(sid, args[0])

    @on(Event.REFRESH, namespace=namespace)
    def refresh(sid: str, *args: Any) -> Envelope | None:
        if (
            len(args) != 1
            or not isinstance(args[0], dict)
            or not isinstance(args[0].get("target"), str)
        ):
            return malformed(Event.REFRESH, 'payload must be {"target": str, "data": ...}')
        refused = check(sid, Event.REFRESH, [], args[0])
        if refused is not None:
            return refused
        app.announce(args[0]["target"], args[0], skip_sid=sid)
        return None

    def keyed(
        event: str, sid: str, args: tuple[Any, ...], refused_answer: bool | None = None
    ) -> tuple[str, dict[str, Any]] | Envelope | bool:
        """``(key, fields)`` of an adapter event, or its answer: a malformed payload's
        envelope; if refused, ``refused_answer`` or else the refusal's envelope."""
        if len(args) != 1:
            return malformed(event, "expected exactly one data argument")
        try:
            key = adapter_key(args[0])
        except ValueError as exc:
            return malformed(event, str(exc))
        positional, fields = args[0]
        # whatever sits in the positional part is forwarded to adapter owners: checked too
        positional = positional if type(positional) is list else [positional]
        refused = check(sid, event, positional, fields)
        if refused is not None:
            return refused if refused_answer is None else refused_answer
        return key, fields

    @on(Event.REGISTER_ADAPTER, namespace=namespace)
    def register_adapter(sid: str, *args: Any) -> Envelope | bool:
        parsed = keyed(Event.REGISTER_ADAPTER, sid, args)
        if not isinstance(parsed, tuple):
            return parsed
        return adapters.register(parsed[0], sid)

    # A refused question about adapters answers "no adapter" and records nothing: the
    # answer must be a bare boolean (clients take any other answer for true).
    @on(Event.CHECK_ADAPTER, namespace=namespace)
    def check_adapter(sid: str, *args: Any) -> Envelope | bool:
        parsed = keyed(Event.CHECK_ADAPTER, sid, args, refused_answer=False)
        if not isinstance(parsed, tuple):
            return parsed
        return adapters.check(parsed[0])

    @on(Event.ADAPTER_EXISTS, namespace=namespace)
    def adapter_exists(sid: str, *args: Any) -> Envelope | bool:
        parsed = keyed(Event.ADAPTER_EXISTS, sid, args, refused_answer=False)
        if not isinstance(parsed, tuple):
            return parsed
        return adapters.exists(parsed[0])

    @on(Event.ADAPTER_GET, namespace=namespace)
    def adapter_get(sid: str, *args: Any) -> Any:
        parsed = keyed(Event.ADAPTER_GET, sid, args)
        if not isinstance(parsed, tuple):
            return parsed
        key = parsed[0]
        owner = adapters.owner(key)
        if owner is None:
            return error_envelope("KeyError", f"Key {key} does not exist in storage")
        try:
            return sio.call(
                Event.ADAPTER_GET, args[0], to=owner, namespace=namespace, timeout=adapter_timeout_s
            )
        except socketio.exceptions.TimeoutError:
            return error_envelope(
                "TimeoutError",
                f"The adapter owner of {key} did not answer within {adapter_timeout_s:g} s",
            )
        except Exception as exc:  # the owner went away mid-call
            return error_envelope(type(exc).__name__, f"Adapter {key} failed: {exc}")

    return app
