"""The gateway's write journal: records acknowledged before TStorage has stored them.

With ``[tstorage.journal]`` a write is acknowledged once it is in this journal (written to
the OS, as Redis acknowledges with ``appendfsync everysec``), and
:mod:`gateway.storage.write_behind` stores it in TStorage moments later. The journal is what
makes that safe: a gateway killed (even ``kill -9``) before TStorage stored a record
replays it at its next start.

On disk: a folder of segment files ``<first seq>.journal``, each a sequence of frames::

    length u32 | crc32 u32 | kind u8 | seq u64 | body (length bytes)

all little-endian, the CRC over kind, seq and body. A ``RECORDS`` frame holds one write's
records (``cid i32, mid i64, moid i32, cap i64, payload length u32, payload`` each); a
``STORED`` frame says that every ``RECORDS`` frame up to its seq is in TStorage. A frame
cut short by a crash ends the segment's readable part: its write was never acknowledged.

Encoding and decoding (:func:`encode_records`, :func:`encode_stored`, :func:`read_frames`)
do no I/O; :class:`Journal` is the file side.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import GatewayError
from gateway.storage.link import PutRecord

log = logging.getLogger(__name__)

RECORDS = 1
STORED = 2
_HEAD = struct.Struct("<IIBQ")
_CHECKED = struct.Struct("<BQ")  # the part of the head the CRC covers
_RECORD = struct.Struct("<iqiqI")
SEGMENT_BYTES = 8 << 20
"""A segment is closed for appends past this size; it is deleted once all of it is stored."""
SUFFIX = ".journal"


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
    crc = zlib.crc32(body, zlib.crc32(_CHECKED.pack(kind, seq)))
    return _HEAD.pack(len(body), crc, kind, seq) + body


@dataclass
class Frame:
    """One decoded frame."""

    kind: int
    seq: int
    records: list[PutRecord] = field(default_factory=list)


class JournalInUse(GatewayError):
    """Another process holds the journal's folder."""


class Damaged(ValueError):
    """A frame whose checksum or contents are wrong (not merely cut short)."""


def read_frames(data: bytes) -> Iterator[tuple[Frame, int]]:
    """The whole frames at the start of ``data`` and the offset after each.

    Stops quietly at a frame cut short (the tail of a write a crash interrupted).

    Raises:
        Damaged: a whole frame fails its checksum or does not parse.
    """
    view = memoryview(data)
    at = 0
    while at + _HEAD.size <= len(data):
        length, crc, kind, seq = _HEAD.unpack_from(view, at)
        end = at + _HEAD.size + length
        if end > len(data):
            return
        body = view[at + _HEAD.size : end]
        if zlib.crc32(body, zlib.crc32(_CHECKED.pack(kind, seq))) != crc:
            raise Damaged(f"frame at byte {at}: checksum mismatch")
        if kind == STORED:
            yield Frame(STORED, seq), end
        elif kind == RECORDS:
            yield Frame(RECORDS, seq, _records(body, at)), end
        else:
            raise Damaged(f"frame at byte {at}: unknown kind {kind}")
        at = end


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
    """Append-only segment files in ``directory``; one writer (the gateway) at a time.

    Not thread-safe: :class:`~gateway.storage.write_behind.WriteBehind` serialises calls.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._size = 0
        self._dirty = False
        self._lock_fd: int | None = None
        self.next_seq = 1

    def recover(self) -> list[tuple[int, list[PutRecord]]]:
        """Open the journal: the writes not yet stored in TStorage, ``(seq, records)`` in order.

        A segment with a damaged frame is read up to it, logged, and renamed
        ``*.damaged`` for the operator (what follows the damage cannot be trusted).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        frames: list[Frame] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            data = path.read_bytes()
            seg = _Segment(path)
            try:
                for frame, _ in read_frames(data):
                    frames.append(frame)
                    if frame.kind == RECORDS:
                        seg.last_records = frame.seq
            except Damaged as exc:
                damaged = path.with_suffix(".damaged")
                log.error(
                    "journal %s: %s; the writes before it are replayed, the file is kept as "
                    "%s (writes after the damage, if any were acknowledged, are lost)",
                    path,
                    exc,
                    damaged,
                )
                path.rename(damaged)
                continue
            self._segments.append(seg)
        stored = max((f.seq for f in frames if f.kind == STORED), default=0)
        # past every seq and every segment's name, so the new segment is a new file
        names = [int(s.path.stem) for s in self._segments if s.path.stem.isdigit()]
        self.next_seq = max([f.seq for f in frames] + names + [0]) + 1
        pending = [(f.seq, f.records) for f in frames if f.kind == RECORDS and f.seq > stored]
        self._open_segment()
        self.stored(stored)  # drops the segments already all stored
        return pending

    def append(self, records: Sequence[PutRecord]) -> int:
        """Write one ``RECORDS`` frame (to the OS, not fsynced); returns its seq.

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
        if seq <= 0:
            return
        self._write(encode_stored(seq))
        self.next_seq = max(self.next_seq, seq + 1)
        keep = []
        for seg in self._segments[:-1]:
            if seg.last_records <= seq:
                seg.path.unlink(missing_ok=True)
            else:
                keep.append(seg)
        self._segments[:-1] = keep

    def sync(self) -> None:
        """fsync what was written since the last call (no-op when nothing was)."""
        if self._dirty and self._fd is not None:
            self._dirty = False
            os.fsync(self._fd)

    def close(self) -> None:
        """fsync and close the current segment; another process may open the journal."""
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def _take_lock(self) -> None:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalInUse(
                f"the journal in {self.directory} is used by another gateway (each gateway "
                "needs a journal folder of its own)"
            ) from None
        self._lock_fd = fd

    def _open_segment(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
        path = self.directory / f"{self.next_seq:020d}{SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._segments.append(_Segment(path))
        # the new name must survive a power loss as well as its contents
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _write(self, frame: bytes) -> None:
        assert self._fd is not None
        try:
            written = os.write(self._fd, frame)
            if written != len(frame):
                raise OSError(f"short write to the journal ({written} of {len(frame)} bytes)")
        except OSError:
            # A partial frame would end the segment's readable part for every later frame.
            os.ftruncate(self._fd, self._size)
            raise
        self._size += len(frame)
        self._dirty = True
