"""``znsocket.Dict`` must behave like a Python dict: each body runs against our server,
a real Redis (redis-py) and a plain ``dict``."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.testing as npt
import pytest
import znjson

import znsocket

pytestmark = pytest.mark.integration


def make(backend: Any, key: str = "dict:test", **kwargs: Any) -> Any:
    return {} if backend is None else znsocket.Dict(backend, key, **kwargs)


def test_set_get_delete(backend: Any) -> None:
    d = make(backend)
    d["a"] = 1
    d["b"] = {"nested": [1, 2]}
    assert d["a"] == 1 and d["b"] == {"nested": [1, 2]}
    with pytest.raises(KeyError, match="missing"):
        d["missing"]
    del d["a"]
    assert "a" not in d and "b" in d
    with pytest.raises(KeyError):
        del d["a"]
    assert d.get("a", "default") == "default"


def test_order_update_and_views(backend: Any) -> None:
    d = make(backend)
    d["b"] = 2
    d["a"] = 1
    d.update({"c": 3})
    d.update(d=4)
    d["b"] = 20  # keeps its position
    assert list(d.keys()) == ["b", "a", "c", "d"]
    assert list(d.values()) == [20, 1, 3, 4]
    assert list(d.items()) == [("b", 20), ("a", 1), ("c", 3), ("d", 4)]
    assert len(d) == 4
    assert dict(d) == {"b": 20, "a": 1, "c": 3, "d": 4}
    assert d == {"b": 20, "a": 1, "c": 3, "d": 4}
    assert (d | {"e": 5})["e"] == 5
    assert d.pop("a") == 1
    assert d.pop("zz", None) is None
    with pytest.raises(KeyError):
        d.pop("zz")
    d.clear()
    assert len(d) == 0


def test_update_refuses_non_mappings(backend: Any) -> None:
    if backend is None:
        pytest.skip("upstream-specific strictness")
    d = make(backend)
    with pytest.raises(TypeError):
        d.update([("a", 1)])
    with pytest.raises(TypeError):
        d.update({}, {})


def test_numpy_and_nan(backend: Any) -> None:
    if backend is None:
        pytest.skip("encoding options of the proxy")
    d = make(backend, converter=[znjson.converter.NumpyConverter])
    d["arr"] = np.ones((2, 2))
    npt.assert_array_equal(d["arr"], np.ones((2, 2)))
    with pytest.raises(ValueError):
        d["nan"] = float("nan")
    d2 = make(backend, "nan", convert_nan=True)
    d2["v"] = {"f": float("nan"), "s": "NaN in text"}
    assert d2["v"] == {"f": None, "s": "null in text"}  # upstream's text replacement


def test_references_and_circularity(backend: Any) -> None:
    if backend is None:
        pytest.skip("references need a server")
    child = znsocket.Dict(backend, "child")
    child["x"] = 1
    lst = znsocket.List(backend, "lst")
    lst.append(1)
    parent = make(backend, "parent", repr_type="full")
    parent["child"] = child
    parent["lst"] = lst
    assert isinstance(parent["child"], znsocket.Dict) and parent["child"]["x"] == 1
    assert parent["child"].repr_type == "full"
    assert parent["lst"][:] == [1]
    assert backend.hget("znsocket.Dict:parent", "child") == '"znsocket.Dict:child"'
    with pytest.raises(ValueError, match="circular"):
        parent["self"] = parent


def test_callbacks_repr_copy(backend: Any) -> None:
    if backend is None:
        pytest.skip("proxy behaviour")
    seen: list[Any] = []
    d = make(
        backend,
        callbacks={
            "setitem": lambda k, v: seen.append(("set", k, v)),
            "delitem": lambda k: seen.append(("del", k)),
        },
    )
    d["a"] = 1
    del d["a"]
    assert seen == [("set", "a", 1), ("del", "a")]
    d["k"] = "v"
    assert repr(d) == "Dict(keys=['k'])"
    d.repr_type = "full"
    assert repr(d) == "Dict({'k': 'v'})"
    copied = d.copy("copy")
    assert copied["k"] == "v"
    with pytest.raises(ValueError, match="Could not copy dict"):
        d.copy("copy")


def test_fallback(backend: Any) -> None:
    if backend is None:
        pytest.skip("fallbacks need a server")
    base = make(backend, "base")
    base.update({"a": 1, "b": 2})
    frozen = make(backend, "frozen", fallback="base", fallback_policy="frozen")
    assert len(frozen) == 2 and frozen.keys() == ["a", "b"] and dict(frozen) == {"a": 1, "b": 2}
    assert frozen["missing"] is None  # upstream: None instead of KeyError with a fallback
    copied = make(backend, "copied", fallback="base", fallback_policy="copy")
    assert backend.hlen("znsocket.Dict:copied") == 2 and copied["b"] == 2


def test_dict_over_a_pipeline(backend: Any) -> None:
    if backend is None:
        pytest.skip("pipelines need a server")
    pipe = backend.pipeline()
    d = znsocket.Dict(pipe, "piped")
    d["a"] = 1
    d["b"] = {"x": 2}
    assert backend.hlen("znsocket.Dict:piped") == 0  # queued, not sent
    pipe.execute()
    assert dict(znsocket.Dict(backend, "piped")) == {"a": 1, "b": {"x": 2}}
