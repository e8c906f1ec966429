"""Property test: every Store behaves like a sorted list of (key, arrival) records."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tstorage_server.store import LmdbStore, MemoryStore, Store
from tstorage_server.store.blocks import KeyTuple

from .test_store import make_block, records

small = st.integers(min_value=0, max_value=3)
key = st.tuples(small, small, small, small, small)
record = st.tuples(key, st.binary(max_size=6))
put_op = st.tuples(st.just("put"), st.booleans(), st.lists(record, max_size=8))
box_op = st.tuples(st.just("get"), key, key)
compact_op = st.tuples(st.just("compact"))
ops = st.lists(st.one_of(put_op, box_op, compact_op), min_size=1, max_size=25)


def check(store: Store, program: list[tuple[Any, ...]]) -> None:
    model: list[tuple[tuple[int, ...], bytes]] = []  # arrival order
    for op in program:
        if op[0] == "put":
            _, assign, recs = op
            result = store.put_blocks(
                [make_block([k for k, _ in recs], [p for _, p in recs])], assign_acq=assign
            )
            if assign and recs:
                acqs = range(result.acq_min, result.acq_max + 1)
                recs = [((*k[:4], a), p) for (k, p), a in zip(recs, acqs, strict=True)]
            model.extend(recs)
        elif op[0] == "get":
            _, lo, hi = op
            expected = sorted(
                (r for r in model if all(a <= x < b for a, x, b in zip(lo, r[0], hi, strict=True))),
                key=lambda r: r[0],
            )
            assert records(store, lo, hi, piece_records=3) == expected
        else:
            store.compact()  # type: ignore[attr-defined]
    assert records(store) == sorted(model, key=lambda r: r[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_memory_store_matches_the_model(program: list[tuple[Any, ...]]) -> None:
    store = MemoryStore()
    try:
        check(store, program)
    finally:
        store.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_lmdb_store_matches_the_model(program: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = LmdbStore(d)
        try:
            check(store, program)
        finally:
            store.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_lmdb_store_in_segments_matches_the_model(program: list[tuple[Any, ...]]) -> None:
    """Blocks cut into segments of 2 records (equal keys across segment ends)."""
    with tempfile.TemporaryDirectory() as d:
        store = LmdbStore(d, segment_records=2)
        try:
            check(store, program)
        finally:
            store.close()


def _bound(draw: Any, size: int) -> tuple[int, int]:
    """A component's half-open range: often one value, sometimes empty or everything."""
    lo = draw(st.integers(min_value=-1, max_value=size))
    kind = draw(st.sampled_from(["one", "span", "all", "empty"]))
    if kind == "one":
        return lo, lo + 1
    if kind == "span":
        return lo, lo + draw(st.integers(min_value=1, max_value=size))
    if kind == "all":
        return -(2**31), 2**31 - 1
    return lo, lo - draw(st.integers(min_value=0, max_value=2))


@st.composite
def narrow_box(draw: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    bounds = [_bound(draw, 3), _bound(draw, 3), _bound(draw, 3), _bound(draw, 400)]
    acq = draw(st.sampled_from([(0, 2**62), (-(2**63), 2**63 - 1), (100, 300)]))
    bounds.append(acq)
    return tuple(b[0] for b in bounds), tuple(b[1] for b in bounds)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.lists(narrow_box(), min_size=1, max_size=6),
    st.sampled_from([1, 5, 64, 65536]),
)
def test_boxes_into_large_blocks_match_a_brute_force_filter(
    seed: int, boxes: list[tuple[KeyTuple, KeyTuple]], piece_records: int
) -> None:
    """Blocks of hundreds of records (uniform and mixed payloads, overlapping key ranges,
    equal keys across blocks); each box, narrow or wide, returns exactly the records a
    filter over everything stored picks, in key order, equal keys in insertion order."""
    rng = np.random.default_rng(seed)
    stored: list[tuple[tuple[int, ...], bytes]] = []
    stores: list[Store] = [MemoryStore()]
    with tempfile.TemporaryDirectory() as d:
        stores.append(LmdbStore(f"{d}/one"))
        stores.append(LmdbStore(f"{d}/segments", segment_records=int(rng.integers(1, 100))))
        try:
            for b in range(int(rng.integers(1, 5))):
                n = int(rng.integers(1, 700))
                cols = [rng.integers(0, 3, n), rng.integers(0, 3, n), rng.integers(0, 3, n)]
                keys = list(
                    zip(
                        *(c.tolist() for c in cols),
                        rng.integers(0, 400, n).tolist(),
                        rng.integers(0, 400, n).tolist(),
                        strict=True,
                    )
                )
                if rng.random() < 0.5:
                    payloads = [b"%03d%04d" % (b, i % 10000) for i in range(n)]
                else:
                    payloads = [b"%d.%d" % (b, i) * int(rng.integers(0, 3)) for i in range(n)]
                for store in stores:
                    store.put_blocks([make_block(keys, payloads)], assign_acq=False)
                stored.extend(zip(keys, payloads, strict=True))
            for lo, hi in boxes:
                expected = sorted(
                    (
                        r
                        for r in stored
                        if all(a <= x < z for a, x, z in zip(lo, r[0], hi, strict=True))
                    ),
                    key=lambda r: r[0],
                )
                for store in stores:
                    assert records(store, lo, hi, piece_records=piece_records) == expected
        finally:
            for store in stores:
                store.close()
