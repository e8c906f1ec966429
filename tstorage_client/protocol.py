"""The sans-IO TStorage protocol core, for both roles (client and server).

No sockets, no asyncio, no threads, no clocks: bytes in, events out; events in, bytes out.
:class:`~tstorage_client.channel.Channel`, :class:`~tstorage_client.channel_async.AsyncChannel`
and the TStorage server all drive this module.

Byte layout (little-endian, packed; see the protocol specification)::

    request header    int32 cmd, uint64 size                  12 B   cmd 1 GET, 5 PUT, 6 PUTA, 7 GET_ACQ
    response header   int32 status, uint64 size               12 B   status 0 = OK
    key               int32 cid, int64 mid, int32 moid,
                      int64 cap, int64 acq                    32 B
    GET / GET_ACQ     (cmd, 64) key_min key_max               76 B
    PUT / PUTA        (cmd, 0) {int32 cid>=0, int32 batch_bytes, records} int32 -1
      PUT record      int32 n=20+len(p), int64 mid, int32 moid, int64 cap, p
      PUTA record     int32 n=28+len(p), int64 mid, int32 moid, int64 cap, int64 acq, p
    GET response      (0, 0) {int32 n=32+len(p), key, p} int32 0 (0, 8) int64 acq
    GET_ACQ response  (0, 8) int64 acq                        20 B
    PUT response      (0, 16) int64 acq_min int64 acq_max      28 B
    errors            GET: (0,0) int32 0 (-1,0) + 8 zero bytes; GET_ACQ: (-1,0) + 8 zero
                      bytes; PUT/PUTA and unknown commands: (-1,0)

Server role (columnar, numpy imported lazily)::

    from tstorage_client import events as ev
    from tstorage_client.errors import RemoteProtocolError
    from tstorage_client.protocol import ServerConnection, NEED_DATA

    conn = ServerConnection(max_buffer_size=64 * 2**20)
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError:
            sock.sendall(conn.send_error())      # right error shape for the request
            break                                # ...then close the connection
        if event is NEED_DATA:
            conn.receive_data(sock.recv(262144))  # b"" = EOF
        elif isinstance(event, ev.EndOfStream):
            break
        elif isinstance(event, ev.GetRequest):
            sock.sendall(conn.send(ev.GetStart()))
            for block in store.select(event.key_min, event.key_max):   # RecordBlock
                sock.sendall(conn.send(ev.GetRecords(block)))
            sock.sendall(conn.send(ev.GetEnd(acq=min(event.key_max.acq, watermark))))
        elif isinstance(event, ev.GetAcqRequest):
            sock.sendall(conn.send(ev.AcqResult(acq=...)))
        elif isinstance(event, ev.PutRequest):
            pending = []                         # event.with_acq: PUTA
        elif isinstance(event, ev.PutBatch):
            pending.append(event.block)          # may span several wire batches
        elif isinstance(event, ev.PutEnd):
            store.commit(RecordBlock.concat(pending))
            sock.sendall(conn.send(ev.PutResult(acq_min, acq_max)))

Client role::

    conn = ClientConnection(ObjectRecordDecoder(payload_type))
    sock.sendall(conn.send(ev.GetRequest(kmin, kmax)))
    # feed conn.receive_data(...) until next_event() gives GetStart, RecordsBatch..., GetEnd
    # or, copying each byte once (fixed-size numpy records land in the result arrays):
    #     conn.received(sock.recv_into(conn.receive_buffer()))

PUT streams are encoded by :func:`encode_put_batches` (objects) or :func:`encode_put_block`
(columnar), framed by ``conn.send(PutRequest(...))`` and ``conn.send(PutEnd())``.

Errors: :class:`~tstorage_client.errors.RemoteProtocolError` from ``next_event`` (the peer
broke the protocol; after it every further call raises again),
:class:`~tstorage_client.errors.LocalProtocolError` from ``send``/encoders (we were asked
to send something the protocol cannot carry).
"""

from __future__ import annotations

import copy
import enum
import functools
import gc
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._buffer import ReceiveBuffer
from .errors import LocalProtocolError, MemoryLimitExceeded, RemoteProtocolError, UnparseableRecord
from .events import (
    NEED_DATA,
    AcqResult,
    EndOfStream,
    ErrorResponse,
    Event,
    GetAcqRequest,
    GetEnd,
    GetRecords,
    GetRequest,
    GetStart,
    NeedData,
    PutBatch,
    PutEnd,
    PutRequest,
    PutResult,
    RecordsBatch,
)
from .record import INT32_MAX, Key, Record, make_record

if TYPE_CHECKING:
    import numpy as np

    from .block import RecordBlock
    from .payload_type import PayloadType

