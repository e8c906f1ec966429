"""Client role: encoding PUT/PUTA batches, from a columnar block or from record objects."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from ..errors import LocalProtocolError
from ..record import INT32_MAX, Record
from .wire import (
    BATCH_HEADER,
    MAX_PAYLOAD_BYTES,
    PUT_KEY_BYTES,
    PUT_RECORD_HEAD,
    PUTA_KEY_BYTES,
    PUTA_RECORD_HEAD,
    _np,
)

if TYPE_CHECKING:
    from ..block import RecordBlock

T = TypeVar("T")


def encode_put_block(
    block: RecordBlock, with_acq: bool, max_batch_size: int = INT32_MAX
) -> Iterator[bytes]:
    """PUT/PUTA batches for a block (client side, columnar), grouped by cid in order of
    first occurrence; each yielded bytes object is one batch with its 8-byte header.

    Raises:
        LocalProtocolError: A cid is negative or a payload is over 32 MiB.
    """
    np = _np()
    from ..block import copy_ranges, scatter_items

    k = len(block)
    if k == 0:
        return
    key_bytes = PUTA_KEY_BYTES if with_acq else PUT_KEY_BYTES
    cids = block.keys["cid"]
    if bool((cids < 0).any()):
        raise LocalProtocolError("negative cid in a PUT block")
    lengths = block.lengths
    if bool((lengths > MAX_PAYLOAD_BYTES).any()):
        raise LocalProtocolError("payload over 32 MiB")
    max_batch_size = min(max_batch_size, INT32_MAX)
    uniq, first, inverse = np.unique(cids, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    order = np.argsort(rank[inverse], kind="stable")
    block = block.take(order)
    cids = block.keys["cid"]
    lengths = block.lengths
    rec = lengths + (4 + key_bytes)
    head_dt = np.dtype(
        [("n", "<i4"), ("mid", "<i8"), ("moid", "<i4"), ("cap", "<i8")]
        + ([("acq", "<i8")] if with_acq else [])
    )
    head = np.empty(k, dtype=head_dt)
    head["n"] = lengths + key_bytes
    for name in ("mid", "moid", "cap") + (("acq",) if with_acq else ()):
        head[name] = block.keys[name]
    starts = np.zeros(k, dtype=np.int64)
    np.cumsum(rec[:-1], out=starts[1:])
    total = int(starts[-1] + rec[-1])
    out = np.empty(total, dtype=np.uint8)
    scatter_items(out, starts, head)
    src = np.frombuffer(block.payload, dtype=np.uint8)
    copy_ranges(out, starts + (4 + key_bytes), src, block.offsets[:-1], lengths)
    body = out.tobytes()
    ends = (starts + rec).tolist()
    starts_l = starts.tolist()
    cids_l = cids.tolist()
    i = 0
    while i < k:
        cid = cids_l[i]
        j = i + 1
        begin = starts_l[i]
        while j < k and cids_l[j] == cid and ends[j] - begin <= max_batch_size:
            j += 1
        yield BATCH_HEADER.pack(cid, ends[j - 1] - begin) + body[begin : ends[j - 1]]
        i = j


def encode_put_batches(
    records: Iterable[Record[T]],
    with_acq: bool,
    to_bytes: Callable[[T], bytes],
    max_batch_size: int = INT32_MAX,
    skip_invalid: bool = False,
) -> Iterator[bytes]:
    """PUT/PUTA batches for ``records``; each yielded bytes object is one batch (8-byte
    batch header + records). The request header and the end guard are not included.

    Records are grouped by cid (groups in order of first occurrence, records in input
    order). A batch's record bytes stay within ``max_batch_size`` unless a single record
    is larger, which then forms a batch of its own.

    Invalid records (cid < 0) never produce a batch header (the official client writes
    their negative cid, which servers read as the end guard): with ``skip_invalid`` they
    are dropped; otherwise encoding stops before the first group of invalid records, so
    the server stores the groups before it.

    Raises:
        LocalProtocolError: A key component is out of range or a payload is over 32 MiB.
    """
    key_bytes = PUTA_KEY_BYTES if with_acq else PUT_KEY_BYTES
    max_batch_size = min(max_batch_size, INT32_MAX)
    groups: dict[int, list[Record[T]]] = {}
    for record in records:
        cid = record.key.cid
        group = groups.get(cid)
        if group is None:
            groups[cid] = [record]
        else:
            group.append(record)
    pack_head = PUTA_RECORD_HEAD.pack if with_acq else PUT_RECORD_HEAD.pack
    pack_batch = BATCH_HEADER.pack
    for cid, group in groups.items():
        if cid < 0:
            if skip_invalid:
                continue
            return
        parts: list[bytes] = []
        size = 0
        for record in group:
            key = record.key
            payload = to_bytes(record.value)
            n = key_bytes + len(payload)
            if n - key_bytes > MAX_PAYLOAD_BYTES:
                raise LocalProtocolError(f"payload of {n - key_bytes} bytes is over 32 MiB")
            try:
                head = (
                    pack_head(n, key.mid, key.moid, key.cap, key.acq)
                    if with_acq
                    else pack_head(n, key.mid, key.moid, key.cap)
                )
            except struct.error as exc:
                raise LocalProtocolError(f"key out of range: {key}: {exc}") from exc
            if size and size + 4 + n > max_batch_size:
                yield pack_batch(cid, size) + b"".join(parts)
                parts.clear()
                size = 0
            parts.append(head)
            parts.append(payload)
            size += 4 + n
        if cid > INT32_MAX:
            raise LocalProtocolError(f"cid {cid} out of range")
        yield pack_batch(cid, size) + b"".join(parts)
