"""``znsocket.Segments`` (piece table) against our server and a real Redis."""

from __future__ import annotations

from typing import Any

import pytest

import znsocket

pytestmark = pytest.mark.integration


@pytest.fixture(params=["znsocket", "redis"])
def conn(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("client" if request.param == "znsocket" else "redis_client")


def test_reads_like_the_origin(conn: Any) -> None:
    origin = znsocket.List(conn, "list:test")
    origin.extend(range(5))
    s = znsocket.Segments(conn, origin, "seg")
    assert len(s) == 5
    assert list(s) == [0, 1, 2, 3, 4]
    assert s[-1] == 4 and s[1:3] == [1, 2]
    with pytest.raises(IndexError):
        s[5]
    assert s.get_raw() == [[0, 5, "znsocket.List:list:test"]]
    assert s.key == "znsocket.Segments:seg"


def test_edits_are_exact_triples(conn: Any) -> None:
    origin = znsocket.List(conn, "L")
    origin.extend(range(5))
    s = znsocket.Segments.from_list(origin, "S")
    L, S = "znsocket.List:L", "znsocket.List:S"
    s[2] = "x"
    assert s.get_raw() == [[0, 2, L], [0, 1, S], [3, 5, L]]
    s[0] = "y"
    assert s.get_raw() == [[1, 2, S], [1, 2, L], [0, 1, S], [3, 5, L]]
    assert s[:] == ["y", 1, "x", 3, 4]
    s[0] = "z"  # its own segment: overwritten in place, triples unchanged
    assert s.get_raw() == [[1, 2, S], [1, 2, L], [0, 1, S], [3, 5, L]]
    del s[-1]
    assert s[:] == ["z", 1, "x", 3]
    s.insert(1, "i")
    assert s[:] == ["z", "i", 1, "x", 3]
    s.append("end")
    s.extend(["e2"])
    assert s[:] == ["z", "i", 1, "x", 3, "end", "e2"]
    assert origin[:] == [0, 1, 2, 3, 4]  # copy-on-write: the origin is untouched
    with pytest.raises(IndexError):
        del s[100]
    with pytest.raises(IndexError):
        s.insert(100, "far")


def test_origin_must_be_a_list(conn: Any) -> None:
    with pytest.raises(TypeError, match="origin must be a List"):
        znsocket.Segments(conn, znsocket.Dict(conn, "d"), "s")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        znsocket.Segments.from_list(None, "s")  # type: ignore[arg-type]
