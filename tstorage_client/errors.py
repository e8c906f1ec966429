"""Exceptions raised by the TStorage protocol core and by programming errors.

The public channel methods never raise for network or server failures: they return a
:class:`~tstorage_client.response.Response` whose status says what went wrong, as the
official client does. Exceptions are for the sans-IO core (``protocol``), which the
channels and the server translate, and for misuse of the API.

Hierarchy::

    TStorageError
    ├── ProtocolError                 the bytes on the wire break the protocol (abstract)
    │   ├── LocalProtocolError        we were asked to send something the protocol cannot carry
    │   └── RemoteProtocolError       the peer sent bytes that break the protocol
    │       └── UnparseableRecord     a GET record whose key or payload cannot be decoded
    ├── MemoryLimitExceeded           a GET response (or batch) outgrows the memory limit
    └── TransportError                the connection failed (abstract)
        ├── ConnectError              the connection could not be opened
        ├── ConnectionClosed          the peer closed the connection mid-response
        └── Timeout                   a socket operation timed out
"""

from __future__ import annotations

__all__ = [
    "ConnectError",
    "ConnectionClosed",
    "LocalProtocolError",
    "MemoryLimitExceeded",
    "ProtocolError",
    "RemoteProtocolError",
    "TStorageError",
    "Timeout",
    "TransportError",
    "UnparseableRecord",
]


class TStorageError(Exception):
    """Root of every exception raised by ``tstorage_client``."""


class ProtocolError(TStorageError):
    """The TStorage wire protocol was violated (see the two subclasses)."""


class LocalProtocolError(ProtocolError):
    """This side was asked to encode something the protocol cannot carry.

    Examples: a key component out of its integer range, a payload over 32 MiB, a batch
    larger than an int32 can describe.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that do not follow the protocol (framing, sizes, commands)."""


class UnparseableRecord(RemoteProtocolError):
    """A GET record carries a key with a negative cid, or its payload does not decode."""


class MemoryLimitExceeded(TStorageError):
    """A GET response (or a record of it) does not fit into the configured memory limit."""


class TransportError(TStorageError):
    """The connection to the peer failed."""


class ConnectError(TransportError):
    """The connection could not be opened."""


class ConnectionClosed(TransportError):
    """The peer closed the connection before the response was complete."""


class Timeout(TransportError):
    """A socket operation timed out."""
