"""Blocks of a handful of records (a small PUT) take per-record Python paths in the store
and the dispatcher (``FEW_RECORDS``); they must give what the vectorised paths give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tstorage_client import block as client_block
from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_server import dispatch
from tstorage_server.store import LmdbStore
from tstorage_server.store import base as store_base
from tstorage_server.store import blocks as B
from tstorage_server.store import lmdb as store_lmdb

I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)

# Components near the maximum, so that the rule dropping maximal keys is exercised.
key_st = st.tuples(
    st.one_of(st.integers(0, 5), st.just(I32[1])),
    st.one_of(st.integers(*I64), st.just(I64[1])),
    st.one_of(st.integers(*I32), st.just(I32[1])),
    st.one_of(st.integers(*I64), st.just(I64[1])),
    st.one_of(st.integers(*I64), st.just(I64[1])),
)
block_st = st.lists(
    st.tuples(key_st, st.binary(max_size=12)), min_size=1, max_size=client_block.FEW_RECORDS + 3
).map(lambda recs: RecordBlock.from_records([k for k, _ in recs], [p for _, p in recs]))


def vectorised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_block, "FEW_RECORDS", 0)


@given(block=block_st)
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_block_meta_of_few_records_matches_the_vectorised_one(block: RecordBlock) -> None:
    fast = store_base._meta_for(7, block)
    with pytest.MonkeyPatch.context() as mp:
        vectorised(mp)
        general = store_base._meta_for(7, block)
    assert fast.count == general.count == len(block)
    assert fast.mins.dtype == general.mins.dtype == np.int64
    assert fast.mins.tolist() == general.mins.tolist()
    assert fast.maxs.tolist() == general.maxs.tolist()
    assert fast.first == general.first and fast.last == general.last
    assert all(type(v) is int for v in (*fast.first, *fast.last))


@given(block=block_st, with_acq=st.booleans())
@settings(max_examples=200)
def test_storable_drops_the_same_records_on_both_paths(block: RecordBlock, with_acq: bool) -> None:
    fast = dispatch.storable(block, with_acq)
    with pytest.MonkeyPatch.context() as mp:
        vectorised(mp)
        general = dispatch.storable(block, with_acq)
    assert fast.to_records() == general.to_records()
    limits = [I32[1], I64[1], I32[1], I64[1], I64[1]][: 5 if with_acq else 4]
    kept = [
        (key, payload)
        for key, payload in block.to_records()
        if all(v != m for v, m in zip(dispatch.as_tuple(key), limits, strict=False))
    ]
    assert fast.to_records() == kept


@pytest.mark.parametrize(
    ("lengths", "size"),
    [
        ([3], 3),
        ([0], 0),
        ([2, 2], 2),
        ([2, 3], None),
        ([4] * 16, 4),
        ([4] * 15 + [5], None),
        ([1, 0, 2], None),
        ([0, 0], 0),
        ([4] * 17, 4),
        ([4] * 16 + [5], None),
    ],
)
def test_fixed_payload_size_of_small_blocks(lengths: list[int], size: int | None) -> None:
    keys = [(0, i, 0, 0, 0) for i in range(len(lengths))]
    block = RecordBlock.from_records(keys, [b"x" * n for n in lengths])
    assert block.fixed_payload_size() == size


def test_index_row_packed_by_struct_is_the_numpy_row(tmp_path: Path) -> None:
    """The store writes its index rows with ``struct``; they must read back as
    ``META_DTYPE`` rows exactly (a reopened store rebuilds its index from them)."""
    keys = np.array([(1, -5, 2, 2**62, -(2**63)), (3, 2**63 - 1, -4, 5, 6)], dtype=KEY_DTYPE)
    block = RecordBlock(keys, np.array([0, 1, 3], dtype=np.int64), b"abc")
    meta = store_base._meta_for(9, block)
    meta.uniform = -1
    row = np.zeros(1, dtype=store_lmdb.META_DTYPE)
    row["count"] = meta.count
    row["uniform"] = meta.uniform
    row["mins"] = meta.mins
    row["maxs"] = meta.maxs
    row["first"] = meta.first
    row["last"] = meta.last
    packed = store_lmdb.META_ROW.pack(
        meta.count, meta.uniform, *meta.mins.tolist(), *meta.maxs.tolist(), *meta.first, *meta.last
    )
    assert packed == row.tobytes()

    store = LmdbStore(tmp_path / "data")
    store.put_blocks([block], assign_acq=False)
    store.close()
    reopened = LmdbStore(tmp_path / "data")
    try:
        (restored,) = reopened._index.metas
        assert restored.count == 2 and restored.uniform == -1
        assert restored.mins.tolist() == meta.mins.tolist()
        assert restored.maxs.tolist() == meta.maxs.tolist()
        assert (restored.first, restored.last) == (meta.first, meta.last)
    finally:
        reopened.close()


tie_keys_st = st.lists(
    st.tuples(*[st.integers(0, 2)] * 5), min_size=0, max_size=client_block.FEW_RECORDS + 3
).map(lambda rows: np.array(rows, dtype=KEY_DTYPE) if rows else np.empty(0, dtype=KEY_DTYPE))


@given(keys=tie_keys_st, with_acq=st.booleans())
@settings(max_examples=300)
def test_is_sorted_of_few_keys_matches_the_vectorised_one(keys: np.ndarray, with_acq: bool) -> None:
    fast = B.is_sorted(keys, with_acq=with_acq)
    with pytest.MonkeyPatch.context() as mp:
        vectorised(mp)
        general = B.is_sorted(keys, with_acq=with_acq)
    rows = [row if with_acq else row[:4] for row in keys.tolist()]
    assert fast == general == (rows == sorted(rows))
