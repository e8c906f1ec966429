"""Upstream's ``znsocket.utils`` import path: error mapping, URL parsing, value encoding.

Kept for programs written against upstream znsocket 0.3.0; the implementations are the
project's own (:mod:`znsocket.protocol.payload`, :mod:`znsocket.client.url`,
:class:`znsocket.objects.base.ValueCodec`).
"""

from __future__ import annotations

from typing import Any

from znsocket.client.url import parse_url
from znsocket.objects.base import ValueCodec
from znsocket.protocol.payload import raise_for_error

__all__ = ["decode", "encode", "handle_error", "parse_url"]


def handle_error(result: Any) -> None:
    """Raise the exception an error envelope names; do nothing for anything else."""
    raise_for_error(result)


def encode(self: Any, data: Any) -> str:
    """``data`` as the JSON text a proxy stores, with ``self.converter`` / ``self.convert_nan``.

    Raises:
        ValueError: NaN or infinity while ``self.convert_nan`` is false.
    """
    return ValueCodec(getattr(self, "converter", None), getattr(self, "convert_nan", False)).encode(
        data
    )


def decode(self: Any, data: str) -> Any:
    """Stored JSON text as a value, with ``self.converter``; an error envelope raises."""
    return ValueCodec(getattr(self, "converter", None), False).decode(data)
