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

import numpy as np

from tstorage_client import block as client_block
from tstorage_client.block import RecordBlock

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
