"""Request semantics of a TStorage server: request events in, Store calls, response events out.

No sockets and no event loop here: :mod:`tstorage_server.server` moves the bytes and calls
these functions (the blocking ones from a worker thread). The rules are those of the
protocol specification §4: validation (§4.3, §4.5), watermark (§4.4), dropping records with
a maximal key component (§4.8), PUT/PUTA results (§3.6).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from tstorage_client import block as client_block
from tstorage_client.block import RecordBlock
from tstorage_client.events import (
    AcqResult,
    GetAcqRequest,
    GetEnd,
    GetRecords,
    GetRequest,
    PutResult,
)
from tstorage_client.record import INT32_MAX, INT64_MAX, Key
from tstorage_server.store import PutResult as StoredResult
from tstorage_server.store import Snapshot, Store
from tstorage_server.store.blocks import KeyTuple

ERROR_STATUS = -1
#: payload bytes of one piece of a GET answer (a larger record is a piece by itself)
GET_PIECE_BYTES = 1 << 20
_MAX_BY_FIELD = {
    "cid": INT32_MAX,
    "mid": INT64_MAX,
    "moid": INT32_MAX,
    "cap": INT64_MAX,
    "acq": INT64_MAX,
}
_MAX_KEY = tuple(_MAX_BY_FIELD.values())


class RequestRejected(Exception):
    """The request is valid on the wire but not acceptable (answered with an error)."""


def as_tuple(key: Key) -> KeyTuple:
    """A key as a plain 5-tuple."""
    return (key.cid, key.mid, key.moid, key.cap, key.acq)


def check_get(request: GetRequest) -> None:
    """Reject a GET whose box is invalid or empty (§4.3; the watermark rule is separate).

    Raises:
        RequestRejected: a negative cid or an empty range in some component.
    """
    kmin, kmax = request.key_min, request.key_max
    if kmin.cid < 0 or kmax.cid < 0:
        raise RequestRejected("negative cid in the key range")
    for name, lo, hi in zip(_MAX_BY_FIELD, as_tuple(kmin), as_tuple(kmax), strict=True):
        if lo >= hi:
            raise RequestRejected(f"empty range in {name}: {lo} >= {hi}")


def check_not_future(key_min: Key, watermark: int) -> None:
    """Reject ``key_min.acq > W`` ("from the future", §4.3/§4.5).

    Raises:
        RequestRejected: the range starts after the watermark.
    """
    if key_min.acq > watermark:
        raise RequestRejected(f"key_min.acq {key_min.acq} is after the watermark {watermark}")


def get_acq(store: Store, request: GetAcqRequest) -> AcqResult:
    """GET_ACQ: ``min(key_max.acq, W)``; an empty box is allowed (§4.5).

    Raises:
        RequestRejected: negative cid, or key_min.acq after W.
    """
    if request.key_min.cid < 0 or request.key_max.cid < 0:
        raise RequestRejected("negative cid in the key range")
    watermark = store.watermark()
    check_not_future(request.key_min, watermark)
    return AcqResult(acq=min(request.key_max.acq, watermark))


def open_get(store: Store, request: GetRequest) -> Snapshot:
    """Validate a GET and take the snapshot it reads from (caller closes it).

    Raises:
        RequestRejected: see :func:`check_get` and :func:`check_not_future`.
    """
    check_get(request)
    snapshot = store.snapshot()
    try:
        check_not_future(request.key_min, snapshot.watermark)
    except RequestRejected:
        snapshot.close()
        raise
    return snapshot


def get_records(snapshot: Snapshot, request: GetRequest) -> Iterator[GetRecords]:
    """The records of a validated GET, in ascending key order, in bounded pieces.

    The store cuts the result into pieces of bounded records and bytes; each is encoded
    as it is (the core encodes mixed payload lengths in O(bytes)). A piece is about what
    a GET holds beyond the socket's buffer while its client reads, so pieces are small.
    """
    pieces = snapshot.query(
        as_tuple(request.key_min), as_tuple(request.key_max), piece_bytes=GET_PIECE_BYTES
    )
    for block in pieces:
        yield GetRecords(block)


def get_end(snapshot: Snapshot, request: GetRequest) -> GetEnd:
    """The trailer of a GET: ``min(key_max.acq, W)`` with the snapshot's W."""
    return GetEnd(acq=min(request.key_max.acq, snapshot.watermark))


def storable(block: RecordBlock, with_acq: bool) -> RecordBlock:
    """``block`` without records that have a maximal key component (§4.8: such records
    can never be read back; they are dropped and the request still succeeds)."""
    keys = block.keys
    if len(keys) <= client_block.FEW_RECORDS:
        # A handful of keys: Python compares them faster than numpy sets up its masks.
        # Each limit is its column type's maximum: a column reaches it iff its max does.
        limits = _MAX_KEY if with_acq else _MAX_KEY[:4]
        columns = zip(*keys.tolist(), strict=True)
        if all(max(c) != m for c, m in zip(columns, limits, strict=False)):
            return block
    fields = list(_MAX_BY_FIELD) if with_acq else list(_MAX_BY_FIELD)[:4]
    drop = np.zeros(len(keys), dtype=bool)
    for name in fields:
        drop |= keys[name] == _MAX_BY_FIELD[name]
    if not drop.any():
        return block
    return block.take(np.flatnonzero(~drop))


def put(store: Store, blocks: Sequence[RecordBlock], with_acq: bool) -> PutResult:
    """PUT/PUTA: store every storable record of the request, all or nothing, durably.

    Returns:
        PUT: the acq range assigned (both W when nothing was stored); PUTA: (-1, -1).
    """
    kept = [storable(b, with_acq) for b in blocks]
    return _put_result(store, store.put_blocks(kept, assign_acq=not with_acq), with_acq)


def try_put(store: Store, blocks: Sequence[RecordBlock], with_acq: bool) -> PutResult | None:
    """:func:`put` if the store can commit without waiting (``Store.try_put_blocks``: no
    fsync per commit, the commit lock free, no other PUT queued), else None: nothing was
    stored, and the caller calls :func:`put` where it may wait."""
    kept = [storable(b, with_acq) for b in blocks]
    stored = store.try_put_blocks(kept, assign_acq=not with_acq)
    return None if stored is None else _put_result(store, stored, with_acq)


def _put_result(store: Store, result: StoredResult, with_acq: bool) -> PutResult:
    if with_acq:
        return PutResult(-1, -1)
    if result.count == 0:
        w = store.watermark()
        return PutResult(w, w)
    return PutResult(result.acq_min, result.acq_max)
