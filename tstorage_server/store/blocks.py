"""Vectorised operations on columnar record blocks.

A block holds ``n`` records as three columns: ``keys`` (``KEY_DTYPE``), ``offsets`` (``n + 1``
int64 positions into ``payload``) and ``payload`` (all payload bytes back to back). The
store never builds one Python object per record: selection, ordering and gathering are
numpy operations over whole columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tstorage_client.block import KEY_DTYPE, RecordBlock

KEY_FIELDS = ("cid", "mid", "moid", "cap", "acq")
KeyTuple = tuple[int, int, int, int, int]

# Below this mean payload length a fancy-indexed byte gather beats a Python loop of slices.
_SMALL_PAYLOAD_BYTES = 256


def empty_block() -> RecordBlock:
    """A block with no records."""
    return RecordBlock(np.empty(0, KEY_DTYPE), np.zeros(1, np.int64), b"")


def key_tuple(row: np.void) -> KeyTuple:
    """One key of a ``KEY_DTYPE`` array as a plain tuple (lexicographic order = key order)."""
    return (int(row["cid"]), int(row["mid"]), int(row["moid"]), int(row["cap"]), int(row["acq"]))


def uniform_length(block: RecordBlock) -> int:
    """The payload length shared by every record, or -1 if lengths differ."""
    n = len(block.keys)
    if n == 0:
        return 0
    total = int(block.offsets[-1] - block.offsets[0])
    if total % n:
        return -1
    length = total // n
    lengths = np.diff(block.offsets)
    return length if bool(np.all(lengths == length)) else -1


def box_mask(keys: np.ndarray, kmin: KeyTuple, kmax: KeyTuple) -> np.ndarray:
    """Records inside the half-open box ``kmin <= k < kmax`` in every component."""
    mask = np.ones(len(keys), dtype=bool)
    for name, lo, hi in zip(KEY_FIELDS, kmin, kmax, strict=True):
        col = keys[name]
        mask &= col >= lo
        mask &= col < hi
    return mask


def is_sorted(keys: np.ndarray, *, with_acq: bool = True) -> bool:
    """Whether ``keys`` is in non-decreasing lexicographic (cid, mid, moid, cap, acq) order
    (without acq: ordered by the first four components only)."""
    if len(keys) < 2:
        return True
    bad = np.zeros(len(keys) - 1, dtype=bool)
    undecided = np.ones(len(keys) - 1, dtype=bool)
    for name in KEY_FIELDS if with_acq else KEY_FIELDS[:4]:
        col = keys[name]
        a, b = col[:-1], col[1:]
        bad |= undecided & (a > b)
        undecided &= a == b
        if not undecided.any():
            break
    return not bool(bad.any())


def sort_order(keys: np.ndarray, *, with_acq: bool = True) -> np.ndarray:
    """Stable permutation putting ``keys`` in ascending key order (ties keep input order)."""
    fields = KEY_FIELDS if with_acq else KEY_FIELDS[:4]
    # lexsort is a stable sort whose last key is the primary one.
    return np.lexsort(tuple(keys[name] for name in reversed(fields)))


def take(block: RecordBlock, idx: np.ndarray) -> RecordBlock:
    """The records ``idx`` of ``block``, in that order, as a new block."""
    idx = np.asarray(idx, dtype=np.int64)
    n = len(idx)
    if n == 0:
        return empty_block()
    offsets = block.offsets
    first, last = int(idx[0]), int(idx[-1])
    if last - first + 1 == n and (n == 1 or bool(np.all(np.diff(idx) == 1))):
        # A contiguous run: slice, no copy of the payload.
        start, stop = int(offsets[first]), int(offsets[last + 1])
        new_offsets = offsets[first : last + 2] - start
        return RecordBlock(
            block.keys[first : last + 1], new_offsets, memoryview(block.payload)[start:stop]
        )
    starts = offsets[idx]
    lengths = offsets[idx + 1] - starts
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    total = int(new_offsets[-1])
    source = np.frombuffer(block.payload, dtype=np.uint8)
    if total == 0:
        payload = b""
    elif bool(np.all(lengths == lengths[0])):
        length = int(lengths[0])
        if int(offsets[0]) == 0 and int(offsets[-1]) == length * len(block.keys):
            payload = source[: length * len(block.keys)].reshape(-1, length)[idx].tobytes()
        else:
            rows = starts[:, None] + np.arange(length, dtype=np.int64)
            payload = source[rows].tobytes()
    elif total // n < _SMALL_PAYLOAD_BYTES:
        byte_idx = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(total, dtype=np.int64)
        payload = source[byte_idx].tobytes()
    else:
        view = memoryview(block.payload)
        payload = b"".join(
            [view[s : s + ln] for s, ln in zip(starts.tolist(), lengths.tolist(), strict=True)]
        )
    return RecordBlock(block.keys[idx], new_offsets, payload)


def concat(blocks: Sequence[RecordBlock]) -> RecordBlock:
    """All records of ``blocks`` in order, as one block."""
    blocks = [b for b in blocks if len(b.keys)]
    if not blocks:
        return empty_block()
    if len(blocks) == 1:
        return blocks[0]
    keys = np.concatenate([b.keys for b in blocks])
    parts = []
    payloads = []
    base = 0
    for b in blocks:
        start = int(b.offsets[0])
        stop = int(b.offsets[-1])
        parts.append(b.offsets[:-1] - start + base)
        payloads.append(memoryview(b.payload)[start:stop])
        base += stop - start
    parts.append(np.array([base], dtype=np.int64))
    return RecordBlock(keys, np.concatenate(parts), b"".join(payloads))


def split(block: RecordBlock, max_records: int, max_bytes: int) -> list[RecordBlock]:
    """Cut ``block`` into consecutive pieces of at most ``max_records`` records and about
    ``max_bytes`` payload bytes (a single larger record forms a piece by itself)."""
    n = len(block.keys)
    if n <= max_records and int(block.offsets[-1] - block.offsets[0]) <= max_bytes:
        return [block]
    pieces = []
    start = 0
    offsets = block.offsets
    while start < n:
        stop = min(n, start + max_records)
        limit = int(offsets[start]) + max_bytes
        cut = int(np.searchsorted(offsets[start + 1 : stop + 1], limit, side="right")) + start
        stop = max(start + 1, min(stop, cut))
        pieces.append(take(block, np.arange(start, stop)))
        start = stop
    return pieces
