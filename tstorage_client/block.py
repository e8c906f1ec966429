"""Columnar record blocks: many records in three arrays, no per-record Python objects.

A :class:`RecordBlock` is what the protocol core yields when it decodes a PUT/PUTA batch
(server role) and what it encodes into GET records. Record ``i`` has key ``keys[i]``
(a packed structured array of :data:`KEY_DTYPE`, byte-identical to the 32-byte wire key)
and payload ``payload[offsets[i]:offsets[i + 1]]`` (payloads concatenated).

This module needs numpy; the protocol module imports it lazily so that the plain object
path of the client keeps working without numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .record import Key

__all__ = ["KEY_DTYPE", "RecordBlock"]

#: One key exactly as on the wire (packed, little-endian, 32 bytes).
KEY_DTYPE: np.dtype[Any] = np.dtype(
    [("cid", "<i4"), ("mid", "<i8"), ("moid", "<i4"), ("cap", "<i8"), ("acq", "<i8")]
)
assert KEY_DTYPE.itemsize == 32

_U8 = np.dtype(np.uint8)


def ranges_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n) pair, as one int64 array.

    This is the index arithmetic behind every variable-size gather/scatter of the core.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    out_starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out_starts[1:])
    shift = np.asarray(starts, dtype=np.int64) - out_starts
    return np.arange(total, dtype=np.int64) + np.repeat(shift, lengths)


@dataclass(frozen=True, slots=True, eq=False)
class RecordBlock:
    """A batch of records stored column-wise.

    Attributes:
        keys: Structured array of :data:`KEY_DTYPE`, one row per record.
        offsets: int64 array of length ``len(keys) + 1``; ``offsets[0] == 0``.
        payload: The concatenated payloads (``len == offsets[-1]``).
    """

    keys: np.ndarray
    offsets: np.ndarray
    payload: bytes | bytearray | memoryview

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def lengths(self) -> np.ndarray:
        """Payload length of every record (int64)."""
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        """Key bytes plus payload bytes held by the block."""
        return len(self.keys) * KEY_DTYPE.itemsize + int(self.offsets[-1])

    def fixed_payload_size(self) -> int | None:
        """The common payload length when every record has the same one, else None."""
        n = len(self.keys)
        if n == 0:
            return 0
        total = int(self.offsets[-1])
        if total % n:
            return None
        size = total // n
        if size == 0 or bool((self.lengths == size).all()):
            return size
        return None

    def payload_of(self, i: int) -> bytes:
        """Payload of record ``i`` as bytes."""
        return bytes(self.payload[int(self.offsets[i]) : int(self.offsets[i + 1])])

    def key_of(self, i: int) -> Key:
        """Key of record ``i`` as a :class:`~tstorage_client.record.Key`."""
        row = self.keys[i]
        return Key(
            int(row["cid"]), int(row["mid"]), int(row["moid"]), int(row["cap"]), int(row["acq"])
        )

    def take(self, index: np.ndarray | Sequence[int]) -> RecordBlock:
        """A new block with the records at ``index`` (an int array or a boolean mask), in that order."""
        idx = np.asarray(index)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        keys = self.keys[idx]
        lengths = self.lengths[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] == 0:
            return RecordBlock(keys, offsets, b"")
        src = np.frombuffer(self.payload, dtype=_U8)
        size = self.fixed_payload_size()
        if size:
            payload = src.reshape(-1, size)[idx].tobytes()
        else:
            payload = src[ranges_index(self.offsets[:-1][idx], lengths)].tobytes()
        return RecordBlock(keys, offsets, payload)

    @classmethod
    def empty(cls) -> RecordBlock:
        """A block without records."""
        return cls(np.empty(0, dtype=KEY_DTYPE), np.zeros(1, dtype=np.int64), b"")

    @classmethod
    def concat(cls, blocks: Sequence[RecordBlock]) -> RecordBlock:
        """One block holding the records of ``blocks`` in order."""
        blocks = [b for b in blocks if len(b)]
        if not blocks:
            return cls.empty()
        if len(blocks) == 1:
            return blocks[0]
        keys = np.concatenate([b.keys for b in blocks])
        lengths = np.concatenate([b.lengths for b in blocks])
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        payload = b"".join(bytes(b.payload[: int(b.offsets[-1])]) for b in blocks)
        return cls(keys, offsets, payload)

    @classmethod
    def from_records(
        cls,
        keys: Sequence[Key] | Sequence[tuple[int, int, int, int, int]],
        payloads: Sequence[bytes],
    ) -> RecordBlock:
        """Build a block from Python keys (or 5-tuples) and payload bytes (tests, small writes)."""
        rows = [
            (k.cid, k.mid, k.moid, k.cap, k.acq) if isinstance(k, Key) else tuple(k) for k in keys
        ]
        key_arr = np.array(rows, dtype=KEY_DTYPE) if rows else np.empty(0, dtype=KEY_DTYPE)
        offsets = np.zeros(len(payloads) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in payloads], out=offsets[1:])
        return cls(key_arr, offsets, b"".join(payloads))

    def to_records(self) -> list[tuple[Key, bytes]]:
        """The records as ``(Key, payload bytes)`` pairs (tests, debugging)."""
        out = []
        offsets = self.offsets.tolist()
        for i, row in enumerate(self.keys.tolist()):
            out.append((Key(*row), bytes(self.payload[offsets[i] : offsets[i + 1]])))
        return out
