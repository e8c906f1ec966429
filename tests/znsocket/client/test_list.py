"""``znsocket.List`` must behave like a Python list: one body per test runs against our
server, a real Redis (redis-py client) and a plain ``list``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.testing as npt
import pytest
import znjson

import znsocket
import znsocket.exceptions

pytestmark = pytest.mark.integration


def make(backend: Any, key: str = "list:test", **kwargs: Any) -> Any:
    return [] if backend is None else znsocket.List(backend, key, **kwargs)


def test_extend_getitem_slices(backend: Any) -> None:
    lst = make(backend)
    lst.extend(["a", "b", "c", "d"])
    assert lst[0] == "a" and lst[-1] == "d"
    assert lst[::2] == ["a", "c"]
    assert lst[1:3] == ["b", "c"]
    assert lst[::-1] == ["d", "c", "b", "a"]
    assert lst[-3:] == ["b", "c", "d"]
    assert lst[10:] == []
    assert len(lst) == 4
    assert lst == ["a", "b", "c", "d"]
    with pytest.raises(IndexError):
        lst[4]
    with pytest.raises(TypeError):
        lst["a"]


def test_setitem(backend: Any) -> None:
    lst = make(backend)
    lst.extend([1, 2, 3, 4])
    lst[0] = 10
    lst[-1] = 40
    lst[1:3] = [20, 30]
    assert lst[:] == [10, 20, 30, 40]
    lst[::2] = ["a", "b"]
    assert lst[:] == ["a", 20, "b", 40]
    with pytest.raises(IndexError):
        lst[4] = 1
    with pytest.raises(
        ValueError, match="attempt to assign sequence of size 1 to extended slice of size 2"
    ):
        lst[::2] = [1]


def test_delitem_append_insert_pop_clear(backend: Any) -> None:
    lst = make(backend)
    lst.extend(range(6))
    del lst[0]
    del lst[-1]
    assert lst[:] == [1, 2, 3, 4]
    del lst[::2]
    assert lst[:] == [2, 4]
    lst.append(None)
    lst.insert(0, "first")
    lst.insert(1, "second")
    lst.insert(100, "last")
    assert lst[:] == ["first", "second", 2, 4, None, "last"]
    assert lst.pop() == "last"
    assert lst.pop(0) == "first"
    assert list(lst) == ["second", 2, 4, None]
    assert 4 in lst and lst.index(4) == 2 and lst.count(2) == 1
    lst.remove(2)
    lst.clear()
    assert len(lst) == 0
    with pytest.raises(IndexError):
        del lst[0]
    with pytest.raises(IndexError):
        lst.pop()


def test_values_round_trip_as_json(backend: Any) -> None:
    lst = make(backend)
    values = [1, 1.5, "text", "ü", True, None, [1, [2]], {"a": {"b": 1}}]
    lst.extend(values)
    assert lst[:] == values


def test_nan_handling(backend: Any) -> None:
    if backend is None:
        pytest.skip("plain lists hold NaN")
    lst = make(backend)
    with pytest.raises(ValueError):
        lst.append(float("nan"))
    lst2 = make(backend, "nan", convert_nan=True)
    lst2.append([float("nan"), float("inf"), 1.0])
    assert lst2[0] == [None, None, 1.0]


def test_numpy_converter(backend: Any) -> None:
    if backend is None:
        pytest.skip("converter applies to stored lists")
    lst = make(backend, converter=[znjson.converter.NumpyConverter])
    lst.append(np.arange(6).reshape(2, 3))
    npt.assert_array_equal(lst[0], np.arange(6).reshape(2, 3))


def test_stored_representation_is_upstreams(backend: Any) -> None:
    if backend is None:
        pytest.skip("about the server-side layout")
    lst = make(backend, "layout")
    lst.extend([{"a": 1}, "ü"])
    assert backend.lrange("znsocket.List:layout", 0, -1) == ['{"a": 1}', '"\\u00fc"']


def test_nested_references(backend: Any) -> None:
    if backend is None:
        pytest.skip("references need a server")
    inner = znsocket.List(backend, "inner")
    inner.extend([1, 2])
    d = znsocket.Dict(backend, "d")
    d["x"] = 5
    outer = make(backend, "outer")
    outer.append(inner)
    outer.append(d)
    assert isinstance(outer[0], znsocket.List) and outer[0][:] == [1, 2]
    assert isinstance(outer[1], znsocket.Dict) and outer[1]["x"] == 5
    assert backend.lindex("znsocket.List:outer", 0) == '"znsocket.List:inner"'
    with pytest.raises(ValueError, match="circular"):
        outer.append(outer)
    with pytest.raises(ValueError, match="circular"):
        outer.extend([outer])


def test_callbacks(backend: Any) -> None:
    if backend is None:
        pytest.skip("callbacks belong to the proxy")
    seen: list[Any] = []
    lst = make(
        backend,
        callbacks={
            "append": lambda v: seen.append(("append", v)),
            "setitem": lambda i, v: seen.append(("setitem", i, v)),
            "delitem": lambda i: seen.append(("delitem", i)),
            "insert": lambda i, v: seen.append(("insert", i, v)),
        },
    )
    lst.append(1)
    lst[0] = 2
    lst.insert(0, 3)
    del lst[0]
    assert seen == [("append", 1), ("setitem", [0], [2]), ("insert", 0, 3), ("delitem", [0])]


def test_repr_and_copy(backend: Any) -> None:
    if backend is None:
        pytest.skip("proxy behaviour")
    lst = make(backend, "r")
    lst.extend([1, 2])
    assert repr(lst) == "List(len=2)"
    lst.repr_type = "full"
    assert repr(lst) == "List([1, 2])"
    lst.repr_type = "minimal"
    assert repr(lst) == "List(<unknown>)"
    lst.repr_type = "bogus"
    with pytest.raises(ValueError, match="Invalid repr_type"):
        repr(lst)
    copied = lst.copy("r2")
    assert copied[:] == [1, 2] and copied.key == "znsocket.List:r2"
    with pytest.raises(ValueError, match="Could not copy list"):
        lst.copy("r2")


def test_fallback_policies(backend: Any) -> None:
    if backend is None:
        pytest.skip("fallbacks need a server")
    base = make(backend, "base")
    base.extend([1, 2, 3])
    frozen = make(backend, "frozen", fallback="base", fallback_policy="frozen")
    assert len(frozen) == 3 and frozen[1] == 2
    assert backend.llen("znsocket.List:frozen") == 0
    frozen.append(4)  # copy-on-write before the first own item
    assert frozen[:] == [1, 2, 3, 4] and base[:] == [1, 2, 3]
    copied = make(backend, "copied", fallback="base", fallback_policy="copy")
    assert backend.llen("znsocket.List:copied") == 3
    assert copied[:] == [1, 2, 3]
    loose = make(backend, "loose", fallback="base")
    assert len(loose) == 0 and loose[0] == 1  # upstream: items but no length


def test_math_on_items(backend: Any) -> None:
    lst = make(backend, "math")
    lst.extend([1.5, 2.5])
    assert math.isclose(sum(lst), 4.0)
    lst += [3]
    assert len(lst) == 3


def test_options_can_change_after_creation(backend: Any) -> None:
    if backend is None:
        pytest.skip("encoding options of the proxy")
    lst = make(backend, "late")
    with pytest.raises(ValueError):
        lst.append(float("inf"))
    lst.convert_nan = True  # upstream reads the option at every call
    lst.append(float("inf"))
    assert lst[0] is None
    lst.converter = [znjson.converter.NumpyConverter]
    lst.append(np.zeros(2))
    assert isinstance(lst[1], np.ndarray)


def test_list_over_a_pipeline(backend: Any) -> None:
    if backend is None:
        pytest.skip("pipelines need a server")
    pipe = backend.pipeline()
    lst = znsocket.List(pipe, "piped")
    lst.append({"a": 1})
    lst.append(2)
    assert backend.llen("znsocket.List:piped") == 0  # queued, not sent
    pipe.execute()
    assert znsocket.List(backend, "piped")[:] == [{"a": 1}, 2]
