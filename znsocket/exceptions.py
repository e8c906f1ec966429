"""Exceptions of znsocket, shared by the client, the server and the storage backends.

The exception tree follows upstream znsocket 0.3.0 so that code written against it keeps
working: ``ResponseError`` and ``DataError`` are also redis-py's exceptions (proxies behave
the same over Redis and over znsocket), ``ConnectionError`` is also python-socketio's.

Errors cross the websocket as ``{"error": {"msg": ..., "type": ...}}``; the ``type`` string
is an exception class name. :data:`WIRE_ERRORS` is the table a client uses to turn such an
envelope back into an exception (see :func:`znsocket.protocol.raise_for_error`).
"""

from __future__ import annotations

import redis.exceptions
import socketio.exceptions

__all__ = [
    "WIRE_ERRORS",
    "AuthenticationError",
    "ChunkDecodeError",
    "ChunkError",
    "ChunkIncompleteError",
    "ChunkLimitError",
    "ChunkNotFoundError",
    "ChunkSizeError",
    "ConnectionError",
    "DataError",
    "DeserializationError",
    "FrozenStorageError",
    "MalformedMessageError",
    "PermissionDeniedError",
    "ResponseError",
    "UnknownEventError",
    "ZnSocketError",
    "exception_for",
]


class ZnSocketError(Exception):
    """Root of every znsocket error.

    Args:
        message: Human-readable description; ``str(error)`` returns it.
    """

    def __init__(self, message: str = "") -> None:
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class ResponseError(ZnSocketError, redis.exceptions.ResponseError):
    """The storage refused a command (wrong type, no such key, index out of range, ...)."""


class DataError(ZnSocketError, redis.exceptions.DataError):
    """A command argument has a type the storage cannot hold (``None``, ``bool``, a dict, ...)."""


class UnknownEventError(ZnSocketError):
    """The server does not know the event (it is not a command of the storage interface)."""


class ConnectionError(ZnSocketError, socketio.exceptions.ConnectionError):
    """The client could not connect to a znsocket server.

    Args:
        address: The ``http://`` address that was tried.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(
            f"Could not connect to {address}. Is the 'znsocket' server running? "
            "You can start it using the CLI 'znsocket'."
        )


class FrozenStorageError(ZnSocketError):
    """An adapter-backed object was written to; it is read-only.

    Args:
        key: The key of the frozen object.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"'{key}' is frozen and cannot be modified. Create a copy of the object to modify it."
        )


class MalformedMessageError(ZnSocketError):
    """An event payload does not have the shape the protocol requires."""


class MessageTooLargeError(ZnSocketError):
    """A message passed a size or count limit of the server; it was not run."""


class DeserializationError(ZnSocketError):
    """A compressed or reassembled message could not be decoded."""


class ChunkError(ZnSocketError):
    """A chunked message is inconsistent (missing chunk, changed metadata, ...)."""


class ChunkSizeError(ChunkError):
    """A chunk's declared ``size`` does not match its data."""


class ChunkDecodeError(ChunkError):
    """A chunk could not be stored (its data is not binary, its fields are invalid)."""


class ChunkLimitError(ChunkError):
    """A chunked message exceeds a server limit (size, chunk count, open messages)."""


class ChunkNotFoundError(ChunkError):
    """No chunked message with this id is known to the server."""


class ChunkIncompleteError(ChunkError):
    """The chunked message has not received all of its chunks yet."""


class AuthenticationError(ZnSocketError):
    """The server refused the connection: missing or wrong credentials."""


class PermissionDeniedError(ZnSocketError):
    """The server's authorization policy refused the command."""


#: Wire ``type`` string -> exception class a client raises (upstream's mapping, spec §2.5).
#: Any other type becomes a plain :class:`ZnSocketError`.
WIRE_ERRORS: dict[str, type[Exception]] = {
    "DataError": DataError,
    "TypeError": TypeError,
    "IndexError": IndexError,
    "KeyError": KeyError,
    "UnknownEventError": UnknownEventError,
    "ResponseError": ResponseError,
}


def exception_for(type_name: str | None, message: str) -> Exception:
    """Build the exception a client raises for an error envelope.

    Args:
        type_name: The envelope's ``type`` (an exception class name), or ``None``.
        message: The envelope's ``msg``.

    Returns:
        An instance of the mapped class, or :class:`ZnSocketError` for unknown types.
    """
    cls = WIRE_ERRORS.get(type_name or "", ZnSocketError)
    return cls(message)
