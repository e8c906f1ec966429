"""Fine rows: summaries of runs of records finer than a chunk, persisted beside the chunk
summaries and read only for the chunks a rollup needs.

Why
---
An aligned rollup (``ts:range`` with ``align="rows"``) moves each bucket edge to the nearest
summary row boundary so the rows count whole and their records are not read. With 1,000
buckets over a window of about as many chunks, a chunk is as wide as a bucket and most
edges cannot move far enough: the window's chunks were read whole (4M records at the
default chunk size). Rows a sixteenth of a chunk wide (:func:`fine_size`) give every edge a
boundary close by; they are too many to hold for every chunk (a 1B-record series has about
4M), so they are persisted in pages and read for the window's chunks only.

Validity
--------
A chunk's fine rows are trusted only for the records they were made from. Each summary
row carries a digest of its chunk's records (:func:`digest`: a sum of a 64-bit hash of each
record's cap and value, so appends update it by adding and a recount gives the same bits
however the chunk was filled); an entry records the digest it was made for, and a reader
uses it only when that equals the chunk's digest now. A stale, missing or corrupt entry
makes the rollup read the chunk, as without fine rows.

Page layout (little-endian): ``m`` (int64), then ``lo``, ``digest`` and ``rows`` of the
page's ``m`` chunks (int64 each), then the fine rows of those chunks in order as eight
columns (first cap, last cap, count: int64; min, max, sum, first, last: float64).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gateway.timeseries.downsample import Part

#: fine rows per chunk of ``chunk_records`` (each holds ``chunk_records // FINE_PER_CHUNK``)
FINE_PER_CHUNK = 16
#: chunks per persisted page of fine rows (a page of 4,096-record chunks: about 260 KB)
PAGE_CHUNKS = 256

_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_GOLD = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_INT_COLUMNS = ("cap", "cap_last", "n")
_FLOAT_COLUMNS = ("min", "max", "sum", "first", "last")


def fine_size(chunk_records: int) -> int:
    """Records per fine row for chunks of ``chunk_records``."""
    return max(1, chunk_records // FINE_PER_CHUNK)


def _hashes(caps: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
    # a 64-bit mix (splitmix64's finaliser) of each record's cap and value bits
    with np.errstate(over="ignore"):
        h = caps.astype(np.uint64) ^ (
            np.ascontiguousarray(values, dtype=np.float64).view(np.uint64) * np.uint64(_GOLD)
        )
        h = (h ^ (h >> np.uint64(30))) * np.uint64(_M1)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(_M2)
        h ^= h >> np.uint64(31)
    return h


def digest(caps: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> int:
    """The digest of records ``(cap, value)`` (any order): the sum, modulo 2**64, of a
    64-bit mix of each record's cap and value bits, as a signed int64 (the summary
    column's type)."""
    h = _hashes(caps, values)
    total = int(h.sum(dtype=np.uint64)) if h.size else 0
    return total - (1 << 64) if total >= 1 << 63 else total


