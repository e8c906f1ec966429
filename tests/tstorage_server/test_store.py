"""One suite for every Store implementation: box queries, order, acq, pieces, threads."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_server.clock import now_tstorage_ns
from tstorage_server.store import LmdbStore, MemoryStore, PutResult, Store
from tstorage_server.store.base import DEFAULT_PIECE_BYTES, DEFAULT_PIECE_RECORDS
from tstorage_server.store.blocks import KeyTuple

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
KMIN = (0, I64_MIN, -(2**31), I64_MIN, I64_MIN)
KMAX = (2**31 - 1, I64_MAX, 2**31 - 1, I64_MAX, I64_MAX)


def make_block(keys: list[tuple[int, int, int, int, int]], payloads: list[bytes]) -> RecordBlock:
    arr = np.array(keys, dtype=KEY_DTYPE)
    offsets = np.zeros(len(payloads) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in payloads], out=offsets[1:])
    return RecordBlock(arr, offsets, b"".join(payloads))


def records(
    store: Store, kmin: KeyTuple = KMIN, kmax: KeyTuple = KMAX, **kw: Any
) -> list[tuple[tuple[int, ...], bytes]]:
    """Every record a query returns, checking each piece's bounds on the way (at most
    ``piece_records`` records and ``piece_bytes`` payload bytes, or a single record)."""
    most_records = kw.get("piece_records", DEFAULT_PIECE_RECORDS)
    most_bytes = kw.get("piece_bytes", DEFAULT_PIECE_BYTES)
    out = []
    with store.snapshot() as snap:
        for block in snap.query(kmin, kmax, **kw):
            payload = bytes(block.payload)
            offsets = block.offsets.tolist()
            assert offsets[0] == 0 and offsets[-1] == len(payload)
            assert 0 < len(block.keys) <= most_records
            assert len(block.keys) == 1 or len(payload) <= most_bytes
            for i, row in enumerate(block.keys.tolist()):
                out.append((tuple(row), payload[offsets[i] : offsets[i + 1]]))
    return out


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else LmdbStore(tmp_path / "data")
    yield s
    s.close()


def test_empty_store_returns_nothing_and_a_current_watermark(store: Store) -> None:
    assert records(store) == []
    w = store.watermark()
    assert abs(w - now_tstorage_ns()) < 10**10
    assert store.watermark() > w


def test_puta_keeps_keys_and_payloads(store: Store) -> None:
    keys = [(0, 12, 2, 10, 10), (1, 12, 3, 10, 11), (0, I64_MIN, -(2**31), I64_MIN, I64_MIN)]
    result = store.put_blocks([make_block(keys, [b"a", b"bb", b""])], assign_acq=False)
    assert result.count == 3
    assert records(store) == sorted(zip(keys, [b"a", b"bb", b""], strict=True))


def test_box_is_half_open_in_every_component(store: Store) -> None:
    keys = [
        (c, m, o, t, a)
        for c in (1, 2)
        for m in (5, 6)
        for o in (7, 8)
        for t in (9, 10)
        for a in (11, 12)
    ]
    store.put_blocks([make_block(keys, [b"x"] * len(keys))], assign_acq=False)
    got = [k for k, _ in records(store, (1, 5, 7, 9, 11), (2, 6, 8, 10, 12))]
    assert got == [(1, 5, 7, 9, 11)]
    got = [k for k, _ in records(store, (2, 6, 8, 10, 12), (3, 7, 9, 11, 13))]
    assert got == [(2, 6, 8, 10, 12)]
    assert records(store, (0, 0, 0, 0, 0), (1, 100, 100, 100, 100)) == []
    assert len(records(store, (1, 5, 7, 9, 11), (3, 7, 9, 11, 13))) == 32


def test_results_ascend_by_key_and_duplicates_keep_insertion_order(store: Store) -> None:
    store.put_blocks(
        [make_block([(5, 1, 1, 1, 1), (1, 1, 1, 1, 1)], [b"first", b"low"])], assign_acq=False
    )
    store.put_blocks(
        [make_block([(5, 1, 1, 1, 1), (3, 0, 0, 0, 0)], [b"second", b"mid"])], assign_acq=False
    )
    store.put_blocks([make_block([(5, 1, 1, 1, 1)], [b"third"])], assign_acq=False)
    assert records(store) == [
        ((1, 1, 1, 1, 1), b"low"),
        ((3, 0, 0, 0, 0), b"mid"),
        ((5, 1, 1, 1, 1), b"first"),
        ((5, 1, 1, 1, 1), b"second"),
        ((5, 1, 1, 1, 1), b"third"),
    ]


def test_put_assigns_unique_increasing_acq_above_the_previous_watermark(store: Store) -> None:
    w0 = store.watermark()
    keys = [(0, 9, 0, 0, -1), (0, 1, 0, 0, -1), (0, 9, 0, 0, -1)]
    result = store.put_blocks([make_block(keys, [b"a", b"b", b"c"])], assign_acq=True)
    assert result.count == 3 and result.acq_max - result.acq_min == 2 and result.acq_min > w0
    got = records(store)
    # acq follows input order: b"a" got the first value, b"c" the last.
    acq = {payload: key[4] for key, payload in got}
    assert (
        acq[b"a"] == result.acq_min
        and acq[b"b"] == result.acq_min + 1
        and acq[b"c"] == result.acq_max
    )
    assert [p for _, p in got] == [b"b", b"a", b"c"]
    assert store.watermark() > result.acq_max
    assert store.max_acq() >= result.acq_max


def test_snapshot_is_isolated_from_later_puts(store: Store) -> None:
    store.put_blocks([make_block([(1, 1, 1, 1, 1)], [b"old"])], assign_acq=False)
    with store.snapshot() as snap:
        store.put_blocks([make_block([(1, 1, 1, 1, 2)], [b"new"])], assign_acq=False)
        seen = [len(b.keys) for b in snap.query(KMIN, KMAX)]
    assert seen == [1]
    assert len(records(store)) == 2


def test_large_results_come_in_bounded_pieces(store: Store) -> None:
    n = 10_000
    keys = np.zeros(n, dtype=KEY_DTYPE)
    keys["cid"] = 7
    keys["mid"] = np.arange(n)[::-1]
    payload = np.arange(n, dtype=np.int64).tobytes()
    block = RecordBlock(keys, np.arange(n + 1, dtype=np.int64) * 8, payload)
    store.put_blocks([block], assign_acq=False)
    with store.snapshot() as snap:
        pieces = list(snap.query(KMIN, KMAX, piece_records=1000))
        assert [len(p.keys) for p in pieces] == [1000] * 10
        mids = np.concatenate([p.keys["mid"] for p in pieces])
        values = np.concatenate([np.frombuffer(bytes(p.payload), dtype=np.int64) for p in pieces])
    assert (mids == np.arange(n)).all()
    assert (values == np.arange(n)[::-1]).all()


def test_variable_payloads_survive_merge_of_overlapping_blocks(store: Store) -> None:
    rng = np.random.default_rng(1)
    expected: list[tuple[tuple[int, ...], bytes]] = []
    for _ in range(5):
        keys = [(1, int(m), 0, 0, 0) for m in rng.integers(0, 50, 40)]
        payloads = [
            bytes(rng.integers(0, 256, int(n), dtype=np.uint8)) for n in rng.integers(0, 600, 40)
        ]
        store.put_blocks([make_block(keys, payloads)], assign_acq=False)
        expected.extend(zip(keys, payloads, strict=True))
    expected.sort(key=lambda kp: kp[0])  # stable: equal keys stay in insertion order
    assert records(store) == expected
    assert records(store, (1, 10, 0, 0, 0), (2, 20, 1, 1, 1)) == [
        kp for kp in expected if 10 <= kp[0][1] < 20
    ]


def test_a_query_picking_equal_lengths_out_of_a_mixed_block(store: Store) -> None:
    # Lengths 1, 2, 3, 2, 2 total 2 * 5, yet records 1 and 3 do not sit at rows of 2 bytes.
    keys = [(1, i, i % 2, 0, 0) for i in range(5)]
    payloads = [b"a", b"bb", b"ccc", b"dd", b"ee"]
    store.put_blocks([make_block(keys, payloads)], assign_acq=False)
    assert records(store, (1, 0, 1, 0, 0), (2, 9, 2, 1, 1)) == [
        ((1, 1, 1, 0, 0), b"bb"),
        ((1, 3, 1, 0, 0), b"dd"),
    ]
    assert records(store, (1, 0, 0, 0, 0), (2, 9, 1, 1, 1)) == [
        ((1, 0, 0, 0, 0), b"a"),
        ((1, 2, 0, 0, 0), b"ccc"),
        ((1, 4, 0, 0, 0), b"ee"),
    ]


def test_blocks_of_one_request_are_stored_together(store: Store) -> None:
    a = make_block([(2, 0, 0, 0, 0)], [b"a"])
    b = make_block([(1, 0, 0, 0, 0)], [b"b"])
    assert store.put_blocks([a, b], assign_acq=False).count == 2
    assert [p for _, p in records(store)] == [b"b", b"a"]
    assert store.put_blocks([], assign_acq=True).count == 0


def test_concurrent_writers_lose_nothing_and_share_no_acq(store: Store) -> None:
    def writer(cid: int) -> None:
        for i in range(20):
            keys = np.zeros(50, dtype=KEY_DTYPE)
            keys["cid"] = cid
            keys["mid"] = i * 50 + np.arange(50)
            store.put_blocks(
                [RecordBlock(keys, np.arange(51, dtype=np.int64) * 4, bytes(200))], assign_acq=True
            )

    threads = [threading.Thread(target=writer, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = records(store)
    assert len(got) == 8 * 20 * 50
    acqs = [k[4] for k, _ in got]
    assert len(set(acqs)) == len(acqs)
    for cid in range(8):
        assert sorted(k[1] for k, _ in got if k[0] == cid) == list(range(1000))


def test_lmdb_store_restores_records_and_clock_on_reopen(tmp_path: Path) -> None:
    s = LmdbStore(tmp_path)
    r = s.put_blocks([make_block([(1, 2, 3, 4, 0)], [b"kept"])], assign_acq=True)
    s.put_blocks([make_block([(1, 2, 3, 5, 77)], [b"puta"])], assign_acq=False)
    s.close()
    s = LmdbStore(tmp_path)
    try:
        assert records(s) == [((1, 2, 3, 4, r.acq_min), b"kept"), ((1, 2, 3, 5, 77), b"puta")]
        assert s.max_acq() >= r.acq_max
        r2 = s.put_blocks([make_block([(1, 2, 3, 4, 0)], [b"again"])], assign_acq=True)
        assert r2.acq_min > r.acq_max
    finally:
        s.close()


def test_lmdb_data_dir_is_exclusive(tmp_path: Path) -> None:
    from tstorage_server.store import DataDirInUse

    s = LmdbStore(tmp_path)
    try:
        with pytest.raises(DataDirInUse):
            LmdbStore(tmp_path)
    finally:
        s.close()
    LmdbStore(tmp_path).close()


def test_concat_keeps_payload_boundaries() -> None:
    a = make_block([(1, 0, 0, 0, 0)], [b"xy"])
    b = make_block([(2, 0, 0, 0, 0), (3, 0, 0, 0, 0)], [b"", b"zzz"])
    c = RecordBlock.concat([a, b])
    assert c.offsets.tolist() == [0, 2, 2, 5] and bytes(c.payload) == b"xyzzz"


def test_compaction_merges_small_blocks_and_changes_no_result(store: Store, tmp_path: Path) -> None:
    from tstorage_server.store.base import COMPACT_TRIGGER, BlockStore

    assert isinstance(store, BlockStore)
    rng = np.random.default_rng(7)
    # Fewer small blocks than the trigger, so no background compaction races this test.
    for i in range(COMPACT_TRIGGER - 3):
        keys = [(1, int(m), 0, 0, 5) for m in rng.integers(0, 10, 3)]
        store.put_blocks(
            [make_block(keys, [b"%d-%d" % (i, j) for j in range(3)])], assign_acq=False
        )
    store.put_blocks([make_block([(2, 0, 0, 0, 0)] * 5000, [b"big"] * 5000)], assign_acq=False)
    store.put_blocks([make_block([(1, 3, 0, 0, 5)], [b"after the big one"])], assign_acq=False)
    before = records(store)
    box = records(store, (1, 2, 0, 0, 0), (2, 5, 1, 1, 6))
    with store.snapshot() as old:
        blocks_before = store.block_count
        removed = store.compact()
        assert removed == COMPACT_TRIGGER - 4  # one run before the big block; the last stands alone
        assert store.block_count == blocks_before - removed
        assert sum(len(b.keys) for b in old.query(KMIN, KMAX)) == len(before)  # old view intact
    assert records(store) == before
    assert records(store, (1, 2, 0, 0, 0), (2, 5, 1, 1, 6)) == box
    assert store.compact() == 0


def test_many_small_puts_are_compacted_in_the_background(store: Store) -> None:
    import time as _time

    from tstorage_server.store.base import COMPACT_TRIGGER, BlockStore

    assert isinstance(store, BlockStore)
    for i in range(COMPACT_TRIGGER * 3):
        store.put_blocks([make_block([(1, i, 0, 0, 0)], [b"x"])], assign_acq=True)
    deadline = _time.monotonic() + 10
    while store.block_count >= COMPACT_TRIGGER and _time.monotonic() < deadline:
        _time.sleep(0.05)
    assert store.block_count < COMPACT_TRIGGER
    got = records(store)
    assert [k[1] for k, _ in got] == list(range(COMPACT_TRIGGER * 3))
    assert len({k[4] for k, _ in got}) == len(got)


def test_compaction_merges_large_payloads_only_into_bounded_blocks(tmp_path: Path) -> None:
    """Few records of large payloads (pages a client rewrites, 300 KB each) are merged into
    blocks of at most COMPACT_MAX_BYTES, and blocks of SMALL_BLOCK_BYTES or more never: a
    merge into a block of hundreds of MB held the store's readers up for seconds. Blocks
    found on disk (their sizes not kept) learn them at the first compaction."""
    from tstorage_server.store.base import (
        COMPACT_MAX_BYTES,
        COMPACT_TRIGGER,
        SMALL_BLOCK_BYTES,
        BlockStore,
    )

    page = 300 * 1024
    s = LmdbStore(tmp_path)
    try:
        assert isinstance(s, BlockStore)
        for i in range(COMPACT_TRIGGER - 2):  # below the trigger: no background compaction
            s.put_blocks([make_block([(1, 1, 0, i, 0)], [bytes([i]) * page])], assign_acq=False)
        big = bytes(SMALL_BLOCK_BYTES)
        s.put_blocks([make_block([(1, 1, 0, 100, 0)], [big])], assign_acq=False)
        s.put_blocks([make_block([(1, 1, 0, 101, 0)], [big])], assign_acq=False)
        before = records(s)
        s.close()
        s = LmdbStore(tmp_path)  # sizes not known: learned while compacting
        assert s.compact() > 0
        sizes = [m.nbytes for m in s._index.metas]  # type: ignore[attr-defined]
        assert max(sizes) <= COMPACT_MAX_BYTES, sizes
        # the pages in as few blocks as the bound allows; the large ones stand alone
        per_block = COMPACT_MAX_BYTES // page
        assert s.block_count == -(-(COMPACT_TRIGGER - 2) // per_block) + 2
        assert records(s) == before
        assert s.compact() == 0
    finally:
        s.close()


def test_lmdb_compaction_survives_reopen(tmp_path: Path) -> None:
    s = LmdbStore(tmp_path)
    for i in range(10):
        s.put_blocks(
            [make_block([(1, 9 - i, 0, 0, 0), (1, 5, 0, 0, 0)], [b"a%d" % i, b"b%d" % i])],
            assign_acq=False,
        )
    before = records(s)
    assert s.compact() == 9
    s.close()
    s = LmdbStore(tmp_path)
    try:
        assert s.block_count == 1
        assert records(s) == before
    finally:
        s.close()


@pytest.mark.parametrize("seed", range(6))
def test_windowed_merge_of_overlapping_blocks_matches_a_plain_sort(store: Store, seed: int) -> None:
    rng = np.random.default_rng(seed)
    inserted: list[tuple[tuple[int, ...], bytes]] = []
    for b in range(int(rng.integers(2, 6))):
        n = int(rng.integers(1, 60))
        keys = [tuple(int(x) for x in rng.integers(0, 4, 5)) for _ in range(n)]
        payloads = [b"%d/%d/%s" % (b, i, b"x" * int(rng.integers(0, 5))) for i in range(n)]
        store.put_blocks([make_block(keys, payloads)], assign_acq=False)  # type: ignore[arg-type]
        inserted.extend(zip(keys, payloads, strict=True))
    for kmin, kmax in [(KMIN, KMAX), ((1, 0, 1, 0, 0), (3, 3, 4, 4, 3))]:
        expected = sorted(
            (
                kp
                for kp in inserted
                if all(lo <= x < hi for lo, x, hi in zip(kmin, kp[0], kmax, strict=True))
            ),
            key=lambda kp: kp[0],
        )  # stable: equal keys in insertion order
        for piece in (1, 3, 7, 1000):
            assert records(store, kmin, kmax, piece_records=piece) == expected


def test_lmdb_store_sync_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync must be one of"):
        LmdbStore(tmp_path / "a", sync="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 1"):
        LmdbStore(tmp_path / "b", sync="interval", sync_interval=1.5)


def test_lmdb_store_interval_mode_keeps_records_across_reopen(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "d", sync="interval", sync_interval=0.05)
    block = make_block([(1, 2, 3, 4, 0)], [b"x" * 8])
    assert store.put_blocks([block], assign_acq=True).count == 1
    time.sleep(0.2)  # the syncer ran a few times meanwhile
    store.close()
    again = LmdbStore(tmp_path / "d")
    got = records(again)
    again.close()
    assert [(k[:4], p) for k, p in got] == [((1, 2, 3, 4), b"x" * 8)]


def test_lmdb_store_keeps_a_big_block_in_bounded_values(tmp_path: Path) -> None:
    """A block of more than ``segment_records`` records is stored as values of at most that
    many records (a narrow GET reads only those it needs); blocks stored whole before, by a
    store with a larger setting, read the same; compaction leaves no segment behind."""
    import lmdb

    keys = [(1, 1, 1, i // 3, i) for i in range(1000)]  # equal caps across segment ends
    payloads = [b"p%d" % i * (i % 4) for i in range(1000)]
    whole = LmdbStore(tmp_path, segment_records=10**6)
    whole.put_blocks([make_block(keys, payloads)], assign_acq=False)
    whole.close()
    store = LmdbStore(tmp_path, segment_records=64)
    try:
        store.put_blocks([make_block(keys, payloads)], assign_acq=False)
        for lo, hi in [(0, 1), (20, 22), (63, 130), (300, 334), (332, 400)]:
            box = ((1, 1, 1, lo, 0), (2, 2, 2, hi, 10**6))
            expected = [(k, p) for k, p in zip(keys, payloads, strict=True) if lo <= k[3] < hi]
            expected = sorted(expected * 2, key=lambda r: r[0])
            assert records(store, *box, piece_records=7) == expected
        before = records(store)
        for i in range(40):  # small blocks: compaction merges all into a segmented block
            store.put_blocks([make_block([(2, 0, 0, i, 0)], [b"x"])], assign_acq=False)
        while store.compact():
            pass
        assert records(store)[:2000] == before
        assert len(records(store)) == 2040
    finally:
        store.close()
    env = lmdb.open(str(tmp_path / "tstorage.lmdb"), max_dbs=4, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            blocks = env.open_db(b"blocks", txn=txn, create=False)
            index = env.open_db(b"index", txn=txn, create=False)
            sizes = [(k[8:9], len(v)) for k, v in txn.cursor(db=blocks)]
            ids = {int.from_bytes(k[:8], "big") for k, _ in txn.cursor(db=blocks)}
            indexed = {int.from_bytes(k, "big") for k, _ in txn.cursor(db=index)}
    finally:
        env.close()
    assert max(n for kind, n in sizes if kind in (b"K", b"k")) == 64 * KEY_DTYPE.itemsize
    assert ids == indexed  # the merged blocks left no part behind
    with pytest.raises(ValueError, match="segment_records must be at least 1"):
        LmdbStore(tmp_path / "other", segment_records=0)


def test_try_put_commits_at_once_only_without_fsync_and_with_the_commit_lock_free(
    tmp_path: Path,
) -> None:
    one = make_block([(1, 2, 3, 4, 0)], [b"x" * 8])
    durable = LmdbStore(tmp_path / "commit")  # sync="commit": every commit waits for fsync
    try:
        assert durable.try_put_blocks([one], assign_acq=True) is None
        assert records(durable) == []
    finally:
        durable.close()
    store = LmdbStore(tmp_path / "interval", sync="interval")
    try:
        got = store.try_put_blocks([one], assign_acq=True)
        assert got is not None and got.count == 1 and got.acq_min == got.acq_max
        assert [k for k, _ in records(store)] == [(1, 2, 3, 4, got.acq_min)]
        # A compaction (or another commit) holds the commit lock: nothing is queued or
        # stored, and a put_blocks that may wait stores the records once it is free.
        store._commit_lock.acquire()
        try:
            assert (
                store.try_put_blocks([make_block([(1, 2, 3, 5, 0)], [b"y"])], assign_acq=True)
                is None
            )
            assert len(records(store)) == 1
            waiting = threading.Thread(
                target=store.put_blocks,
                args=([make_block([(1, 2, 3, 6, 0)], [b"z"])],),
                kwargs={"assign_acq": True},
            )
            waiting.start()
            time.sleep(0.1)
            assert waiting.is_alive() and len(records(store)) == 1
        finally:
            store._commit_lock.release()
        waiting.join(5)
        assert [(k[3], p) for k, p in records(store)] == [(4, b"x" * 8), (6, b"z")]
    finally:
        store.close()
    again = LmdbStore(tmp_path / "interval")
    try:
        assert [(k[3], p) for k, p in records(again)] == [(4, b"x" * 8), (6, b"z")]
        # Another PUT waits for the commit lock (it may be big): it is left to its own
        # thread, and these records too.
        queued = again._pending([make_block([(1, 2, 3, 7, 0)], [b"q"])], True)
        assert not isinstance(queued, PutResult)
        again._queue.append(queued)
        assert (
            again.try_put_blocks([make_block([(1, 2, 3, 8, 0)], [b"w"])], assign_acq=True) is None
        )
        assert len(records(again)) == 2
        again.put_blocks([make_block([(1, 2, 3, 8, 0)], [b"w"])], assign_acq=True)
        assert [p for _, p in records(again)] == [b"x" * 8, b"z", b"q", b"w"]
    finally:
        again.close()


def test_many_one_record_blocks_read_back_in_order_inside_the_box(store: Store) -> None:
    from tstorage_server.store.base import COMPACT_TRIGGER

    # one-record PUTs (each its own block, none overlapping the next; fewer than the
    # compaction trigger), a block of many records among them, and a box that leaves
    # some of each out in every way
    written = []
    for i in range(COMPACT_TRIGGER - 2):
        if i == 10:
            many = [(1, 5, 0, 1000 + j, 0) for j in range(200)]
            store.put_blocks([make_block(many, [b"m%d" % j for j in range(200)])], assign_acq=True)
        got = store.put_blocks(
            [make_block([(1, 5 + i % 2, 0, i, 0)], [b"v" * (i % 3) + b"%d" % i])],
            assign_acq=True,
        )
        written.append(got.acq_min)
    everything = records(store)
    assert len(everything) == COMPACT_TRIGGER - 2 + 200
    assert [k for k, _ in everything] == sorted(k for k, _ in everything)
    kmin = (1, 5, 0, 3, written[4])
    kmax = (2, 7, 1, 1100, written[-3])
    inside = [
        (k, p)
        for k, p in everything
        if all(lo <= x < hi for lo, x, hi in zip(kmin, k, kmax, strict=True))
    ]
    assert 10 < len(inside) < len(everything)
    for piece in (1, 3, 1000):
        assert records(store, kmin, kmax, piece_records=piece) == inside
    assert records(store, kmin, kmax, piece_bytes=4) == inside


def test_compaction_keeps_a_block_per_cid_so_later_appends_stay_apart(store: Store) -> None:
    from tstorage_server.store.base import COMPACT_TRIGGER, BlockSnapshot, BlockStore

    assert isinstance(store, BlockStore)
    # a writer's one-record appends under cid 1 and, now and then, a record under another
    # cid (as the gateway's summaries and heads), committed in turn; fewer blocks than the
    # trigger, so no background compaction races this test
    for i in range(COMPACT_TRIGGER - 5):
        store.put_blocks([make_block([(1, 5, 1, i, 0)], [b"a%d" % i])], assign_acq=True)
        if i % 8 == 0:
            store.put_blocks([make_block([(900, 5, 1, -7, 0)], [b"h%d" % i])], assign_acq=True)
    blocks = store.block_count
    before = records(store)
    assert store.compact() == blocks - 2
    assert store.block_count == 2  # one per cid, not one spanning both
    assert records(store) == before
    # a later append overlaps no stored block: a GET reads it after them, without a merge
    store.put_blocks([make_block([(1, 5, 1, 10**6, 0)], [b"later"])], assign_acq=True)
    with store.snapshot() as snap:
        assert isinstance(snap, BlockSnapshot)
        spans = sorted((m.first, m.last) for m in snap._metas)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    after = records(store)
    assert after == [
        *before[: COMPACT_TRIGGER - 5],
        after[COMPACT_TRIGGER - 5],
        *before[COMPACT_TRIGGER - 5 :],
    ]
    assert after[COMPACT_TRIGGER - 5][1] == b"later"


def test_a_later_compaction_does_not_merge_the_blocks_of_a_cid_again(store: Store) -> None:
    from tstorage_server.store.base import BlockStore

    assert isinstance(store, BlockStore)
    for i in range(12):  # one-record blocks of two cids, committed in turn
        cid = 1 if i % 2 else 900
        store.put_blocks([make_block([(cid, 5, 1, i, 0)], [b"%d" % i])], assign_acq=True)
    store.compact()
    assert store.block_count == 2
    # a large block after them: the two per-cid blocks are a run of their own now
    big = [(500, 5, 1, i, 0) for i in range(5000)]
    store.put_blocks([make_block(big, [b"b"] * len(big))], assign_acq=True)
    before = records(store)
    store.compact()
    with store.snapshot() as snap:
        spans = sorted((m.first[0], m.last[0]) for m in snap._metas)  # type: ignore[attr-defined]
    assert spans == [(1, 1), (500, 500), (900, 900)]  # no block spans two cids
    assert records(store) == before


def test_compaction_keeps_one_block_when_cids_are_many(store: Store) -> None:
    from tstorage_server.store.base import BlockStore

    assert isinstance(store, BlockStore)
    for i in range(8):  # 8 blocks, 8 cids: a block per cid would remove nothing
        store.put_blocks([make_block([(i, 5, 1, i, 0)], [b"%d" % i])], assign_acq=True)
    before = records(store)
    assert store.compact() == 7 and store.block_count == 1
    assert records(store) == before


def test_lmdb_compaction_into_a_block_per_cid_survives_reopen(tmp_path: Path) -> None:
    s = LmdbStore(tmp_path)
    for i in range(12):
        s.put_blocks([make_block([(1 + i % 2, 5, 1, i, 0)], [b"%d" % i])], assign_acq=True)
    before = records(s)
    assert s.compact() == 10
    s.close()
    s = LmdbStore(tmp_path)
    try:
        assert s.block_count == 2
        assert records(s) == before
    finally:
        s.close()


@pytest.mark.parametrize("segment", [1, 2, 3, 8])
@pytest.mark.parametrize("piece", [1, 2, 5, 64])
def test_equal_keys_across_segment_ends_of_overlapping_blocks_keep_their_order(
    tmp_path: Path, segment: int, piece: int
) -> None:
    """Three overlapping blocks in segments of a few records, every key repeated within and
    across blocks: a GET returns them in key order, equal keys in the order they were
    stored (block by block, then within a block), each once, in bounded pieces."""
    rng = np.random.default_rng(segment * 100 + piece)
    store = LmdbStore(tmp_path, segment_records=segment)
    stored: list[tuple[tuple[int, ...], bytes]] = []
    try:
        for b in range(3):
            keys = sorted((1, 1, 1, int(c), 7) for c in rng.integers(0, 6, 40))
            payloads = [b"b%d-%d" % (b, i) for i in range(len(keys))]
            store.put_blocks([make_block(keys, payloads)], assign_acq=False)
            stored += list(zip(keys, payloads, strict=True))
        expected = sorted(stored, key=lambda r: r[0])  # stable: storing order among equals
        assert records(store, piece_records=piece) == expected
        box = ((1, 1, 1, 2, 0), (2, 2, 2, 4, 10))
        inside = [r for r in expected if 2 <= r[0][3] < 4]
        assert records(store, *box, piece_records=piece) == inside
    finally:
        store.close()
