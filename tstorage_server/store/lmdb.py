"""The durable Store: blocks in an LMDB environment.

Durability (``sync``; the same choice as Redis ``appendfsync always|everysec``):

* ``"commit"`` (default): every commit is fsynced before its PUT is answered. An answered
  PUT survives ``kill -9`` of any process and a power loss or OS crash.
* ``"interval"``: a commit is answered once LMDB wrote it to the OS (``MDB_NOSYNC``); a
  background thread fsyncs the environment at least every ``sync_interval`` seconds, and on
  close. An answered PUT survives ``kill -9`` of any process (the OS holds it); a power
  loss or OS crash loses at most the PUTs of the last ``sync_interval``. As LMDB documents
  for ``MDB_NOSYNC``, the database stays consistent after such a crash only on a file
  system that keeps the order of writes; on others the environment may need restoring
  from a copy. Use ``"commit"`` where a power loss must lose nothing.

LMDB was chosen over SQLite by measurement on the target machine (bench/tstorage.md):
it commits and reads multi-megabyte blobs faster (reads are zero-copy views into the
memory map).

Layout (one environment in ``DATA_DIR/tstorage.lmdb``):

* ``blocks``: ``block id (8 bytes, big-endian) + b"k"`` → keys column (``KEY_DTYPE``),
  ``+ b"o"`` → offsets (int64, only when payload lengths differ), ``+ b"p"`` → payload bytes;
  a block of more than ``segment_records`` records is instead cut into segments of that
  many records: ``+ b"f"`` → the first key of every segment, and for segment ``i``
  (4 bytes, big-endian) ``+ b"K" + i`` → its keys, ``+ b"O" + i`` → its offsets from 0
  (only when payload lengths differ), ``+ b"P" + i`` → its payload bytes. The binding
  (py-lmdb) touches every page of a value it returns, so a narrow GET into a block held
  as one value would read all of it from disk; with segments it reads the ones it needs.
  Both layouts are read; which one a block has is known from its ``f`` value;
* ``index``: block id → one ``META_DTYPE`` row (count, bounds, first/last key, uniform length);
* ``state``: ``b"acq_floor"`` → the acquisition clock's last value (int64).

A block and its index row are written in the same transaction as the clock floor, so a
crash leaves either all of a request or none of it, and the clock never goes back.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
from pathlib import Path
from typing import Any, Literal

import lmdb
import numpy as np

from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_server.runfile import LOCK_FILE
from tstorage_server.store import blocks as B
from tstorage_server.store.base import BlockMeta, BlockReader, BlockStore, StoredColumns

log = logging.getLogger("tstorage_server.store")

META_DTYPE = np.dtype(
    [
        ("count", "<i8"),
        ("uniform", "<i8"),
        ("mins", "<i8", (5,)),
        ("maxs", "<i8", (5,)),
        ("first", KEY_DTYPE),
        ("last", KEY_DTYPE),
    ]
)
#: One META_DTYPE row packed by ``struct`` (a numpy row costs ten times more to fill).
META_ROW = struct.Struct("<qq5q5q" + "iqiqq" * 2)
assert META_ROW.size == META_DTYPE.itemsize
_FLOOR_KEY = b"acq_floor"
# Address space reserved for the map; the file only grows as data is written.
DEFAULT_MAP_SIZE = 1 << 40
#: records per stored segment of a big block (see the module docstring)
DEFAULT_SEGMENT_RECORDS = 8192
SyncMode = Literal["commit", "interval"]
SYNC_MODES: tuple[SyncMode, ...] = ("commit", "interval")
#: fsync period of ``sync="interval"`` by default, and its upper bound (seconds)
DEFAULT_SYNC_INTERVAL_S = 1.0
MAX_SYNC_INTERVAL_S = 1.0


class DataDirInUse(RuntimeError):
    """Another server already uses this data directory."""


#: exit status of ``tstorage-server`` when its data directory is in use (an embedder may
#: retry; every other start failure is 1, a usage error 2)
EXIT_DATA_DIR_IN_USE = 3


def _bkey(block_id: int, kind: bytes) -> bytes:
    return block_id.to_bytes(8, "big") + kind


def _skey(block_id: int, kind: bytes, segment: int) -> bytes:
    return block_id.to_bytes(8, "big") + kind + segment.to_bytes(4, "big")


class _LmdbReader(BlockReader):
    def __init__(self, env: lmdb.Environment, db: Any) -> None:
        self._txn = env.begin(db=db, buffers=True)

    def _get(self, block_id: int, kind: bytes, segment: int = -1) -> memoryview:
        key = _bkey(block_id, kind) if segment < 0 else _skey(block_id, kind, segment)
        value = self._txn.get(key)
        if value is None:
            raise RuntimeError(f"block {block_id} part {key[8:]!r} is missing from the store")
        return value

    def _fences(self, meta: BlockMeta) -> np.ndarray | None:
        """First key of every segment of a segmented block, None for a one-value block."""
        value = self._txn.get(_bkey(meta.block_id, b"f"))
        return None if value is None else np.frombuffer(value, dtype=KEY_DTYPE)

    def _segments(self, meta: BlockMeta, first: int, stop: int) -> StoredColumns:
        """Segments ``first`` to ``stop - 1`` of a segmented block as one set of columns
        (views when it is one segment)."""
        keys, payloads, offsets = [], [], []
        base = 0
        for i in range(first, stop):
            keys.append(np.frombuffer(self._get(meta.block_id, b"K", i), dtype=KEY_DTYPE))
            payload = self._get(meta.block_id, b"P", i)
            payloads.append(payload)
            if meta.uniform < 0:
                local = np.frombuffer(self._get(meta.block_id, b"O", i), dtype=np.int64)
                offsets.append((local[:-1] + base) if i + 1 < stop else (local + base))
                base += len(payload)
        if len(keys) == 1:
            payload_all: bytes | memoryview = payloads[0]
            key_all = keys[0]
        else:
            payload_all = b"".join(payloads)
            key_all = np.concatenate(keys)
        if meta.uniform >= 0:
            return StoredColumns(key_all, payload_all, None, meta.uniform)
        return StoredColumns(key_all, payload_all, np.concatenate(offsets))

    def columns(self, meta: BlockMeta) -> StoredColumns:
        fences = self._fences(meta)
        if fences is not None:
            return self._segments(meta, 0, len(fences))
        keys = np.frombuffer(self._get(meta.block_id, b"k"), dtype=KEY_DTYPE)
        payload = self._get(meta.block_id, b"p")
        if meta.uniform >= 0:
            # uniform blocks store no offsets: those of a read part are made for it alone
            return StoredColumns(keys, payload, None, meta.uniform)
        offsets = np.frombuffer(self._get(meta.block_id, b"o"), dtype=np.int64)
        return StoredColumns(keys, payload, offsets)

    def parts(self, meta: BlockMeta, corners: tuple[np.ndarray, np.ndarray]) -> list[RecordBlock]:
        fences = self._fences(meta)
        if fences is None:
            return super().parts(meta, corners)
        low, high = corners
        # Records equal to the low corner may begin in the segment before the first one
        # that starts at or after it; none past the high corner can be in a later segment.
        first = max(0, int(np.searchsorted(fences, low)[0]) - 1)
        stop = int(np.searchsorted(fences, high, side="right")[0])
        out = []
        for i in range(first, stop):
            # one view per segment: a wide GET must not copy the block
            columns = self._segments(meta, i, i + 1)
            start, end = B.box_range(columns.keys, corners)
            if end > start:
                out.append(columns.block(start, end))
        return out

    def close(self) -> None:
        self._txn.abort()


class LmdbStore(BlockStore):
    """Durable store in ``data_dir`` (created if missing).

    Args:
        data_dir: directory that holds the LMDB environment.
        map_size: upper bound of the database size in bytes.
        sync: ``"commit"`` (fsync before a PUT is answered) or ``"interval"`` (fsync at
            least every ``sync_interval``); see the module docstring for what each survives.
        sync_interval: seconds between fsyncs with ``sync="interval"`` (0 < s <= 1).
        segment_records: a block of more records is stored in segments of this many, so
            that a narrow GET reads from disk only the segments it needs (module docstring).
            Blocks already stored keep their layout.

    Raises:
        DataDirInUse: another process has this directory open.
        ValueError: an unknown ``sync``, a ``sync_interval`` outside (0, 1] or a
            ``segment_records`` below 1.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        map_size: int = DEFAULT_MAP_SIZE,
        *,
        sync: SyncMode = "commit",
        sync_interval: float = DEFAULT_SYNC_INTERVAL_S,
        segment_records: int = DEFAULT_SEGMENT_RECORDS,
    ) -> None:
        if segment_records < 1:
            raise ValueError(f"segment_records must be at least 1, got {segment_records!r}")
        self.segment_records = segment_records
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, got {sync!r}")
        if not 0 < sync_interval <= MAX_SYNC_INTERVAL_S:
            raise ValueError(
                f"sync_interval must be more than 0 and at most {MAX_SYNC_INTERVAL_S} s, "
                f"got {sync_interval!r}"
            )
        self.sync = sync
        self.sync_interval = sync_interval
        self.commits_wait = sync == "commit"
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(path / LOCK_FILE, "a+b")  # noqa: SIM115 - held for the store's life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise DataDirInUse(f"data directory {path} is used by another server") from None
        self._env = lmdb.open(
            str(path / "tstorage.lmdb"),
            map_size=map_size,
            max_dbs=4,
            max_readers=4096,
            sync=sync == "commit",
            metasync=sync == "commit",
            # a long GET reads blocks (megabytes) in key order: the OS's read-ahead makes
            # a series not in the page cache stream several times faster (bench/README.md)
            readahead=True,
        )
        self._blocks = self._env.open_db(b"blocks")
        self._meta = self._env.open_db(b"index")
        self._state = self._env.open_db(b"state")
        with self._env.begin() as txn:
            raw = txn.get(_FLOOR_KEY, db=self._state)
            floor = int.from_bytes(raw, "little", signed=True) if raw else -(2**63)
        super().__init__(floor)
        with self._env.begin(db=self._meta) as txn:
            for key, value in txn.cursor():
                row = np.frombuffer(value, dtype=META_DTYPE)[0]
                self._restore(
                    BlockMeta(
                        int.from_bytes(key, "big"),
                        int(row["count"]),
                        row["mins"].copy(),
                        row["maxs"].copy(),
                        B.key_tuple(row["first"]),
                        B.key_tuple(row["last"]),
                        int(row["uniform"]),
                    )
                )
        self._syncer: Any = None
        if sync == "interval":
            self._sync_stop = threading.Event()
            self._syncer = threading.Thread(
                target=self._sync_every, name="tstorage-sync", daemon=True
            )
            self._syncer.start()

    def _sync_every(self) -> None:
        # Event.wait returns True once close() asked to stop; close() syncs one last time.
        while not self._sync_stop.wait(self.sync_interval):
            try:
                self._env.sync(True)
            except lmdb.Error:
                log.exception("fsync of the store failed; retrying in %s s", self.sync_interval)

    def _persist(self, entries: list[tuple[BlockMeta, RecordBlock]], clock_floor: int) -> None:
        with self._env.begin(write=True) as txn:
            for meta, block in entries:
                self._write_block(txn, meta, block)
            txn.put(_FLOOR_KEY, clock_floor.to_bytes(8, "little", signed=True), db=self._state)

    def _replace(self, old: list[BlockMeta], new: list[tuple[BlockMeta, RecordBlock]]) -> None:
        with self._env.begin(write=True) as txn:
            cursor = txn.cursor(db=self._blocks)
            for meta in old:
                # every part of the block, in either layout, begins with its id
                prefix = meta.block_id.to_bytes(8, "big")
                found = cursor.set_range(prefix)
                while found and cursor.key()[:8] == prefix:
                    found = cursor.delete()
                txn.delete(prefix, db=self._meta)
            for meta, block in new:
                self._write_block(txn, meta, block)

    def _write_block(self, txn: lmdb.Transaction, meta: BlockMeta, block: RecordBlock) -> None:
        meta.uniform = B.uniform_length(block)
        keys = np.ascontiguousarray(block.keys)
        offsets = np.ascontiguousarray(block.offsets, dtype=np.int64)
        size = self.segment_records
        if meta.count <= size:
            txn.put(_bkey(meta.block_id, b"k"), keys.data, db=self._blocks)
            txn.put(_bkey(meta.block_id, b"p"), block.payload, db=self._blocks)
            if meta.uniform < 0:
                txn.put(_bkey(meta.block_id, b"o"), offsets.data, db=self._blocks)
        else:
            payload = memoryview(block.payload)
            fences = np.ascontiguousarray(keys[::size])
            txn.put(_bkey(meta.block_id, b"f"), fences.data, db=self._blocks)
            for i, start in enumerate(range(0, meta.count, size)):
                stop = min(start + size, meta.count)
                lo, hi = int(offsets[start]), int(offsets[stop])
                txn.put(_skey(meta.block_id, b"K", i), keys[start:stop].data, db=self._blocks)
                txn.put(_skey(meta.block_id, b"P", i), payload[lo:hi], db=self._blocks)
                if meta.uniform < 0:
                    local = offsets[start : stop + 1] - lo
                    txn.put(_skey(meta.block_id, b"O", i), local.data, db=self._blocks)
        row = META_ROW.pack(
            meta.count,
            meta.uniform,
            *meta.mins.tolist(),
            *meta.maxs.tolist(),
            *meta.first,
            *meta.last,
        )
        txn.put(meta.block_id.to_bytes(8, "big"), row, db=self._meta)

    def _reader(self) -> BlockReader:
        return _LmdbReader(self._env, self._blocks)

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        if self._syncer is not None:
            self._sync_stop.set()
            self._syncer.join()
        with self._commit_lock:
            self._env.sync(True)
            self._env.close()
        self._lock_file.close()