__all__ = [
    "CMD_GET",
    "CMD_GET_ACQ",
    "CMD_PUT",
    "CMD_PUTA",
    "DEFAULT_MAX_BUFFER_SIZE",
    "MAX_PAYLOAD_BYTES",
    "NEED_DATA",
    "ClientConnection",
    "NumpyRecordDecoder",
    "ObjectRecordDecoder",
    "PutRun",
    "RecordDecoder",
    "RunStop",
    "ServerConnection",
    "decode_put_records",
    "encode_get_records",
    "encode_put_batches",
    "encode_put_block",
    "walk_put_run",
]

T = TypeVar("T")

CMD_GET = 1
CMD_PUT = 5
CMD_PUTA = 6
CMD_GET_ACQ = 7

HEADER = struct.Struct("<iQ")
INT32 = struct.Struct("<i")
INT64 = struct.Struct("<q")
ACQ_PAIR = struct.Struct("<qq")
BATCH_HEADER = struct.Struct("<ii")
BATCH_HEADER_AND_SIZE = struct.Struct("<iii")  # cid, batch_bytes, first record's n
KEY = struct.Struct("<iqiqq")
SIZE_AND_KEY = struct.Struct("<iiqiqq")
PUT_RECORD_HEAD = struct.Struct("<iqiq")  # n, mid, moid, cap
PUTA_RECORD_HEAD = struct.Struct("<iqiqq")  # n, mid, moid, cap, acq

HEADER_BYTES = HEADER.size  # 12
KEY_BYTES = KEY.size  # 32
KEY_RANGE_BYTES = 2 * KEY_BYTES  # 64
PUT_KEY_BYTES = 20
PUTA_KEY_BYTES = 28
#: Largest payload any TStorage accepts (32 MiB, inclusive).
MAX_PAYLOAD_BYTES = 32 * 2**20
#: Default receive-buffer limit: one maximal record plus slack.
DEFAULT_MAX_BUFFER_SIZE = MAX_PAYLOAD_BYTES + 2**20
PUT_END_GUARD = -1
#: Largest ``size`` a client accepts in a response header (real servers send 0, 8 or 16).
MAX_RESPONSE_HEADER_EXTRA = 2**20
#: Client receive sizes start here and double while the peer keeps filling them...
RECV_BYTES_MIN = 64 * 2**10
#: ...up to this size (also the largest region of GET records received in place).
RECV_BYTES_MAX = 4 * 2**20

_TERMINATOR = INT32.pack(0)
_GUARD = INT32.pack(PUT_END_GUARD)
_ZERO8 = bytes(8)


def key_range_bytes(cmd: int, key_min: Key, key_max: Key) -> bytes:
    """``(cmd, 64) + key_min + key_max`` (76 bytes).

    Raises:
        LocalProtocolError: A key component is outside its integer range.
    """
    try:
        return (
            HEADER.pack(cmd, KEY_RANGE_BYTES)
            + KEY.pack(key_min.cid, key_min.mid, key_min.moid, key_min.cap, key_min.acq)
            + KEY.pack(key_max.cid, key_max.mid, key_max.moid, key_max.cap, key_max.acq)
        )
    except struct.error as exc:
        raise LocalProtocolError(f"key out of range: {exc}") from exc


# ======================================================================================
# Columnar helpers (numpy, imported lazily)
# ======================================================================================


def _np() -> Any:
    import numpy

    return numpy


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
    from .block import KEY_DTYPE, RecordBlock, copy_ranges, gather_items

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


# Runs of small batches (the C++, C and Java clients may start a new batch at every cid
# change, so a PUT can be 100 000 one-record batches). Decoding each batch into its own
# block would cost a dozen numpy calls per record; instead a pure-Python walk follows
# record and batch headers through everything buffered and one vectorised gather builds a
# single block spanning many batches (the block's keys carry each record's cid). Runs of
# identically shaped one-record batches (what those clients send for fixed-size payloads)
# are recognised and read through one strided numpy view, skipping the walk.

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
        from .block import RecordBlock

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
    from .block import KEY_DTYPE, RecordBlock

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


def _block_of_rows(arr: Any, keys: Any, with_acq: bool, psize: int) -> RecordBlock:
    """A block from PUT records of one payload size viewed as rows of a structured array
    (``keys`` has its cids set already)."""
    np = _np()
    from .block import RecordBlock

    keys["mid"] = arr["mid"]
    keys["moid"] = arr["moid"]
    keys["cap"] = arr["cap"]
    keys["acq"] = arr["acq"] if with_acq else -1
    payload = arr["p"].tobytes() if psize else b""
    return RecordBlock(keys, np.arange(len(keys) + 1, dtype=np.int64) * psize, payload)


def _gather_put_records(
    raw: bytes,
    starts: list[int],
    sizes: list[int],
    run_cids: list[int],
    run_first: list[int],
    with_acq: bool,
) -> RecordBlock:
    """One block from records at ``starts`` (offsets of their size fields) in ``raw``."""
    from . import block

    if len(starts) <= block.FEW_RECORDS:
        return _gather_few_put_records(raw, starts, sizes, run_cids, run_first, with_acq)
    np = _np()
    from .block import KEY_DTYPE, RecordBlock, copy_ranges, gather_items

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
    from .block import RecordBlock

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


