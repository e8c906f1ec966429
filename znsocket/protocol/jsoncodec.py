"""JSON for znsocket messages: orjson where it is exact, the standard library otherwise.

Shared by client and server. orjson encodes and decodes a large pipeline many times faster
than the standard library (figures in ``bench/znsocket.md``). Where orjson and the
standard library would disagree, the standard library decides:

* values orjson refuses (integers beyond 64 bits, non-string dict keys for
  :func:`dumps_call`) fall back to the standard library;
* decoding falls back to the standard library for the non-standard ``NaN``/``Infinity``
  tokens Python clients send, for lone surrogates, and for text with a run of 20 or more
  digits (orjson would read an integer beyond 64 bits as a float);
* :func:`dumps_call` (what a client sends) keeps Python's ``NaN``/``Infinity`` tokens, so
  a float round-trips as it does with upstream's client;
* :func:`dumps` (what the server answers) writes non-finite floats as ``null``: JSON
  has no such numbers, and the TypeScript client cannot parse the tokens;
* non-ASCII text is sent as UTF-8 instead of ``\\u`` escapes (the same JSON value);
* text nested deeper than :data:`MAX_DEPTH` arrays/objects is refused with
  :class:`NestingError` (a ``ValueError``) by both decoders, never a ``RecursionError``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["MAX_DEPTH", "NestingError", "dumps", "dumps_call", "dumps_plain", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS
# datetime and dataclass instances go to ``default`` (``str``), as json.dumps(default=str)
_CALL_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_orjson_dumps = orjson.dumps
_orjson_loads = orjson.loads
_std_dumps = json.JSONEncoder(separators=(",", ":")).encode
_std_dumps_str = json.JSONEncoder(separators=(",", ":"), default=str).encode
# every integer orjson reads exactly has at most 20 digits; 2**64 and beyond come back as
# floats. The check maps digits to b"1" and finds a run: its cost stays flat, where a
# regular expression restarts at every digit of a long run (bench/code_choices.md).
_DIGIT_MAP = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
_LONG_RUN = b"1" * 20
#: Deepest nesting orjson reads; the standard library's limit is the recursion limit.
MAX_DEPTH = 1024


class NestingError(ValueError):
    """JSON text nests arrays/objects deeper than the decoder can read."""


def _has_long_digit_run(text: str | bytes) -> bool:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    return _LONG_RUN in raw.translate(_DIGIT_MAP)


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


def _call_default(obj: Any) -> Any:
    # json.dumps writes float subclasses (numpy.float64) as numbers, anything else via str
    if isinstance(obj, float):
        return float(obj)
    return str(obj)


def dumps_call(obj: Any) -> bytes:
    """UTF-8 JSON of a client's call, as ``json.dumps(obj, default=str)`` would write it.

    Values JSON cannot hold become their ``str``. ``NaN``/``Infinity`` stay tokens (which
    orjson would write as ``null``: any ``null`` in its output sends the call through the
    standard library, which writes both exactly).
    """
    try:
        text = _orjson_dumps(obj, default=_call_default, option=_CALL_OPTIONS)
    except TypeError:
        return _std_dumps_str(obj).encode()
    if b"null" in text:
        return _std_dumps_str(obj).encode()
    return text


def loads(text: str | bytes, **_ignored: Any) -> Any:
    """Parse JSON text as the standard library does (``NaN``/``Infinity``, big integers).

    Raises:
        NestingError: The text nests deeper than :data:`MAX_DEPTH` levels.
        ValueError: Any other invalid JSON.
    """
    if _has_long_digit_run(text):
        return _std_loads(text)
    try:
        return _orjson_loads(text)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise NestingError(_TOO_DEEP) from None
        return _std_loads(text)


_TOO_DEEP = f"JSON nested too deeply (at most {MAX_DEPTH} levels of arrays and objects)"


def _std_loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise NestingError(_TOO_DEEP) from None
