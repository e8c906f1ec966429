"""Property test: every Store behaves like a sorted list of (key, arrival) records."""

from __future__ import annotations

import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tstorage_server.store import LmdbStore, MemoryStore, Store

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
