"""The Store interface, and the block-based machinery every store shares.

Strategy
--------
Records are kept in immutable *blocks*, one per committed PUT/PUTA request (a request's
batches are merged). Each block is sorted by key when it is committed (stable, so equal keys
keep their arrival order) and its bounding box (min/max of each key component) plus its
first and last key go into an in-memory index of numpy arrays. A GET:

1. picks the candidate blocks whose box meets the query box (one vectorised test over all
   blocks),
2. binary-searches each candidate's sorted keys for the part between the box's smallest
   and largest possible key, and filters only that part with numpy masks (only in the
   key components the search and the block's bounds leave undecided), so a narrow GET
   into a huge block costs its result, not the block,
3. emits blocks whose key ranges do not overlap one after the other, and merges groups of
   overlapping ones a window at a time with a stable sort (ties in block order = insertion
   order),
4. in pieces of bounded size, so a huge result is streamed, not built at once.

Acquisition clock and watermark (protocol spec §4.4): acq values for PUT are reserved under
``_clock_lock``, the same lock under which a reader takes its snapshot and its watermark W.
While a PUT is being written its reserved range is "in flight" and W is capped at the
smallest in-flight acq, so every record that will ever be committed with a server-assigned
acq below W is already visible in a snapshot taken with W. Writers queue their blocks and
whichever writer holds ``_commit_lock`` commits everything queued in one transaction
(group commit: one fsync for many concurrent PUTs). A store whose commits do not fsync
also offers ``try_put_blocks``: a commit at once on the caller's thread when the commit
lock is free and no other PUT is queued, and none otherwise (the server commits small
PUTs so on its event loop, without the round trip to a worker thread).

Compaction: many small PUTs make many small blocks, and a GET pays per candidate block.
Once enough small blocks exist, a background thread merges runs of *consecutive* small
blocks (consecutive in commit order, so equal keys keep their arrival order) into one
sorted block that takes the id of the run's first block, replacing them in one
transaction; a run whose records fall under a few cids becomes a block per cid instead
(the ids of the run's first blocks), so that a merged block does not span the keys of
later blocks. Snapshots taken before keep reading the old blocks.
"""

from __future__ import annotations

import abc
import itertools
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from tstorage_client import block as client_block
from tstorage_client.block import RecordBlock
from tstorage_server.clock import AcqClock
from tstorage_server.store import blocks as B
from tstorage_server.store.blocks import KeyTuple

log = logging.getLogger("tstorage_server.store")

