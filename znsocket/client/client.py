"""The znsocket ``Client``: Redis-like commands over Socket.IO events.

Every ``redis.Redis`` method name is a command: ``client.hget("h", "f")`` sends the event
``hget`` with the data ``[["h", "f"], {}]`` to the namespace ``/znsocket`` and turns the
acknowledgement envelope into a value or an exception (spec §2). Large calls take the
``compressed_message`` or ``chunked_message`` path, chosen by the shared codec
(:func:`znsocket.protocol.plan_call`) exactly as upstream's client chooses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import time
import uuid
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis
import socketio.exceptions

from znsocket import exceptions
from znsocket.client.transport import NamespaceRefusedError, SocketIOTransport
from znsocket.client.url import from_znsocket_url, parse_url
from znsocket.protocol import Path, plan_call, raise_for_error, unwrap_response
from znsocket.protocol.events import Event

if TYPE_CHECKING:
    from znsocket.client.pipeline import Pipeline

# Upstream's tests look for these records on this logger name.
log = logging.getLogger("znsocket.client")

_dumps = json.JSONEncoder(separators=(",", ":")).encode
AdapterCallback = Callable[[Any], Any]


def _surely_large(args: tuple[Any, ...], kwargs: dict[str, Any], threshold: int) -> bool:
    """Cheap look ahead: skip the small-message encoding when it would be thrown away."""
    message = kwargs.get("message")
    if isinstance(message, list) and len(message) > 16:
        return True  # a pipeline of many commands
    return any(isinstance(a, str) and len(a) > threshold for a in args)


@dataclasses.dataclass
class Client:
    """Client of a znsocket server, with the command surface of ``redis.Redis``.

    Args:
        address: Server URL, e.g. ``"http://localhost:5000"``; a path such as
            ``"https://host/prefix"`` moves the Socket.IO endpoint to ``/prefix/socket.io``.
        decode_responses: Must stay ``True``: the server always answers with text.
        namespace: Socket.IO namespace of the znsocket events.
        refresh_callbacks: Full object key → callback receiving the refresh payload of
            every ``refresh`` event other clients emit for that key.
        delay_between_calls: Minimum spacing between two calls of this client.
        retry: Extra attempts after a call timed out (a 1 s pause precedes each).
        connect_wait_timeout: Seconds to wait for the connection.
        max_message_size_bytes: Largest message sent in one piece; larger ones are
            chunked. ``None`` takes the server's ``max_http_buffer_size``.
        enable_compression: Gzip messages longer than ``compression_threshold``.
        compression_threshold: Smallest JSON length (bytes) considered for compression.
        token: Optional credential, sent as the Socket.IO ``auth`` payload
            ``{"token": token}`` when joining the namespace.
        call_timeout: Seconds to wait for each acknowledgement.

    Attributes:
        sio: The Socket.IO connection (``emit``, ``call``, ``disconnect``, ``connected``).

    Raises:
        znsocket.exceptions.ConnectionError: The server cannot be reached.
        znsocket.exceptions.AuthenticationError: The server refused the token (or its absence).
        NotImplementedError: ``decode_responses=False`` (after connecting, as upstream;
            the connection is closed again before the error is raised).

    Example:
        >>> client = Client.from_url("znsocket://127.0.0.1:5000")
        >>> client.hset("mykey", "field1", "value1")
        1
        >>> client.hget("mykey", "field1")
        'value1'
    """

    address: str
    decode_responses: bool = True
    sio: SocketIOTransport = dataclasses.field(
        default_factory=SocketIOTransport, repr=False, init=False
    )
    namespace: str = "/znsocket"
    refresh_callbacks: dict[str, Callable[[Any], None]] = dataclasses.field(default_factory=dict)
    _adapter_callbacks: dict[str, AdapterCallback] = dataclasses.field(
        default_factory=dict, init=False, repr=False
    )
    delay_between_calls: datetime.timedelta | None = None
    retry: int = 1
    connect_wait_timeout: int = 1
    max_message_size_bytes: int | None = None
    enable_compression: bool = True
    compression_threshold: int = 1024
    token: str | None = dataclasses.field(default=None, repr=False)
    call_timeout: float = 60.0
    _last_call: float = dataclasses.field(default=0.0, init=False, repr=False)

    @classmethod
    def from_url(cls, url: str, namespace: str = "/znsocket", **kwargs: Any) -> Client:
        """Connect to ``znsocket://host:port`` (``znsocket://`` stands for ``http://``).

        Args:
            url: Server URL.
            namespace: Socket.IO namespace.
            **kwargs: Further :class:`Client` fields.
        """
        return cls(address=from_znsocket_url(url), namespace=namespace, **kwargs)

    def __post_init__(self) -> None:
        self.sio.on("refresh", self._on_refresh, namespace=self.namespace)
        self.sio.on("adapter:get", self._on_adapter_get, namespace=self.namespace)
        base, path = parse_url(self.address)
        try:
            self.sio.connect(
                base,
                namespaces=[self.namespace],
                wait=True,
                wait_timeout=self.connect_wait_timeout,
                socketio_path=f"{path}/socket.io" if path else "socket.io",
                auth={"token": self.token} if self.token is not None else None,
            )
        except NamespaceRefusedError as err:
            raise exceptions.AuthenticationError(
                f"{self.address} refused the connection: {err.reason}"
            ) from err
        except socketio.exceptions.ConnectionError as err:
            raise exceptions.ConnectionError(self.address) from err
        try:
            if not self.decode_responses:
                raise NotImplementedError("decode_responses=False is not supported yet")
            self._configure_message_size()
        except BaseException:
            # the caller gets no object to disconnect: do not leave the connection open
            self.sio.disconnect()
            raise

    def _configure_message_size(self) -> None:
        config = self.sio.call(
            Event.SERVER_CONFIG, namespace=self.namespace, timeout=self.call_timeout
        )
        if config is None:
            raise exceptions.ZnSocketError("No response from server")
        if self.max_message_size_bytes is None:
            self.max_message_size_bytes = int(config.get("max_http_buffer_size", 1_000_000))
        server_limit = config["max_http_buffer_size"]
        if server_limit < self.max_message_size_bytes:
            log.warning(
                "Server max_http_buffer_size (%s bytes) is smaller than the client's "
                "max_message_size_bytes (%s bytes); large messages may be refused.",
                f"{server_limit:,}",
                f"{self.max_message_size_bytes:,}",
            )

    # ------------------------------------------------------------ server events
    def _on_refresh(self, data: dict[str, Any]) -> None:
        callback = self.refresh_callbacks.get(data["target"])
        if callback is not None:
            callback(data["data"])

    def _on_adapter_get(self, data: Any) -> Any:
        callback = self._adapter_callbacks.get(data[1]["key"])
        if callback is None:
            raise exceptions.ZnSocketError("No adapter callback set")
        return callback(data)

    def register_adapter_callback(self, key: str, callback: AdapterCallback) -> None:
        """Answer the server's ``adapter:get`` requests for ``key`` with ``callback``.

        Args:
            key: Full adapter key (``znsocket.List:...`` / ``znsocket.Dict:...``).
            callback: Receives the request ``[args, kwargs]``; its return value is the answer.
        """
        self._adapter_callbacks[key] = callback

    # ------------------------------------------------------------ calls
    def pipeline(self, *args: Any, **kwargs: Any) -> Pipeline:
        """Start a :class:`Pipeline`: commands are queued and sent in one ``pipeline`` event.

        Arguments are accepted for ``redis.Redis.pipeline`` compatibility and ignored.
        """
        from znsocket.client.pipeline import Pipeline

        return Pipeline(self, *args, **kwargs)

    def _pace(self) -> None:
        if self.delay_between_calls:
            wait = self.delay_between_calls.total_seconds() - (time.monotonic() - self._last_call)
            if wait > 0:
                time.sleep(wait)
            self._last_call = time.monotonic()

    def call(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """Send ``event`` with ``[args, kwargs]`` and return the raw acknowledgement.

        Messages longer than ``compression_threshold`` travel gzip-compressed as
        ``compressed_message``; longer than ``max_message_size_bytes``, as chunks.

        Returns:
            The acknowledgement as sent by the server (no error mapping).

        Raises:
            socketio.exceptions.TimeoutError: No answer after ``retry`` extra attempts.
            znsocket.client.transport.ConnectionLostError: The connection dropped.
            znsocket.exceptions.ZnSocketError: A chunk was refused.
        """
        if self.delay_between_calls:
            self._pace()
        limit = self.max_message_size_bytes or 1_000_000
        text = None
        if not _surely_large(args, kwargs, self.compression_threshold):
            # bytes or another type JSON cannot hold: the general path below handles it
            with contextlib.suppress(TypeError):
                text = _dumps([args, kwargs])
        if (
            text is not None
            and len(text) < limit
            and (not self.enable_compression or len(text) <= self.compression_threshold)
        ):
            # Small message: what plan_call would decide, without encoding twice.
            return self._with_retry(self.sio.call_json, event, text)
        plan = plan_call(
            args,
            kwargs,
            max_message_size_bytes=limit,
            enable_compression=self.enable_compression,
            compression_threshold=self.compression_threshold,
        )
        if plan.buffer[:1] == b"\x01":
            log.debug(
                "Compressed message from %d to %d bytes", plan.json_bytes, len(plan.buffer) - 5
            )
        if plan.path is Path.CHUNKED:
            log.debug(
                "Message size (%s bytes) exceeds limit (%s bytes). Using chunked transmission.",
                f"{len(plan.buffer):,}",
                f"{limit:,}",
            )
            return self._call_chunked(event, plan.buffer, plan.chunks(limit))
        if plan.path is Path.COMPRESSED:
            return self._with_retry(
                self.sio.call, Event.COMPRESSED_MESSAGE, {"event": event, "data": plan.buffer}
            )
        return self._with_retry(self.sio.call, event, [list(args), kwargs])

    def _serialize_message(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The flagged buffer a large call would send (upstream's name; benchmarks use it)."""
        return plan_call(
            args,
            kwargs,
            max_message_size_bytes=self.max_message_size_bytes or 1_000_000,
            enable_compression=self.enable_compression,
            compression_threshold=self.compression_threshold,
        ).buffer

    def _with_retry(self, send: Callable[..., Any], event: str, data: Any) -> Any:
        for attempts_left in reversed(range(self.retry + 1)):
            try:
                return send(event, data, namespace=self.namespace, timeout=self.call_timeout)
            except socketio.exceptions.TimeoutError:
                if attempts_left == 0:
                    raise
                log.warning("Connection error. Retrying... %d attempts left", attempts_left)
                time.sleep(1)
        raise AssertionError("unreachable")

    def _call_chunked(self, event: str, buffer: bytes, chunks: list[bytes]) -> Any:
        chunk_id = str(uuid.uuid4())
        log.debug(
            "Splitting message into %d chunks with ID %s (original: %d bytes)",
            len(chunks),
            chunk_id,
            len(buffer),
        )
        for index, piece in enumerate(chunks):
            meta = {
                "chunk_id": chunk_id,
                "chunk_index": index,
                "total_chunks": len(chunks),
                "event": event,
                "data": piece,
                "size": len(piece),
            }
            answer = self._with_retry(self.sio.call, Event.CHUNKED_MESSAGE, meta)
            if isinstance(answer, dict) and answer.get("error"):
                raise exceptions.ZnSocketError(f"Chunked message failed: {answer['error']}")
        result = self._with_retry(self.sio.call, Event.GET_CHUNKED_RESULT, {"chunk_id": chunk_id})
        if isinstance(result, dict) and result.get("error"):
            # Upstream does not map errors on this path either: always a ZnSocketError.
            raise exceptions.ZnSocketError(f"Chunked message failed: {result['error']}")
        return result

    def _redis_command(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Run one command and map its envelope (errors raise, sets become ``set``)."""
        return unwrap_response(self.call(command, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        # Commands are exactly the attribute names of redis.Redis, as upstream.
        if name.startswith("__") or not hasattr(redis.Redis, name):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

        def command(*args: Any, **kwargs: Any) -> Any:
            return unwrap_response(self.call(name, *args, **kwargs))

        command.__name__ = name
        self.__dict__[name] = command  # later look-ups skip __getattr__
        return command

    def hmset(self, name: str, mapping: dict[str, Any]) -> Any:
        """Deprecated: use ``hset(name, mapping=mapping)``."""
        warnings.warn(
            "hmset() is deprecated. Use hset() instead.", DeprecationWarning, stacklevel=2
        )
        return self.hset(name, mapping=mapping)

    def close(self) -> None:
        """Disconnect from the server (no reconnection follows); ``with Client(...)`` calls it."""
        self.sio.disconnect()

    def disconnect(self) -> None:
        """The same as :meth:`close`, under the name a socket.io user tries first."""
        self.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def handle_error(result: Any) -> None:
    """Raise the exception an error envelope stands for (upstream ``utils.handle_error``)."""
    raise_for_error(result)
