"""What every transfer format shares: errors that name the file and line, batches, the bar."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

#: Rows (CSV) or keys (JSON Lines) checked together and then written; a bad one stops the
#: transfer before anything of its batch is written.
BATCH_ROWS = 10_000

T = TypeVar("T")


class TransferError(ValueError):
    """A file, row or key that cannot be transferred.

    ``str()`` is ``FILE:LINE: reason`` when the line is known, as compilers write it.

    Attributes:
        reason: what is wrong, for a person.
        path: the file, if the error is about one.
        line: the 1-based line of the file, if the error is about one row.
        stored: rows or keys stored before the error, by the batches before the failing one.
        unit: what ``stored`` counts (``row(s)`` or ``key(s)``).
        partial: the failing batch may be stored, wholly or in part (a PUT whose answer
            never came); when false, nothing of it was written.
    """

    def __init__(
        self,
        reason: str,
        path: Path | str | None = None,
        line: int | None = None,
        *,
        stored: int = 0,
        unit: str = "row(s)",
        partial: bool = False,
    ):
        self.reason = reason
        self.path = None if path is None else str(path)
        self.line = line
        self.stored = stored
        self.unit = unit
        self.partial = partial
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is not None and self.line is not None:
            return f"{self.path}:{self.line}: {self.reason}"
        if self.path is not None:
            return f"{self.path}: {self.reason}"
        return self.reason


@dataclass
class Summary:
    """What a transfer did, as the command line reports it.

    Attributes:
        done: rows or keys written (import) or written out (export).
        unit: ``row(s)`` or ``key(s)``.
        notes: further counts worth telling (``3 unchanged``), in order.
    """

    done: int
    unit: str
    notes: list[str] = field(default_factory=list)

    def text(self, verb: str, where: str) -> str:
        """One line such as ``imported 3 key(s) from keys.jsonl (1 unchanged)``."""
        tail = f" ({', '.join(self.notes)})" if self.notes else ""
        return f"{verb} {self.done} {self.unit} {where}{tail}"


def batches(items: Iterable[T], size: int = BATCH_ROWS) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def progress_bar(desc: str, unit: str, total: int | None, enabled: bool) -> tqdm[Any]:
    """A tqdm bar on standard error; shown only when ``enabled`` and stderr is a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True)


def count_lines(path: Path) -> int:
    """Newline-terminated lines of a file (one fast pass, for the bar's total)."""
    n = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


@contextmanager
def replaced_atomically(path: Path) -> Iterator[TextIO]:
    """A text file that replaces ``path`` only when the block ends without an error.

    An export that fails half-way leaves an existing file as it was instead of cut short.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