ACQ_NONE = -1
DEFAULT_PIECE_RECORDS = 65536
DEFAULT_PIECE_BYTES = 8 << 20
# Compaction: blocks below SMALL_BLOCK_RECORDS records and SMALL_BLOCK_BYTES of payload are
# merged (runs of consecutive ones, into blocks of at most COMPACT_MAX_RECORDS records and
# COMPACT_MAX_BYTES) once COMPACT_TRIGGER of them exist. The byte bounds keep a few records
# of large payloads (a client's 256 KB pages) from being copied again and again into
# blocks of hundreds of MB, which stalled GETs for seconds while they were merged.
SMALL_BLOCK_RECORDS = 4096
SMALL_BLOCK_BYTES = 1024 * 1024
COMPACT_MAX_RECORDS = 65536
COMPACT_MAX_BYTES = 8 * 1024 * 1024
COMPACT_TRIGGER = 32
# A block of at most this many records that overlaps no other is read together with its
# like neighbours (see BlockSnapshot._emit_lone).
LONE_BLOCK_RECORDS = 64


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a committed PUT/PUTA stored.

    Attributes:
        count: number of records stored.
        acq_min: smallest acq among them (-1 if none).
        acq_max: largest acq among them (-1 if none).
    """

    count: int
    acq_min: int = ACQ_NONE
    acq_max: int = ACQ_NONE


@dataclass(slots=True)
class BlockMeta:
    """Index entry of one stored block."""

    block_id: int
    count: int
    mins: np.ndarray  # int64[5]: per-component minimum
    maxs: np.ndarray  # int64[5]: per-component maximum
    first: KeyTuple
    last: KeyTuple
    uniform: int = -1  # payload length shared by all records, -1 if they differ
    #: payload bytes, -1 when not known (a block found on disk with payloads of many lengths)
    nbytes: int = -1

    @property
    def small(self) -> bool:
        """A block compaction merges with its like neighbours."""
        size = self.nbytes if self.nbytes >= 0 else self.count * max(self.uniform, 0)
        return self.count < SMALL_BLOCK_RECORDS and size < SMALL_BLOCK_BYTES


class Snapshot(abc.ABC):
    """A consistent read view of a store, with the watermark W taken with it.

    Use as a context manager; blocks yielded by :meth:`query` may point into storage that
    is only valid until the snapshot is closed, so consume them before that.
    """

    watermark: int

    @abc.abstractmethod
    def query(
        self,
        kmin: KeyTuple,
        kmax: KeyTuple,
        *,
        piece_records: int = DEFAULT_PIECE_RECORDS,
        piece_bytes: int = DEFAULT_PIECE_BYTES,
    ) -> Iterator[RecordBlock]:
        """Records with ``kmin.x <= x < kmax.x`` in every component, in ascending key order
        (equal keys in insertion order), as blocks of bounded size."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the view."""

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Store(abc.ABC):
    """The one interface the request dispatcher uses to keep and find records."""

    @abc.abstractmethod
    def put_blocks(self, blocks: Sequence[RecordBlock], *, assign_acq: bool) -> PutResult:
        """Store the records of one request, all or nothing, durably before returning.

        Args:
            blocks: the request's records. With ``assign_acq`` their acq column is ignored.
            assign_acq: PUT (True: the store assigns acq from its clock, one value per record
                in input order) or PUTA (False: acq is kept as given).

        Returns:
            How many records were stored and their acq range.
        """

    def try_put_blocks(
        self, blocks: Sequence[RecordBlock], *, assign_acq: bool
    ) -> PutResult | None:
        """:meth:`put_blocks` if it can finish without waiting (no fsync, no lock held by
        other work, no other PUT queued), else None with nothing stored: the caller then
        calls :meth:`put_blocks` where it may wait. This default never commits."""
        return None

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """A read view together with its watermark W (see module docstring)."""

    @abc.abstractmethod
    def watermark(self) -> int:
        """The current watermark W: every server-assigned acq below it is committed."""

    @abc.abstractmethod
    def max_acq(self) -> int:
        """The largest acq the clock has handed out (restored on restart)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources; later calls are errors."""


@dataclass(frozen=True, slots=True)
class StoredColumns:
    """The columns of one stored block as the store holds them (views, no copies).

    Attributes:
        keys: the sorted ``KEY_DTYPE`` keys of every record.
        payload: every payload back to back.
        offsets: ``len(keys) + 1`` payload positions, or None when every payload has the
            length ``uniform``.
        uniform: the common payload length (-1 when ``offsets`` is given).
    """

    keys: np.ndarray
    payload: bytes | bytearray | memoryview
    offsets: np.ndarray | None
    uniform: int = -1

    def block(self, start: int, stop: int) -> RecordBlock:
        """Records ``start`` to ``stop - 1`` as views; costs O(stop - start), not O(block)."""
        if self.offsets is None:
            size = self.uniform
            offsets = np.arange(stop - start + 1, dtype=np.int64) * size
            lo, hi = start * size, stop * size
        else:
            lo, hi = int(self.offsets[start]), int(self.offsets[stop])
            offsets = self.offsets[start : stop + 1]
            if lo:
                offsets = offsets - lo
        payload = self.payload
        if lo or hi != len(payload):
            payload = memoryview(payload)[lo:hi]
        return RecordBlock(self.keys[start:stop], offsets, payload)


