"""Cap indexes (a chunk's sorted distinct caps, and newest payload per cap) and the chunk
summaries of a series built from them."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gateway.storage.index import CapIndex
from gateway.storage.summaries import BoxIndex, ChunkCache, SeriesIndex
from gateway.storage.values import UNKNOWN_ACQ, ValueCache

records = st.lists(
    st.tuples(st.integers(-50, 50), st.integers(0, 1000), st.integers(0, 2**32 - 1)), max_size=40
)


@given(st.lists(records, max_size=5))
def test_columns_hold_the_newest_version_of_every_cap(
    batches: list[list[tuple[int, int, int]]],
) -> None:
    idx = CapIndex(payload_size=4)
    plain = CapIndex()
    model: dict[int, tuple[int, int]] = {}
    for batch in batches:
        idx.add_records(
            [c for c, _, _ in batch],
            [a for _, a, _ in batch],
            [struct.pack("<I", v) for *_, v in batch],
        )
        plain.add([c for c, _, _ in batch])
        for cap, acq, v in batch:
            if cap not in model or acq >= model[cap][0]:
                model[cap] = (acq, v)
    assert list(idx.caps) == list(plain.caps) == sorted(model)
    for cap, (_, v) in model.items():
        assert idx.payload(cap) == struct.pack("<I", v)
    assert idx.payload(10_000) is None


@given(records)
def test_records_added_one_at_a_time_match_the_batched_result(
    batch: list[tuple[int, int, int]],
) -> None:
    one_by_one, batched = CapIndex(payload_size=4), CapIndex(payload_size=4)
    for cap, acq, v in batch:
        one_by_one.add_records([cap], [acq], [struct.pack("<I", v)])
    batched.add_records(
        [c for c, _, _ in batch],
        [a for _, a, _ in batch],
        [struct.pack("<I", v) for *_, v in batch],
    )
    assert list(one_by_one.caps) == list(batched.caps)
    n = len(batched)
    one_acqs, batched_acqs = one_by_one.acqs(0, n), batched.acqs(0, n)
    assert one_acqs is not None and batched_acqs is not None
    assert one_acqs.tolist() == batched_acqs.tolist()
    for cap in batched.caps:
        assert one_by_one.payload(int(cap)) == batched.payload(int(cap))


def test_own_writes_replace_at_once_and_the_feed_settles_them() -> None:
    idx = CapIndex(payload_size=1)
    idx.add_records([1, 2], [10, 10], [b"a", b"b"])
    idx.add_records(
        [2, 3], [UNKNOWN_ACQ, UNKNOWN_ACQ], [b"B", b"c"], own=True
    )  # correction + append
    assert [idx.payload(c) for c in (1, 2, 3)] == [b"a", b"B", b"c"]
    idx.add_records([3, 2], [12, 11], [b"c", b"B"])  # the feed brings them with real acqs
    idx.add_records([2], [5], [b"o"])  # an older version never wins
    assert [idx.payload(c) for c in (1, 2, 3)] == [b"a", b"B", b"c"]


def test_a_payload_of_another_size_turns_columns_off() -> None:
    idx = CapIndex(payload_size=8)
    idx.add_records([1], [1], [b"12345678"])
    idx.add_records([2], [2], [b"short"])
    assert not idx.columnar and list(idx.caps) == [1, 2] and idx.payload(1) is None


def test_appends_grow_without_copying_each_time() -> None:
    idx = CapIndex(payload_size=8)
    for i in range(1000):
        idx.add_records([i], [i], [struct.pack("<d", i)])
    assert len(idx) == 1000 and idx.last() == 999 and idx.payload(500) == struct.pack("<d", 500)
    assert idx.nbytes < 1000 * (8 + 8 + 8) * 3


def test_value_cache_keeps_newest_and_stays_bounded() -> None:
    cache = ValueCache(max_entries=2)
    cache.offer((1, 1, 1, 1), 5, b"new")
    cache.offer((1, 1, 1, 1), 4, b"old")
    assert cache.get((1, 1, 1, 1)) == b"new"
    cache.remember_own((1, 1, 1, 1), b"mine")
    assert cache.get((1, 1, 1, 1)) == b"mine"
    cache.offer((1, 1, 1, 1), 5, b"feed")  # same acq as held: the feed's version settles it
    assert cache.get((1, 1, 1, 1)) == b"feed"
    cache.offer((1, 1, 1, 2), 1, b"x")
    cache.offer((1, 1, 1, 3), 1, b"y")
    assert len(cache) == 2 and cache.get((1, 1, 1, 1)) is None


# --- columns of a streamed build (BoxIndex.add_columns / CapIndex.add_arrays) -------------


def _in_memory_box(chunk: int = 3) -> BoxIndex:
    """A box whose series are cut into chunks of ``chunk`` caps, all held (no TStorage)."""

    def no_tstorage(lo: int, hi: int, expect: int) -> CapIndex:
        raise AssertionError("every chunk is held: nothing is read")

    return BoxIndex(
        (0, 0, 0, 0, 0),
        (1, 1, 1, 1, 1),
        lambda box, moid: SeriesIndex(4, np.dtype("<u4"), chunk, ChunkCache(), no_tstorage),
        4,
    )


def _acqs(idx: SeriesIndex) -> list[int]:
    parts = [data.acqs(j0, j1) for data, j0, j1 in idx.segments(0, len(idx))]
    return [int(a) for p in parts if p is not None for a in p]


def _check_summaries(idx: SeriesIndex, held: dict[int, tuple[int, int]]) -> None:
    """Each chunk's summary row agrees with a recount of the records it covers."""
    caps = sorted(held)
    assert len(idx) == len(caps) and idx.first() == (caps[0] if caps else None)
    assert idx.last() == (caps[-1] if caps else None)
    bounds = [*idx.lo.tolist(), 2**63]
    for k in range(idx.chunks):
        mine = [c for c in caps if bounds[k] <= c < bounds[k + 1]]
        row = idx.summary(k)
        assert row.count == len(mine)
        if mine:
            vals = [held[c][1] for c in mine]
            assert (row.first, row.last) == (mine[0], mine[-1])
            assert (row.min, row.max, row.sum) == (min(vals), max(vals), sum(vals))
            assert (row.first_value, row.last_value) == (vals[0], vals[-1])
    for i, c in enumerate(caps):
        assert idx.cap_at(i) == c and idx.position(c) == i


