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
    uniq, first, inverse = np.unique(cids, return_index=True, return_inverse=True)
    group_order = np.argsort(first, kind="stable")  # groups by first occurrence
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[group_order] = np.arange(len(uniq))
    ordered_groups = uniq[group_order]
    bad = ordered_groups < 0
    if bool(bad.any()):
        keep_groups = ~bad if skip_invalid else np.arange(len(ordered_groups)) < int(np.argmax(bad))
        keep = keep_groups[rank[inverse]]
        ordered_groups = ordered_groups[keep_groups]
        idx = np.flatnonzero(keep)
        perm = idx[np.argsort(rank[inverse][idx], kind="stable")]
    else:
        perm = np.argsort(rank[inverse], kind="stable")
    if len(perm) == 0:
        return
    out = np.empty(len(perm), dtype=dtype)
    out["_size"] = dtype.itemsize - 4
    for name in dtype.names[1:]:  # type: ignore[index]
        out[name] = _column(data, name)[perm]
    sorted_cids = cids[perm]
    bounds = np.flatnonzero(np.diff(sorted_cids)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(perm)]
    per_batch = max(1, min(max_batch_size, INT32_MAX) // dtype.itemsize)
    raw = out.view(np.uint8).reshape(len(perm), dtype.itemsize)
    for start, end in zip(starts, ends, strict=True):
        cid = int(sorted_cids[start])
        for i in range(start, end, per_batch):
            j = min(i + per_batch, end)
            yield BATCH_HEADER.pack(cid, (j - i) * dtype.itemsize) + raw[i:j].tobytes()
