"""Series discovery persisted in TStorage, so a gateway lists its series without the data.

Layout, under the reserved client id ``[tstorage] index_cid`` (beside the chunk summaries of
:mod:`gateway.storage.persisted`, whose caps are never negative, and the series heads of
:mod:`gateway.storage.heads`, at caps below ``-2**33``):

* a **marker** per series ``(cid, mid, moid)`` that has records: an empty record at
  ``(index_cid, mid, moid, cap = -1 - cid)``. All the markers of a cid are one GET.
* a **watermark** per discovered box (the box of a ``list`` rule): a JSON record
  ``{"format", "box", "w"}`` at ``(index_cid, mid_lo, moid_lo, cap = -2**32 - 1 - cid)``
  with the box's lower ``mid``/``moid``; ``box`` repeats the whole box, so a record of
  another box at the same key is ignored. Every series holding a record acquired below
  ``w`` has its marker: markers are stored before the watermark that covers them. A reader
  takes the newest version (:mod:`gateway.storage.reserved`).

A gateway loads the markers and the watermark, then reads the box from ``w`` (the change
feed) for what arrived since: the listing stays exact, whoever wrote the records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.keymap import KeyTuple, key_box
from gateway.storage.link import PutRecord
from gateway.storage.reserved import ReservedStore

__all__ = ["CatalogStore"]

FORMAT = 1
#: markers per PUT (about 40 bytes each on the wire)
_PUT_BATCH = 10_000


class CatalogStore(ReservedStore):
    """Reads and writes discovery markers and watermarks under one reserved cid
    (``link``, ``cid``, ``clock`` as :class:`~gateway.storage.reserved.ReservedStore`)."""

    def markers(
        self, cid: int, sink: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int32]], None]
    ) -> None:
        """Feed the ``mid`` and ``moid`` columns of the marked series of ``cid`` to ``sink``,
        in batches.

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        cap = -1 - cid
        lo, hi = key_box(self.cid, caps=(cap, cap + 1))

        def take(arr: npt.NDArray[Any]) -> None:
            arr = arr[arr["cap"] == cap]
            sink(arr["mid"], arr["moid"])

        # markers are empty records: read as numpy columns, far faster than record by record
        self.link.stream_columns(lo, hi, 0, take)

    def _watermark_key(self, box: tuple[KeyTuple, KeyTuple]) -> tuple[int, int, int, int]:
        lo = box[0]
        return (self.cid, lo[1], lo[2], -(2**32) - 1 - lo[0])

    def watermark(self, box: tuple[KeyTuple, KeyTuple]) -> int | None:
        """The newest saved watermark of ``box``, or ``None`` (none saved, or unreadable).

        Raises:
            TStorageUnavailable: TStorage could not be read.
        """
        _, mid, moid, cap = self._watermark_key(box)
        found = self.newest_version(mid, moid, cap)
        if found is None:
            return None
        try:
            head = json.loads(found[1])
            if head["format"] == FORMAT and head["box"] == [list(box[0]), list(box[1])]:
                return int(head["w"])
        except (ValueError, KeyError, TypeError):
            pass
        return None  # another box's record at this key, or unreadable: stream it all

    def save(
        self,
        box: tuple[KeyTuple, KeyTuple],
        series: Iterable[tuple[int, int, int]],
        watermark: int,
    ) -> None:
        """Store the markers of ``series``, then the watermark of ``box`` that they make true.

        Raises:
            TStorageUnavailable: not (or not all) stored; the saved watermark is then the
                previous one, which stays true.
        """
        batch: list[PutRecord] = []
        for cid, mid, moid in series:
            batch.append(((self.cid, mid, moid, -1 - cid), b""))
            if len(batch) >= _PUT_BATCH:
                self.link.put(batch)
                batch = []
        if batch:
            self.link.put(batch)
        head = {"format": FORMAT, "box": [list(box[0]), list(box[1])], "w": watermark}
        self.link.put([(self._watermark_key(box), json.dumps(head).encode())])
