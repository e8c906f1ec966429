"""Reassembly of ``chunked_message`` events, with hard bounds (spec §4.4-§4.6, §10).

A chunk event carries one object::

    {"chunk_id": str, "chunk_index": int, "total_chunks": int,
     "event": str, "data": <bytes>, "size": int}

Acknowledgements: ``{"status": "waiting", "received": n, "total": t}`` while chunks are
missing, ``{"status": "complete"}`` once the message was assembled (and executed by the
caller), or an error envelope (``ChunkSizeError``, ``ChunkDecodeError``, ``ChunkError``,
``ChunkLimitError``). ``get_chunked_result`` then hands out the stored result once.

State per message::

    receiving --(last missing chunk)--> assembled --(set_result)--> done --(take_result)--> gone
        \\________________ expired after ttl_s without activity / owner disconnected ______/

Strategy: state is keyed by ``(owner, chunk_id)`` where the owner is the connection, so one
client can neither read nor disturb another's messages and a disconnect frees everything
the connection left behind. Every dimension is bounded: open messages per owner and in
total, chunks per message, bytes per message, bytes buffered per owner (below the
server-wide bound, so one connection cannot fill the store for everyone) and overall, and
the time a message may take to complete. Expiry runs on
every new message (and whenever the caller calls :meth:`ChunkAssembler.expire`); the caller
supplies the clock, so nothing here reads time or does I/O. A chunk re-sent after its
message completed is acknowledged as complete without running the command again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from znsocket.exceptions import (
    ChunkDecodeError,
    ChunkError,
    ChunkIncompleteError,
    ChunkLimitError,
    ChunkNotFoundError,
    ChunkSizeError,
)

__all__ = [
    "AlreadyComplete",
    "Assembled",
    "Chunk",
    "ChunkAssembler",
    "ChunkLimits",
    "Waiting",
    "parse_chunk",
]

MAX_CHUNK_ID_CHARS = 128
#: Ids of timed-out messages remembered (over all connections) to refuse their late chunks.
_TIMED_OUT_KEPT = 4096
MAX_EVENT_NAME_CHARS = 256


@dataclass(frozen=True)
class ChunkLimits:
    """Bounds on chunk reassembly.

    Attributes:
        max_message_bytes: Largest reassembled buffer (before decompression).
        max_total_chunks: Largest ``total_chunks`` accepted.
        max_open_per_owner: Messages one connection may have open (incl. unfetched results).
        max_open_total: Messages open over all connections.
        max_buffered_bytes: Chunk bytes buffered over all connections.
        max_buffered_bytes_per_owner: Chunk bytes one connection may have buffered (the
            server-wide bound applies too, should it be the lower one).
        ttl_s: Seconds without activity after which a message (or unfetched result) is dropped.
        assembly_timeout_s: Seconds from a message's first chunk within which its last one
            must arrive; a later chunk is refused and the message dropped.
        sweep_interval_s: Minimum seconds between two automatic expiry sweeps.
    """

    max_message_bytes: int = 256 * 1024 * 1024
    max_total_chunks: int = 100_000
    max_open_per_owner: int = 16
    max_open_total: int = 1024
    max_buffered_bytes: int = 1024 * 1024 * 1024
    max_buffered_bytes_per_owner: int = 256 * 1024 * 1024
    ttl_s: float = 300.0
    assembly_timeout_s: float = 600.0
    sweep_interval_s: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "max_message_bytes",
            "max_total_chunks",
            "max_open_per_owner",
            "max_open_total",
            "max_buffered_bytes",
            "max_buffered_bytes_per_owner",
            "ttl_s",
            "assembly_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class Chunk:
    """One validated ``chunked_message`` payload."""

    chunk_id: str
    index: int
    total: int
    event: str
    data: bytes


@dataclass(frozen=True)
class Waiting:
    """More chunks are expected."""

    received: int
    total: int

    def ack(self) -> dict[str, Any]:
        """The acknowledgement for this chunk."""
        return {"status": "waiting", "received": self.received, "total": self.total}


@dataclass(frozen=True)
class Assembled:
    """This chunk completed the message: decode ``buffer``, run ``event``, then ``set_result``."""

    chunk_id: str
    event: str
    buffer: bytes

    def ack(self) -> dict[str, Any]:
        """The acknowledgement for the completing chunk."""
        return {"status": "complete"}


@dataclass(frozen=True)
class AlreadyComplete:
    """A chunk of an already assembled message arrived again; nothing is run twice."""

    def ack(self) -> dict[str, Any]:
        """The acknowledgement for the repeated chunk."""
        return {"status": "complete"}


def _timed_out(chunk_id: str, timeout_s: float) -> str:
    return (
        f"Chunked message {chunk_id} was not complete within {timeout_s:g} s; its chunks "
        f"were dropped and it was not run (send it again)"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_chunk(data: Any) -> Chunk:
    """Validate a ``chunked_message`` payload.

    Args:
        data: The decoded event argument.

    Returns:
        The chunk.

    Raises:
        ChunkDecodeError: Missing or mistyped fields, text instead of binary data.
        ChunkSizeError: ``size`` is positive and differs from the data length.
    """
    if not isinstance(data, dict):
        raise ChunkDecodeError("Failed to decode chunk: payload must be an object")
    index: Any = data.get("chunk_index")
    label = index if _is_int(index) else "?"
    chunk_id = data.get("chunk_id")
    total: Any = data.get("total_chunks")
    event = data.get("event")
    raw = data.get("data")
    size = data.get("size", 0)
    if not isinstance(chunk_id, str) or not 0 < len(chunk_id) <= MAX_CHUNK_ID_CHARS:
        raise ChunkDecodeError(
            f"Failed to decode chunk {label}: chunk_id must be a string of 1 to "
            f"{MAX_CHUNK_ID_CHARS} characters"
        )
    if not _is_int(index) or not _is_int(total):
        raise ChunkDecodeError(
            f"Failed to decode chunk {label}: chunk_index and total_chunks must be integers"
        )
    if not isinstance(event, str) or not 0 < len(event) <= MAX_EVENT_NAME_CHARS:
        raise ChunkDecodeError(f"Failed to decode chunk {index}: event must be a non-empty string")
    if not isinstance(raw, (bytes, bytearray)):
        raise ChunkDecodeError(f"Failed to decode chunk {index}: data must be binary")
    if not _is_int(size) or size < 0:
        raise ChunkDecodeError(
            f"Failed to decode chunk {index}: size must be a non-negative integer"
        )
    if size > 0 and size != len(raw):
        raise ChunkSizeError(f"Chunk {index} size mismatch")
    return Chunk(
        chunk_id=chunk_id, index=int(index), total=int(total), event=event, data=bytes(raw)
    )


@dataclass
class _Message:
    event: str
    total: int
    touched_at: float
    started_at: float
    parts: dict[int, bytes] = field(default_factory=dict)
    nbytes: int = 0
    assembled: bool = False
    has_result: bool = False
    result: Any = None


class ChunkAssembler:
    """Reassembles chunked messages of many connections within :class:`ChunkLimits`.

    Args:
        limits: The bounds to enforce.

    Example:
        >>> asm = ChunkAssembler()
        >>> asm.receive("sid1", Chunk("id", 0, 2, "set", b"\\x00[[\\"k\\""), now=0.0)
        Waiting(received=1, total=2)
        >>> done = asm.receive("sid1", Chunk("id", 1, 2, "set", b",\\"v\\"],{}]"), now=0.1)
        >>> done.buffer
        b'\\x00[["k","v"],{}]'
    """

    def __init__(self, limits: ChunkLimits | None = None) -> None:
        self.limits = limits or ChunkLimits()
        self._messages: dict[tuple[str, str], _Message] = {}
        self._open_per_owner: dict[str, int] = {}
        self._buffered_per_owner: dict[str, int] = {}
        # messages dropped for taking too long, so their late chunks get a clear error
        self._timed_out: dict[tuple[str, str], None] = {}
        self._buffered = 0
        self._last_sweep = float("-inf")

    @property
    def open_messages(self) -> int:
        """Messages currently held (receiving, assembled or waiting to be fetched)."""
        return len(self._messages)

    @property
    def buffered_bytes(self) -> int:
        """Chunk bytes currently buffered."""
        return self._buffered

    def receive(
        self, owner: str, chunk: Chunk, now: float
    ) -> Waiting | Assembled | AlreadyComplete:
        """Store one chunk.

        Args:
            owner: The connection that sent it.
            chunk: The validated chunk.
            now: Current time in seconds (any monotonic clock).

        Returns:
            :class:`Waiting`, :class:`Assembled` (the caller must now run the command and
            call :meth:`set_result`) or :class:`AlreadyComplete`.

        Raises:
            ChunkLimitError: A bound would be exceeded (the message is dropped).
            ChunkError: Index out of range or metadata differing from the first chunk.
        """
        limits = self.limits
        key = (owner, chunk.chunk_id)
        message = self._messages.get(key)
        if message is None:
            if now - self._last_sweep >= limits.sweep_interval_s:
                self.expire(now)
            if key in self._timed_out:
                raise ChunkLimitError(_timed_out(chunk.chunk_id, limits.assembly_timeout_s))
            if not 0 < chunk.total <= limits.max_total_chunks:
                raise ChunkLimitError(
                    f"total_chunks must be between 1 and {limits.max_total_chunks}, "
                    f"got {chunk.total}"
                )
            if self._open_per_owner.get(owner, 0) >= limits.max_open_per_owner:
                raise ChunkLimitError(
                    f"Too many open chunked messages on this connection "
                    f"(limit {limits.max_open_per_owner})"
                )
            if len(self._messages) >= limits.max_open_total:
                raise ChunkLimitError(
                    f"Too many open chunked messages on the server (limit {limits.max_open_total})"
                )
            message = _Message(event=chunk.event, total=chunk.total, touched_at=now, started_at=now)
            self._messages[key] = message
            self._open_per_owner[owner] = self._open_per_owner.get(owner, 0) + 1
        elif message.assembled:
            message.touched_at = now
            return AlreadyComplete()
        elif now - message.started_at > limits.assembly_timeout_s:
            self._time_out(key)
            raise ChunkLimitError(_timed_out(chunk.chunk_id, limits.assembly_timeout_s))
        if chunk.total != message.total or chunk.event != message.event:
            raise ChunkError(
                f"Chunk {chunk.index} metadata differs from the first chunk of {chunk.chunk_id}"
            )
        if not 0 <= chunk.index < message.total:
            raise ChunkError(f"Chunk index {chunk.index} out of range 0..{message.total - 1}")
        previous = message.parts.get(chunk.index)
        grow = len(chunk.data) - (len(previous) if previous is not None else 0)
        if message.nbytes + grow > limits.max_message_bytes:
            self._drop(key)
            raise ChunkLimitError(f"Chunked message exceeds {limits.max_message_bytes} bytes")
        owned = self._buffered_per_owner.get(owner, 0)
        if owned + grow > limits.max_buffered_bytes_per_owner:
            self._drop(key)
            raise ChunkLimitError(
                f"Chunked messages of this connection exceed "
                f"{limits.max_buffered_bytes_per_owner} bytes buffered; message "
                f"{chunk.chunk_id} was dropped and not run (finish or abandon other "
                f"chunked messages first)"
            )
        if self._buffered + grow > limits.max_buffered_bytes:
            self._drop(key)
            raise ChunkLimitError(
                f"Server chunk buffer is full; message {chunk.chunk_id} was dropped and not "
                f"run; try again later"
            )
        message.parts[chunk.index] = chunk.data
        message.nbytes += grow
        self._buffered += grow
        self._buffered_per_owner[owner] = owned + grow
        message.touched_at = now
        if len(message.parts) < message.total:
            return Waiting(received=len(message.parts), total=message.total)
        for i in range(message.total):
            if i not in message.parts:  # pragma: no cover - guarded by the index check
                raise ChunkError(f"Missing chunk {i}")
        buffer = b"".join(message.parts[i] for i in range(message.total))
        self._release(owner, message.nbytes)
        message.parts.clear()
        message.nbytes = 0
        message.assembled = True
        return Assembled(chunk_id=chunk.chunk_id, event=message.event, buffer=buffer)

    def set_result(self, owner: str, chunk_id: str, result: Any) -> None:
        """Store the result of an assembled message for ``get_chunked_result``.

        Args:
            owner: The connection.
            chunk_id: The message id.
            result: The acknowledgement the plain path would have returned.
        """
        message = self._messages.get((owner, chunk_id))
        if message is not None and message.assembled:
            message.result = result
            message.has_result = True

    def take_result(self, owner: str, chunk_id: Any) -> Any:
        """Hand out a stored result once and forget the message.

        Args:
            owner: The connection.
            chunk_id: The message id.

        Raises:
            ChunkNotFoundError: No such message for this connection.
            ChunkIncompleteError: The message still misses chunks.
        """
        key = (owner, chunk_id if isinstance(chunk_id, str) else "")
        message = self._messages.get(key)
        if message is None:
            raise ChunkNotFoundError(f"Chunk ID {chunk_id} not found")
        if not message.has_result:
            raise ChunkIncompleteError(f"Chunk ID {chunk_id} not complete")
        self._drop(key)
        return message.result

    def discard_owner(self, owner: str) -> int:
        """Forget every message of a connection (it disconnected).

        Returns:
            The number of messages dropped.
        """
        keys = [k for k in self._messages if k[0] == owner]
        for k in keys:
            self._drop(k)
        for k in [k for k in self._timed_out if k[0] == owner]:
            del self._timed_out[k]
        return len(keys)

    def expire(self, now: float) -> int:
        """Drop messages idle for longer than ``ttl_s`` or incomplete after ``assembly_timeout_s``.

        Returns:
            The number of messages dropped.
        """
        self._last_sweep = now
        cutoff = now - self.limits.ttl_s
        late = now - self.limits.assembly_timeout_s
        idle = [k for k, m in self._messages.items() if m.touched_at < cutoff]
        for k in idle:
            self._drop(k)
        slow = [k for k, m in self._messages.items() if not m.assembled and m.started_at < late]
        for k in slow:
            self._time_out(k)
        return len(idle) + len(slow)

    def _time_out(self, key: tuple[str, str]) -> None:
        self._drop(key)
        self._timed_out[key] = None
        while len(self._timed_out) > _TIMED_OUT_KEPT:
            del self._timed_out[next(iter(self._timed_out))]

    def _release(self, owner: str, nbytes: int) -> None:
        self._buffered -= nbytes
        left = self._buffered_per_owner.get(owner, 0) - nbytes
        if left > 0:
            self._buffered_per_owner[owner] = left
        else:
            self._buffered_per_owner.pop(owner, None)

    def _drop(self, key: tuple[str, str]) -> None:
        message = self._messages.pop(key, None)
        if message is None:
            return
        self._release(key[0], message.nbytes)
        left = self._open_per_owner.get(key[0], 1) - 1
        if left > 0:
            self._open_per_owner[key[0]] = left
        else:
            self._open_per_owner.pop(key[0], None)
