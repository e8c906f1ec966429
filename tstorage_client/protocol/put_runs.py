"""Server role: runs of small PUT/PUTA batches decoded into one block.

Runs of small batches (the C++, C and Java clients may start a new batch at every cid
change, so a PUT can be 100 000 one-record batches). Decoding each batch into its own
block would cost a dozen numpy calls per record; instead a pure-Python walk follows
record and batch headers through everything buffered and one vectorised gather builds a
single block spanning many batches (the block's keys carry each record's cid). Runs of
identically shaped one-record batches (what those clients send for fixed-size payloads)
are recognised and read through one strided numpy view, skipping the walk.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RemoteProtocolError
from .put_decode import _block_of_rows, _put_record_dtype, _wire_key_dtype
from .wire import (
    BATCH_HEADER_AND_SIZE,
    INT32,
    MAX_PAYLOAD_BYTES,
    PUT_END_GUARD,
    PUT_KEY_BYTES,
    PUT_RECORD_HEAD,
    PUTA_KEY_BYTES,
    PUTA_RECORD_HEAD,
    _np,
)

if TYPE_CHECKING:
    import numpy as np

    from ..block import RecordBlock


#: Most records in one block built from a run of small batches.
RUN_MAX_RECORDS = 65536
#: Most wire bytes scanned for one such block (a larger single record is still taken whole).
RUN_WINDOW_BYTES = 4 * 2**20
_MIN_RUN_WINDOW = 64 * 2**10
#: A batch whose remaining bytes hold this many records of its next record's size goes
#: through :func:`decode_put_records` (zero-copy when sizes repeat) instead of the walk.
LARGE_BATCH_RECORDS = 64
#: Fewest identical one-record batches (same size, a record filling each) decoded as one
#: strided view instead of walked header by header.
FIXED_RUN_MIN = 32


class RunStop(enum.Enum):
    """Why :func:`walk_put_run` stopped."""

    NEED_DATA = "need-data"  # the next header or record is not complete in ``raw``
    GUARD = "guard"  # the next 4 bytes are the -1 end guard (not consumed)
    LARGE_BATCH = "large-batch"  # at a record of a large batch (see LARGE_BATCH_RECORDS)
    LIMIT = "limit"  # RUN_MAX_RECORDS records collected
    ERROR = "error"  # framing error at the stop position (see ``PutRun.error``)


@dataclass(slots=True)
class PutRun:
    """Result of :func:`walk_put_run`.

    Attributes:
        block: The complete records walked (None when there are none).
        consumed: Bytes of ``raw`` used (records and batch headers).
        cid: cid of the batch the decoder is in after ``consumed`` bytes.
        batch_left: Bytes of that batch still to decode (0: at a batch header).
        stop: Why the walk stopped.
        need: With ``NEED_DATA``: bytes needed from the stop position before walking on.
        error: With ``ERROR``: the framing error found at the stop position.
    """

    block: RecordBlock | None
    consumed: int
    cid: int
    batch_left: int
    stop: RunStop
    need: int = 0
    error: RemoteProtocolError | None = None


def walk_put_run(
    raw: bytes, cid: int, with_acq: bool, batch_left: int, max_records: int = RUN_MAX_RECORDS
) -> PutRun:
    """Decode consecutive small PUT/PUTA batches at the start of ``raw`` into one block.

    ``raw`` starts at a batch header (``batch_left == 0``) or at a record of batch ``cid``
    with ``batch_left`` bytes left. The walk follows record and batch headers until the
    data ends, the end guard, a large batch, ``max_records`` records or a framing error;
    the framing checks are those of the stream decoder, applied at the same bytes.

    A framing error is not raised but returned in :attr:`PutRun.error`, together with
    the records before it, so that the caller can deliver them first.

    Args:
        raw: Buffered stream bytes.
        cid: cid of the current batch (any value at a batch header).
        with_acq: PUTA records (28-byte keys) instead of PUT (20-byte keys).
        batch_left: Bytes of the current batch not yet decoded; 0 at a batch header.
        max_records: Most records to collect.

    Returns:
        The records walked and where the walk stopped.
    """
    key_bytes = PUTA_KEY_BYTES if with_acq else PUT_KEY_BYTES
    lo, hi = key_bytes, key_bytes + MAX_PAYLOAD_BYTES
    unpack = INT32.unpack_from
    avail = len(raw)
    starts: list[int] = []
    sizes: list[int] = []
    add_start = starts.append
    add_size = sizes.append
    run_cids = [cid]  # cid of each run of records, and where in ``starts`` it begins
    run_first = [0]
    pos = 0
    fresh = True  # at the first record seen of the current batch
    need = 0
    error: RemoteProtocolError | None = None
    stop = RunStop.LIMIT
    count = 0
    parts: list[RecordBlock] = []  # blocks of identical one-record batches, and walked records
    prev_size = -1  # size of the previous batch
    check_from = 0  # no identical-batch scan before this offset (the last one failed there)
    while count < max_records:
        if batch_left == 0:
            # Batch header; with the next record's size in the same unpack when buffered.
            if pos + 12 <= avail:
                c, size, n = BATCH_HEADER_AND_SIZE.unpack_from(raw, pos)
            elif pos + 4 <= avail:
                c = unpack(raw, pos)[0]
                size = n = -1  # not buffered yet (a real -1 is re-read below and rejected)
            else:
                stop, need = RunStop.NEED_DATA, 4
                break
            if c < 0:
                if c == PUT_END_GUARD:
                    stop = RunStop.GUARD
                else:
                    stop = RunStop.ERROR
                    error = RemoteProtocolError(f"negative batch cid {c} (only -1 ends a stream)")
                break
            if size == -1:
                if pos + 8 > avail:
                    stop, need = RunStop.NEED_DATA, 8
                    break
                size = unpack(raw, pos + 4)[0]
            if size < 0:
                stop, error = RunStop.ERROR, RemoteProtocolError(f"negative batch size {size}")
                break
            if size == prev_size and size == 4 + n and lo <= n <= hi and pos >= check_from:
                # The same one-record batch shape twice: scan for a run of them at once.
                period = 8 + size
                k = min((avail - pos) // period, max_records - count)
                same = (
                    _identical_batches(raw, pos, k, size, with_acq) if k >= FIXED_RUN_MIN else None
                )
                if same is not None:
                    if starts:
                        parts.append(
                            _gather_put_records(raw, starts, sizes, run_cids, run_first, with_acq)
                        )
                        starts.clear()
                        sizes.clear()
                    parts.append(same)
                    count += len(same)
                    pos += len(same) * period
                    cid = int(same.keys["cid"][-1])
                    run_cids = [cid]
                    run_first = [0]
                    continue
                check_from = pos + FIXED_RUN_MIN * period
            prev_size = size
            pos += 8
            if size == 0:
                continue
            batch_left = size
            fresh = True
            if c != cid:
                cid = c
                run_cids.append(c)
                run_first.append(len(starts))
            if n == -1 or size < 4:
                continue
        else:
            if batch_left < 4:
                stop = RunStop.ERROR
                error = RemoteProtocolError(
                    f"{batch_left} bytes left in a batch cannot hold a record"
                )
                break
            if pos + 4 > avail:
                stop, need = RunStop.NEED_DATA, 4
                break
            n = unpack(raw, pos)[0]
        # Record: size field ``n`` at ``pos``.
        if n < lo or n > hi:
            stop = RunStop.ERROR
            error = RemoteProtocolError(f"record size {n} outside [{lo}, {hi}]")
            break
        rec = 4 + n
        if rec > batch_left:
            stop = RunStop.ERROR
            error = RemoteProtocolError(
                f"record of {rec} bytes overruns its batch ({batch_left} left)"
            )
            break
        if fresh:
            if batch_left >= LARGE_BATCH_RECORDS * rec:
                stop = RunStop.LARGE_BATCH
                break
            fresh = False
        if pos + rec > avail:
            stop, need = RunStop.NEED_DATA, rec
            break
        add_start(pos)
        add_size(n)
        count += 1
        pos += rec
        batch_left -= rec
    if starts:
        parts.append(_gather_put_records(raw, starts, sizes, run_cids, run_first, with_acq))
    block: RecordBlock | None = None
    if len(parts) == 1:
        block = parts[0]
    elif parts:
        from ..block import RecordBlock

        block = RecordBlock.concat(parts)
    return PutRun(block, pos, cid, batch_left, stop, need, error)


@functools.lru_cache(maxsize=64)
def _one_record_batch_dtype(with_acq: bool, payload_size: int) -> np.dtype[Any]:
    """A whole one-record batch: batch header, then the record."""
    fields: list[tuple[str, str]] = [("cid", "<i4"), ("batch_bytes", "<i4"), ("n", "<i4")]
    fields += [("mid", "<i8"), ("moid", "<i4"), ("cap", "<i8")]
    if with_acq:
        fields.append(("acq", "<i8"))
    fields.append(("p", f"V{payload_size}"))
    return _np().dtype(fields)


def _identical_batches(
    raw: bytes, pos: int, k: int, size: int, with_acq: bool
) -> RecordBlock | None:
    """The run of one-record batches of ``size`` bytes at ``pos`` (at most ``k``), as one
    block, when it has at least FIXED_RUN_MIN of them; else None.

    Only batches with a cid >= 0, the same size and a record filling the batch belong to the
    run, so whatever ends it (the end guard, a bad header, another shape) is left to the
    walk, which reports it at its byte.
    """
    np = _np()
    from ..block import KEY_DTYPE, RecordBlock

    period = 8 + size
    cids = np.ndarray((k,), dtype="<i4", buffer=raw, offset=pos, strides=(period,))
    sizes = np.ndarray((k,), dtype="<i4", buffer=raw, offset=pos + 4, strides=(period,))
    ns = np.ndarray((k,), dtype="<i4", buffer=raw, offset=pos + 8, strides=(period,))
    good = (cids >= 0) & (sizes == size) & (ns == size - 4)
    m = k if bool(good.all()) else int(np.argmin(good))
    if m < FIXED_RUN_MIN:
        return None
    key_bytes = PUTA_KEY_BYTES if with_acq else PUT_KEY_BYTES
    psize = size - 4 - key_bytes
    arr = np.ndarray((m,), dtype=_one_record_batch_dtype(with_acq, psize), buffer=raw, offset=pos)
    keys = np.empty(m, dtype=KEY_DTYPE)
    keys["cid"] = arr["cid"]
    keys["mid"] = arr["mid"]
    keys["moid"] = arr["moid"]
    keys["cap"] = arr["cap"]
    keys["acq"] = arr["acq"] if with_acq else -1
    payload = arr["p"].tobytes() if psize else b""
    return RecordBlock(keys, np.arange(m + 1, dtype=np.int64) * psize, payload)


def _gather_put_records(
    raw: bytes,
    starts: list[int],
    sizes: list[int],
    run_cids: list[int],
    run_first: list[int],
    with_acq: bool,
) -> RecordBlock:
    """One block from records at ``starts`` (offsets of their size fields) in ``raw``."""
    from .. import block

    if len(starts) <= block.FEW_RECORDS:
        return _gather_few_put_records(raw, starts, sizes, run_cids, run_first, with_acq)
    np = _np()
    from ..block import KEY_DTYPE, RecordBlock, copy_ranges, gather_items

    key_bytes = PUTA_KEY_BYTES if with_acq else PUT_KEY_BYTES
    k = len(starts)
    st = np.array(starts, dtype=np.int64)
    keys = np.empty(k, dtype=KEY_DTYPE)
    if len(run_cids) == 1:
        keys["cid"] = run_cids[0]
    else:
        counts = np.diff(np.array([*run_first, k], dtype=np.int64))
        keys["cid"] = np.repeat(np.array(run_cids, dtype=np.int32), counts)
    n0 = sizes[0]
    if sizes.count(n0) == k:
        # One payload size: each record is one row of a structured view.
        arr = gather_items(raw, st, _put_record_dtype(with_acq, n0 - key_bytes))
        return _block_of_rows(arr, keys, with_acq, n0 - key_bytes)
    raw_keys = gather_items(raw, st + 4, _wire_key_dtype(with_acq))
    keys["mid"] = raw_keys["mid"]
    keys["moid"] = raw_keys["moid"]
    keys["cap"] = raw_keys["cap"]
    keys["acq"] = raw_keys["acq"] if with_acq else -1
    lengths = np.array(sizes, dtype=np.int64) - key_bytes
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    copy_ranges(
        out, offsets[:-1], np.frombuffer(raw, dtype=np.uint8), st + (4 + key_bytes), lengths
    )
    return RecordBlock(keys, offsets, out.tobytes())


def _gather_few_put_records(
    raw: bytes,
    starts: list[int],
    sizes: list[int],
    run_cids: list[int],
    run_first: list[int],
    with_acq: bool,
) -> RecordBlock:
    """:func:`_gather_put_records` for at most ``block.FEW_RECORDS`` records.

    Each record is unpacked with ``struct`` and its payload sliced out: for a handful of
    records this costs a few microseconds, where the vectorised gathers cost tens (their
    fixed cost per call dominates). The block is the same, column for column.
    """
    from ..block import RecordBlock

    key_bytes = PUTA_KEY_BYTES if with_acq else PUT_KEY_BYTES
    unpack = (PUTA_RECORD_HEAD if with_acq else PUT_RECORD_HEAD).unpack_from
    k = len(starts)
    cids: list[int] = []
    for c, first, end in zip(run_cids, run_first, [*run_first[1:], k], strict=True):
        cids += [c] * (end - first)
    rows = []
    payloads = []
    for cid, start, n in zip(cids, starts, sizes, strict=True):
        head = unpack(raw, start)
        rows.append((cid, head[1], head[2], head[3], head[4] if with_acq else -1))
        payloads.append(raw[start + 4 + key_bytes : start + 4 + n])
    return RecordBlock.from_records(rows, payloads)
