"""Upstream znsocket 0.3.0 import paths that programs and upstream's tests use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import znsocket
from znsocket import exceptions
from znsocket.abc import ZnSocketObject
from znsocket.utils import decode, encode, handle_error, parse_url


def test_proxies_are_znsocket_objects() -> None:
    for cls in (znsocket.List, znsocket.Dict, znsocket.Segments):
        assert issubclass(cls, ZnSocketObject)


def test_handle_error_maps_envelopes_and_ignores_data() -> None:
    handle_error({"data": 1})
    handle_error("not an envelope")
    with pytest.raises(exceptions.DataError, match="bad value"):
        handle_error({"error": {"type": "DataError", "msg": "bad value"}})
    # An envelope without a type is still an error, not a KeyError.
    with pytest.raises(exceptions.ZnSocketError, match="no type"):
        handle_error({"error": {"msg": "no type"}})


def test_parse_url_splits_a_path_off() -> None:
    assert parse_url("https://example.com/path/to/resource") == (
        "https://example.com",
        "path/to/resource",
    )
    assert parse_url("http://127.0.0.1:5000") == ("http://127.0.0.1:5000", None)


def test_encode_and_decode_use_the_objects_settings() -> None:
    strict = SimpleNamespace(converter=None, convert_nan=False)
    lenient = SimpleNamespace(converter=None, convert_nan=True)
    assert encode(strict, {"a": [1, 2.5]}) == '{"a": [1, 2.5]}'
    with pytest.raises(ValueError):
        encode(strict, float("nan"))
    assert encode(lenient, [float("nan"), float("inf")]) == "[null, null]"
    assert decode(strict, '{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with pytest.raises(exceptions.ResponseError):
        decode(strict, '{"error": {"type": "ResponseError", "msg": "stored error"}}')
