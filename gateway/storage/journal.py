"""The gateway's write journal: records acknowledged before TStorage has stored them.

With ``[tstorage.journal]`` a List or Dict write is acknowledged once it is in this journal
(written to the OS, as Redis acknowledges with ``appendfsync everysec``), and
:mod:`gateway.storage.write_behind` stores it in TStorage moments later. The journal is what
makes that safe: a gateway killed (even ``kill -9``) before TStorage stored a record
replays it at its next start.

On disk: a folder of segment files ``<first seq>.journal``, each a sequence of frames::

    length u32 | head crc32 u32 | body crc32 u32 | kind u8 | seq u64 | body (length bytes)

all little-endian, the head CRC over length, kind and seq, the body CRC over the body. A
``RECORDS`` frame holds one write's records (``cid i32, mid i64, moid i32, cap i64,
payload length u32, payload`` each); a ``STORED`` frame says that every ``RECORDS`` frame up
to its seq is in TStorage. Only the newest segment may end in a frame cut short (a whole,
valid head and too few body bytes, or too few head bytes: the write a crash interrupted,
never acknowledged); anything else that does not check out is damage.

Encoding and decoding (:func:`encode_records`, :func:`encode_stored`, :func:`read_frames`)
do no I/O; :class:`Journal` is the file side.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import GatewayError
from gateway.storage.link import PutRecord

log = logging.getLogger(__name__)

RECORDS = 1
STORED = 2
_HEAD = struct.Struct("<IIIBQ")
_CHECKED = struct.Struct("<IBQ")  # what the head CRC covers: length, kind, seq
_RECORD = struct.Struct("<iqiqI")
SEGMENT_BYTES = 8 << 20
"""A segment is closed for appends past this size; it is deleted once all of it is stored."""
SUFFIX = ".journal"
LOCK_WAIT_S = 3.0
"""How long opening waits for the folder's lock (a command checking it holds it briefly)."""


def encode_records(seq: int, records: Sequence[PutRecord]) -> bytes:
    """One ``RECORDS`` frame holding ``records``."""
    parts = []
    for (cid, mid, moid, cap), payload in records:
        parts.append(_RECORD.pack(cid, mid, moid, cap, len(payload)))
        parts.append(payload)
    return _frame(RECORDS, seq, b"".join(parts))


def encode_stored(seq: int) -> bytes:
    """One ``STORED`` frame: every ``RECORDS`` frame up to ``seq`` is in TStorage."""
    return _frame(STORED, seq, b"")


def _frame(kind: int, seq: int, body: bytes) -> bytes:
    head_crc = zlib.crc32(_CHECKED.pack(len(body), kind, seq))
    return _HEAD.pack(len(body), head_crc, zlib.crc32(body), kind, seq) + body


@dataclass
class Frame:
    """One decoded frame."""

    kind: int
    seq: int
    records: list[PutRecord] = field(default_factory=list)


class Damaged(ValueError):
    """A frame whose checksum or contents are wrong, or one cut short where a crash
    cannot have cut it."""


class JournalInUse(GatewayError):
    """Another process holds the journal's folder."""


def read_frames(data: bytes, *, newest: bool = True) -> Iterator[Frame]:
    """The whole frames of ``data``, in order.

    Args:
        newest: ``data`` is the newest segment, the only one a crash may have cut short:
            there a frame cut short ends the frames quietly.

    Raises:
        Damaged: a frame fails a checksum or does not parse, or is cut short elsewhere.
    """
    view = memoryview(data)
    at = 0
    while at < len(data):
        if at + _HEAD.size > len(data):
            if newest:
                return
            raise Damaged(f"frame at byte {at}: cut short in a segment that is not the newest")
        length, head_crc, body_crc, kind, seq = _HEAD.unpack_from(view, at)
        if zlib.crc32(_CHECKED.pack(length, kind, seq)) != head_crc:
            raise Damaged(f"frame at byte {at}: head checksum mismatch")
        end = at + _HEAD.size + length
        if end > len(data):
            if newest:
                return
            raise Damaged(f"frame at byte {at}: cut short in a segment that is not the newest")
        body = view[at + _HEAD.size : end]
        if zlib.crc32(body) != body_crc:
            raise Damaged(f"frame at byte {at}: checksum mismatch")
        if kind == STORED:
            yield Frame(STORED, seq)
        elif kind == RECORDS:
            yield Frame(RECORDS, seq, _records(body, at))
        else:
            raise Damaged(f"frame at byte {at}: unknown kind {kind}")
        at = end


