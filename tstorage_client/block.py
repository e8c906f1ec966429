"""Columnar record blocks: many records in three arrays, no per-record Python objects.

A :class:`RecordBlock` is what the protocol core yields when it decodes a PUT/PUTA batch
(server role) and what it encodes into GET records. Record ``i`` has key ``keys[i]``
(a packed structured array of :data:`KEY_DTYPE`, byte-identical to the 32-byte wire key)
and payload ``payload[offsets[i]:offsets[i + 1]]`` (payloads concatenated).

This module needs numpy; the protocol module imports it lazily so that the plain object
path of the client keeps working without numpy.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .record import Key

#: Blocks of at most this many records take per-record Python paths (decoding a PUT,
#: checks in the server's store): a numpy call costs microseconds whatever its size, which
#: dominates a block of a handful of records, as an application appending one value at a
#: time sends. The results are those of the vectorised paths.
FEW_RECORDS = 16

__all__ = ["KEY_DTYPE", "RecordBlock", "copy_ranges", "gather_items", "scatter_items"]

#: One key exactly as on the wire (packed, little-endian, 32 bytes).
KEY_DTYPE: np.dtype[Any] = np.dtype(
    [("cid", "<i4"), ("mid", "<i8"), ("moid", "<i4"), ("cap", "<i8"), ("acq", "<i8")]
)
assert KEY_DTYPE.itemsize == 32

_U8 = np.dtype(np.uint8)


#: Payloads of at least this many bytes are copied one slice each (the copy dominates the
#: Python overhead); shorter ones are copied in groups of equal length.
SLICE_COPY_MIN_BYTES = 256
#: A length shared by fewer records than this is copied slice by slice, not as a group.
_GROUP_MIN_RECORDS = 8
#: Records of short payloads grouped per round (their bytes stay within the CPU caches).
_GROUP_WINDOW_RECORDS = 16384


def _windows(buf: Any, length: int) -> np.ndarray:
    """Every ``length``-byte window of ``buf`` as one item (``V{length}``, stride 1).

    Fancy indexing this view moves whole records with one index per record, where a byte
    index would need eight bytes of index per byte moved.
    """
    return np.ndarray(
        (len(buf) - length + 1,), dtype=np.dtype(f"V{length}"), buffer=buf, strides=(1,)
    )


def copy_ranges(
    dst: np.ndarray,
    dst_starts: np.ndarray,
    src: np.ndarray,
    src_starts: np.ndarray,
    lengths: np.ndarray,
) -> None:
    """``dst[d:d + n] = src[s:s + n]`` for every ``(d, s, n)`` of the three arrays.

    This is the variable-size gather/scatter of the core. It costs O(bytes + records):
    payloads of :data:`SLICE_COPY_MIN_BYTES` or more are copied one slice each; shorter
    ones are grouped by length and each group moves with one fancy-indexed copy of
    ``V{length}`` items. The destination ranges must not overlap.

    Args:
        dst: Writable uint8 array.
        dst_starts: Start of every range in ``dst``.
        src: uint8 array to copy from.
        src_starts: Start of every range in ``src``.
        lengths: Length of every range (int64).
    """
    k = len(lengths)
    if k == 0:
        return
    lengths = np.asarray(lengths, dtype=np.int64)
    dst_starts = np.asarray(dst_starts, dtype=np.int64)
    src_starts = np.asarray(src_starts, dtype=np.int64)
    small = lengths < SLICE_COPY_MIN_BYTES
    one_by_one: list[np.ndarray] = []
    small_idx = np.flatnonzero(small)
    # A window of records at a time keeps the grouped copies within cache-sized regions.
    for w in range(0, len(small_idx), _GROUP_WINDOW_RECORDS):
        idx = small_idx[w : w + _GROUP_WINDOW_RECORDS]
        # Lengths below 256 fit uint8 keys, which numpy sorts by radix in O(records).
        order = idx[np.argsort(lengths[idx].astype(np.uint8), kind="stable")]
        sorted_lengths = lengths[order]
        cuts = np.flatnonzero(sorted_lengths[1:] != sorted_lengths[:-1]) + 1
        for a, b in itertools.pairwise([0, *cuts.tolist(), len(order)]):
            length = int(sorted_lengths[a])
            if length == 0:
                continue
            group = order[a:b]
            if b - a < _GROUP_MIN_RECORDS:
                one_by_one.append(group)
                continue
            _windows(dst, length)[dst_starts[group]] = _windows(src, length)[src_starts[group]]
    if not bool(small.all()):
        one_by_one.append(np.flatnonzero(~small))
    if not one_by_one:
        return
    rest = np.concatenate(one_by_one) if len(one_by_one) > 1 else one_by_one[0]
    out = dst.data.cast("B")
    inp = src.data.cast("B")
    for d, s, n in zip(
        dst_starts[rest].tolist(), src_starts[rest].tolist(), lengths[rest].tolist(), strict=True
    ):
        out[d : d + n] = inp[s : s + n]


def scatter_items(dst: np.ndarray, starts: np.ndarray, items: np.ndarray) -> None:
    """Write fixed-size ``items`` (any packed dtype) at byte offsets ``starts`` of ``dst``.

    One index per item (record headers at variable positions), never one per byte.
    """
    if len(items) == 0:
        return
    size = items.dtype.itemsize
    _windows(dst, size)[np.asarray(starts, dtype=np.int64)] = items.view(np.dtype(f"V{size}"))


def gather_items(src: Any, starts: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """Items of the packed ``dtype`` read at byte offsets ``starts`` of ``src`` (a copy)."""
    size = dtype.itemsize
    return _windows(src, size)[np.asarray(starts, dtype=np.int64)].view(dtype)


#: Integer dtypes that move rows of these sizes faster than ``V{size}`` items.
_ROW_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8),
    2: np.dtype("<u2"),
    4: np.dtype("<u4"),
    8: np.dtype("<u8"),
}


def _rows(src: np.ndarray, size: int) -> np.ndarray:
    """``src`` cut into consecutive ``size``-byte items (a trailing partial row is dropped)."""
    usable = len(src) - len(src) % size
    return src[:usable].view(_ROW_DTYPES.get(size, np.dtype(f"V{size}")))


@dataclass(frozen=True, slots=True, eq=False)
class RecordBlock:
    """A batch of records stored column-wise.

    Invariant (checked on construction, O(1)): ``offsets`` has ``len(keys) + 1`` entries,
    starts at 0 and ends at ``len(payload)``. Records cut out of a larger buffer are held
    as a slice of it (a memoryview) with offsets counted from the slice, never as the
    whole buffer with shifted offsets, so ``offsets[i]`` is always a position in
    ``payload`` as it stands and no reader needs a base.

    Blocks are treated as immutable: :meth:`take` and :meth:`concat` may return arrays and
    buffers shared with their input instead of copies.

    Attributes:
        keys: Structured array of :data:`KEY_DTYPE`, one row per record.
        offsets: int64 array of length ``len(keys) + 1``; ``offsets[0] == 0``.
        payload: The concatenated payloads (``len == offsets[-1]``).

    Raises:
        ValueError: On construction, if the three columns do not fit together as above.
    """

    keys: np.ndarray
    offsets: np.ndarray
    payload: bytes | bytearray | memoryview

    def __post_init__(self) -> None:
        offsets = self.offsets
        if offsets.ndim != 1 or len(offsets) != len(self.keys) + 1:
            raise ValueError(
                f"offsets must have len(keys) + 1 = {len(self.keys) + 1} entries, "
                f"not shape {offsets.shape}"
            )
        if offsets[0] != 0:
            raise ValueError(f"offsets must start at 0, not {int(offsets[0])}")
        if len(self.payload) != offsets[-1]:
            raise ValueError(
                f"payload holds {len(self.payload)} bytes but offsets end at {int(offsets[-1])}"
            )

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
        if size == 0 or n == 1:
            return size
        if n <= FEW_RECORDS:
            offsets = self.offsets.tolist()
            same = all(b - a == size for a, b in itertools.pairwise(offsets))
        else:
            same = bool((self.lengths == size).all())
        return size if same else None

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
        """A new block with the records at ``index``, in that order.

        Costs O(records taken + their bytes), whatever the size of this block. A run of
        consecutive ascending indices is returned as views of this block's columns (no
        copy); otherwise keys and payloads are gathered into new arrays, equal payload
        lengths as one row gather and mixed ones by :func:`copy_ranges`.

        Args:
            index: Integer positions (negative ones count from the end, as in numpy) or a
                boolean mask of ``len(self)`` entries.

        Raises:
            IndexError: A position is out of range, the positions are not a 1-D integer
                sequence, or the mask has the wrong length.
        """
        idx = np.asarray(index)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise IndexError(f"mask of shape {idx.shape} for a block of {len(self)} records")
            idx = np.flatnonzero(idx)
        elif idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise IndexError(f"record positions must be a 1-D integer array, not {idx!r:.60}")
        idx = idx.astype(np.int64, copy=False)
        n = len(idx)
        if n == 0:
            return RecordBlock.empty()
        first, last = int(idx[0]), int(idx[-1])
        if (
            first >= 0
            and last < len(self)
            and last - first + 1 == n
            and (n == 1 or bool((np.diff(idx) == 1).all()))
        ):
            return self._slice(first, last + 1)
        # ndarray.take is many times faster than fancy indexing on structured dtypes.
        keys = self.keys.take(idx)
        starts = self.offsets[:-1].take(idx)
        lengths = self.offsets[1:].take(idx) - starts
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        if total == 0:
            return RecordBlock(keys, offsets, b"")
        src = np.frombuffer(self.payload, dtype=_U8)
        size = int(lengths[0])
        out: np.ndarray
        if bool((lengths == size).all()):
            rows, misaligned = np.divmod(starts, size)
            if bool(misaligned.any()):
                out = _windows(src, size)[starts]
            else:
                out = _rows(src, size).take(rows)
            out = out.view(_U8)
        else:
            out = np.empty(total, dtype=_U8)
            copy_ranges(out, offsets[:-1], src, starts, lengths)
        # The gathered array is already a fresh buffer: hand it over without another copy.
        return RecordBlock(keys, offsets, out.data)

    def _slice(self, start: int, stop: int) -> RecordBlock:
        """Records ``start`` to ``stop - 1`` as views of this block's columns."""
        if start == 0 and stop == len(self):
            return self
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return RecordBlock(
            self.keys[start:stop],
            self.offsets[start : stop + 1] - lo,
            memoryview(self.payload)[lo:hi],
        )

    @classmethod
    def empty(cls) -> RecordBlock:
        """A block without records."""
        return cls(np.empty(0, dtype=KEY_DTYPE), np.zeros(1, dtype=np.int64), b"")

    @classmethod
    def concat(cls, blocks: Sequence[RecordBlock]) -> RecordBlock:
        """One block holding the records of ``blocks`` in order (a lone non-empty block is
        returned as it is)."""
        blocks = [b for b in blocks if len(b)]
        if not blocks:
            return cls.empty()
        if len(blocks) == 1:
            return blocks[0]
        keys = np.concatenate([b.keys for b in blocks])
        lengths = np.concatenate([b.lengths for b in blocks])
        offsets = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(keys, offsets, b"".join([b.payload for b in blocks]))

    @classmethod
    def from_records(
        cls,
        keys: Sequence[Key] | Sequence[tuple[int, int, int, int, int]],
        payloads: Sequence[bytes],
    ) -> RecordBlock:
        """Build a block from Python keys (or 5-tuples) and payload bytes (tests, small writes)."""
        rows = [
            k
            if type(k) is tuple
            else (k.cid, k.mid, k.moid, k.cap, k.acq)
            if isinstance(k, Key)
            else tuple(k)
            for k in keys
        ]
        key_arr = np.array(rows, dtype=KEY_DTYPE) if rows else np.empty(0, dtype=KEY_DTYPE)
        # plain Python for the offsets: a small PUT decodes through here (np.cumsum's
        # fixed cost is most of the time for a handful of records)
        offsets = np.array([0, *itertools.accumulate(map(len, payloads))], dtype=np.int64)
        return cls(key_arr, offsets, b"".join(payloads))

    def to_records(self) -> list[tuple[Key, bytes]]:
        """The records as ``(Key, payload bytes)`` pairs (tests, debugging)."""
        out = []
        offsets = self.offsets.tolist()
        for i, row in enumerate(self.keys.tolist()):
            out.append((Key(*row), bytes(self.payload[offsets[i] : offsets[i + 1]])))
        return out