def encode_get_records(block: RecordBlock) -> bytes:
    """GET response records ``{int32 32+len(p), key, p}`` for every record of ``block``.

    Equal payload lengths: one structured array. Mixed lengths: the 36-byte record heads
    are scattered at their computed offsets and the payloads copied by
    :func:`~tstorage_client.block.copy_ranges`, so the cost is O(bytes + records)
    whatever the mix of lengths.
    """
    np = _np()
    from .block import KEY_DTYPE, copy_ranges, scatter_items

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


def encode_put_block(
    block: RecordBlock, with_acq: bool, max_batch_size: int = INT32_MAX
) -> Iterator[bytes]:
    """PUT/PUTA batches for a block (client side, columnar), grouped by cid in order of
    first occurrence; each yielded bytes object is one batch with its 8-byte header.

    Raises:
        LocalProtocolError: A cid is negative or a payload is over 32 MiB.
    """
    np = _np()
    from .block import copy_ranges, scatter_items

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


# ======================================================================================
# Client role: encoding PUT streams from objects
# ======================================================================================


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


# ======================================================================================
# Client role: decoding GET records
# ======================================================================================


class RecordDecoder(Generic[T]):
    """Turns complete GET records at the start of a byte string into result items."""

    def decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        """Decode complete records.

        Args:
            raw: Buffered bytes, starting at a record size field.
            max_record_bytes: Largest ``4 + n`` allowed for a record (memory limit) or None.

        Returns:
            ``(items, consumed, need, finished)``: decoded items, bytes used, bytes needed
            from the start of ``raw`` before decoding more (0 when not known), and whether
            the terminator was consumed.

        Raises:
            UnparseableRecord: The next record cannot be decoded (items before it are
                returned first; the error comes on the following call).
            MemoryLimitExceeded: The next record is larger than ``max_record_bytes``.
        """
        raise NotImplementedError

    #: Bytes of every wire record when all have one fixed size (records can then be
    #: received in place, see :meth:`ClientConnection.receive_buffer`), else None.
    record_bytes: int | None = None

    def count_valid(self, region: Any, start: int, count: int) -> int:
        """How many of ``count`` complete records at ``region[start:]`` decode as they are.

        Only for decoders with :attr:`record_bytes`.
        """
        raise NotImplementedError

    def view(self, region: Any) -> Any:
        """The records filling ``region`` (validated by :meth:`count_valid`), not copied."""
        raise NotImplementedError