def read_segments(paths: Sequence[Path]) -> tuple[list[Frame], list[tuple[Path, Damaged]]]:
    """The frames of segment files in order (the last is the newest), each read up to any
    damage, and the damaged files with their damage."""
    frames: list[Frame] = []
    damaged: list[tuple[Path, Damaged]] = []
    for i, path in enumerate(paths):
        try:
            frames.extend(read_frames(path.read_bytes(), newest=i == len(paths) - 1))
        except Damaged as exc:
            damaged.append((path, exc))
    return frames, damaged


def unstored_writes(frames: Sequence[Frame]) -> list[tuple[int, list[PutRecord]]]:
    """The ``RECORDS`` frames no ``STORED`` frame covers, one per seq, in seq order."""
    stored = max((f.seq for f in frames if f.kind == STORED), default=0)
    pending = {f.seq: f.records for f in frames if f.kind == RECORDS and f.seq > stored}
    return sorted(pending.items())


def _records(body: memoryview, frame_at: int) -> list[PutRecord]:
    out: list[PutRecord] = []
    at = 0
    while at < len(body):
        if at + _RECORD.size > len(body):
            raise Damaged(f"frame at byte {frame_at}: a record is cut short")
        cid, mid, moid, cap, size = _RECORD.unpack_from(body, at)
        at += _RECORD.size
        if at + size > len(body):
            raise Damaged(f"frame at byte {frame_at}: a payload is cut short")
        out.append(((cid, mid, moid, cap), bytes(body[at : at + size])))
        at += size
    return out


@dataclass
class _Segment:
    path: Path
    last_records: int = 0  # seq of its last RECORDS frame (0: none)


