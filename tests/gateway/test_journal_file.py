"""The write journal's frames and files: what a restart replays, and what it must not.

No server here: these check the file format and the recovery rules that the end-to-end
tests in ``test_journal.py`` rely on (a crash mid-write, damage, stored writes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.schema import JournalConfig
from gateway.errors import TStorageUnavailable
from gateway.storage.journal import (
    RECORDS,
    STORED,
    Damaged,
    Journal,
    JournalInUse,
    encode_records,
    encode_stored,
    read_frames,
)
from gateway.storage.link import PutRecord
from gateway.storage.write_behind import WriteBehind

I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
RECORD = st.tuples(st.tuples(I32, I64, I32, I64), st.binary(max_size=40))


def recs(*caps: int) -> list[PutRecord]:
    return [((1, 2, 3, c), c.to_bytes(8, "little")) for c in caps]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(RECORD, max_size=6), max_size=6))
def test_frames_read_back_as_written(writes: list[list[PutRecord]]) -> None:
    data = b"".join(encode_records(i + 1, w) for i, w in enumerate(writes)) + encode_stored(2)
    frames = [f for f in read_frames(data)]
    assert [(f.kind, f.seq, f.records) for f in frames] == [
        *((RECORDS, i + 1, w) for i, w in enumerate(writes)),
        (STORED, 2, []),
    ]


def test_a_frame_cut_short_ends_the_readable_part_at_every_length() -> None:
    first, second = encode_records(1, recs(10, 11)), encode_records(2, recs(12))
    for cut in range(len(second)):
        frames = [f for f in read_frames(first + second[:cut])]
        assert [f.seq for f in frames] == [1]  # the torn write was never acknowledged


def test_a_changed_byte_is_damage_not_a_record_nor_a_crash_cut() -> None:
    frames = encode_records(1, recs(10)) + encode_records(2, recs(11))
    for at in range(len(frames)):
        bad = bytearray(frames)
        bad[at] ^= 0x01
        # the head has its own checksum: a changed length is damage, never taken for the
        # crash-cut end of the newest segment (which would drop what follows unseen)
        for newest in (True, False):
            with pytest.raises(Damaged):
                list(read_frames(bytes(bad), newest=newest))


def test_a_start_cut_short_while_rewriting_replays_each_write_once_in_order(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path)
    j.recover()
    first, second = j.append([((1, 2, 3, 0), b"old")]), j.append([((1, 2, 3, 0), b"new")])
    j.close()
    # a start that stopped after rewriting only the first write into a newer segment
    (tmp_path / f"{second + 1:020d}.journal").write_bytes(
        encode_records(first, [((1, 2, 3, 0), b"old")])
    )
    j = Journal(tmp_path)
    assert j.recover() == [(first, [((1, 2, 3, 0), b"old")]), (second, [((1, 2, 3, 0), b"new")])]
    j.close()


def test_a_restart_replays_exactly_the_writes_not_yet_stored(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    assert j.recover() == []
    _, s2, s3 = j.append(recs(1)), j.append(recs(2, 3)), j.append(recs(4))
    j.stored(s2)
    j.close()
    j = Journal(tmp_path)
    assert j.recover() == [(s3, recs(4))]
    s4 = j.append(recs(5))
    assert s4 > s3  # seqs never repeat, so a stored mark can never cover a newer write
    j.close()
    j = Journal(tmp_path)
    assert j.recover() == [(s3, recs(4)), (s4, recs(5))]
    j.stored(s4)
    j.close()
    j = Journal(tmp_path)
    assert j.recover() == []
    j.close()


def test_a_write_torn_by_a_crash_is_dropped_and_later_writes_still_replay(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path)
    j.recover()
    j.append(recs(1))
    j.append(recs(2))
    j.close()
    (segment,) = tmp_path.glob("*.journal")
    os.truncate(segment, segment.stat().st_size - 3)  # the crash hit the second write
    j = Journal(tmp_path)
    assert [r for _, r in j.recover()] == [recs(1)]
    j.append(recs(3))  # goes to a new segment, after the torn one
    j.close()
    j = Journal(tmp_path)
    assert [r for _, r in j.recover()] == [recs(1), recs(3)]
    j.close()


def test_a_damaged_segment_is_kept_aside_and_the_rest_replays_at_every_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = Journal(tmp_path, segment_bytes=1)  # a segment per write
    j.recover()
    for c in (1, 2, 3):
        j.append(recs(c))
    j.close()
    segments = sorted(tmp_path.glob("*.journal"))
    assert len(segments) == 3
    second = segments[1]
    data = bytearray(second.read_bytes())
    data[-1] ^= 0xFF
    second.write_bytes(bytes(data))
    for _ in range(2):  # not stored at the first start: the second replays the same
        j = Journal(tmp_path)
        assert [r for _, r in j.recover()] == [recs(1), recs(3)]
        j.close()
    assert second.with_suffix(".damaged").exists()
    assert "checksum mismatch" in caplog.text and ".damaged" in caplog.text


def test_what_a_stopped_gateway_left_unstored_is_counted_without_taking_the_journal(
    tmp_path: Path,
) -> None:
    assert Journal.unstored(tmp_path / "none") == 0
    j = Journal(tmp_path)
    j.recover()
    j.append(recs(1, 2))
    s = j.append(recs(3))
    assert Journal.unstored(tmp_path) is None  # held by a gateway: it stores them itself
    j.close()
    assert Journal.unstored(tmp_path) == 3
    j = Journal(tmp_path)
    j.recover()
    j.stored(s)
    j.close()
    assert Journal.unstored(tmp_path) == 0
    j = Journal(tmp_path, segment_bytes=1)
    j.recover()
    j.append(recs(4))
    j.append(recs(5))
    j.close()
    newest = sorted(tmp_path.glob("*.journal"))[-1]
    newest.write_bytes(newest.read_bytes()[:-1] + b"x")  # damage in the last write
    assert Journal.unstored(tmp_path) == 1  # the write before the damage is still owed


def test_fsyncs_go_on_while_tstorage_takes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A power loss during an outage must lose at most sync_interval, not the outage.
    synced: list[int] = []
    real = os.fsync

    def counted(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counted)

    def down(records: object) -> None:
        raise TStorageUnavailable("TStorage at 127.0.0.1:1 is unreachable")

    behind = WriteBehind(
        Journal(tmp_path), down, JournalConfig(dir=tmp_path, sync_interval=0.05), "x"
    )
    behind.start()
    synced.clear()
    for i in range(10):
        behind.add(recs(i), time.monotonic() + 1)
        time.sleep(0.03)
    assert len(synced) >= 3, synced
    assert behind.status()["last_error"] and behind.pending_records == 10
    behind.close(0.1)


def test_segments_are_deleted_once_all_their_writes_are_stored(tmp_path: Path) -> None:
    j = Journal(tmp_path, segment_bytes=200)
    j.recover()
    seqs = [j.append(recs(c, c + 1, c + 2)) for c in range(0, 60, 3)]
    assert len(list(tmp_path.glob("*.journal"))) > 3
    j.stored(seqs[9])
    frames = []
    for path in sorted(tmp_path.glob("*.journal")):
        frames += [f for f in read_frames(path.read_bytes()) if f.kind == RECORDS]
    assert min(f.seq for f in frames) <= seqs[10]  # nothing unstored was deleted
    assert {f.seq for f in frames} >= set(seqs[10:])
    j.stored(seqs[-1])
    assert len(list(tmp_path.glob("*.journal"))) == 1  # the segment being written
    j.close()


def test_one_journal_folder_serves_one_gateway(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.recover()
    with pytest.raises(JournalInUse, match="used by another gateway"):
        Journal(tmp_path).recover()
    j.close()
    other = Journal(tmp_path)  # released by close
    other.recover()
    other.close()


def test_requests_wait_until_the_journal_notes_what_was_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unnoted, a stored write is replayed at the next start: a later write that did not go
    # through the journal (a column write of the same times) must not be stored before
    # the mark is, or the replay would put the older value back over it.
    shipped: list[object] = []
    behind = WriteBehind(
        Journal(tmp_path), shipped.append, JournalConfig(dir=tmp_path, linger=0), "x"
    )
    behind.start()
    failing = [True]
    real = Journal.stored

    def stored(self: Journal, seq: int) -> None:
        if failing[0]:
            raise OSError("No space left on device")
        real(self, seq)

    monkeypatch.setattr(Journal, "stored", stored)
    behind.add(recs(1), time.monotonic() + 1)
    with pytest.raises(TStorageUnavailable, match="cannot note stored writes"):
        behind.settle(time.monotonic() + 0.5)
    assert shipped  # stored: only the mark is missing
    failing[0] = False
    behind.settle(time.monotonic() + 3)  # the mark is written again within a second
    behind.close(1)
    assert Journal.unstored(tmp_path) == 0


def test_a_failed_write_is_cut_back_and_the_journal_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = Journal(tmp_path)
    j.recover()
    j.append(recs(1))
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, data[: len(data) // 2]))
    with pytest.raises(OSError, match="short write"):
        j.append(recs(2))  # half a frame reached the file: it is cut away
    monkeypatch.setattr(os, "write", real)
    j.append(recs(3))
    j.close()
    assert [r for _, r in Journal(tmp_path).recover()] == [recs(1), recs(3)]


def test_a_write_that_cannot_be_cut_back_leaves_the_journal_refusing_not_lying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # frames after a partial one would read as damage: no write may be acknowledged after it
    behind = WriteBehind(Journal(tmp_path), lambda records: None, JournalConfig(dir=tmp_path), "x")
    behind.start()
    real_write = os.write

    def broken(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "write", broken)
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    with pytest.raises(TStorageUnavailable, match=r"could not be written.*not stored"):
        behind.add(recs(1), time.monotonic() + 1)
    monkeypatch.setattr(os, "write", real_write)
    with pytest.raises(TStorageUnavailable, match="unusable until the gateway restarts"):
        behind.add(recs(2), time.monotonic() + 1)
    monkeypatch.undo()
    behind.close(1)


@pytest.mark.parametrize("fails", ["write", "fsync"])
def test_a_start_that_cannot_rewrite_the_writes_keeps_the_old_segments_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    """A start rewrites the writes not yet stored into a new segment before it deletes
    the old ones. If the disk refuses (full, failing), the start fails with the error, the
    half-written new segment goes, and the old segments stay as they were: the next start
    finds every write."""
    j = Journal(tmp_path)
    j.recover()
    for c in range(1, 6):
        j.append(recs(c))
    j.stored(2)
    j.close()
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir() if p.is_file())

    def refused(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fails, refused)
    again = Journal(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        again.recover()
    monkeypatch.undo()
    again.close()
    after = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir() if p.is_file())
    assert after == before  # nothing written, nothing deleted
    assert [r for _, r in Journal(tmp_path).recover()] == [recs(3), recs(4), recs(5)]
