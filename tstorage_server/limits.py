"""What one client may make the TStorage server hold, and for how long.

Every limit has a default here, a ``tstorage-server`` flag (:func:`add_arguments`), and is
described, with what a client sees when it hits it, in ``docs/tstorage-server.md``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

MiB = 1 << 20
GiB = 1 << 30

DEFAULT_MAX_REQUEST_BYTES = GiB
DEFAULT_MAX_BUFFERED_BYTES = 2 * GiB
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_REQUEST_TIMEOUT_S = 120.0
DEFAULT_IDLE_TIMEOUT_S = 3600.0
DEFAULT_WRITE_STALL_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Limits:
    """Bounds on what clients can make the server hold.

    Attributes:
        max_request_bytes: most bytes one connection's request may hold in memory: the
            decoded records of a PUT/PUTA waiting for its end marker plus the bytes
            received and not decoded yet. Over it the request is refused whole.
        max_buffered_bytes: most bytes all connections together may hold that way; the
            request whose bytes pass it is refused whole (the others go on).
        max_connections: connections served at once; a further client gets the error
            answer to its first request and is closed.
        request_timeout: seconds from a request's first byte to its last; a request still
            incomplete then is refused whole.
        idle_timeout: seconds a connection may wait between requests before it is closed
            (quietly: no request is lost).
        write_stall_timeout: seconds a response may wait for a client that stopped reading
            before the connection is reset.

    Raises:
        ValueError: a value is not positive.
    """

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S
    write_stall_timeout: float = DEFAULT_WRITE_STALL_TIMEOUT_S

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"{f.name} must be positive, not {getattr(self, f.name)!r}")

    def argv(self) -> list[str]:
        """These limits as ``tstorage-server`` flags (for a process that starts one)."""
        out: list[str] = []
        for f in fields(self):
            out += ["--" + f.name.replace("_", "-"), f"{getattr(self, f.name)!r}"]
        return out


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--max-*`` and ``--*-timeout`` flags of ``tstorage-server``, in one group."""
    g = parser.add_argument_group(
        "limits (what a client may make the server hold; see docs/tstorage-server.md)"
    )
    g.add_argument(
        "--max-request-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help="most bytes one connection's request holds in memory; a PUT/PUTA over it is "
        "refused whole (default 1 GiB)",
    )
    g.add_argument(
        "--max-buffered-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BUFFERED_BYTES,
        help="most bytes all connections' requests hold together; the request that passes "
        "it is refused whole (default 2 GiB)",
    )
    g.add_argument(
        "--max-connections",
        type=_positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="connections served at once; a further one gets an error answer and is closed "
        f"(default {DEFAULT_MAX_CONNECTIONS})",
    )
    g.add_argument(
        "--request-timeout",
        type=_positive_float,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help="seconds a request may take to arrive whole; then it is refused "
        f"(default {DEFAULT_REQUEST_TIMEOUT_S:g})",
    )
    g.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="seconds a connection may wait between requests before it is closed "
        f"(default {DEFAULT_IDLE_TIMEOUT_S:g})",
    )
    g.add_argument(
        "--write-stall-timeout",
        type=_positive_float,
        default=DEFAULT_WRITE_STALL_TIMEOUT_S,
        help="seconds a response may wait for a client that stopped reading "
        f"(default {DEFAULT_WRITE_STALL_TIMEOUT_S:g})",
    )


def from_args(args: argparse.Namespace) -> Limits:
    """The limits given by the flags of :func:`add_arguments`."""
    return Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
