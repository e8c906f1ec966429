"""Payload codecs: TStorage record bytes ↔ JSON values.

A map rule names one codec (``codec = "struct:<d"``); the gateway uses it to decode every
record payload of the rule's series into the JSON value a znsocket client sees, and to
encode values appended by clients back into payload bytes. Codecs are pure and stateless.

=================  ======================================  ==================================
spec               payload bytes                           JSON value
=================  ======================================  ==================================
``struct:<FMT>``   ``struct.pack(FMT, ...)``                one field: a number (or bool);
                   (byte order ``<``, ``>``, ``!`` or      several fields: an array.
                   ``=``; numeric codes and ``?`` only)    NaN/±inf floats read as ``null``;
                                                           ``null`` is written as NaN
``json``           UTF-8 JSON text                         the parsed value
``bytes``          anything                                standard base64 text
``unit``           empty                                   ``null``
=================  ======================================  ==================================
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import CodecError

JSONValue = Any
"""A value that ``json.dumps`` accepts: None, bool, int, float, str, list, dict."""

_BYTE_ORDERS = "<>!="
_INT_CODES = "bBhHiIlLqQ"
_FLOAT_CODES = "efd"
_BOOL_CODE = "?"


class PayloadCodec(Protocol):
    """Converts one record payload to a JSON value and back."""

    @property
    def spec(self) -> str:
        """The codec's name as written in the configuration, e.g. ``struct:<d``."""
        ...

    @property
    def fixed_size(self) -> int | None:
        """The size of every payload, or ``None`` when payloads vary in size."""
        ...

    def decode(self, payload: bytes) -> JSONValue:
        """Turn payload bytes into a JSON value.

        Raises:
            CodecError: the bytes are not a payload of this codec.
        """
        ...

    def decode_many(self, payloads: Sequence[bytes]) -> list[JSONValue]:
        """:meth:`decode` for many payloads.

        Raises:
            CodecError: one payload is not of this codec.
        """
        ...

    def decode_block(self, block: bytes, count: int) -> list[JSONValue]:
        """:meth:`decode` for ``count`` fixed-size payloads concatenated in ``block``.

        Raises:
            CodecError: the codec's payloads vary in size, or ``block`` does not split.
        """
        ...

    def encode(self, value: JSONValue) -> bytes:
        """Turn a JSON value into payload bytes.

        Raises:
            CodecError: the value cannot be represented by this codec.
        """
        ...


class StructCodec:
    """Fixed-size binary payloads described by a ``struct`` format."""

    def __init__(self, fmt: str) -> None:
        if not fmt or fmt[0] not in _BYTE_ORDERS:
            raise ValueError(
                f"struct format {fmt!r} must start with a byte order (one of {_BYTE_ORDERS!r})"
            )
        codes = _expand(fmt[1:])
        if not codes:
            raise ValueError(f"struct format {fmt!r} has no fields")
        allowed = _INT_CODES + _FLOAT_CODES + _BOOL_CODE
        bad = sorted({c for c in codes if c not in allowed})
        if bad:
            raise ValueError(
                f"struct format {fmt!r} uses unsupported code(s) {''.join(bad)!r}; "
                f"allowed: {allowed!r}"
            )
        self.fmt = fmt
        self.codes = codes
        self._struct = struct.Struct(fmt)

    def __repr__(self) -> str:
        return f"StructCodec({self.fmt!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StructCodec) and other.fmt == self.fmt

    def __hash__(self) -> int:
        return hash(self.fmt)

    @property
    def spec(self) -> str:
        return f"struct:{self.fmt}"

    @property
    def fixed_size(self) -> int | None:
        return self._struct.size

    def decode(self, payload: bytes) -> JSONValue:
        if len(payload) != self._struct.size:
            raise CodecError(
                f"payload of {len(payload)} bytes is not a {self.spec} value "
                f"({self._struct.size} bytes)"
            )
        fields = [_json_number(v) for v in self._struct.unpack(payload)]
        return fields[0] if len(fields) == 1 else fields

    def decode_many(self, payloads: Sequence[bytes]) -> list[JSONValue]:
        size = self._struct.size
        if any(len(p) != size for p in payloads):
            return [self.decode(p) for p in payloads]  # raises for the odd one
        return self.decode_block(b"".join(payloads), len(payloads))

    def decode_block(self, block: bytes, count: int) -> list[JSONValue]:
        if len(block) != count * self._struct.size:
            raise CodecError(f"{len(block)} bytes are not {count} {self.spec} values")
        rows = self._struct.iter_unpack(block)
        if len(self.codes) == 1:
            if self.codes in _FLOAT_CODES:
                return [_json_number(r[0]) for r in rows]
            return [r[0] for r in rows]
        return [[_json_number(v) for v in r] for r in rows]

    def encode(self, value: JSONValue) -> bytes:
        codes = self.codes
        if len(codes) > 1 and (not isinstance(value, list) or len(value) != len(codes)):
            raise CodecError(f"{self.spec} needs an array of {len(codes)} numbers, got {value!r}")
        values = [value] if len(codes) == 1 else value
        packed = [_check_field(code, v, self.spec) for code, v in zip(codes, values, strict=True)]
        try:
            return self._struct.pack(*packed)
        except (struct.error, OverflowError) as exc:
            raise CodecError(f"{value!r} does not fit {self.spec}: {exc}") from exc


