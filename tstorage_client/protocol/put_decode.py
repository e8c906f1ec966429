"""Server role: decoding the records of one PUT/PUTA batch into a columnar block."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ..errors import RemoteProtocolError
from .wire import INT32, MAX_PAYLOAD_BYTES, PUT_KEY_BYTES, PUTA_KEY_BYTES, _np

if TYPE_CHECKING:
    import numpy as np

    from ..block import RecordBlock


@functools.lru_cache(maxsize=256)
def _put_record_dtype(with_acq: bool, payload_size: int) -> np.dtype[Any]:
    """One whole PUT/PUTA wire record (size field, key, payload) with a fixed payload size."""
    fields: list[tuple[str, str]] = [("n", "<i4"), ("mid", "<i8"), ("moid", "<i4"), ("cap", "<i8")]
    if with_acq:
        fields.append(("acq", "<i8"))
    fields.append(("p", f"V{payload_size}"))
    return _np().dtype(fields)


@functools.lru_cache(maxsize=2)
def _wire_key_dtype(with_acq: bool) -> np.dtype[Any]:
    """The key of a PUT (20 bytes) or PUTA (28 bytes) wire record."""
    fields: list[tuple[str, str]] = [("mid", "<i8"), ("moid", "<i4"), ("cap", "<i8")]
    if with_acq:
        fields.append(("acq", "<i8"))
    return _np().dtype(fields)


def _check_put_size(n: int, key_bytes: int) -> None:
    if n < key_bytes or n > key_bytes + MAX_PAYLOAD_BYTES:
        raise RemoteProtocolError(
            f"record size {n} outside [{key_bytes}, {key_bytes + MAX_PAYLOAD_BYTES}]"
        )


def decode_put_records(
    raw: bytes, cid: int, with_acq: bool, batch_left: int
) -> tuple[RecordBlock | None, int, int]:
    """Decode the complete PUT/PUTA records at the start of ``raw`` into one block.

    Args:
        raw: Buffered bytes of the current batch (at most ``batch_left`` of them).
        cid: The batch's cid.
        with_acq: PUTA records (28-byte keys) instead of PUT (20-byte keys).
        batch_left: Bytes of the batch not yet decoded (``len(raw) <= batch_left``).

    Returns:
        ``(block, consumed, need)``: the decoded records (None when no record is complete),
        the bytes they used, and when nothing is complete the number of bytes (from the
        start of ``raw``) needed before calling again.

    Raises:
        RemoteProtocolError: A size field is out of range or a record overruns its batch.
    """
    np = _np()
    from ..block import KEY_DTYPE, RecordBlock, copy_ranges, gather_items

    key_bytes = PUTA_KEY_BYTES if with_acq else PUT_KEY_BYTES
    avail = len(raw)
    if batch_left < 4:
        raise RemoteProtocolError(f"{batch_left} bytes left in a batch cannot hold a record")
    if avail < 4:
        return None, 0, 4
    n0 = INT32.unpack_from(raw, 0)[0]
    _check_put_size(n0, key_bytes)
    rec0 = 4 + n0
    if rec0 > batch_left:
        raise RemoteProtocolError(f"record of {rec0} bytes overruns its batch ({batch_left} left)")
    if rec0 > avail:
        return None, 0, rec0
    count = avail // rec0
    sizes = np.ndarray((count,), dtype="<i4", buffer=raw, offset=0, strides=(rec0,))
    same = sizes == n0
    fixed = count if bool(same.all()) else int(np.argmin(same))
    if fixed == count or fixed >= 16:
        # Fast path: every record has the same size: one structured view, zero parsing.
        arr = np.frombuffer(raw, dtype=_put_record_dtype(with_acq, n0 - key_bytes), count=fixed)
        keys = np.empty(fixed, dtype=KEY_DTYPE)
        keys["cid"] = cid
        return _block_of_rows(arr, keys, with_acq, n0 - key_bytes), fixed * rec0, 0
    # Variable sizes: walk the chain of size fields (inherently sequential), then gather.
    unpack = INT32.unpack_from
    starts: list[int] = []
    sizes_l: list[int] = []
    off = 0
    lo, hi = key_bytes, key_bytes + MAX_PAYLOAD_BYTES
    while off + 4 <= avail:
        n = unpack(raw, off)[0]
        if n < lo or n > hi:
            _check_put_size(n, key_bytes)
        if off + 4 + n > batch_left:
            raise RemoteProtocolError(
                f"record of {4 + n} bytes overruns its batch ({batch_left - off} left)"
            )
        if off + 4 + n > avail:
            break
        starts.append(off)
        sizes_l.append(n)
        off += 4 + n
    if batch_left - off in (1, 2, 3) and off + 4 > avail and avail == batch_left:
        raise RemoteProtocolError(f"{batch_left - off} bytes left in a batch cannot hold a record")
    k = len(starts)
    st = np.asarray(starts, dtype=np.int64)
    nn = np.asarray(sizes_l, dtype=np.int64)
    raw_keys = gather_items(raw, st + 4, _wire_key_dtype(with_acq))
    keys = np.empty(k, dtype=KEY_DTYPE)
    keys["cid"] = cid
    keys["mid"] = raw_keys["mid"]
    keys["moid"] = raw_keys["moid"]
    keys["cap"] = raw_keys["cap"]
    keys["acq"] = raw_keys["acq"] if with_acq else -1
    lengths = nn - key_bytes
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    copy_ranges(out, offsets[:-1], np.frombuffer(raw, dtype=np.uint8), st + 4 + key_bytes, lengths)
    return RecordBlock(keys, offsets, out.tobytes()), off, 0


def _block_of_rows(arr: Any, keys: Any, with_acq: bool, psize: int) -> RecordBlock:
    """A block from PUT records of one payload size viewed as rows of a structured array
    (``keys`` has its cids set already)."""
    np = _np()
    from ..block import RecordBlock

    keys["mid"] = arr["mid"]
    keys["moid"] = arr["moid"]
    keys["cap"] = arr["cap"]
    keys["acq"] = arr["acq"] if with_acq else -1
    payload = arr["p"].tobytes() if psize else b""
    return RecordBlock(keys, np.arange(len(keys) + 1, dtype=np.int64) * psize, payload)
