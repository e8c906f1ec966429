"""Request payload validation, acknowledgement envelopes and the client error table."""

from __future__ import annotations

import pytest
import redis.exceptions
import socketio.exceptions

from znsocket import exceptions as exc
from znsocket.protocol import (
    error_envelope,
    error_envelope_for,
    make_call_payload,
    parse_call_payload,
    raise_for_error,
    success_envelope,
    unwrap_data,
    unwrap_response,
)


def test_make_call_payload() -> None:
    assert make_call_payload(("a", 1), {"mapping": {"f": "v"}}) == [
        ["a", 1],
        {"mapping": {"f": "v"}},
    ]
    assert make_call_payload() == [[], {}]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "x",
        1,
        [],
        [[]],
        [[], {}, 1],
        {"args": []},
        [{}, {}],
        [[], []],
        [[], None],
        ["abc", {}],
    ],
)
def test_parse_call_payload_rejects_bad_shapes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_call_payload(bad)


def test_parse_call_payload_accepts_tuple_args() -> None:
    assert parse_call_payload([("a",), {"b": 1}]) == (["a"], {"b": 1})


def test_success_envelopes() -> None:
    assert success_envelope(True) == {"data": True}
    assert success_envelope(None) == {"data": None}
    assert success_envelope({"m1"}) == {"data": ["m1"], "type": "set"}
    assert success_envelope([("a", 1.0)]) == {"data": [("a", 1.0)]}


def test_error_envelopes_follow_upstream_text() -> None:
    assert error_envelope("ResponseError", "no such key") == {
        "error": {"msg": "no such key", "type": "ResponseError"}
    }
    env = error_envelope_for(TypeError("takes 2 arguments"), "get")
    assert env == {
        "error": {"msg": "Invalid arguments for get: takes 2 arguments", "type": "TypeError"}
    }
    env = error_envelope_for(KeyError("x"), "hget")
    assert env == {"error": {"msg": "'x'", "type": "KeyError"}}
    env = error_envelope_for(exc.ResponseError("WRONGTYPE"), "hget")
    assert env["error"]["type"] == "ResponseError"


@pytest.mark.parametrize(
    ("type_name", "cls"),
    [
        ("DataError", exc.DataError),
        ("TypeError", TypeError),
        ("IndexError", IndexError),
        ("KeyError", KeyError),
        ("UnknownEventError", exc.UnknownEventError),
        ("ResponseError", exc.ResponseError),
        ("ValueError", exc.ZnSocketError),
        ("ChunkNotFoundError", exc.ZnSocketError),
    ],
)
def test_raise_for_error_maps_types(type_name: str, cls: type[Exception]) -> None:
    with pytest.raises(cls) as info:
        raise_for_error({"error": {"msg": "boom", "type": type_name}})
    assert type(info.value) is cls
    assert "boom" in str(info.value)


def test_raise_for_error_ignores_non_errors() -> None:
    raise_for_error({"data": 1})
    raise_for_error("{'error': 1}")
    raise_for_error(None)


def test_unwrap() -> None:
    assert unwrap_data({"data": ["a"], "type": "set"}) == {"a"}
    assert unwrap_data({"data": [1]}) == [1]
    with pytest.raises(TypeError, match="Can not convert type 'zset'"):
        unwrap_data({"data": [], "type": "zset"})
    with pytest.raises(exc.ZnSocketError, match="No response from server"):
        unwrap_response(None)
    with pytest.raises(exc.ResponseError):
        unwrap_response({"error": {"msg": "no such key", "type": "ResponseError"}})


def test_exception_tree_matches_upstream() -> None:
    assert issubclass(exc.ResponseError, redis.exceptions.ResponseError)
    assert issubclass(exc.DataError, redis.exceptions.DataError)
    assert issubclass(exc.ConnectionError, socketio.exceptions.ConnectionError)
    for cls in (exc.ResponseError, exc.DataError, exc.UnknownEventError, exc.FrozenStorageError):
        assert issubclass(cls, exc.ZnSocketError)
    err = exc.ConnectionError("http://127.0.0.1:5000")
    assert str(err) == (
        "Could not connect to http://127.0.0.1:5000. Is the 'znsocket' server running? "
        "You can start it using the CLI 'znsocket'."
    )
    assert str(exc.FrozenStorageError("znsocket.List:a")) == (
        "'znsocket.List:a' is frozen and cannot be modified. Create a copy of the object to modify it."
    )
    assert str(exc.ZnSocketError("m")) == "m"
    assert exc.ZnSocketError("m").message == "m"
