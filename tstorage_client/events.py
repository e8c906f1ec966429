"""Events of the TStorage protocol core: what one side sends and the other decodes.

Every event is a frozen, slotted dataclass. Requests travel client → server, responses
server → client. ``next_event()`` of both connection roles returns one of these or the
:data:`NEED_DATA` sentinel.

Requests:
    :class:`GetRequest`, :class:`GetAcqRequest`: a key range (GET / GET_ACQ).
    :class:`PutRequest`: start of a PUT (``with_acq=False``) or PUTA (``True``) stream,
    then any number of :class:`PutBatch` and one :class:`PutEnd`.
    :class:`EndOfStream`: the client closed the connection between requests.

Responses:
    GET: :class:`GetStart`, then :class:`GetRecords` (server sends a columnar block) /
    :class:`RecordsBatch` (client decodes objects or arrays), then :class:`GetEnd`.
    GET_ACQ: :class:`AcqResult`. PUT/PUTA: :class:`PutResult`.
    :class:`ErrorResponse`: a bare 12-byte error header (unknown command, bad PUT).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .record import Key

if TYPE_CHECKING:
    from .block import RecordBlock

__all__ = [
    "NEED_DATA",
    "AcqResult",
    "EndOfStream",
    "ErrorResponse",
    "Event",
    "GetAcqRequest",
    "GetEnd",
    "GetRecords",
    "GetRequest",
    "GetStart",
    "NeedData",
    "PutBatch",
    "PutEnd",
    "PutRequest",
    "PutResult",
    "RecordsBatch",
]


class NeedData:
    """Type of the :data:`NEED_DATA` sentinel."""

    _instance: NeedData | None = None

    def __new__(cls) -> NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``next_event()`` when more bytes must be received first.
NEED_DATA = NeedData()


class Event:
    """Base class of every protocol event."""

    __slots__ = ()


# --- requests (client -> server) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetRequest(Event):
    """GET: records with ``key_min.x <= x < key_max.x`` for every component."""

    key_min: Key
    key_max: Key


@dataclass(frozen=True, slots=True)
class GetAcqRequest(Event):
    """GET_ACQ: the acquisition watermark for a key range."""

    key_min: Key
    key_max: Key


@dataclass(frozen=True, slots=True)
class PutRequest(Event):
    """Start of a PUT (server assigns acq) or PUTA (``with_acq``: client gives acq) stream."""

    with_acq: bool


@dataclass(frozen=True, slots=True)
class PutBatch(Event):
    """Records of a PUT/PUTA stream, in stream order.

    Event boundaries do not follow wire batches: a large batch arrives in several
    events, and a run of small batches arrives as one event whose block spans them all.
    Each record's cid is in ``block.keys["cid"]``.

    Attributes:
        block: The records; for PUT the acq column is -1 (the server assigns it).
    """

    block: RecordBlock


@dataclass(frozen=True, slots=True)
class PutEnd(Event):
    """The ``-1`` end guard of a PUT/PUTA stream."""


@dataclass(frozen=True, slots=True)
class EndOfStream(Event):
    """The peer closed the connection at a message boundary."""


# --- responses (server -> client) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetStart(Event):
    """Initial GET header ``(status, 0)``; a non-zero status ends the response."""

    status: int = 0


@dataclass(frozen=True, slots=True)
class GetRecords(Event):
    """Records of a GET response, as sent by a server (columnar)."""

    block: RecordBlock


@dataclass(frozen=True, slots=True)
class RecordsBatch(Event):
    """Records of a GET response, as decoded by a client.

    Attributes:
        records: ``Record`` objects (object path) or structured numpy arrays (numpy path).
    """

    records: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GetEnd(Event):
    """Terminator + trailer of a GET response: ``(status, 8) + acq``.

    Encoded with a non-zero status it becomes the recommended error shape: terminator,
    ``(status, 0)`` and 8 zero padding bytes.
    """

    acq: int = -1
    status: int = 0


@dataclass(frozen=True, slots=True)
class AcqResult(Event):
    """GET_ACQ result ``(status, 8) + acq``; error: ``(status, 0)`` + 8 zero bytes."""

    acq: int = -1
    status: int = 0


@dataclass(frozen=True, slots=True)
class PutResult(Event):
    """PUT/PUTA result ``(status, 16) + acq_min + acq_max``; error: ``(status, 0)``."""

    acq_min: int = -1
    acq_max: int = -1
    status: int = 0


@dataclass(frozen=True, slots=True)
class ErrorResponse(Event):
    """A bare ``(status, 0)`` header (12 bytes)."""

    status: int = -1