def digests(
    caps: npt.NDArray[np.int64], values: npt.NDArray[np.float64], starts: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """:func:`digest` of each run of records beginning at ``starts`` (ascending, the first
    0, none empty)."""
    return np.add.reduceat(_hashes(caps, values), starts).view(np.int64)


def digest_one(cap: int, value: float) -> int:
    """:func:`digest` of one record, in Python integers (the append path)."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    h = (cap & _MASK) ^ ((bits * _GOLD) & _MASK)
    h = ((h ^ (h >> 30)) * _M1) & _MASK
    h = ((h ^ (h >> 27)) * _M2) & _MASK
    return h ^ (h >> 31)


def add_digests(a: int, b: int) -> int:
    """``a + b`` modulo 2**64, as a signed int64 (digests of disjoint records combine so)."""
    total = (a + b) & _MASK
    return total - (1 << 64) if total >= 1 << 63 else total


@dataclass(frozen=True)
class FineRows(Part):
    """The fine rows of the chunk starting at cap ``lo`` (each counts a run of its records
    in one row), made for the records whose digest is ``digest``."""

    lo: int = 0
    digest: int = 0

    @classmethod
    def of(
        cls,
        lo: int,
        caps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        size: int,
        chunk_digest: int,
    ) -> FineRows:
        """The fine rows of a chunk's records (``size`` records each), made for the digest
        of its summary row."""
        rows = cls.runs(caps, values, np.arange(0, len(caps), size, dtype=np.int64))
        return replace(rows, lo=lo, digest=chunk_digest)


def encode_page(entries: list[FineRows]) -> bytes:
    """The bytes of a page holding ``entries`` (ascending by ``lo``)."""
    m = len(entries)
    head = np.empty(1 + 3 * m, dtype="<i8")
    head[0] = m
    head[1 : 1 + m] = [e.lo for e in entries]
    head[1 + m : 1 + 2 * m] = [e.digest for e in entries]
    head[1 + 2 * m :] = [len(e.n) for e in entries]
    parts = [head.tobytes()]
    for name in _INT_COLUMNS:
        parts.append(np.concatenate([getattr(e, name) for e in entries] or [np.empty(0)])
                     .astype("<i8").tobytes())  # fmt: skip
    for name in _FLOAT_COLUMNS:
        parts.append(np.concatenate([getattr(e, name) for e in entries] or [np.empty(0)])
                     .astype("<f8").tobytes())  # fmt: skip
    return b"".join(parts)


#: bytes a waiting chunk's fine rows hold besides their columns (eight array headers, the
#: row object, its dict slot)
PENDING_OVERHEAD = 1024


def pending_bytes(rows: FineRows) -> int:
    """What one chunk's fine rows hold while they wait for their page."""
    return rows.nbytes + PENDING_OVERHEAD


class PendingFine(MutableMapping[int, FineRows]):
    """Fine rows made here whose page is not written yet, by chunk lo. Every change tells
    ``moved`` how many bytes the rows held grew by (negative: shrank;
    :func:`pending_bytes`), so that the memory budget counts them."""

    def __init__(self, moved: Callable[[int], None]) -> None:
        self._rows: dict[int, FineRows] = {}
        self._moved = moved

    def __getitem__(self, lo: int) -> FineRows:
        return self._rows[lo]

    def __setitem__(self, lo: int, rows: FineRows) -> None:
        old = self._rows.get(lo)
        self._rows[lo] = rows
        self._moved(pending_bytes(rows) - (0 if old is None else pending_bytes(old)))

    def __delitem__(self, lo: int) -> None:
        self._moved(-pending_bytes(self._rows.pop(lo)))

    def __iter__(self) -> Iterator[int]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class BadPage(ValueError):
    """A page's bytes do not decode (it is not used)."""


def decode_page(data: bytes) -> dict[int, FineRows]:
    """The entries of a page by their chunk's ``lo``.

    Raises:
        BadPage: the bytes are not a whole page.
    """
    if len(data) < 8 or len(data) % 8:
        raise BadPage(f"a page of {len(data)} bytes")
    words = np.frombuffer(data, dtype="<i8")
    m = int(words[0])
    if m < 0 or 1 + 3 * m > words.size:
        raise BadPage(f"a page of {len(data)} bytes cannot hold {m} chunks")
    los = words[1 : 1 + m]
    dig = words[1 + m : 1 + 2 * m]
    rows = words[1 + 2 * m : 1 + 3 * m]
    total = int(rows.sum())
    if (rows < 0).any() or words.size != 1 + 3 * m + 8 * total:
        raise BadPage("row counts do not match the page's length")
    at = 1 + 3 * m
    ints = [words[at + i * total : at + (i + 1) * total].astype(np.int64) for i in range(3)]
    at += 3 * total
    floats = np.frombuffer(data, dtype="<f8")
    fl = [floats[at + i * total : at + (i + 1) * total].astype(np.float64) for i in range(5)]
    out: dict[int, FineRows] = {}
    ends = np.cumsum(rows).tolist()
    for j, (a, b) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
        lo = int(los[j])
        out[lo] = FineRows(
            ints[0][a:b], ints[1][a:b], ints[2][a:b], fl[0][a:b], fl[1][a:b], fl[2][a:b],
            fl[3][a:b], fl[4][a:b], lo=lo, digest=int(dig[j]),
        )  # fmt: skip
    return out
