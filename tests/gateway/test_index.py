"""Cap indexes: sorted distinct caps, and newest payload per cap when held in memory."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from gateway.storage.index import CapIndex
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
