"""PUT/PUTA batches from numpy structured arrays (or dicts of arrays), client side.

Records are grouped by cid in order of first occurrence (stable inside a group), packed
into one array of the PUT/PUTA record dtype (size field + key without cid + payload
fields: byte-identical to the wire) and sliced into batches. The caller's array is not
modified.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import LocalProtocolError
from .payload_type import NumpyPayloadType
from .protocol import BATCH_HEADER, INT32_MAX

__all__ = ["numpy_put_batches"]


def _column(data: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(data[name])
    except (KeyError, ValueError, IndexError) as exc:
        raise LocalProtocolError(f"numpy PUT input has no field {name!r}") from exc


def numpy_put_batches(
    data: Any,
    with_acq: bool,
    payload_type: NumpyPayloadType,
    max_batch_size: int = INT32_MAX,
    skip_invalid: bool = False,
) -> Iterator[bytes]:
    """Batches (8-byte header + records) for a structured array or a dict of arrays.

    Invalid records (cid < 0) are dropped with ``skip_invalid``; otherwise encoding stops
    before the first group of invalid records (as on the object path). Every batch holds
    at least one record.
    """
    dtype = (
        payload_type.serializer_dtype_with_acq if with_acq else payload_type.serializer_dtype_no_acq
    )
    cids = _column(data, "cid").astype(np.int64, copy=False)
    n = len(cids)
    if n == 0:
        return
    if bool((cids > INT32_MAX).any()):
        raise LocalProtocolError("cid above 2^31-1")
    first_cid = int(cids[0])
    perm: np.ndarray | None
    if bool((cids == first_cid).all()):
        # One cid (one series, the usual bulk write): no grouping, no gather of the columns.
        if first_cid < 0:
            return  # all invalid: dropped, or encoding stops before them
        perm = None
        starts, ends, group_cids = [0], [n], [first_cid]
    else:
        perm, group_cids, starts, ends = _grouped(cids, skip_invalid)
        if perm is None or len(perm) == 0:
            return
    count = n if perm is None else len(perm)
    out = np.empty(count, dtype=dtype)
    out["_size"] = dtype.itemsize - 4
    for name in dtype.names[1:]:  # type: ignore[index]
        column = _column(data, name)
        out[name] = column if perm is None else column[perm]
    per_batch = max(1, min(max_batch_size, INT32_MAX) // dtype.itemsize)
    raw = out.data.cast("B")
    width = dtype.itemsize
    for cid, start, end in zip(group_cids, starts, ends, strict=True):
        for i in range(start, end, per_batch):
            j = min(i + per_batch, end)
            # one copy of the records into the batch (not a slice copy, then a concatenation)
            yield b"".join((BATCH_HEADER.pack(cid, (j - i) * width), raw[i * width : j * width]))


def _grouped(
    cids: np.ndarray, skip_invalid: bool
) -> tuple[np.ndarray | None, list[int], list[int], list[int]]:
    """Records grouped by cid in order of first occurrence: the permutation, and per group
    its cid, start and end in the permuted order (``None``: nothing to send)."""
    uniq, first, inverse = np.unique(cids, return_index=True, return_inverse=True)
    group_order = np.argsort(first, kind="stable")  # groups by first occurrence
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[group_order] = np.arange(len(uniq))
    ordered_groups = uniq[group_order]
    bad = ordered_groups < 0
    if bool(bad.any()):
        keep_groups = ~bad if skip_invalid else np.arange(len(ordered_groups)) < int(np.argmax(bad))
        keep = keep_groups[rank[inverse]]
        idx = np.flatnonzero(keep)
        perm = idx[np.argsort(rank[inverse][idx], kind="stable")]
    else:
        perm = np.argsort(rank[inverse], kind="stable")
    if len(perm) == 0:
        return None, [], [], []
    sorted_cids = cids[perm]
    bounds = np.flatnonzero(np.diff(sorted_cids)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(perm)]
    return perm, [int(sorted_cids[s]) for s in starts], starts, ends
