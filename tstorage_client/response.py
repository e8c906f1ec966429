"""Module containing network response class hierarchy.

Every public channel method reports its outcome as one of these frozen dataclasses; a
response is truthy exactly when its status is :attr:`ResponseStatus.OK`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, TypeVar

from .records_set import RecordsSet

__all__ = ["Response", "ResponseAcq", "ResponseGet", "ResponseStatus"]

T = TypeVar("T")


class ResponseStatus(IntEnum):
    """Enumeration of possible return codes from various functions.

    ``OK`` and ``ERROR`` (the server answered with a non-zero status) come from the
    server; the others are decided by the client: ``DISCONNECTED`` (not connected, or the
    connection ended or failed before a complete response), ``BAD_REQUEST`` (a GET's
    initial header carried an error), ``UNPARSEABLE_ENTITY`` (a record key has a negative
    cid or the payload type could not decode a payload), ``NO_MEMORY`` (the response
    does not fit into ``memory_limit``).
    """

    OK = 0
    ERROR = -1

    DISCONNECTED = 128
    BAD_REQUEST = 129
    UNPARSEABLE_ENTITY = 130
    NO_MEMORY = 131

    def __bool__(self) -> bool:
        """True only for OK."""
        return self.value == 0

    def is_ok(self) -> bool:
        """Check if status does not represent error condition."""
        return self.value == 0


@dataclass(frozen=True, slots=True)
class Response:
    """Base response from network calls.

    Attributes:
        status: Error status of function.
    """

    status: ResponseStatus

    def __bool__(self) -> bool:
        """True only when the status is OK."""
        return self.status == ResponseStatus.OK

    def is_ok(self) -> bool:
        """Check if status does not represent error condition."""
        return self.status == ResponseStatus.OK


@dataclass(frozen=True, slots=True)
class ResponseAcq(Response):
    """Response carrying an acq value (GET_ACQ, and the end of every GET).

    Attributes:
        status: Error status of function.
        acq: Returned acq value from TStorage (-1 unless the status is OK).
    """

    acq: int = -1


@dataclass(frozen=True, slots=True)
class ResponseGet(ResponseAcq, Generic[T]):
    """Response from GET call that carries records.

    Attributes:
        status: Error status of function.
        acq: Returned acq value from TStorage.
        data: Returned records (on failure: the records received before it).
    """

    data: RecordsSet[T] = field(default_factory=list)
