"""The shared JSON codec writes and reads what the standard library would."""

from __future__ import annotations

import dataclasses
import datetime
import gc
import json
import math
import uuid
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from znsocket.protocol import jsoncodec
from znsocket.protocol.framing import decode_buffer, dumps_call, encode_buffer
from znsocket.server.gc_tuning import SERVER_GC_THRESHOLDS, tune_gc_for_serving

_std_call = json.JSONEncoder(separators=(",", ":"), default=str).encode

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=5) | st.integers(-5, 5), inner, max_size=5)
    ),
    max_leaves=25,
)


@given(json_values)
def test_dumps_call_reads_back_as_json_dumps_default_str(value: Any) -> None:
    assert json.loads(jsoncodec.dumps_call(value)) == json.loads(_std_call(value))


def test_dumps_call_keeps_non_finite_floats_and_str_fallbacks() -> None:
    assert jsoncodec.dumps_call([math.nan, math.inf, -math.inf]) == b"[NaN,Infinity,-Infinity]"

    @dataclasses.dataclass
    class Point:
        x: int

    value = [
        datetime.datetime(2024, 1, 2, 3, 4, 5),
        Point(1),
        uuid.UUID(int=5),
        np.float64(1.5),
        np.int64(3),
        np.array([1, 2]),
        object,
        {1: "int key"},
    ]
    assert json.loads(jsoncodec.dumps_call(value)) == json.loads(_std_call(value))


def test_loads_accepts_what_only_the_standard_library_reads() -> None:
    assert math.isnan(jsoncodec.loads("[NaN]")[0])
    assert jsoncodec.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]
    assert jsoncodec.loads(b"[123456789012345678901234567890]") == [123456789012345678901234567890]
    assert jsoncodec.loads(f"[{2**64}, {-(2**64)}]") == [2**64, -(2**64)]
    assert jsoncodec.loads('["\\ud800"]') == ["\ud800"]


def test_a_compressed_call_round_trips_through_the_shared_codec() -> None:
    args = [[f"f{i}", i + 0.5, None, math.nan] for i in range(300)]
    args, kwargs = decode_buffer(encode_buffer(dumps_call(args, {"k": "ü"}), compress=True))
    assert args[7][:3] == ["f7", 7.5, None] and math.isnan(args[7][3])
    assert kwargs == {"k": "ü"}


def test_tuned_collector_still_frees_reference_cycles() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_for_serving()
        assert gc.get_threshold() == SERVER_GC_THRESHOLDS
        ref: list[Any] = []

        class Node:
            pass

        import weakref

        for _ in range(50):
            a, b = Node(), Node()
            a.other, b.other = b, a  # type: ignore[attr-defined]
            ref.append(weakref.ref(a))
            del a, b
        # garbage made after the freeze is collected by the ordinary collector
        gc.collect()
        assert all(r() is None for r in ref)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@given(json_values)
def test_loads_reads_what_json_loads_reads(value: Any) -> None:
    text = json.dumps(value)
    assert jsoncodec.loads(text) == json.loads(text)
    assert jsoncodec.loads(text.encode()) == json.loads(text)
