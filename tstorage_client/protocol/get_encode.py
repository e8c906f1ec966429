"""Server role: encoding GET response records from a columnar block."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .wire import KEY_BYTES, _np

if TYPE_CHECKING:
    from ..block import RecordBlock


def encode_get_records(block: RecordBlock) -> bytes:
    """GET response records ``{int32 32+len(p), key, p}`` for every record of ``block``.

    Equal payload lengths: one structured array. Mixed lengths: the 36-byte record heads
    are scattered at their computed offsets and the payloads copied by
    :func:`~tstorage_client.block.copy_ranges`, so the cost is O(bytes + records)
    whatever the mix of lengths.
    """
    np = _np()
    from ..block import KEY_DTYPE, copy_ranges, scatter_items

    k = len(block)
    if k == 0:
        return b""
    size = block.fixed_payload_size()
    if size is not None:
        out = np.empty(k, dtype=[("n", "<i4"), ("key", KEY_DTYPE), ("p", f"V{size}")])
        out["n"] = KEY_BYTES + size
        out["key"] = block.keys
        if size:
            out["p"] = np.frombuffer(block.payload, dtype=f"V{size}", count=k)
        return out.tobytes()
    lengths = block.lengths
    rec = lengths + (4 + KEY_BYTES)
    starts = np.zeros(k, dtype=np.int64)
    np.cumsum(rec[:-1], out=starts[1:])
    out_u8 = np.empty(int(starts[-1] + rec[-1]), dtype=np.uint8)
    head = np.empty(k, dtype=[("n", "<i4"), ("key", KEY_DTYPE)])
    head["n"] = lengths + KEY_BYTES
    head["key"] = block.keys
    scatter_items(out_u8, starts, head)
    src = np.frombuffer(block.payload, dtype=np.uint8)
    copy_ranges(out_u8, starts + (4 + KEY_BYTES), src, block.offsets[:-1], lengths)
    return out_u8.tobytes()
