"""Bulk import and export of mapped series as CSV (``gateway import`` / ``gateway export``).

The CSV has a header row with a ``v`` column (the element value: JSON text, or plain text
taken as a string) and an optional ``t`` column (capture time in the map rule's ``time``
unit; empty or absent: now). Export writes ``t,v`` for every element, oldest first.
Both work on TStorage directly through the gateway's storage, so no gateway needs to run;
a running gateway sees imported records through its change feed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from gateway.elements import cap_to_time, time_to_cap
from gateway.errors import CodecError, KeyMappingError
from gateway.keymap import LIST_PREFIX, ListTarget
from gateway.storage import GatewayStorage

BATCH_ROWS = 10_000


def list_target(storage: GatewayStorage, key: str) -> ListTarget:
    """The mapped series a user key (``meters/7/3``) or full List key names.

    Raises:
        KeyMappingError: the key is not a mapped List.
    """
    full = key if key.startswith(LIST_PREFIX) else LIST_PREFIX + key
    target = storage.keymap.resolve(full)
    if not isinstance(target, ListTarget):
        raise KeyMappingError(f"{key!r} is not a List key of any map rule")
    return target


def _cell_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _batches(
    reader: Iterator[dict[str, str]], size: int
) -> Iterator[list[tuple[int, dict[str, str]]]]:
    batch: list[tuple[int, dict[str, str]]] = []
    for line, row in enumerate(reader, start=2):
        batch.append((line, row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_csv(storage: GatewayStorage, key: str, path: Path, *, progress: bool = True) -> int:
    """Append every row of ``path`` to the series of ``key``; returns the rows stored.

    Rows are stored in batches of :data:`BATCH_ROWS` (one PUT each); a bad row stops the
    import with its line number, and the batches before it stay stored.

    Raises:
        KeyMappingError: ``key`` is not a mapped List.
        ValueError: the CSV has no ``v`` column, or a row cannot be encoded (with its line).
    """
    target = list_target(storage, key)
    view = storage.series.view(target.rule.index)
    stored = 0
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "v" not in reader.fieldnames:
            raise ValueError(f"{path}: the header needs a 'v' column (and optionally 't')")
        with tqdm(desc=f"import {target.key}", unit="rows", disable=not progress) as bar:
            for batch in _batches(reader, BATCH_ROWS):
                parsed: list[tuple[int | None, bytes]] = []
                for line, row in batch:
                    try:
                        t = (row.get("t") or "").strip()
                        cap = time_to_cap(_cell_value(t), view.shape.time) if t else None
                        parsed.append((cap, view.shape.codec.encode(_cell_value(row["v"]))))
                    except CodecError as exc:
                        raise ValueError(f"{path}:{line}: {exc}") from None
                storage.series.append(target, parsed)
                stored += len(parsed)
                bar.update(len(parsed))
    return stored


def export_csv(storage: GatewayStorage, key: str, out: TextIO, *, progress: bool = True) -> int:
    """Write every element of the series of ``key`` as ``t,v`` rows; returns the count."""
    target = list_target(storage, key)
    view = storage.series.view(target.rule.index)
    caps = storage.series.caps(target).copy()
    n = len(caps)
    writer = csv.writer(out)
    writer.writerow(["t", "v"])
    with tqdm(total=n, desc=f"export {target.key}", unit="rows", disable=not progress) as bar:
        for start in range(0, n, BATCH_ROWS):
            chunk = [int(c) for c in caps[start : start + BATCH_ROWS]]
            payloads = storage.series.fetch(target, chunk)
            for cap in chunk:
                if cap in payloads:
                    value = view.shape.codec.decode(payloads[cap])
                    writer.writerow([cap_to_time(cap, view.shape.time), json.dumps(value)])
            bar.update(len(chunk))
    return n