class ObjectRecordDecoder(RecordDecoder[T]):
    """Decodes GET records into :class:`~tstorage_client.record.Record` objects.

    Args:
        payload_type: Decodes each payload; ``from_bytes`` returning None makes the record
            unparseable.
    """

    def __init__(self, payload_type: PayloadType[T]) -> None:
        self.payload_type = payload_type
        self._run: struct.Struct | None = None
        self._run_values = 1
        # Fixed-size struct payloads: one struct unpacks size, key and value of a whole
        # run of records (``iter_unpack``), skipping a call and a slice per record.
        from .payload_type import StructPayloadType, TuplePayloadType

        kind = type(payload_type)
        if kind is StructPayloadType or kind is TuplePayloadType:
            fmt = payload_type.format  # type: ignore[attr-defined]
            if fmt.startswith("<") and struct.Struct(fmt).unpack(bytes(struct.calcsize(fmt))):
                self._run = struct.Struct("<iiqiqq" + fmt[1:])
                self._run_values = 0 if kind is TuplePayloadType else 1

    def decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        # Millions of new objects would trigger the cyclic GC over and over (each pass
        # scanning the growing result); records hold no cycles, so pause it meanwhile.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return self._decode(raw, max_record_bytes)
        finally:
            if paused:
                gc.enable()

    def _decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        from_bytes = self.payload_type.from_bytes
        unpack = SIZE_AND_KEY.unpack_from
        unpack_size = INT32.unpack_from
        mv = memoryview(raw)
        avail = len(raw)
        out: list[Any] = []
        append = out.append
        off = 0
        run = self._run
        if run is not None:
            rec = run.size
            expected = rec - 4
            single = self._run_values == 1
        while off + 4 <= avail:
            if run is not None and (k := (avail - off) // rec):
                done = 0
                for row in run.iter_unpack(mv[off : off + k * rec]):
                    if row[0] != expected or row[1] < 0:
                        break
                    append(
                        make_record(
                            row[1], row[2], row[3], row[4], row[5], row[6] if single else row[6:]
                        )
                    )
                    done += 1
                off += done * rec
                if done == k:
                    continue
            if off + 36 <= avail:
                n, cid, mid, moid, cap, acq = unpack(raw, off)
            else:
                n = unpack_size(raw, off)[0]
                cid = 0
            if n == 0:
                return out, off + 4, 0, True
            end = off + 4 + n
            if end > avail:
                if max_record_bytes is not None and 4 + n > max_record_bytes:
                    if out:
                        return out, off, 0, False
                    raise MemoryLimitExceeded(f"record of {4 + n} bytes exceeds the memory limit")
                return out, off, end, False
            if n < KEY_BYTES or cid < 0:
                if out:
                    return out, off, 0, False
                if n < KEY_BYTES:
                    raise UnparseableRecord(f"record size {n} is smaller than a key")
                raise UnparseableRecord(f"record key has negative cid {cid}")
            value = from_bytes(mv[off + 36 : end])  # type: ignore[arg-type]
            if value is None:
                if out:
                    return out, off, 0, False
                raise UnparseableRecord("payload type could not decode a record payload")
            append(make_record(cid, mid, moid, cap, acq, value))
            off = end
        return out, off, off + 4, False


class NumpyRecordDecoder(RecordDecoder[Any]):
    """Decodes GET records of one fixed payload size into structured numpy arrays.

    Args:
        parsing_dtype: Packed dtype ``_size, cid, mid, moid, cap, acq, payload fields``,
            whose itemsize is exactly one wire record. Every record's size field must be
            ``itemsize - 4``, else the record is unparseable (never silently misread).
    """

    def __init__(self, parsing_dtype: np.dtype[Any]) -> None:
        self.dtype = parsing_dtype
        self.itemsize = parsing_dtype.itemsize
        self.record_bytes = parsing_dtype.itemsize

    def count_valid(self, region: Any, start: int, count: int) -> int:
        """Leading records of ``count`` at ``region[start:]`` with the right size and cid >= 0."""
        np = _np()
        item = self.itemsize
        sizes = np.ndarray((count,), "<i4", region, start, (item,))
        cids = np.ndarray((count,), "<i4", region, start + 4, (item,))
        good = (sizes == item - 4) & (cids >= 0)
        return count if bool(good.all()) else int(np.argmin(good))

    def view(self, region: Any) -> Any:
        """``region`` (whole records) as an array of the parsing dtype, sharing its memory."""
        return region.view(self.dtype)

    def decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        np = _np()
        item = self.itemsize
        expected = item - 4
        avail = len(raw)
        count = avail // item
        out: list[Any] = []
        consumed = 0
        if count:
            sizes = np.ndarray((count,), dtype="<i4", buffer=raw, offset=0, strides=(item,))
            cids = np.ndarray((count,), dtype="<i4", buffer=raw, offset=4, strides=(item,))
            good = (sizes == expected) & (cids >= 0)
            ok = count if bool(good.all()) else int(np.argmin(good))
            if ok:
                out.append(np.frombuffer(raw, dtype=self.dtype, count=ok).copy())
                consumed = ok * item
        if avail - consumed < 4:
            return out, consumed, consumed + 4, False
        n = INT32.unpack_from(raw, consumed)[0]
        if n == 0:
            return out, consumed + 4, 0, True
        if n != expected:
            if out:
                return out, consumed, 0, False
            raise UnparseableRecord(f"record size {n} differs from the dtype's {expected}")
        if avail - consumed >= item:  # complete but bad cid
            if out:
                return out, consumed, 0, False
            raise UnparseableRecord("record key has a negative cid")
        if max_record_bytes is not None and item > max_record_bytes:
            raise MemoryLimitExceeded(f"record of {item} bytes exceeds the memory limit")
        return out, consumed, consumed + item, False


# ======================================================================================
# Connections
# ======================================================================================


class _State(enum.Enum):
    IDLE = "idle"
    KEYS = "keys"  # server: after a GET/GET_ACQ header
    PUT_SKIP = "put-skip"  # server: skipping a PUT header's aux bytes
    BATCH_HEADER = "batch-header"
    BATCH_BODY = "batch-body"
    PUT_GUARD = "put-guard"  # server: the buffer starts with the PUT's end guard
    GET_HEADER = "get-header"  # client: waiting for the initial GET header
    GET_RECORDS = "get-records"
    GET_TRAILER = "get-trailer"
    ACQ = "acq"  # client: waiting for a GET_ACQ result
    PUT_RESULT = "put-result"  # client: waiting for a PUT result
    ERROR = "error"
    CLOSED = "closed"


class _Connection:
    def __init__(self, max_buffer_size: int | None) -> None:
        self._buf = ReceiveBuffer(max_buffer_size)
        self._eof = False
        self._state = _State.IDLE
        self._error: RemoteProtocolError | None = None
        self._need = 0  # bytes that must be buffered before decoding is worth trying

    @property
    def state(self) -> str:
        """Name of the decoder state (for diagnostics)."""
        return self._state.value

    @property
    def buffered(self) -> int:
        """Bytes received but not decoded yet."""
        return len(self._buf)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Hand received bytes to the decoder; ``b""`` means the peer closed (EOF).

        Problems (the buffer limit is exceeded) are reported by the next ``next_event``
        call, as :class:`~tstorage_client.errors.RemoteProtocolError`.
        """
        if not data:
            self._eof = True
            return
        if self._error is not None:
            return
        try:
            if self._eof:
                raise RemoteProtocolError("data received after EOF")
            self._buf.feed(data)
        except RemoteProtocolError as exc:
            self._fail(exc)

    def _fail(self, exc: RemoteProtocolError) -> RemoteProtocolError:
        self._state = _State.ERROR
        # Kept without a traceback, and raised again as copies: a traceback holds frames
        # that hold this connection, a cycle that would keep its buffers until the
        # garbage collector runs.
        self._error = copy.copy(exc)
        return exc

    def _stored_error(self) -> RemoteProtocolError:
        assert self._error is not None
        return copy.copy(self._error)

    def _header(self) -> tuple[int, int] | None:
        raw = self._buf.consume_exactly(HEADER_BYTES)
        if raw is None:
            return None
        return HEADER.unpack(raw)


class ServerConnection(_Connection):
    """Server side of one TStorage connection: decodes requests, encodes responses.

    Args:
        max_buffer_size: Most bytes buffered without a complete record/header; more
            raises :class:`~tstorage_client.errors.RemoteProtocolError`. Must exceed the
            largest record (32 MiB + 32 bytes).
    """

    def __init__(self, max_buffer_size: int | None = DEFAULT_MAX_BUFFER_SIZE) -> None:
        super().__init__(max_buffer_size)
        self._skip = 0
        self._cmd = 0
        self._with_acq = False
        self._cid = 0
        self._batch_left = 0
        self._large = False  # the current batch goes through decode_put_records
        self._window = _MIN_RUN_WINDOW  # bytes scanned per walk over small batches
        self._deferred: RemoteProtocolError | None = None  # raised after the records before it
        self._request: type[Event] | None = None  # kind of the request being served
        self._get_started = False

    def next_event(self) -> Event | NeedData:
        """The next request event, or :data:`NEED_DATA`.

        Raises:
            RemoteProtocolError: The client broke the protocol (raised again on every
                later call); answer with :meth:`send_error` and close.
        """
        if self._error is not None:
            raise self._stored_error()
        try:
            event = self._next()
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        if event is NEED_DATA and self._eof:
            if self._state is _State.IDLE and not self._buf:
                self._state = _State.CLOSED
                return EndOfStream()
            if self._state is _State.CLOSED:
                return EndOfStream()
            raise self._fail(RemoteProtocolError("connection closed in the middle of a request"))
        return event

    def _next(self) -> Event | NeedData:
        buf = self._buf
        while True:
            state = self._state
            if state is _State.BATCH_BODY and self._large:
                if len(buf) < self._need:
                    return NEED_DATA
                body = buf.peek(self._batch_left)
                block, used, need = decode_put_records(
                    body, self._cid, self._with_acq, self._batch_left
                )
                if block is None:
                    self._need = need
                    return NEED_DATA
                self._need = 0
                buf.skip(used)
                buf.commit()
                self._batch_left -= used
                if self._batch_left == 0:
                    self._state = _State.BATCH_HEADER
                    self._large = False
                return PutBatch(block)
            if state is _State.PUT_GUARD:
                if self._deferred is not None:
                    raise self._take_deferred()
                return self._end_put()
            if state is _State.BATCH_BODY or state is _State.BATCH_HEADER:
                if self._deferred is not None:
                    raise self._take_deferred()
                if len(buf) < self._need:
                    return NEED_DATA
                buffered = len(buf)
                raw = buf.peek(max(self._window, self._need))
                run = walk_put_run(raw, self._cid, self._with_acq, self._batch_left)
                buf.skip(run.consumed)
                buf.commit()
                self._cid = run.cid
                self._batch_left = run.batch_left
                self._state = _State.BATCH_BODY if run.batch_left else _State.BATCH_HEADER
                self._need = 0
                stop = run.stop
                if stop is RunStop.NEED_DATA:
                    self._need = run.need
                    if len(raw) < buffered:  # the window ended before the buffer: widen it
                        self._window = min(2 * self._window, RUN_WINDOW_BYTES)
                elif stop is RunStop.LARGE_BATCH:
                    self._large = True
                    self._window = _MIN_RUN_WINDOW
                if run.error is not None:
                    if run.block is None:
                        raise run.error
                    self._deferred = run.error  # records before the error come first
                if run.block is not None:
                    # A small PUT ends right after its records: no second walk to find that.
                    if stop is RunStop.GUARD:
                        self._state = _State.PUT_GUARD
                    return PutBatch(run.block)
                if stop is RunStop.GUARD:
                    return self._end_put()
                continue
            if state is _State.IDLE:
                header = self._header()
                if header is None:
                    return NEED_DATA
                buf.commit()
                cmd, size = header
                self._cmd = cmd
                if cmd in (CMD_GET, CMD_GET_ACQ):
                    self._request = GetRequest if cmd == CMD_GET else GetAcqRequest
                    if size < KEY_RANGE_BYTES:
                        raise RemoteProtocolError(f"GET/GET_ACQ header size {size} < 64")
                    self._skip = size - KEY_RANGE_BYTES
                    self._state = _State.KEYS
                    continue
                if cmd in (CMD_PUT, CMD_PUTA):
                    self._request = PutRequest
                    self._with_acq = cmd == CMD_PUTA
                    self._skip = size
                    self._state = _State.PUT_SKIP
                    return PutRequest(self._with_acq)
                self._request = None
                raise RemoteProtocolError(f"unknown command {cmd}")
            if state is _State.KEYS or state is _State.PUT_SKIP:
                if self._skip:
                    self._skip -= buf.skip(self._skip)
                    buf.commit()
                    if self._skip:
                        return NEED_DATA
                if state is _State.PUT_SKIP:
                    self._state = _State.BATCH_HEADER
                    continue
                keys_raw = buf.consume_exactly(KEY_RANGE_BYTES)
                if keys_raw is None:
                    return NEED_DATA
                buf.commit()
                kmin = Key(*KEY.unpack_from(keys_raw, 0))
                kmax = Key(*KEY.unpack_from(keys_raw, KEY_BYTES))
                self._state = _State.IDLE
                self._get_started = False
                if self._cmd == CMD_GET:
                    return GetRequest(kmin, kmax)
                return GetAcqRequest(kmin, kmax)
            if state is _State.CLOSED:
                return NEED_DATA
            raise RemoteProtocolError(f"unexpected decoder state {state}")  # pragma: no cover

    def _take_deferred(self) -> RemoteProtocolError:
        error, self._deferred = self._deferred, None
        assert error is not None
        return error

    def _end_put(self) -> PutEnd:
        """Consume the end guard the buffer starts with; the PUT/PUTA request is complete."""
        self._buf.skip(4)
        self._buf.commit()
        self._state = _State.IDLE
        self._request = None
        self._window = _MIN_RUN_WINDOW
        return PutEnd()

    def send(self, event: Event) -> bytes:
        """Bytes of one response event.

        Raises:
            LocalProtocolError: ``event`` is not a response event, or a value is out of range.
        """
        try:
            if isinstance(event, GetRecords):
                return encode_get_records(event.block)
            if isinstance(event, GetStart):
                self._get_started = True
                return HEADER.pack(event.status, 0)
            if isinstance(event, GetEnd):
                self._get_started = False
                self._request = None  # answered whole: an error now belongs to the next one
                if event.status == 0:
                    return _TERMINATOR + HEADER.pack(0, 8) + INT64.pack(event.acq)
                return _TERMINATOR + HEADER.pack(event.status, 0) + _ZERO8
            if isinstance(event, AcqResult):
                self._request = None
                if event.status == 0:
                    return HEADER.pack(0, 8) + INT64.pack(event.acq)
                return HEADER.pack(event.status, 0) + _ZERO8
            if isinstance(event, PutResult):
                if event.status == 0:
                    return HEADER.pack(0, 16) + ACQ_PAIR.pack(event.acq_min, event.acq_max)
                return HEADER.pack(event.status, 0)
            if isinstance(event, ErrorResponse):
                return HEADER.pack(event.status, 0)
        except struct.error as exc:
            raise LocalProtocolError(f"cannot encode {event!r}: {exc}") from exc
        raise LocalProtocolError(f"a server cannot send {type(event).__name__}")

    def send_error(self, status: int = -1) -> bytes:
        """The recommended error response for the request being served (then close).

        GET: ``(0,0)`` (unless already sent), terminator, ``(status,0)`` + 8 zero bytes;
        GET_ACQ: ``(status,0)`` + 8 zero bytes; PUT/PUTA and anything else: ``(status,0)``.
        """
        if self._request is GetRequest:
            start = b"" if self._get_started else HEADER.pack(0, 0)
            self._get_started = False
            return start + self.send(GetEnd(status=status))
        if self._request is GetAcqRequest:
            return self.send(AcqResult(status=status))
        return HEADER.pack(status, 0)


class ClientConnection(_Connection):
    """Client side of one TStorage connection: encodes requests, decodes responses.

    Args:
        decoder: How GET records become items (objects or numpy arrays).
        max_buffer_size: Most bytes buffered without a complete record/header.
    """

    def __init__(
        self, decoder: RecordDecoder[Any] | None = None, max_buffer_size: int | None = None
    ) -> None:
        super().__init__(max_buffer_size)
        self.decoder = decoder
        #: Largest ``4 + n`` a GET record may have (the memory limit), or None.
        self.max_record_bytes: int | None = None
        #: Size of the next :meth:`receive_buffer` (grows while the peer fills it).
        self.recv_size = RECV_BYTES_MIN
        self._with_acq = False
        # Fixed-size GET records are received in place, into a numpy uint8 region whose
        # whole records become the result arrays (no copy after the socket's). The region
        # holds records from its start; _checked bytes of them are validated.
        self._region: Any = None
        self._filled = 0
        self._checked = 0
        self._region_size = RECV_BYTES_MIN
        self._scratch = bytearray()
        self._lent = 0  # size of the memory lent by the last receive_buffer (0: none)
        self._lent_region = False

    def send(self, event: Event) -> bytes:
        """Bytes of a request event and expect its response.

        ``PutBatch`` events are encoded with :func:`encode_put_block`; object records use
        :func:`encode_put_batches` directly between ``PutRequest`` and ``PutEnd``.

        Raises:
            LocalProtocolError: A key is out of range or the event is not a request.
        """
        if isinstance(event, GetRequest):
            self._expect(_State.GET_HEADER)
            return key_range_bytes(CMD_GET, event.key_min, event.key_max)
        if isinstance(event, GetAcqRequest):
            self._expect(_State.ACQ)
            return key_range_bytes(CMD_GET_ACQ, event.key_min, event.key_max)
        if isinstance(event, PutRequest):
            self._with_acq = event.with_acq
            self._expect(_State.PUT_RESULT)
            return HEADER.pack(CMD_PUTA if event.with_acq else CMD_PUT, 0)
        if isinstance(event, PutBatch):
            return b"".join(encode_put_block(event.block, self._with_acq))
        if isinstance(event, PutEnd):
            return _GUARD
        raise LocalProtocolError(f"a client cannot send {type(event).__name__}")

    def receive_buffer(self, max_bytes: int | None = None) -> memoryview:
        """Writable memory for the next received bytes (at most ``max_bytes``).

        Write received bytes to the start of the returned view, then call
        :meth:`received` with their count. While fixed-size GET records arrive (numpy
        decoders), the memory is the one the result arrays will use, so each byte is copied
        once, from the socket; otherwise received bytes are buffered as by
        :meth:`receive_data`. Call :meth:`next_event` until it gives
        :data:`NEED_DATA` before asking for more memory.

        Raises:
            LocalProtocolError: the previous memory was not handed back with
                :meth:`received`, or events are still waiting.
        """
        if self._lent:
            raise LocalProtocolError("received() was not called for the last receive_buffer()")
        if max_bytes is not None and max_bytes < 1:
            raise LocalProtocolError(f"cannot receive {max_bytes} bytes")
        if self._region is None and self._in_place():
            self._open_region(max_bytes)
        region = self._region
        if region is not None:
            free = len(region) - self._filled
            if free == 0:
                raise LocalProtocolError("next_event() must run until NEED_DATA first")
            n = free if max_bytes is None else min(free, max_bytes)
            self._lent, self._lent_region = n, True
            return memoryview(region)[self._filled : self._filled + n]
        n = self.recv_size if max_bytes is None else min(self.recv_size, max_bytes)
        if len(self._scratch) < n:
            self._scratch = bytearray(n)
        self._lent, self._lent_region = n, False
        return memoryview(self._scratch)[:n]

    def received(self, count: int) -> None:
        """``count`` bytes were written into the memory of :meth:`receive_buffer`; 0 = EOF.

        Raises:
            LocalProtocolError: more bytes than the memory held, or no memory was lent.
        """
        lent, self._lent = self._lent, 0
        if not lent or not 0 <= count <= lent:
            raise LocalProtocolError(f"received({count}) after lending {lent} bytes")
        if count == 0:
            self.receive_data(b"")
        elif self._lent_region:
            self._filled += count
        else:
            if count == lent and self.recv_size < RECV_BYTES_MAX:
                self.recv_size *= 2
            with memoryview(self._scratch) as view:
                self.receive_data(view[:count])

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Hand received bytes to the decoder; ``b""`` means the peer closed (EOF)."""
        region = self._region
        if region is None or not data:
            super().receive_data(data)
            return
        # records are being received in place: these bytes follow them there
        np = _np()
        end = self._filled + len(data)
        if end > len(region):
            grown = np.empty(end, dtype=np.uint8)
            grown[: self._filled] = region[: self._filled]
            region = self._region = grown
        region[self._filled : end] = np.frombuffer(data, dtype=np.uint8)
        self._filled = end

    def _in_place(self) -> bool:
        dec = self.decoder
        size = None if dec is None else dec.record_bytes
        return (
            size is not None
            and self._state is _State.GET_RECORDS
            and self._error is None
            and not self._eof
            and (self.max_record_bytes is None or size <= self.max_record_bytes)
            and len(self._buf) < size  # only part of one record is buffered
        )

    def _open_region(self, max_bytes: int | None) -> None:
        np = _np()
        buf = self._buf
        head = buf.consume_at_most(len(buf))
        buf.commit()
        want = self._region_size if max_bytes is None else min(self._region_size, max_bytes)
        # Regions grow per response, so a small GET does not pin megabytes.
        self._region_size = min(2 * self._region_size, RECV_BYTES_MAX)
        region = np.empty(len(head) + want, dtype=np.uint8)
        region[: len(head)] = np.frombuffer(head, dtype=np.uint8)
        self._region, self._filled, self._checked, self._need = region, len(head), 0, 0

    def _next_in_region(self) -> Event | NeedData | None:
        # Validate the records received since the last call; hand the region out as one
        # array once it is full, or when something other than a record of the expected
        # size follows (terminator, another size, a bad cid, EOF): those bytes go back to
        # the buffer, for the decoder to handle (it reports errors after the records).
        region, decoder = self._region, self.decoder
        assert decoder is not None and decoder.record_bytes is not None
        item = decoder.record_bytes
        filled, checked = self._filled, self._checked
        count = (filled - checked) // item
        stop = self._eof
        if count:
            ok = decoder.count_valid(region, checked, count)
            checked = self._checked = checked + ok * item
            stop = stop or ok < count
        if not stop and filled - checked >= 4:
            stop = INT32.unpack_from(region, checked)[0] != item - 4
        if not stop and filled < len(region):
            return NEED_DATA
        self._region = None
        if filled > checked:
            self._buf.feed(region[checked:filled].tobytes())
        if not checked:
            return None
        records = region[:checked]
        if 2 * checked < len(region):  # mostly empty: do not pin the whole region
            records = records.copy()
        return RecordsBatch([decoder.view(records)])

    def _expect(self, state: _State) -> None:
        self._state = state
        self._error = None
        self._need = 0
        self._region = None
        self._lent = 0
        self._buf.commit()
        self._buf.skip(len(self._buf))  # stale bytes of an earlier response
        self._buf.commit()

    def next_event(self) -> Event | NeedData:
        """The next response event, or :data:`NEED_DATA`.

        Raises:
            RemoteProtocolError: The server broke the protocol.
            UnparseableRecord: A GET record cannot be decoded.
            MemoryLimitExceeded: A GET record is larger than ``max_record_bytes``.
        """
        if self._error is not None:
            raise self._stored_error()
        try:
            return self._next()
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None

    def _next(self) -> Event | NeedData:
        buf = self._buf
        state = self._state
        if state is _State.GET_RECORDS:
            if self._region is not None:
                event = self._next_in_region()
                if event is not None:
                    return event
            if len(buf) < self._need:
                return NEED_DATA
            assert self.decoder is not None
            raw = buf.peek_all()
            items, used, need, finished = self.decoder.decode(raw, self.max_record_bytes)
            buf.skip(used)
            buf.commit()
            self._need = need - used if need else 0
            if finished:
                self._state = _State.GET_TRAILER
            if items:
                return RecordsBatch(items)
            if not finished:
                return NEED_DATA
            state = self._state
        if state in (_State.GET_HEADER, _State.GET_TRAILER, _State.ACQ, _State.PUT_RESULT):
            header = self._header()
            if header is None:
                return NEED_DATA
            status, size = header
            if size > MAX_RESPONSE_HEADER_EXTRA:
                raise RemoteProtocolError(f"response header size {size} is implausible")
            body = buf.consume_exactly(size) if size else b""
            if body is None:
                buf.rollback()
                return NEED_DATA
            buf.commit()
            if state is _State.GET_HEADER:
                if status == 0:
                    self._state = _State.GET_RECORDS
                else:
                    self._state = _State.IDLE
                return GetStart(status)
            self._state = _State.IDLE
            if state is _State.GET_TRAILER:
                if status:
                    return GetEnd(-1, status)
                if size < 8:
                    raise RemoteProtocolError(f"GET trailer size {size} < 8")
                return GetEnd(INT64.unpack_from(body)[0], 0)
            if state is _State.ACQ:
                if status:
                    return AcqResult(-1, status)
                if size < 8:
                    raise RemoteProtocolError(f"GET_ACQ result size {size} < 8")
                return AcqResult(INT64.unpack_from(body)[0], 0)
            if status:
                return PutResult(-1, -1, status)
            if size < 16:
                raise RemoteProtocolError(f"PUT result size {size} < 16")
            acq_min, acq_max = ACQ_PAIR.unpack_from(body)
            return PutResult(acq_min, acq_max, 0)
        if state is _State.IDLE:
            return NEED_DATA
        raise RemoteProtocolError(f"unexpected decoder state {state}")  # pragma: no cover
