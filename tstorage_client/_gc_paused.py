"""GET records decoded into objects with the cyclic garbage collector paused.

Millions of new objects would trigger the cyclic GC over and over, each pass scanning the
growing result; records hold no cycles, so the channels pause it while a batch decodes.
The switch is process-wide: it belongs to the channels, which do an application's I/O,
not to the sans-IO core (:mod:`tstorage_client.protocol`), which a server or any other
program may drive without having its process's collector touched.
"""

from __future__ import annotations

import gc
from typing import Any, TypeVar

from .protocol import ObjectRecordDecoder

T = TypeVar("T")


class GcPausedRecordDecoder(ObjectRecordDecoder[T]):
    """:class:`~tstorage_client.protocol.ObjectRecordDecoder` that decodes each batch with
    the cyclic GC off (it is switched back on after, if it was on)."""

    def decode(self, raw: bytes, max_record_bytes: int | None) -> tuple[list[Any], int, int, bool]:
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            return super().decode(raw, max_record_bytes)
        finally:
            if paused:
                gc.enable()