class BlockReader(abc.ABC):
    """Reads stored blocks inside one read transaction of a concrete store."""

    @abc.abstractmethod
    def columns(self, meta: BlockMeta) -> StoredColumns:
        """The columns of the stored block described by ``meta``, without copying them."""

    def read(self, meta: BlockMeta) -> RecordBlock:
        """The whole stored block described by ``meta``."""
        return self.columns(meta).block(0, meta.count)

    def parts(self, meta: BlockMeta, corners: tuple[np.ndarray, np.ndarray]) -> list[RecordBlock]:
        """The records of the block described by ``meta`` between a box's ``corners`` (see
        :func:`blocks.box_corners`), in key order, as one or more consecutive sorted parts
        (views where the store allows, never the whole block copied); a store that can
        read a range of a block without the rest overrides this."""
        columns = self.columns(meta)
        start, stop = B.box_range(columns.keys, corners)
        return [columns.block(start, stop)] if stop > start else []

    def close(self) -> None:  # noqa: B027 - optional hook
        """End the read transaction."""


class _BlockIndex:
    """Append-only index of block bounds; readers see a prefix of it."""

    def __init__(self) -> None:
        self.mins = np.empty((16, 5), dtype=np.int64)
        self.maxs = np.empty((16, 5), dtype=np.int64)
        self.metas: list[BlockMeta] = []

    def __len__(self) -> int:
        return len(self.metas)

    @classmethod
    def from_metas(cls, metas: list[BlockMeta]) -> _BlockIndex:
        index = cls()
        size = max(16, len(metas) * 2)
        index.mins = np.empty((size, 5), dtype=np.int64)
        index.maxs = np.empty((size, 5), dtype=np.int64)
        for meta in metas:
            index.append(meta)
        return index

    def append(self, meta: BlockMeta) -> None:
        n = len(self.metas)
        if n == len(self.mins):
            # Grow into new arrays: snapshots keep references to the old ones.
            self.mins = np.concatenate([self.mins, np.empty_like(self.mins)])
            self.maxs = np.concatenate([self.maxs, np.empty_like(self.maxs)])
        self.mins[n] = meta.mins
        self.maxs[n] = meta.maxs
        self.metas.append(meta)


@dataclass(slots=True)
class _Pending:
    block: RecordBlock
    order: np.ndarray | None  # for PUT: input position of each sorted record
    assign_acq: bool
    done: bool = False
    result: PutResult | None = None
    error: BaseException | None = None
    meta: BlockMeta | None = field(default=None)