def _expand(body: str) -> str:
    out: list[str] = []
    count = ""
    for ch in body:
        if ch.isdigit():
            count += ch
            continue
        if ch.isspace():
            continue
        out.append(ch * (int(count) if count else 1))
        count = ""
    if count:
        raise ValueError(f"struct format ends with a repeat count: {body!r}")
    return "".join(out)


def _json_number(v: Any) -> JSONValue:
    # JSON (and upstream znsocket, which encodes with allow_nan=False) has no NaN/inf.
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _check_field(code: str, v: Any, spec: str) -> Any:
    if code == _BOOL_CODE:
        if not isinstance(v, bool):
            raise CodecError(f"{spec} field '?' needs true/false, got {v!r}")
        return v
    if code in _INT_CODES:
        if isinstance(v, bool) or not isinstance(v, int):
            raise CodecError(f"{spec} field {code!r} needs an integer, got {v!r}")
        return v
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CodecError(f"{spec} field {code!r} needs a number, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class JsonCodec:
    """UTF-8 JSON text payloads (compact separators)."""

    @property
    def spec(self) -> str:
        return "json"

    @property
    def fixed_size(self) -> int | None:
        return None

    def decode(self, payload: bytes) -> JSONValue:
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CodecError(f"payload is not UTF-8 JSON: {exc}") from exc

    def decode_many(self, payloads: Sequence[bytes]) -> list[JSONValue]:
        return [self.decode(p) for p in payloads]

    def decode_block(self, block: bytes, count: int) -> list[JSONValue]:
        raise CodecError("json payloads vary in size")

    def encode(self, value: JSONValue) -> bytes:
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise CodecError(f"{value!r} is not a JSON value: {exc}") from exc
        return text.encode("utf-8")


@dataclass(frozen=True)
class BytesCodec:
    """Opaque payloads, shown to clients as standard base64 text."""

    @property
    def spec(self) -> str:
        return "bytes"

    @property
    def fixed_size(self) -> int | None:
        return None

    def decode(self, payload: bytes) -> JSONValue:
        return base64.b64encode(payload).decode("ascii")

    def decode_many(self, payloads: Sequence[bytes]) -> list[JSONValue]:
        return [self.decode(p) for p in payloads]

    def decode_block(self, block: bytes, count: int) -> list[JSONValue]:
        raise CodecError("bytes payloads vary in size")

    def encode(self, value: JSONValue) -> bytes:
        if not isinstance(value, str):
            raise CodecError(f"the bytes codec needs base64 text, got {value!r}")
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error) as exc:
            raise CodecError(f"{value!r} is not base64 text: {exc}") from exc


@dataclass(frozen=True)
class UnitCodec:
    """Empty payloads: the record's key is the whole message; the value is ``null``."""

    @property
    def spec(self) -> str:
        return "unit"

    @property
    def fixed_size(self) -> int | None:
        return 0

    def decode(self, payload: bytes) -> JSONValue:
        if payload:
            raise CodecError(f"the unit codec expects an empty payload, got {len(payload)} bytes")
        return None

    def decode_many(self, payloads: Sequence[bytes]) -> list[JSONValue]:
        return [self.decode(p) for p in payloads]

    def decode_block(self, block: bytes, count: int) -> list[JSONValue]:
        if block:
            raise CodecError(f"the unit codec expects empty payloads, got {len(block)} bytes")
        return [None] * count

    def encode(self, value: JSONValue) -> bytes:
        if value is not None:
            raise CodecError(f"the unit codec only stores null, got {value!r}")
        return b""


CODEC_NAMES = ("struct:<FMT>", "json", "bytes", "unit")


def parse_codec(spec: str) -> PayloadCodec:
    """Build the codec named by ``spec`` (``struct:<FMT>``, ``json``, ``bytes``, ``unit``).

    Raises:
        ValueError: unknown name or invalid struct format.
    """
    if spec.startswith("struct:"):
        return StructCodec(spec[len("struct:") :])
    simple: dict[str, PayloadCodec] = {
        "json": JsonCodec(),
        "bytes": BytesCodec(),
        "unit": UnitCodec(),
    }
    if spec in simple:
        return simple[spec]
    raise ValueError(f"unknown codec {spec!r}; use one of {', '.join(CODEC_NAMES)}")
