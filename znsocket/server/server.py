"""``znsocket.Server``: upstream's server dataclass, on the interface-bound server."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from znsocket.protocol.chunks import ChunkLimits
from znsocket.protocol.framing import DEFAULT_MAX_DECODED_BYTES
from znsocket.server.app import ZnSocketApp, create_app
from znsocket.server.auth import token_authenticator
from znsocket.server.serve import DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT_S, serve
from znsocket.server.sio import DEFAULT_MAX_ATTACHMENTS
from znsocket.server.transport import DEFAULT_SEND_BUFFER_BYTES, DEFAULT_SEND_TIMEOUT_S
from znsocket.storage.base import StorageCommands

__all__ = ["Server", "resolve_storage"]

log = logging.getLogger(__name__)


def resolve_storage(storage: str | StorageCommands) -> StorageCommands:
    """Turn ``"memory"``, a ``redis://`` URL or a storage object into a storage.

    Raises:
        ValueError: ``Unsupported storage backend: ...`` for any other string.
    """
    if isinstance(storage, StorageCommands):
        return storage
    if storage == "memory":
        from znsocket.storage.memory import MemoryStorage

        return MemoryStorage()
    if isinstance(storage, str) and storage.startswith(("redis://", "rediss://", "unix://")):
        from znsocket.storage.redis import RedisStorage

        return RedisStorage.from_url(storage)
    raise ValueError(f"Unsupported storage backend: {storage}")


@dataclasses.dataclass
class Server:
    """A znsocket server: Redis-like commands over socket.io, with large-message support.

    Field names and defaults follow upstream znsocket 0.3.0; ``host``, ``tokens``,
    ``cors_allowed_origins``, ``ping_interval``, ``ping_timeout`` and the limits from
    ``max_connections`` on are additions (``docs/deployment.md`` lists what a client sees
    when it reaches each).

    Attributes:
        port: TCP port (``0``: chosen by the OS and printed).
        max_http_buffer_size: Largest inbound packet in bytes; ``None`` keeps 1,000,000.
            Clients chunk messages above the advertised value.
        async_mode: python-socketio async mode; ``None`` means ``"eventlet"``.
        logger: Enable python-socketio/engineio logging.
        storage: ``"memory"``, a ``redis://`` URL, or a storage object.
        host: Address to bind (``"0.0.0.0"`` as upstream; ``"127.0.0.1"`` for local only).
        tokens: If given, clients must present one of these tokens (see
            :mod:`znsocket.server.auth`).
        cors_allowed_origins: Origins allowed for browser clients.
        ping_interval: Seconds between Engine.IO heartbeats; ``None`` keeps 25.
        ping_timeout: Seconds a client has to answer a heartbeat before it is dropped;
            ``None`` keeps 20.
        max_connections: Connections served at once; more wait in the listen backlog.
        request_timeout: Seconds an HTTP request (line and headers, then body) may take
            to arrive, and the limit of each socket read or write outside a WebSocket.
        max_attachments: Binary attachments one socket.io event may announce.
        max_attachment_bytes: Bytes the attachments of one event may hold together;
            ``None``: ``max_http_buffer_size``.
        send_buffer_per_connection: Bytes of answers one connection may have waiting to
            be written before its further requests wait until they drain.
        send_timeout: Seconds a connection may stay over ``send_buffer_per_connection``
            before it is dropped.
        max_decoded_bytes: Largest JSON text of a compressed or chunked message after
            decompression.
        chunk_limits: Bounds on chunked-message reassembly (bytes per connection and in
            total, time to complete, ...); ``None`` keeps the defaults of
            :class:`~znsocket.protocol.chunks.ChunkLimits`.

    Example:
        >>> server = Server(port=5000)  # doctest: +SKIP
        >>> server.run()  # blocks until SIGTERM/SIGINT  # doctest: +SKIP
    """

    port: int = 5000
    max_http_buffer_size: int | None = None
    async_mode: str | None = None
    logger: bool = False
    storage: Any = "memory"
    host: str = "0.0.0.0"
    tokens: Sequence[str] | None = None
    cors_allowed_origins: str | list[str] | None = None
    ping_interval: float | None = None
    ping_timeout: float | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS
    max_attachment_bytes: int | None = None
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
    send_buffer_per_connection: int = DEFAULT_SEND_BUFFER_BYTES
    send_timeout: float = DEFAULT_SEND_TIMEOUT_S
    chunk_limits: ChunkLimits | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Server:
        """Create a server from ``znsocket://host:port`` (only the port is used).

        Raises:
            ValueError: ``Invalid URL`` if the URL does not start with ``znsocket://``.
        """
        if not url.startswith("znsocket://"):
            raise ValueError("Invalid URL")
        port = int(url.rsplit(":", 1)[1].strip("/"))
        return cls(port=port, **kwargs)

    def build(self) -> ZnSocketApp:
        """Create the socket.io app without serving it.

        Raises:
            ValueError: For an ``async_mode`` other than ``"eventlet"`` - :meth:`run`
                serves with eventlet's WSGI server (use :func:`attach_events` to put the
                events on a server of another async mode).
            ValueError: For a ``ping_interval``, ``ping_timeout`` or limit that is not
                positive.
        """
        if self.async_mode not in (None, "eventlet"):
            raise ValueError(
                f"Unsupported async_mode for Server.run: {self.async_mode!r} (only 'eventlet')"
            )
        for name in ("ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        for name in (
            "max_attachments",
            "max_attachment_bytes",
            "max_decoded_bytes",
            "send_buffer_per_connection",
            "send_timeout",
        ):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        heartbeat: dict[str, Any] = {
            name: value
            for name, value in (
                ("ping_interval", self.ping_interval),
                ("ping_timeout", self.ping_timeout),
            )
            if value is not None
        }
        return create_app(
            resolve_storage(self.storage),
            max_http_buffer_size=self.max_http_buffer_size,
            async_mode=self.async_mode or "eventlet",
            logger=self.logger,
            cors_allowed_origins=self.cors_allowed_origins,
            authenticate=token_authenticator(self.tokens) if self.tokens else None,
            chunk_limits=self.chunk_limits,
            max_decoded_bytes=self.max_decoded_bytes,
            max_attachments=self.max_attachments,
            max_attachment_bytes=self.max_attachment_bytes,
            send_buffer_bytes=self.send_buffer_per_connection,
            send_timeout_s=self.send_timeout,
            **heartbeat,
        )

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (blocking); prints ``listening on HOST:PORT``."""
        app = self.build()
        serve(
            app.wsgi_app,
            self.host,
            self.port,
            on_shutdown=getattr(app.storage, "close", None),
            max_connections=self.max_connections,
            request_timeout_s=self.request_timeout,
        )