class BlockSnapshot(Snapshot):
    """Snapshot over a prefix of a :class:`BlockStore` index."""

    def __init__(
        self,
        reader: BlockReader,
        mins: np.ndarray,
        maxs: np.ndarray,
        metas: list[BlockMeta],
        watermark: int,
    ) -> None:
        self._reader = reader
        self._mins = mins
        self._maxs = maxs
        self._metas = metas
        self.watermark = watermark

    def close(self) -> None:
        self._reader.close()

    def query(
        self,
        kmin: KeyTuple,
        kmax: KeyTuple,
        *,
        piece_records: int = DEFAULT_PIECE_RECORDS,
        piece_bytes: int = DEFAULT_PIECE_BYTES,
    ) -> Iterator[RecordBlock]:
        n = len(self._metas)
        if n == 0:
            return
        lo = np.array(kmin, dtype=np.int64)
        hi = np.array(kmax, dtype=np.int64)
        hit = np.all(self._maxs[:n] >= lo, axis=1) & np.all(self._mins[:n] < hi, axis=1)
        candidates = [self._metas[i] for i in np.flatnonzero(hit).tolist()]
        # Stable sort by first key keeps insertion order among blocks that start alike.
        candidates.sort(key=lambda m: m.first)
        lone: list[BlockMeta] = []
        for group in _overlapping(candidates):
            if len(group) == 1 and group[0].count <= LONE_BLOCK_RECORDS:
                lone.append(group[0])
                continue
            if lone:
                yield from self._emit_lone(lone, kmin, kmax, piece_records, piece_bytes)
                lone = []
            yield from self._emit(group, kmin, kmax, piece_records, piece_bytes)
        if lone:
            yield from self._emit_lone(lone, kmin, kmax, piece_records, piece_bytes)

    def _emit_lone(
        self,
        metas: list[BlockMeta],
        kmin: KeyTuple,
        kmax: KeyTuple,
        piece_records: int,
        piece_bytes: int,
    ) -> Iterator[RecordBlock]:
        """The records in the box of consecutive small blocks that overlap no other block
        (so each follows the previous one in key order), read together: one box test and
        one piece per run of blocks, not a merge and a piece per block (many one-record
        PUTs make such runs)."""
        corners = B.box_corners(kmin, kmax)
        if corners is None:
            return
        parts: list[RecordBlock] = []
        records = nbytes = 0
        for meta in metas:
            for part in self._reader.parts(meta, corners):
                parts.append(part)
                records += len(part.keys)
                nbytes += int(part.offsets[-1])
            if records >= piece_records or nbytes >= piece_bytes:
                yield from _in_box(parts, kmin, kmax, piece_records, piece_bytes)
                parts = []
                records = nbytes = 0
        if parts:
            yield from _in_box(parts, kmin, kmax, piece_records, piece_bytes)

    def _emit(
        self,
        group: list[BlockMeta],
        kmin: KeyTuple,
        kmax: KeyTuple,
        piece_records: int,
        piece_bytes: int,
    ) -> Iterator[RecordBlock]:
        """Merge a group of blocks whose key ranges overlap, a window at a time.

        A block may come in several parts (its stored segments): they are consecutive in
        key order, so only a block's first part with records left takes part in a round,
        and a block alone in the group is copied out window by window with no key
        compared. Among several blocks, each round takes from every block the records up
        to a cut key K (the smallest of the blocks' window-end keys): no record left
        behind can sort before what is emitted, and at most about ``piece_records``
        records and ``piece_bytes`` payload bytes per block are held (more only when many
        records share the cut key, or one record is larger).
        Equal keys stay in insertion order: parts are concatenated in block order and the
        sort is stable.
        """
        corners = B.box_corners(kmin, kmax)
        if corners is None:
            return
        chains: list[list[_Cursor]] = []  # per block, its parts in key order
        for meta in sorted(group, key=lambda m: m.block_id):
            # Only the part of the block between the box's corners is ever looked at, so
            # a narrow GET into a huge block costs its result, not the block.
            parts = self._reader.parts(meta, corners)
            if parts:
                unsure = B.unsure_components(corners, meta.mins, meta.maxs, kmin, kmax)
                chains.append([_Cursor(part, unsure) for part in parts])
        # Records taken but not yet sent: a piece goes out once full, so pieces stay full
        # where records remain, and each record is copied into a piece once.
        pending: list[RecordBlock] = []
        held_r = held_b = 0
        while True:
            for chain in chains:
                while chain and chain[0].pos >= chain[0].count:
                    chain.pop(0)
            chains = [chain for chain in chains if chain]
            if not chains:
                if pending:
                    yield RecordBlock.concat(pending)
                return
            if len(chains) == 1:
                head = chains[0][0]
                # a window of what the piece still lacks fills it exactly; one the box
                # filters would shrink round by round, so it is taken whole and cut below
                room = (piece_records, piece_bytes)
                if not head.unsure:
                    room = (piece_records - held_r, piece_bytes - held_b)
                taken = head.take(head.window_end(*room), kmin, kmax)
            else:
                cut = min(
                    c[0].key_at(c[0].window_end(piece_records, piece_bytes) - 1) for c in chains
                )
                parts = []
                for chain in chains:
                    # All records equal to the cut go now, also past a block's window or
                    # into its next part, or a later round would put them after equal
                    # keys of younger blocks.
                    for cursor in chain:
                        end = cursor.upper(cut, cursor.count)
                        part = cursor.take(end, kmin, kmax)
                        if len(part.keys):
                            parts.append(part)
                        if end < cursor.count:
                            break
                taken = RecordBlock.concat(parts)
                if len(parts) > 1 and not B.is_sorted(taken.keys):
                    taken = taken.take(B.sort_order(taken.keys))
            if not len(taken.keys):
                continue
            pending.append(taken)
            held_r += len(taken.keys)
            held_b += int(taken.offsets[-1])
            if held_r < piece_records and held_b < piece_bytes:
                continue
            pieces = B.split(RecordBlock.concat(pending), piece_records, piece_bytes)
            last = pieces[-1]
            pending, held_r, held_b = [], 0, 0
            if len(last.keys) < piece_records and int(last.offsets[-1]) < piece_bytes:
                pending, held_r, held_b = [pieces.pop()], len(last.keys), int(last.offsets[-1])
            yield from pieces


