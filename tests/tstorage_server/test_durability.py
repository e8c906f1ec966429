"""Durability: what a PUT/PUTA acknowledged survives ``kill -9``; nothing is half-applied.

Both durability settings are run: ``--sync commit`` (fsync before the answer) and
``--sync interval`` (answer once the OS has the write): a killed process loses nothing the
OS holds, so both must keep every acknowledged record.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests._servers import spawn

from .conftest import server_argv
from .wire import KEY_MAX, KEY_MIN, Raw, put_request

pytestmark = pytest.mark.integration

SYNC_MODES = pytest.mark.parametrize("sync", ["commit", "interval"])


def synced_argv(data_dir: Path, sync: str) -> list[str]:
    # the longest interval: a kill -9 comes well before the next fsync
    return [*server_argv(data_dir), "--sync", sync, "--sync-interval", "1"]


def stored_after_restart(data_dir: Path, sync: str) -> list[Any]:
    """Every record the server finds in ``data_dir`` when started again (then stopped)."""
    proc = spawn(synced_argv(data_dir, sync))
    try:
        with Raw(proc.port) as c:
            status, got, _ = c.get()
        assert status == 0
        return list(got)
    finally:
        proc.stop()


@SYNC_MODES
def test_acknowledged_records_and_acq_clock_survive_kill9(data_dir: Path, sync: str) -> None:
    proc = spawn(synced_argv(data_dir, sync))
    try:
        with Raw(proc.port) as c:
            put_records = [((1, i, 0, 100, 0), b"put-%d" % i) for i in range(100)]
            status, acq_min, acq_max = c.put(put_records)
            assert status == 0 and acq_max - acq_min == 99
            puta_records = [((2, i, 7, 100, 5000 + i), b"puta-%d" % i) for i in range(100)]
            assert c.put(puta_records, with_acq=True)[0] == 0
            before = c.get()[1]
            assert len(before) == 200
    finally:
        proc.kill()
    proc = spawn(synced_argv(data_dir, sync))
    try:
        with Raw(proc.port) as c:
            status, after, _ = c.get()
            assert status == 0 and after == before
            assert [k[4] for k, _ in after[:100]] == list(range(acq_min, acq_max + 1))
            # The clock restarts above every acq assigned before the crash.
            status, new_min, _ = c.put([((1, 0, 0, 100, 0), b"new")])
            assert status == 0 and new_min > acq_max
            assert c.get_acq(KEY_MIN, KEY_MAX)[1] > new_min
    finally:
        proc.stop()


def test_kill9_in_the_middle_of_a_put_stream_stores_none_of_it(data_dir: Path) -> None:
    proc = spawn(server_argv(data_dir))
    request = put_request([((3, i, 0, 0, 1), b"z" * 64) for i in range(20_000)], with_acq=True)
    try:
        with Raw(proc.port) as c:
            assert c.put([((3, -1, 0, 0, 1), b"before")], with_acq=True)[0] == 0
        c = Raw(proc.port)
        c.send(request[: len(request) - 1000])
        time.sleep(0.3)
    finally:
        proc.kill()
        c.close()
    proc = spawn(server_argv(data_dir))
    try:
        with Raw(proc.port) as c:
            assert c.get()[1] == [((3, -1, 0, 0, 1), b"before")]
    finally:
        proc.stop()


@SYNC_MODES
def test_kill9_during_concurrent_commits_leaves_whole_requests_only(
    data_dir: Path, sync: str
) -> None:
    per_request = 500
    proc = spawn(synced_argv(data_dir, sync))
    acknowledged: list[tuple[int, int]] = []
    stop = threading.Event()

    def writer(cid: int) -> None:
        try:
            with Raw(proc.port, timeout=10) as c:
                req = 0
                while not stop.is_set():
                    records = [
                        ((cid, req * per_request + i, 0, 0, 0), b"p" * 32)
                        for i in range(per_request)
                    ]
                    if c.put(records)[0] != 0:
                        return
                    acknowledged.append((cid, req))
                    req += 1
        except (OSError, EOFError):
            return  # the server was killed under us

    threads = [threading.Thread(target=writer, args=(cid,)) for cid in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    proc.kill()
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) > 4
    got = stored_after_restart(data_dir, sync)
    per_req = Counter((k[0], k[1] // per_request) for k, _ in got)
    assert set(per_req.values()) == {per_request}, "a request was stored in part"
    assert set(acknowledged) <= set(per_req), "an acknowledged request was lost"
    assert all(p == b"p" * 32 for _, p in got)


@SYNC_MODES
def test_one_record_puts_answered_just_before_kill9_are_all_kept(data_dir: Path, sync: str) -> None:
    # One record per PUT: with --sync interval these are committed on the server's event
    # loop (no worker thread); each answer must still mean "in the store".
    proc = spawn(synced_argv(data_dir, sync))
    answered = []
    try:
        with Raw(proc.port) as c:
            for i in range(200):
                status, acq_min, acq_max = c.put([((4, i, 0, 100 + i, 0), b"one-%d" % i)])
                assert status == 0 and acq_min == acq_max
                answered.append(((4, i, 0, 100 + i, acq_min), b"one-%d" % i))
    finally:
        proc.kill()
    assert stored_after_restart(data_dir, sync) == answered


@SYNC_MODES
def test_a_put_larger_than_the_inline_commit_answered_before_kill9_is_kept(
    data_dir: Path, sync: str
) -> None:
    # Over INLINE_COMMIT_BYTES (64 KiB) a PUT is committed by a worker thread in both modes:
    # its answer too means "in the store".
    records = [((5, i, 0, 100 + i, 0), b"%040d" % i) for i in range(3000)]  # ~200 KB
    proc = spawn(synced_argv(data_dir, sync))
    try:
        with Raw(proc.port) as c:
            status, acq_min, acq_max = c.put(records)
            assert status == 0 and acq_max - acq_min == len(records) - 1
    finally:
        proc.kill()
    got = stored_after_restart(data_dir, sync)
    assert [(k[:4], p) for k, p in got] == [(k[:4], p) for k, p in records]