class Journal:
    """Append-only segment files in ``directory``; one gateway at a time (a lock file).

    Not thread-safe: :class:`~gateway.storage.write_behind.WriteBehind` serialises calls.
    fsyncs are left to :meth:`take_sync`, whose work runs outside the caller's lock.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._size = 0
        self._dirty = False
        self._dir_dirty = False
        self._retired: list[int] = []  # closed-for-append segments' fds, to fsync and close
        self._lock_fd: int | None = None
        self._broken: OSError | None = None  # a failed write that could not be cut back
        self.next_seq = 1

    def recover(self) -> list[tuple[int, list[PutRecord]]]:
        """Open the journal: the writes not yet stored in TStorage, ``(seq, records)`` in order.

        They are written again, alone, to a new segment (fsynced) before the old segments
        go, so that what a start found survives the next crash whatever becomes of them.
        A segment with damage is read up to it, logged, and kept as ``*.damaged``.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        old = _segment_files(self.directory)
        frames, damaged = read_segments(old)
        for path, exc in damaged:
            log.error(
                "journal %s: %s; the writes before it are replayed, the file is kept as "
                "%s (writes after the damage, if any were acknowledged, are lost)",
                path,
                exc,
                path.with_suffix(".damaged"),
            )
        # one copy per seq in seq order: a start that stopped while rewriting them left
        # a second copy of some, in a newer file
        pending = unstored_writes(frames)
        names = [int(p.stem) for p in old if p.stem.isdigit()]
        # past every seq and every segment's name, so the new segment is a new file
        self.next_seq = max([f.seq for f in frames] + names + [0]) + 1
        self._open_segment()
        try:
            for seq, records in pending:
                self._write(encode_records(seq, records))
                self._segments[-1].last_records = seq
            os.fsync(self._current())
            _fsync_dir(self.directory)
        except OSError:
            # the old segments stay whole: the next start reads them again
            self._segments[-1].path.unlink(missing_ok=True)
            os.close(self._current())
            self._fd = None
            raise
        self._dirty = False
        bad = {path for path, _ in damaged}
        for path in old:
            if path in bad:
                path.rename(path.with_suffix(".damaged"))
            else:
                path.unlink()
        _fsync_dir(self.directory)
        return pending

    def append(self, records: Sequence[PutRecord]) -> int:
        """Write one ``RECORDS`` frame (to the OS; fsynced by :meth:`take_sync`'s work);
        returns its seq.

        Raises:
            OSError: not written (the segment is cut back to its previous end).
        """
        if self._size >= self.segment_bytes:
            self._open_segment()
        seq = self.next_seq
        self._write(encode_records(seq, records))
        self.next_seq += 1
        self._segments[-1].last_records = seq
        return seq

    def stored(self, seq: int) -> None:
        """Note that every write up to ``seq`` is in TStorage; delete segments left with none."""
        self._write(encode_stored(seq))
        keep = []
        for seg in self._segments[:-1]:
            if seg.last_records <= seq:
                seg.path.unlink(missing_ok=True)
                self._dir_dirty = True
            else:
                keep.append(seg)
        self._segments[:-1] = keep

    def take_sync(self) -> Callable[[], None] | None:
        """The fsyncs owed so far, as work to run without the caller's lock (None: none).

        The work holds its own descriptors, so appends and rotations may go on meanwhile.
        """
        fds = [os.dup(self._fd)] if self._dirty and self._fd is not None else []
        fds += self._retired
        sync_dir = self._dir_dirty
        self._retired, self._dirty, self._dir_dirty = [], False, False
        if not fds and not sync_dir:
            return None
        directory = self.directory

        def work() -> None:
            try:
                for fd in fds:
                    os.fsync(fd)
                if sync_dir:
                    _fsync_dir(directory)
            finally:
                for fd in fds:
                    os.close(fd)

        return work

    def owe_sync(self) -> None:
        """A sync failed: the next :meth:`take_sync` syncs the current segment again."""
        self._dirty = True

    def close(self) -> None:
        """fsync and close every segment; another process may open the journal."""
        work = self.take_sync()
        if work is not None:
            work()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    @staticmethod
    def unstored(directory: Path) -> int | None:
        """Records of writes a stopped gateway acknowledged and did not store, in the journal
        at ``directory`` (0 when there is none); None while a gateway holds it."""
        if not directory.is_dir():
            return 0
        probe = Journal(directory)
        try:
            probe._take_lock(wait_s=0)
        except JournalInUse:
            return None
        try:
            frames, _ = read_segments(_segment_files(directory))
            return sum(len(records) for _, records in unstored_writes(frames))
        finally:
            probe.close()

    def _take_lock(self, wait_s: float = LOCK_WAIT_S) -> None:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        end = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < end:
                    time.sleep(0.05)
                    continue
            os.close(fd)
            raise JournalInUse(
                f"the journal in {self.directory} is used by another gateway (each gateway "
                "needs a journal folder of its own)"
            ) from None
        self._lock_fd = fd

    def _current(self) -> int:
        assert self._fd is not None
        return self._fd

    def _open_segment(self) -> None:
        path = self.directory / f"{self.next_seq:020d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._fd is not None:
            if self._dirty:
                self._retired.append(self._fd)  # fsynced, then closed, by take_sync's work
            else:
                os.close(self._fd)
        self._fd, self._size, self._dirty = fd, os.fstat(fd).st_size, False
        self._segments.append(_Segment(path))
        self._dir_dirty = True  # the new name must survive a power loss too

    def _write(self, frame: bytes) -> None:
        if self._broken is not None:
            raise OSError(f"the journal is unusable until the gateway restarts ({self._broken})")
        fd = self._current()
        try:
            written = os.write(fd, frame)
            if written != len(frame):
                raise OSError(f"short write to the journal ({written} of {len(frame)} bytes)")
        except OSError:
            # A partial frame would end the segment's readable part for every later frame.
            try:
                os.ftruncate(fd, self._size)
            except OSError as exc:
                self._broken = exc  # frames after a partial one would read as damage
            raise
        self._size += len(frame)
        self._dirty = True


def _segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SUFFIX}"))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
