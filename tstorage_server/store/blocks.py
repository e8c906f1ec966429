"""Vectorised operations on columnar record blocks.

A block holds ``n`` records as three columns: ``keys`` (``KEY_DTYPE``), ``offsets`` (``n + 1``
int64 positions into ``payload``, starting at 0) and ``payload`` (all payload bytes back to
back). The store never builds one Python object per record: selection, ordering and
gathering are numpy operations over whole columns.

Gathering and joining records are the core's :meth:`RecordBlock.take` and
:meth:`RecordBlock.concat` (one implementation for clients and servers); this module adds
what only the store needs: key order, query boxes and piece cutting.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from tstorage_client import block as client_block
from tstorage_client.block import KEY_DTYPE, RecordBlock

KEY_FIELDS = ("cid", "mid", "moid", "cap", "acq")
KeyTuple = tuple[int, int, int, int, int]


def key_tuple(row: np.void) -> KeyTuple:
    """One key of a ``KEY_DTYPE`` array as a plain tuple (lexicographic order = key order)."""
    return (int(row["cid"]), int(row["mid"]), int(row["moid"]), int(row["cap"]), int(row["acq"]))


def uniform_length(block: RecordBlock) -> int:
    """The payload length shared by every record, or -1 if lengths differ (the store's
    block metadata spells "mixed" as -1)."""
    size = block.fixed_payload_size()
    return -1 if size is None else size


def box_mask(
    keys: np.ndarray, kmin: KeyTuple, kmax: KeyTuple, components: Sequence[int] = range(5)
) -> np.ndarray:
    """Records inside the half-open box ``kmin <= k < kmax`` in every component (only the
    key ``components`` given by position are tested)."""
    mask = np.ones(len(keys), dtype=bool)
    for i in components:
        col = keys[KEY_FIELDS[i]]
        mask &= col >= kmin[i]
        mask &= col < kmax[i]
    return mask


def box_corners(kmin: KeyTuple, kmax: KeyTuple) -> tuple[np.ndarray, np.ndarray] | None:
    """The smallest and the largest key a record inside the box ``kmin <= k < kmax`` can
    have, as one-row ``KEY_DTYPE`` arrays (bounds clipped to each component's type), or
    None when the box holds no possible key.

    Every key inside the box sorts between the two corners, so in a sorted block the
    box's records all lie between the corners' ``searchsorted`` positions.
    """
    low, high = [], []
    for name, lo, hi in zip(KEY_FIELDS, kmin, kmax, strict=True):
        info = np.iinfo(KEY_DTYPE[name])
        a, b = max(lo, int(info.min)), min(hi - 1, int(info.max))
        if a > b:
            return None
        low.append(a)
        high.append(b)
    return np.array([tuple(low)], dtype=KEY_DTYPE), np.array([tuple(high)], dtype=KEY_DTYPE)


def box_range(keys: np.ndarray, corners: tuple[np.ndarray, np.ndarray]) -> tuple[int, int]:
    """``[start, stop)`` of the sorted ``keys`` between the box's ``corners`` (see
    :func:`box_corners`): a binary search, O(log n) whatever the block's size."""
    low, high = corners
    start = int(np.searchsorted(keys, low)[0])
    stop = int(np.searchsorted(keys, high, side="right")[0])
    return start, max(start, stop)


def unsure_components(
    corners: tuple[np.ndarray, np.ndarray],
    mins: np.ndarray,
    maxs: np.ndarray,
    kmin: KeyTuple,
    kmax: KeyTuple,
) -> list[int]:
    """Key components a record between the box's ``corners`` may still have outside the
    box, for a block whose components span ``mins`` to ``maxs``.

    The corners' common leading components are fixed between them, and the first one
    where they differ is bounded by them; a later component is sure only when the
    block's whole span of it lies inside the box.
    """
    low, high = (c[0].tolist() for c in corners)
    fixed = 0
    while fixed < 4 and low[fixed] == high[fixed]:
        fixed += 1
    return [
        i for i in range(fixed + 1, 5) if not (int(mins[i]) >= kmin[i] and int(maxs[i]) < kmax[i])
    ]


def is_sorted(keys: np.ndarray, *, with_acq: bool = True) -> bool:
    """Whether ``keys`` is in non-decreasing lexicographic (cid, mid, moid, cap, acq) order
    (without acq: ordered by the first four components only)."""
    if len(keys) < 2:
        return True
    if len(keys) <= client_block.FEW_RECORDS:
        rows = keys.tolist()
        if not with_acq:
            rows = [row[:4] for row in rows]
        return all(a <= b for a, b in itertools.pairwise(rows))
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


def split(block: RecordBlock, max_records: int, max_bytes: int) -> list[RecordBlock]:
    """Cut ``block`` into consecutive pieces of at most ``max_records`` records and about
    ``max_bytes`` payload bytes (a single larger record forms a piece by itself)."""
    n = len(block.keys)
    if n <= max_records and int(block.offsets[-1]) <= max_bytes:
        return [block]
    pieces = []
    start = 0
    offsets = block.offsets
    while start < n:
        stop = min(n, start + max_records)
        limit = int(offsets[start]) + max_bytes
        cut = int(np.searchsorted(offsets[start + 1 : stop + 1], limit, side="right")) + start
        stop = max(start + 1, min(stop, cut))
        pieces.append(block.take(np.arange(start, stop)))
        start = stop
    return pieces