def _overlapping(candidates: list[BlockMeta]) -> Iterator[list[BlockMeta]]:
    """Groups of blocks (sorted by first key) whose key ranges overlap, in key order."""
    group: list[BlockMeta] = []
    group_last: KeyTuple | None = None
    for meta in candidates:
        if group_last is not None and meta.first > group_last:
            yield group
            group = []
            group_last = None
        group.append(meta)
        group_last = meta.last if group_last is None else max(group_last, meta.last)
    if group:
        yield group


def _in_box(
    parts: list[RecordBlock], kmin: KeyTuple, kmax: KeyTuple, piece_records: int, piece_bytes: int
) -> Iterator[RecordBlock]:
    """The records of ``parts`` (in key order) inside the box, in bounded pieces."""
    block = RecordBlock.concat(parts)
    inside = B.box_mask(block.keys, kmin, kmax)
    if not inside.all():
        block = block.take(np.flatnonzero(inside))
    if len(block.keys):
        yield from B.split(block, piece_records, piece_bytes)


class _Cursor:
    """Read position in one sorted block during a merge."""

    def __init__(self, block: RecordBlock, unsure: list[int]) -> None:
        self.block = block
        self.unsure = unsure  # key components to test against the box (none: all inside)
        self.count = len(block.keys)
        self.pos = 0

    def key_at(self, i: int) -> KeyTuple:
        return B.key_tuple(self.block.keys[i])

    def window_end(self, records: int, nbytes: int) -> int:
        """End of the next window: at most ``records`` records and about ``nbytes`` payload
        bytes, at least one record (a window of a box query is copied when it is taken)."""
        pos = self.pos
        stop = min(pos + records, self.count)
        offsets = self.block.offsets
        limit = int(offsets[pos]) + nbytes
        cut = int(np.searchsorted(offsets[pos + 1 : stop + 1], limit, side="right")) + pos
        return max(pos + 1, min(stop, cut))

    def upper(self, cut: KeyTuple, hi: int) -> int:
        """First index in ``[pos, hi)`` whose key sorts after ``cut`` (``hi`` if none)."""
        lo = self.pos
        while lo < hi:
            mid = (lo + hi) // 2
            if self.key_at(mid) <= cut:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def take(self, end: int, kmin: KeyTuple, kmax: KeyTuple) -> RecordBlock:
        """The records in ``[pos, end)`` inside the box; advances to ``end``."""
        start, self.pos = self.pos, end
        if end <= start:
            return RecordBlock.empty()
        window = np.arange(start, end)
        if self.unsure:
            window = window[B.box_mask(self.block.keys[start:end], kmin, kmax, self.unsure)]
        return self.block.take(window)


