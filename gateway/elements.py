"""How one record looks to a znsocket client: the element shape of a map rule.

``element = "value"`` shows the decoded payload itself; ``element = "timestamped"`` shows
``{"t": <capture time>, "v": <value>}``, with the time in the rule's ``time`` unit
(``unix_ns`` and ``tstorage_ns`` are integers, ``unix_s`` a float). Elements are handed to
clients as JSON text written like upstream znsocket writes it (``json.dumps`` defaults), so
upstream's decoder reads them unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.codecs import JSONValue, PayloadCodec
from gateway.errors import CodecError
from gateway.keymap import CAP_RANGE
from tstorage_client.timestamp import EPOCH_OFFSET_NS

TimeUnit = Literal["unix_ns", "tstorage_ns", "unix_s"]


def cap_to_time(cap: int, unit: TimeUnit) -> int | float:
    """A TStorage capture time (ns since 2001) in the rule's time unit."""
    if unit == "tstorage_ns":
        return cap
    if unit == "unix_ns":
        return cap + EPOCH_OFFSET_NS
    return (cap + EPOCH_OFFSET_NS) / 1e9


def time_to_cap(t: JSONValue, unit: TimeUnit) -> int:
    """The capture time for an element's ``t``.

    Raises:
        CodecError: ``t`` has the wrong type or lies outside TStorage's range.
    """
    if unit == "unix_s":
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise CodecError(f"element time t must be a number of Unix seconds, got {t!r}")
        cap = round(t * 1e9) - EPOCH_OFFSET_NS
    else:
        if isinstance(t, bool) or not isinstance(t, int):
            raise CodecError(f"element time t must be an integer of {unit}, got {t!r}")
        cap = t if unit == "tstorage_ns" else t - EPOCH_OFFSET_NS
    if not CAP_RANGE[0] <= cap <= CAP_RANGE[1]:
        raise CodecError(f"element time t={t!r} ({unit}) is outside TStorage's time range")
    return cap


def json_text(value: JSONValue) -> str:
    """``json.dumps(value)``, with a shortcut for plain numbers (most elements)."""
    kind = type(value)
    if kind is float:
        return repr(value)  # finite: codecs turn NaN/inf into None
    if kind is int:
        return repr(value)
    return json.dumps(value)


@dataclass(frozen=True)
class ElementShape:
    """Converts records to element JSON text and client JSON text to payloads."""

    codec: PayloadCodec
    element: Literal["value", "timestamped"] = "value"
    time: TimeUnit = "unix_ns"

    def value(self, cap: int, payload: bytes) -> JSONValue:
        """The element of a record as a JSON value.

        Raises:
            CodecError: the payload does not decode with the rule's codec.
        """
        v = self.codec.decode(payload)
        if self.element == "value":
            return v
        return {"t": cap_to_time(cap, self.time), "v": v}

    def to_json(self, cap: int, payload: bytes) -> str:
        """The element of a record as JSON text (upstream's default separators)."""
        return json_text(self.value(cap, payload))

    def _elements(self, caps: Sequence[int], values: Sequence[Any]) -> list[str]:
        if self.element == "value":
            return [json_text(v) for v in values]
        unit = self.time
        return [
            json_text({"t": cap_to_time(c, unit), "v": v})
            for c, v in zip(caps, values, strict=True)
        ]

    def to_json_block(self, caps: Sequence[int], block: bytes) -> list[str]:
        """:meth:`to_json` for records whose fixed-size payloads are concatenated in ``block``."""
        return self._elements(caps, self.codec.decode_block(block, len(caps)))

    def to_json_many(self, caps: Sequence[int], payloads: Sequence[bytes]) -> list[str]:
        """:meth:`to_json` for many records (decoded in one pass where the codec can)."""
        return self._elements(caps, self.codec.decode_many(payloads))

    def parse(self, text: object) -> tuple[int | None, bytes]:
        """Capture time (``None`` = now) and payload for element JSON text from a client.

        Raises:
            CodecError: not JSON text, wrong shape, a time out of range, or a value the
                codec cannot encode.
        """
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="strict")
        if not isinstance(text, str):
            raise CodecError(f"elements are JSON text, got {type(text).__name__}")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise CodecError(f"element is not JSON text: {text[:80]!r}") from exc
        return self.parse_value(value)

    def parse_value(self, value: JSONValue) -> tuple[int | None, bytes]:
        """Like :meth:`parse` for an already decoded JSON value."""
        if self.element == "value":
            return None, self.codec.encode(value)
        if not isinstance(value, dict) or "v" not in value or set(value) - {"t", "v"}:
            raise CodecError(
                f'timestamped elements look like {{"t": <time>, "v": <value>}}, got {value!r}'
            )
        t = value.get("t")
        cap = None if t is None else time_to_cap(t, self.time)
        return cap, self.codec.encode(value["v"])