def _columns(
    batch: list[tuple[int, int, int, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(moid, cap, acq, value) records as the columns a streamed build hands over."""
    moid = np.asarray([r[0] for r in batch], dtype=np.int32)
    cap = np.asarray([r[1] for r in batch], dtype=np.int64)
    acq = np.asarray([r[2] for r in batch], dtype=np.int64)
    pay = np.asarray([r[3] for r in batch], dtype="<u4").view(np.uint8).reshape(-1, 4)
    return moid, cap, acq, pay


column_records = st.tuples(
    st.integers(1, 3), st.integers(-30, 60), st.integers(0, 50), st.integers(0, 2**32 - 1)
)


@given(
    st.lists(st.tuples(st.lists(column_records, max_size=30), st.booleans()), max_size=6),
    st.booleans(),
)
def test_streamed_columns_hold_the_newest_version_of_every_cap(
    batches: list[tuple[list[tuple[int, int, int, int]], bool]], one_moid: bool
) -> None:
    """Sorted batches (the fast path), unsorted ones, several moids, caps repeated within
    and across batches: the newest acq wins (the later record for equal acqs)."""
    box = _in_memory_box()
    model: dict[int, dict[int, tuple[int, int]]] = {}
    for batch, in_order in batches:
        if one_moid:
            batch = [(1, c, a, v) for _, c, a, v in batch]
        if in_order:  # as TStorage streams a box: by moid, cap, acq
            batch = sorted(batch, key=lambda r: (r[0], r[1], r[2]))
        if batch:
            box.add_columns(*_columns(batch))
        for moid, cap, acq, v in batch:
            held = model.setdefault(moid, {})
            if cap not in held or acq >= held[cap][0]:
                held[cap] = (acq, v)
    for moid, held in model.items():
        idx = box.series(moid)
        assert list(idx.caps_between(0, len(idx))) == sorted(held)
        assert _acqs(idx) == [held[c][0] for c in sorted(held)]
        assert [idx.payload(c) for c in sorted(held)] == [
            struct.pack("<I", held[c][1]) for c in sorted(held)
        ]
        _check_summaries(idx, held)
        # no chunk grows past twice its size; only the last may hold less than one
        assert (idx.count <= 6).all()


def test_sorted_batches_take_the_fast_path_and_others_fall_back() -> None:
    idx = CapIndex(payload_size=4)
    pay = np.zeros((3, 4), dtype=np.uint8)

    def arrays(caps: list[int], acqs: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.asarray(caps, np.int64), np.asarray(acqs, np.int64), pay[: len(caps)]

    assert idx._append_sorted(*arrays([1, 2, 3], [5, 5, 5]))
    assert idx._append_sorted(*arrays([3, 4, 4], [6, 1, 2]))  # equal caps by acq; 3 again
    assert list(idx.caps) == [1, 2, 3, 4]
    assert list(idx.acqs(0, 4)) == [5, 5, 6, 2]  # type: ignore[arg-type]
    assert not idx._append_sorted(*arrays([2, 5], [9, 9]))  # starts before the last cap
    assert not idx._append_sorted(*arrays([6, 5], [9, 9]))  # not sorted by cap
    assert not idx._append_sorted(*arrays([6, 6], [9, 8]))  # equal caps not sorted by acq
    assert list(idx.caps) == [1, 2, 3, 4]  # fallbacks changed nothing
    idx.add_arrays(*arrays([6, 6, 5], [9, 8, 1]))
    assert list(idx.caps) == [1, 2, 3, 4, 5, 6] and idx.acqs(5, 6)[0] == 9  # type: ignore[index]


def test_a_duplicate_cap_across_batches_keeps_the_newest_acq() -> None:
    box = _in_memory_box()
    box.add_columns(*_columns([(1, 1, 10, 1), (1, 2, 10, 2), (1, 3, 10, 3)]))
    box.add_columns(*_columns([(1, 3, 20, 33), (1, 4, 20, 4)]))  # newer version of 3
    box.add_columns(*_columns([(1, 4, 5, 44), (1, 5, 5, 5)]))  # older version of 4
    idx = box.series(1)
    assert [idx.payload(c) for c in range(1, 6)] == [struct.pack("<I", v) for v in (1, 2, 33, 4, 5)]


def test_growth_in_place_keeps_views_held_by_readers_valid() -> None:
    idx = CapIndex(payload_size=8)
    pays = np.arange(64, dtype="<f8").view(np.uint8).reshape(-1, 8)
    caps = np.arange(64, dtype=np.int64)
    idx.add_arrays(caps[:16], caps[:16], pays[:16])
    before = id(idx._buf)
    idx.add_arrays(caps[16:20], caps[16:20], pays[16:20])
    assert id(idx._buf) == before  # no view held: grown in place
    view, rows = idx.caps, idx.payload_rows(0, 20)
    idx.add_arrays(caps[20:], caps[20:], pays[20:])  # a view is held: copied instead
    assert list(view) == list(range(20)) and rows.reshape(-1).view("<f8")[19] == 19.0
    assert list(idx.caps) == list(range(64))
    assert idx.payload(63) == struct.pack("<d", 63)


@given(st.lists(st.tuples(st.integers(-20, 80), st.integers(0, 2**32 - 1)), max_size=60))
def test_positions_stay_right_as_records_come_one_by_one_while_readers_ask_the_length(
    records: list[tuple[int, int]],
) -> None:
    """Appends move only the series' length in the prefix counts (no copy of every chunk's
    start); records into an earlier chunk move the starts after it; both while the
    prefix counts are held (a reader asked ``len`` after every record)."""
    box = _in_memory_box(chunk=4)
    idx = box.series(1)
    held: dict[int, tuple[int, int]] = {}
    for acq, (cap, value) in enumerate(records):
        _, c, a, p = _columns([(1, cap, acq, value)])
        idx.add(c, a, p)
        held[cap] = (acq, value)
        assert len(idx) == len(held)  # keeps the prefix counts
        assert idx.cap_at(len(held) - 1) == max(held)
    _check_summaries(idx, held)
