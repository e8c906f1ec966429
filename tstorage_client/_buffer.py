"""Receive buffer of the sans-IO core (wsproto/h11 style).

Bytes are appended with :meth:`ReceiveBuffer.feed` and read with ``consume_*`` calls that
advance a tentative cursor. :meth:`commit` makes the reads final; :meth:`rollback`
returns to the last commit, so a decoder can try to read a whole message and give up
without losing bytes when it turns out to be incomplete.

Strategy: one ``bytearray`` plus a committed offset; consumed bytes are dropped lazily
(when they are more than half of the array), so feeding and consuming stay amortised
O(bytes). Reads return ``bytes`` copies, never views, so the array can always grow.
"""

from __future__ import annotations

from .errors import RemoteProtocolError

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """Byte buffer with commit/rollback reads and an optional size limit.

    Args:
        max_size: Most bytes that may wait unconsumed; ``feed`` beyond it raises
            :class:`~tstorage_client.errors.RemoteProtocolError`. None = unlimited.
    """

    __slots__ = ("_data", "_pos", "_start", "max_size")

    def __init__(self, max_size: int | None = None) -> None:
        self._data = bytearray()
        self._start = 0  # committed read offset
        self._pos = 0  # tentative read offset (>= _start)
        self.max_size = max_size

    def __len__(self) -> int:
        """Bytes available after the tentative cursor."""
        return len(self._data) - self._pos

    def __bool__(self) -> bool:
        return len(self._data) > self._pos

    @property
    def uncommitted(self) -> int:
        """Bytes read since the last commit."""
        return self._pos - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes.

        Raises:
            RemoteProtocolError: More than ``max_size`` bytes would wait unconsumed.
        """
        if self.max_size is not None and len(self._data) - self._start + len(data) > self.max_size:
            raise RemoteProtocolError(
                f"receive buffer would exceed {self.max_size} bytes without a complete message"
            )
        self._data += data

    def peek(self, n: int, offset: int = 0) -> bytes:
        """Up to ``n`` bytes starting ``offset`` bytes after the cursor, not consumed."""
        start = self._pos + offset
        # One copy instead of two (slicing the bytearray would copy first); the view is
        # released before returning, so the array can still grow.
        with memoryview(self._data) as view:
            return bytes(view[start : start + n])

    def peek_all(self) -> bytes:
        """Every byte after the cursor, not consumed."""
        with memoryview(self._data) as view:
            return bytes(view[self._pos :])

    def consume_exactly(self, n: int) -> bytes | None:
        """Read exactly ``n`` bytes, or None (nothing consumed) if fewer are buffered."""
        end = self._pos + n
        if end > len(self._data):
            return None
        out = bytes(self._data[self._pos : end])
        self._pos = end
        return out

    def consume_at_most(self, n: int) -> bytes:
        """Read up to ``n`` bytes."""
        end = min(self._pos + n, len(self._data))
        out = bytes(self._data[self._pos : end])
        self._pos = end
        return out

    def skip(self, n: int) -> int:
        """Drop up to ``n`` bytes; returns how many were dropped."""
        end = min(self._pos + n, len(self._data))
        dropped = end - self._pos
        self._pos = end
        return dropped

    def commit(self) -> None:
        """Make every read since the last commit final."""
        self._start = self._pos
        if self._start and self._start * 2 >= len(self._data):
            del self._data[: self._start]
            self._pos -= self._start
            self._start = 0

    def rollback(self) -> None:
        """Undo every read since the last commit."""
        self._pos = self._start