class BlockStore(Store):
    """A Store keeping sorted, immutable blocks; subclasses only persist and read them.

    Args:
        clock_floor: the largest acq handed out before (restored by the subclass).
    """

    #: True when a commit waits for the disk (fsync): :meth:`try_put_blocks` then leaves
    #: every commit to :meth:`put_blocks`
    commits_wait = False

    def __init__(self, clock_floor: int = -(2**63)) -> None:
        self._clock = AcqClock(clock_floor)
        self._clock_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._in_flight: list[int] = []  # first acq of every reserved, unpublished range
        self._index = _BlockIndex()
        self._next_id = 1
        self._closed = False
        self._small_blocks = 0
        self._compacting = False

    # -- subclass hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def _persist(self, entries: list[tuple[BlockMeta, RecordBlock]], clock_floor: int) -> None:
        """Write all ``entries`` and the clock floor in one durable, atomic transaction."""

    @abc.abstractmethod
    def _reader(self) -> BlockReader:
        """Begin a read transaction that sees at least every published block."""

    @abc.abstractmethod
    def _replace(self, old: list[BlockMeta], new: list[tuple[BlockMeta, RecordBlock]]) -> None:
        """Atomically and durably drop the blocks ``old`` and store the blocks ``new`` (which
        may reuse ids of ``old``)."""

    def _restore(self, meta: BlockMeta) -> None:
        """Add a block found on disk to the index (used while opening)."""
        self._index.append(meta)
        self._next_id = max(self._next_id, meta.block_id + 1)
        if meta.small:
            self._small_blocks += 1

    @property
    def block_count(self) -> int:
        """Number of stored blocks (diagnostics and tests)."""
        return len(self._index)

    # -- compaction -------------------------------------------------------------------------
    def compact(self) -> int:
        """Merge runs of consecutive small blocks now; returns how many blocks were removed."""
        removed = 0
        with self._commit_lock:
            if self._closed:
                return 0
            metas = list(self._index.metas)
            runs: list[list[BlockMeta]] = []
            run: list[BlockMeta] = []
            size = nbytes = 0
            for meta in metas:
                small = meta.small
                more = max(meta.nbytes, 0)
                if (
                    small
                    and size + meta.count <= COMPACT_MAX_RECORDS
                    and nbytes + more <= COMPACT_MAX_BYTES
                ):
                    run.append(meta)
                    size += meta.count
                    nbytes += more
                    continue
                if len(run) > 1:
                    runs.append(run)
                run, size, nbytes = ([meta], meta.count, more) if small else ([], 0, 0)
            if len(run) > 1:
                runs.append(run)
            if not runs:
                return 0
            replaced: dict[int, list[BlockMeta]] = {}
            dropped: set[int] = set()
            reader = self._reader()
            try:
                merged = []
                for run in runs:
                    blocks = [reader.read(m) for m in run]
                    # blocks found on disk learn their size here: a run of large ones is
                    # cut where it would pass the byte bound (and they are not small)
                    for meta, block in zip(run, blocks, strict=True):
                        meta.nbytes = len(block.payload)
                    for part in _byte_runs(run, blocks):
                        block = RecordBlock.concat([b for _, b in part])
                        if not B.is_sorted(block.keys):
                            block = block.take(B.sort_order(block.keys))
                        merged.append(([m for m, _ in part], block))
            finally:
                reader.close()
            for run, block in merged:
                pieces = _by_cid(block, max(2, len(run) // 4))
                if len(pieces) >= len(run):
                    continue  # blocks of a cid each already (an earlier compaction's): kept
                # The pieces take the ids of the run's first blocks: in the run's place in
                # commit order, and in id order among themselves.
                new = [(_meta_for(m.block_id, b), b) for m, b in zip(run, pieces, strict=False)]
                # Readers must never see the new data with the old index or the reverse.
                with self._clock_lock:
                    self._replace(run, new)
                    replaced[run[0].block_id] = [meta for meta, _ in new]
                    dropped.update(m.block_id for m in run[1:])
                    new_metas = []
                    for m in metas:
                        if m.block_id in replaced:
                            new_metas.extend(replaced[m.block_id])
                        elif m.block_id not in dropped:
                            new_metas.append(m)
                    self._index = _BlockIndex.from_metas(new_metas)
                removed += len(run) - len(new)
            self._small_blocks = sum(1 for m in self._index.metas if m.small)
        return removed

    def _maybe_compact(self) -> None:
        if self._compacting or self._small_blocks < COMPACT_TRIGGER:
            return
        self._compacting = True

        def run() -> None:
            try:
                self.compact()
            except Exception:
                log.exception("compaction failed (the store is unchanged)")
            finally:
                self._compacting = False

        threading.Thread(target=run, name="tstorage-compaction", daemon=True).start()

    # -- Store ------------------------------------------------------------------------------
    def put_blocks(self, blocks: Sequence[RecordBlock], *, assign_acq: bool) -> PutResult:
        pending = self._pending(blocks, assign_acq)
        if isinstance(pending, PutResult):
            return pending
        with self._queue_lock:
            self._queue.append(pending)
        with self._commit_lock:
            if not pending.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        return _outcome(pending)

    def try_put_blocks(
        self, blocks: Sequence[RecordBlock], *, assign_acq: bool
    ) -> PutResult | None:
        """:meth:`put_blocks` on the caller's thread, only if the commit need not wait.

        A store whose commits do not fsync (``commits_wait = False``) commits these records
        alone, at once, when no other commit or compaction holds the commit lock and no
        other PUT is queued for it (those may be big: they are left to their own threads);
        otherwise nothing is queued or stored and the answer is None, and the caller uses
        :meth:`put_blocks` where waiting is fine.
        """
        if self.commits_wait or not self._commit_lock.acquire(blocking=False):
            return None
        try:
            with self._queue_lock:
                if self._queue:
                    return None
            pending = self._pending(blocks, assign_acq)
            if isinstance(pending, PutResult):
                return pending
            self._commit([pending])
        finally:
            self._commit_lock.release()
        return _outcome(pending)

    def _pending(self, blocks: Sequence[RecordBlock], assign_acq: bool) -> _Pending | PutResult:
        """The request's records as one sorted block for the queue (the result if empty)."""
        self._check_open()
        block = RecordBlock.concat(blocks)
        if len(block.keys) == 0:
            return PutResult(0)
        # The keys array may be the caller's (a single block); acq is written into it below.
        owned = len([b for b in blocks if len(b.keys)]) > 1
        # Sorting happens here, outside any lock; acq is filled in at commit time.
        order: np.ndarray | None = None
        if assign_acq:
            if not B.is_sorted(block.keys, with_acq=False):
                order = B.sort_order(block.keys, with_acq=False)
                block = block.take(order)
                owned = True
            if not owned:
                block = RecordBlock(block.keys.copy(), block.offsets, block.payload)
        elif not B.is_sorted(block.keys):
            block = block.take(B.sort_order(block.keys))
        return _Pending(block, order, assign_acq)

    def snapshot(self) -> Snapshot:
        self._check_open()
        with self._clock_lock:
            reader = self._reader()
            watermark = self._watermark_locked()
            index = self._index
            metas = index.metas[: len(index)]
            return BlockSnapshot(reader, index.mins, index.maxs, metas, watermark)

    def watermark(self) -> int:
        self._check_open()
        with self._clock_lock:
            return self._watermark_locked()

    def max_acq(self) -> int:
        with self._clock_lock:
            return self._clock.previous

    def close(self) -> None:
        self._closed = True

    # -- internals --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")

    def _watermark_locked(self) -> int:
        w = self._clock.tick()
        if self._in_flight:
            w = min(w, min(self._in_flight))
        return w

    def _commit(self, batch: list[_Pending]) -> None:
        reserved: list[int] = []
        try:
            entries = []
            with self._clock_lock:
                for p in batch:
                    if p.assign_acq:
                        start = self._clock.reserve(len(p.block.keys))
                        reserved.append(start)
                        self._in_flight.append(start)
                        p.block.keys["acq"] = start + (
                            p.order if p.order is not None else np.arange(len(p.block.keys))
                        )
                floor = self._clock.previous
            for p in batch:
                p.meta = _meta_for(self._next_id, p.block)
                self._next_id += 1
                entries.append((p.meta, p.block))
            self._persist(entries, floor)
        except BaseException as exc:
            with self._clock_lock:
                for start in reserved:
                    self._in_flight.remove(start)
            for p in batch:
                p.error = exc
                p.done = True
            return
        with self._clock_lock:
            for p in batch:
                assert p.meta is not None
                self._index.append(p.meta)
                if p.meta.small:
                    self._small_blocks += 1
                acq = p.meta
                p.result = PutResult(p.meta.count, int(acq.mins[4]), int(acq.maxs[4]))
                p.done = True
            for start in reserved:
                self._in_flight.remove(start)
        self._maybe_compact()


def _by_cid(block: RecordBlock, most: int) -> list[RecordBlock]:
    """A merged (sorted) block cut into one block per cid when that makes at most ``most``
    blocks, else ``[block]``.

    A block that spans several cids (a series' appends and the gateway's records under its
    reserved cid, committed in turn) would overlap every later block of the cids between,
    and a GET would merge them all record by record. Records of different cids never share
    a key, so the cut changes no order; ``most`` keeps a compaction from making about as
    many blocks as it merged (it would run again at once).
    """
    cids = block.keys["cid"]
    if int(cids[0]) == int(cids[-1]):
        return [block]
    cuts = (np.flatnonzero(cids[1:] != cids[:-1]) + 1).tolist()
    if len(cuts) + 1 > most:
        return [block]
    bounds = [0, *cuts, len(cids)]
    return [block.take(np.arange(a, b)) for a, b in itertools.pairwise(bounds)]


def _outcome(pending: _Pending) -> PutResult:
    """The result of a committed request, or its commit's error."""
    if pending.error is not None:
        raise pending.error
    assert pending.result is not None
    return pending.result


def _byte_runs(
    run: list[BlockMeta], blocks: list[RecordBlock]
) -> list[list[tuple[BlockMeta, RecordBlock]]]:
    """The parts of a run of consecutive blocks that compaction merges: consecutive small
    blocks of at most COMPACT_MAX_BYTES together, two or more."""
    parts: list[list[tuple[BlockMeta, RecordBlock]]] = [[]]
    size = 0
    for meta, block in zip(run, blocks, strict=True):
        if not meta.small or size + meta.nbytes > COMPACT_MAX_BYTES:
            parts.append([])
            size = 0
        if meta.small:
            parts[-1].append((meta, block))
            size += meta.nbytes
    return [p for p in parts if len(p) > 1]


def _meta_for(block_id: int, block: RecordBlock) -> BlockMeta:
    keys = block.keys
    if len(keys) <= client_block.FEW_RECORDS:
        rows = keys.tolist()
        cols = list(zip(*rows, strict=True))
        return BlockMeta(
            block_id,
            len(rows),
            np.array([min(c) for c in cols], dtype=np.int64),
            np.array([max(c) for c in cols], dtype=np.int64),
            rows[0],
            rows[-1],
            nbytes=len(block.payload),
        )
    mins = np.array([keys[f].min() for f in B.KEY_FIELDS], dtype=np.int64)
    maxs = np.array([keys[f].max() for f in B.KEY_FIELDS], dtype=np.int64)
    first, last = B.key_tuple(keys[0]), B.key_tuple(keys[-1])
    return BlockMeta(block_id, len(keys), mins, maxs, first, last, nbytes=len(block.payload))
