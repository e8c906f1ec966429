"""Chunk summaries persisted in TStorage, so every gateway starts from them.

Layout
------
The summaries of series ``(cid, mid, moid)`` are records under the reserved client id
``[tstorage] index_cid``, at ``mid`` and ``moid`` of the series, with
``cap = cid << 32 | generation << 16 | slot``:

* slot 0 of generation 0, the **header**: JSON with the format, the chunk size and codec it
  was made for, the acq watermark ``W`` below which the summaries count every record, the
  number of rows, and for each page of rows the generation that holds it, its length and its
  CRC-32. Each save writes a new version of it; a reader takes the newest.
* slot ``1 + p`` of a generation, **page** ``p``: the raw bytes of rows ``p * PAGE_ROWS`` on
  of every summary column (pages end below the fine directory's slot: a series of more
  than ``MAX_CHUNKS`` chunks persists nothing). A save writes only the pages whose bytes
  changed, under a new generation, so a page key holds one version (generations wrap
  after 65,536 saves; a page read back must match the header's length and CRC, else the
  summaries are rebuilt).
* slot ``FINE_SLOT + p`` of a generation, **fine page** ``p``: the fine rows of chunks
  ``p * PAGE_CHUNKS`` on (:mod:`gateway.storage.fine_rows`). They are read only for the
  chunks a rollup needs; one that is missing or fails its CRC is not used (the chunks are
  read instead).
* slot ``FINE_DIR_SLOT`` of a generation, the **fine directory**: JSON, per fine page its
  generation, length, CRC-32 and first chunk's lower cap (``null``: not written). The
  header names it by generation, length and CRC, and a save writes it only when it
  changed, so the header stays small (its versions are what a reader looks through).

A reader finds the newest header without reading the whole history of saves: it reads the
header's versions acquired in the last hour, then the last day, month, year, then all.

Summaries are exact below ``W``; a gateway that loads them catches up with one GET of the
box from ``W`` (the change feed), which lands records from any writer, corrections and late
records in their chunks, recounted from the chunk's records: nothing counts twice.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.keymap import ACQ_MIN, CAP_RANGE, Box, SeriesKey, record_box
from gateway.storage.fine_rows import FINE_PER_CHUNK, PAGE_CHUNKS, BadPage, FineRows, decode_page
from gateway.storage.link import PutRecord
from gateway.storage.reserved import ReservedStore

#: 2: summary rows with the digest of their chunk's records, and fine pages
FORMAT = 2
PAGE_ROWS = 8192
#: slot of fine page 0
FINE_SLOT = 0x8000
#: slot of the fine directory (summary pages stay below it)
FINE_DIR_SLOT = 0x7FFF
#: most chunks whose summaries a series persists: its pages' slots end below the fine
#: directory's (a longer series is served, and built by a streamed read at each start)
MAX_CHUNKS = (FINE_DIR_SLOT - 1) * PAGE_ROWS
#: most bytes of fine pages in one PUT
_FINE_PUT_BYTES = 8 * 1024 * 1024
_HEADER_SLOT = 0
_GENERATIONS = 1 << 16
COLUMNS: tuple[tuple[str, str], ...] = (
    ("lo", "<i8"),
    ("count", "<i8"),
    ("first_cap", "<i8"),
    ("last_cap", "<i8"),
    ("numeric", "|b1"),
    ("vmin", "<f8"),
    ("vmax", "<f8"),
    ("vsum", "<f8"),
    ("vfirst", "<f8"),
    ("vlast", "<f8"),
    ("digest", "<i8"),
    ("fine", "<i8"),
)
_ROW_BYTES = sum(np.dtype(d).itemsize for _, d in COLUMNS)

log = logging.getLogger("gateway.index")


class CorruptSummary(Exception):
    """A persisted summary failed a check (it is rebuilt, never used)."""


FinePage = tuple[int, int, int, int]
"""``(generation, length, crc32, first lo)`` of a persisted fine page."""


@dataclass(frozen=True)
class Snapshot:
    """Persisted summaries of one series.

    Attributes:
        columns: summary columns by name (see :data:`COLUMNS`).
        watermark: every record with ``acq`` below it is counted.
        generation: the generation of the save.
        pages: ``(generation, length, crc32)`` of each page.
        fine_pages: ``(generation, length, crc32, first lo)`` of each fine page (``None``:
            not written).
        fine_dir: ``(generation, length, crc32)`` of the fine directory record, if any.
    """

    columns: dict[str, npt.NDArray[Any]]
    watermark: int
    generation: int
    pages: list[tuple[int, int, int]]
    fine_pages: list[FinePage | None]
    fine_dir: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Shape:
    """What summaries are made for: a snapshot of another shape is not used."""

    chunk_records: int
    payload_size: int | None
    dtype: str | None

    def as_json(self) -> dict[str, Any]:
        """The fields the header records."""
        return {"chunk": self.chunk_records, "size": self.payload_size, "dtype": self.dtype}


def _page_bytes(columns: dict[str, npt.NDArray[Any]], p: int) -> bytes:
    rows = slice(p * PAGE_ROWS, (p + 1) * PAGE_ROWS)
    return b"".join(
        np.ascontiguousarray(columns[name][rows], dtype=dtype).tobytes() for name, dtype in COLUMNS
    )


def _page_columns(data: bytes) -> dict[str, npt.NDArray[Any]]:
    if len(data) % _ROW_BYTES:
        raise CorruptSummary(f"a page of {len(data)} bytes is not whole rows")
    n = len(data) // _ROW_BYTES
    out: dict[str, npt.NDArray[Any]] = {}
    at = 0
    for name, dtype in COLUMNS:
        size = np.dtype(dtype).itemsize * n
        out[name] = np.frombuffer(data[at : at + size], dtype=dtype).astype(
            np.dtype(dtype).newbyteorder("="), copy=True
        )
        at += size
    return out


class SummaryStore(ReservedStore):
    """Reads and writes the persisted summaries of series under one reserved cid
    (``link``, ``cid``, ``clock`` as :class:`~gateway.storage.reserved.ReservedStore`)."""

    def _cap(self, s: SeriesKey, generation: int, slot: int) -> int:
        return (s.cid << 32) | (generation << 16) | slot

    def _box(self, s: SeriesKey, cap: int, acq_min: int) -> Box:
        return record_box(self.cid, s.mid, s.moid, cap, acq_min)

    def load(self, s: SeriesKey, shape: Shape) -> Snapshot | None:
        """The newest persisted summaries of ``s``, or ``None`` if there are none.

        Raises:
            CorruptSummary: a header or page fails a check, or was made for another shape.
            TStorageUnavailable: TStorage did not answer.
        """
        found = self.newest_version(s.mid, s.moid, self._cap(s, 0, _HEADER_SLOT))
        if found is None:
            return None
        try:
            head = json.loads(found[1])
            if head.get("format") != FORMAT:
                raise CorruptSummary(f"format {head.get('format')!r}, expected {FORMAT}")
            if {k: head.get(k) for k in shape.as_json()} != shape.as_json():
                raise CorruptSummary("made for another chunk size or codec")
            watermark, generation, rows = int(head["w"]), int(head["gen"]), int(head["rows"])
            pages = [(int(g), int(n), int(c)) for g, n, c in head["pages"]]
            fine_dir = None
            shaped = (head.get("fine_per_chunk"), head.get("fine_page"))
            # (fine rows made for other shapes are not used: written again as needed)
            if shaped == (FINE_PER_CHUNK, PAGE_CHUNKS) and head.get("fine") is not None:
                g, n, c = head["fine"]
                fine_dir = (int(g), int(n), int(c))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptSummary(f"unreadable header: {exc}") from None
        parts: list[dict[str, npt.NDArray[Any]]] = []
        for p, (gen, length, crc) in enumerate(pages):
            data = self._matching(s, self._cap(s, gen, 1 + p), length, crc)
            if data is None:
                raise CorruptSummary(f"page {p} is missing or does not match its checksum")
            parts.append(_page_columns(data))
        if not parts:
            raise CorruptSummary("no pages")
        columns = {name: np.concatenate([part[name] for part in parts]) for name, _ in COLUMNS}
        if any(len(c) != rows for c in columns.values()) or rows == 0:
            raise CorruptSummary(f"pages hold {len(columns['lo'])} rows, the header says {rows}")
        lo = columns["lo"]
        if int(lo[0]) != CAP_RANGE[0] or not (lo[1:] > lo[:-1]).all():
            raise CorruptSummary("chunk ranges do not cover the caps in order")
        if (columns["count"] < 0).any():
            raise CorruptSummary("negative counts")
        # (read once the summaries are known good: a corrupt one is rebuilt without them)
        fine = [] if fine_dir is None else self._fine_directory(s, fine_dir)
        return Snapshot(columns, watermark, generation, pages, fine, fine_dir)

    def _fine_directory(self, s: SeriesKey, where: tuple[int, int, int]) -> list[FinePage | None]:
        # The fine pages a header names; none when its record is missing or damaged (the
        # summaries stay usable: fine rows are then made again as chunks are read).
        gen, length, crc = where
        data = self._matching(s, self._cap(s, gen, FINE_DIR_SLOT), length, crc)
        try:
            if data is not None:
                return [None if f is None else (int(f[0]), int(f[1]), int(f[2]), int(f[3]))
                        for f in json.loads(data)]  # fmt: skip
        except (ValueError, TypeError, IndexError):
            pass
        log.warning("the fine rows of series %s are not used: their directory is damaged", s)
        return []

    def _matching(self, s: SeriesKey, cap: int, length: int, crc: int) -> bytes | None:
        # The newest stored version at ``cap`` of the length and CRC a listing gives.
        records, _ = self.link.get(*self._box(s, cap, ACQ_MIN))
        for k, data in sorted(records, key=lambda r: -r[0].acq):
            mine = (k.mid, k.moid) == (s.mid, s.moid)
            if mine and len(data) == length and zlib.crc32(data) == crc:
                return data
        return None

    def next_generation(self, previous: Snapshot | None) -> int:
        """The generation the save after ``previous`` writes its pages under."""
        return ((previous.generation if previous else 0) + 1) % _GENERATIONS

    def load_fine(self, s: SeriesKey, p: int, page: FinePage) -> dict[int, FineRows] | None:
        """The entries of fine page ``p`` of ``s`` (listed as ``page``) by chunk lo, or
        ``None`` when no stored version matches its length and CRC or decodes.

        Raises:
            TStorageUnavailable: TStorage did not answer.
        """
        gen, length, crc, _ = page
        data = self._matching(s, self._cap(s, gen, FINE_SLOT + p), length, crc)
        if data is None:
            return None
        try:
            return decode_page(data)
        except BadPage as exc:
            log.warning("fine page %d of series %s is not used: %s", p, s, exc)
            return None

    def save_fine(
        self, s: SeriesKey, generation: int, pages: dict[int, tuple[bytes, int]]
    ) -> dict[int, FinePage]:
        """Write fine pages of ``s`` (page number: its bytes and first chunk lo) under
        ``generation``, in PUTs of at most 8 MiB; returns what a header lists for them.
        They are used once a header that lists them is saved.

        Raises:
            TStorageUnavailable: not stored (what is persisted stays as it was).
        """
        out: dict[int, FinePage] = {}
        batch: list[PutRecord] = []
        size = 0
        for p, (data, first_lo) in sorted(pages.items()):
            if FINE_SLOT + p >= _GENERATIONS:
                break  # past the slots of a generation: those chunks keep no fine rows
            batch.append(((self.cid, s.mid, s.moid, self._cap(s, generation, FINE_SLOT + p)),
                          data))  # fmt: skip
            out[p] = (generation, len(data), zlib.crc32(data), first_lo)
            size += len(data)
            if size >= _FINE_PUT_BYTES:
                self.link.put(batch)
                batch, size = [], 0
        if batch:
            self.link.put(batch)
        return out

    def save(
        self,
        s: SeriesKey,
        shape: Shape,
        columns: dict[str, npt.NDArray[Any]],
        watermark: int,
        previous: Snapshot | None,
        extra: Sequence[PutRecord] = (),
        fine_pages: Sequence[FinePage | None] = (),
    ) -> Snapshot:
        """Write the summaries of ``s`` (exact below ``watermark``) in one PUT: the pages
        that changed since ``previous``, ``extra`` records (the series' head) and a new
        header, which lists ``fine_pages`` (written before, :meth:`save_fine`).

        Raises:
            TStorageUnavailable: not stored (the previous save stays the newest).
        """
        rows = len(columns["lo"])
        if rows > MAX_CHUNKS:
            raise ValueError(f"{rows} chunks: summaries persist for at most {MAX_CHUNKS}")
        generation = self.next_generation(previous)
        old = previous.pages if previous else []
        pages: list[tuple[int, int, int]] = []
        records: list[PutRecord] = []
        for p in range(-(-rows // PAGE_ROWS)):
            data = _page_bytes(columns, p)
            crc = zlib.crc32(data)
            if p < len(old) and old[p][1:] == (len(data), crc):
                pages.append(old[p])
                continue
            pages.append((generation, len(data), crc))
            records.append(((self.cid, s.mid, s.moid, self._cap(s, generation, 1 + p)), data))
        fine = list(fine_pages)
        fine_dir = previous.fine_dir if previous and previous.fine_pages == fine else None
        if fine and fine_dir is None:
            data = json.dumps(fine, separators=(",", ":")).encode()
            fine_dir = (generation, len(data), zlib.crc32(data))
            records.append(((self.cid, s.mid, s.moid, self._cap(s, generation, FINE_DIR_SLOT)),
                            data))  # fmt: skip
        head = {"format": FORMAT, **shape.as_json(), "w": watermark, "gen": generation,
                "rows": rows, "pages": pages, "fine_per_chunk": FINE_PER_CHUNK,
                "fine_page": PAGE_CHUNKS, "fine": fine_dir}  # fmt: skip
        header = json.dumps(head, separators=(",", ":")).encode()
        records.extend(extra)
        records.append(((self.cid, s.mid, s.moid, self._cap(s, 0, _HEADER_SLOT)), header))
        self.link.put(records)
        return Snapshot(columns, watermark, generation, pages, fine, fine_dir)
