"""Mapped keys as CSV: a List is one series (``t,v``), a Dict one meter (``field,t,v``).

``t`` is the capture time in the map rule's ``time`` unit or an ISO-8601 time (no zone =
UTC; empty or absent: now), ``v`` the value as JSON text (plain text that is not JSON is
taken as a string). Export writes ``t`` in the rule's unit, or as ISO-8601 UTC with
nanoseconds when asked (:data:`TimeFormat`). A Dict file has one
row per record of each field; export writes every record (the whole history, oldest first
per field), so exporting and importing into an empty TStorage reproduces the Dict, latest
values and history alike.

Rows are checked a batch at a time (:data:`~gateway.transfer.common.BATCH_ROWS`) before any
is written, with the rules appends follow (``docs/data-model.md``): a series only grows at
its end. A row at a time the series already holds follows the import's
:data:`Existing` policy: an error (the default), skipped (so a file that stopped at a bad
row can be imported again once fixed), or written as a correction (only for a rule with
``allow_corrections``). So a bad row is reported with its line and nothing of its batch is
stored; the batches before it stay stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from gateway.elements import TimeUnit, cap_to_time, time_to_cap
from gateway.errors import CodecError, KeyMappingError, TStorageUnavailable
from gateway.keymap import (
    CAP_RANGE,
    DICT_PREFIX,
    LIST_PREFIX,
    DictTarget,
    ListTarget,
    user_key,
)
from gateway.storage import GatewayStorage
from gateway.timeseries.times import parse_time
from gateway.transfer.common import (
    BATCH_ROWS,
    Summary,
    TransferError,
    batches,
    count_lines,
    progress_bar,
)
from tstorage_client.timestamp import EPOCH, EPOCH_OFFSET_NS
from znsocket.exceptions import DataError

LIST_COLUMNS = ("t", "v")
DICT_COLUMNS = ("field", "t", "v")

Existing = Literal["skip", "error", "correct"]
"""What an import does with a row at a time its series already holds: refuse it (``error``,
the default), leave the stored record (``skip``), or overwrite it (``correct``)."""
EXISTING: tuple[Existing, ...] = ("error", "skip", "correct")

TimeFormat = Literal["unit", "iso"]
"""How export writes ``t``: in the map rule's time unit, or as ISO-8601 UTC."""


def mapped_target(storage: GatewayStorage, key: str) -> ListTarget | DictTarget:
    """The List or Dict a user key (``meters/7/3``, ``meters/7``) or full key names.

    Raises:
        TransferError: no map rule maps the key, or it is both a List and a Dict key.
        KeyMappingError: the key has a rule's shape with a bad placeholder.
    """
    if key.startswith((LIST_PREFIX, DICT_PREFIX)):
        candidates = [key]
    else:
        candidates = [LIST_PREFIX + key, DICT_PREFIX + key]
    found: list[ListTarget | DictTarget] = []
    problem: KeyMappingError | None = None
    for full in candidates:
        try:
            target = storage.keymap.resolve(full)
        except KeyMappingError as exc:
            problem = problem or exc
            continue
        if target is not None:
            found.append(target)
    if len(found) == 1:
        return found[0]
    if found:
        raise TransferError(
            f"{key!r} is both a List and a Dict key; name one: "
            f"{LIST_PREFIX}{key} or {DICT_PREFIX}{key}"
        )
    if problem is not None:
        raise problem
    raise TransferError(
        f"{key!r} is not a List or Dict key of any map rule (unmapped keys are "
        "transferred as JSON Lines: use a .jsonl file or --format jsonl)"
    )


def field_series(target: DictTarget, moid: int) -> ListTarget:
    """The series behind one field of a Dict, seen as a List of that Dict's rule."""
    return ListTarget(target.key, target.rule, target.series(moid))


def _cell_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _cell_time(text: str, unit: TimeUnit) -> int:
    """The capture time of a ``t`` cell: a number in ``unit`` or an ISO-8601 time."""
    value = _cell_value(text)
    if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
        try:
            cap = parse_time(value, "t")
        except DataError as exc:
            if "outside" in str(exc):  # a valid time TStorage cannot hold
                raise CodecError(f"t={value!r} is outside TStorage's time range") from None
            raise CodecError(
                f"t={value!r} is neither a number of {unit} (the map rule's time unit) nor an "
                "ISO-8601 time such as 2023-11-14T22:13:20Z"
            ) from None
        assert cap is not None
        if cap > CAP_RANGE[1]:
            raise CodecError(f"t={value!r} is outside TStorage's time range")
        return cap
    return time_to_cap(value, unit)


def iso_times(caps: Sequence[int]) -> list[str]:
    """Capture times as ISO-8601 UTC with nanoseconds (``2023-11-14T22:13:20.000000000Z``).

    Exact: importing the text gives the same capture times back.
    """
    held = np.asarray(caps, dtype=np.int64)
    if len(held) and int(held.max()) > _LAST_NUMPY_CAP:  # past 2262: beyond datetime64[ns]
        return [_iso_time(int(c)) for c in held]
    unix = held + np.int64(EPOCH_OFFSET_NS)
    return [f"{text}Z" for text in np.datetime_as_string(unix.astype("datetime64[ns]"))]


_LAST_NUMPY_CAP = 2**63 - 1 - EPOCH_OFFSET_NS


def _iso_time(cap: int) -> str:
    seconds, ns = divmod(cap, 10**9)
    when = EPOCH + dt.timedelta(seconds=seconds)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{ns:09d}Z"


def _check_header(
    path: Path, header: Sequence[str] | None, target: ListTarget | DictTarget
) -> None:
    is_dict = isinstance(target, DictTarget)
    kind, columns = ("a Dict", DICT_COLUMNS) if is_dict else ("a List", LIST_COLUMNS)
    expected = ", ".join(columns)
    if not header:
        raise TransferError(
            f"the file is empty; {kind} CSV starts with the header {expected}", path
        )
    required = ("field", "v") if is_dict else ("v",)
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in columns]
    doubled = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or doubled:
        what = []
        if missing:
            what.append(f"needs a {' and a '.join(repr(c) for c in missing)} column")
        if unknown:
            what.append(f"has unexpected column(s) {', '.join(repr(c) for c in unknown)}")
        if doubled:
            what.append(f"repeats column(s) {', '.join(repr(c) for c in doubled)}")
        raise TransferError(
            f"the header {'; '.join(what)}: {user_key(target.key)} is {kind}, "
            f"whose CSV has the columns {expected} ('t' optional)",
            path,
            1,
        )


class _Plan:
    """The records of one batch, per series, checked against what the series holds."""

    def __init__(
        self,
        storage: GatewayStorage,
        path: Path,
        target: ListTarget | DictTarget,
        existing: Existing = "error",
    ):
        self.storage = storage
        self.path = path
        self.target = target
        self.existing = existing
        self.rows: dict[int, list[tuple[int, int | None, bytes]]] = {}  # moid -> rows
        self.skipped = 0
        self.corrected = 0

    def add(self, line: int, row: dict[str | None, Any]) -> None:
        if None in row or None in row.values():
            raise TransferError(
                "the row has another number of cells than the header", self.path, line
            )
        try:
            moid = self._moid(row)
            t = (row.get("t") or "").strip()
            shape = self.target.rule.shape
            cap = _cell_time(t, shape.time) if t else None
            payload = shape.codec.encode(_cell_value(row["v"]))
        except (CodecError, KeyMappingError) as exc:
            raise TransferError(str(exc), self.path, line) from None
        self.rows.setdefault(moid, []).append((line, cap, payload))

    def _moid(self, row: dict[str | None, Any]) -> int:
        if isinstance(self.target, ListTarget):
            return self.target.series.moid
        return self.target.moid_for_field(row["field"])

    def series(self, moid: int) -> ListTarget:
        t = self.target
        return t if isinstance(t, ListTarget) else field_series(t, moid)

    def _what(self, moid: int) -> str:
        t = self.target
        if isinstance(t, ListTarget):
            return user_key(t.key)
        return f"field {t.field_for_moid(moid)!r} of {user_key(t.key)}"

    def check(self) -> None:
        """Refuse, with its line, the first row an append would refuse, and apply the
        :data:`Existing` policy to rows at times already held (skipped rows are dropped)."""
        rule = self.target.rule
        if rule.read_only:
            raise TransferError(
                f"{user_key(self.target.key)} is read-only (its map rule sets read_only = true)"
            )
        unit = rule.shape.time
        for moid, rows in self.rows.items():
            asked = [cap for _, cap, _ in rows if cap is not None]
            last, stored = self.storage.series.existing(self.series(moid), asked)
            seen: set[int] = set()
            kept: list[tuple[int, int | None, bytes]] = []
            for row in rows:
                line, cap, _ = row
                if cap is None:  # now: after the last record, whatever the clock says
                    now = self.storage.series.clock()
                    last = now if last is None else max(now, last + 1)
                    kept.append(row)
                    continue
                if last is not None and cap <= last:
                    if cap not in seen and cap not in stored:
                        raise TransferError(
                            f"t={cap_to_time(cap, unit)} lies before the last record of "
                            f"{self._what(moid)} (t={cap_to_time(last, unit)}) and matches "
                            "none: a series grows only at its end (sort the rows by t)",
                            self.path,
                            line,
                        )
                    if self.existing == "skip":
                        self.skipped += 1
                        continue
                    if self.existing == "error" or not rule.allow_corrections:
                        off = (
                            ""
                            if rule.allow_corrections
                            else (
                                " and corrections are off for its map rule (allow_corrections = "
                                "false)"
                            )
                        )
                        raise TransferError(
                            f"{self._what(moid)} already has a record at "
                            f"t={cap_to_time(cap, unit)}{off}; to import the file again, give "
                            "--existing skip to keep the stored records"
                            + (" or --existing correct to overwrite them" if not off else ""),
                            self.path,
                            line,
                        )
                    self.corrected += 1
                seen.add(cap)
                last = cap if last is None else max(last, cap)
                kept.append(row)
            self.rows[moid] = kept

    def store(self) -> int:
        """Append every row (one PUT per series); returns the number stored."""
        n = 0
        for moid, rows in self.rows.items():
            self.storage.series.append(self.series(moid), [(c, p) for _, c, p in rows])
            n += len(rows)
        return n


def import_csv(
    storage: GatewayStorage,
    key: str,
    path: Path,
    *,
    progress: bool = True,
    existing: Existing = "error",
) -> Summary:
    """Append every row of ``path`` to the List or Dict ``key``.

    Args:
        existing: what to do with a row at a time its series already holds
            (:data:`Existing`); ``correct`` needs a rule with ``allow_corrections``.

    Raises:
        TransferError: no such mapped key, a wrong header, a bad row (with its line;
            ``stored`` tells how many rows earlier batches stored), or ``correct`` asked
            of a rule without corrections.
        KeyMappingError: the key has a rule's shape with a bad placeholder.
        TStorageUnavailable: TStorage did not answer while rows were checked (a PUT that
            fails becomes a ``TransferError`` that says how much was stored).
    """
    target = mapped_target(storage, key)
    if existing not in EXISTING:
        raise TransferError(f"unknown --existing {existing!r}; use {', '.join(EXISTING)}")
    if existing == "correct" and not target.rule.allow_corrections:
        raise TransferError(
            f"--existing correct: corrections are off for the map rule of {user_key(target.key)} "
            "(allow_corrections = false), so nothing was imported; use --existing skip"
        )
    total = max(count_lines(path) - 1, 0) if progress else None
    stored = skipped = corrected = 0
    # utf-8-sig: spreadsheet programs start their UTF-8 CSV with a byte order mark
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        try:
            _check_header(path, reader.fieldnames, target)

            def rows() -> Iterator[tuple[int, dict[str | None, Any]]]:
                for row in reader:
                    yield reader.line_num, row

            name = user_key(target.key)
            with progress_bar(f"import {name}", "rows", total, progress) as bar:
                for batch in batches(rows(), BATCH_ROWS):
                    plan = _Plan(storage, path, target, existing)
                    for at, row in batch:
                        plan.add(at, row)
                    plan.check()
                    skipped += plan.skipped
                    corrected += plan.corrected
                    try:
                        stored += plan.store()
                    except TStorageUnavailable as exc:
                        raise TransferError(
                            f"{exc}; rows from line {batch[0][0]} on may be partly stored "
                            "(one PUT per series)",
                            path,
                            partial=True,
                        ) from None
                    bar.update(len(batch))
        except UnicodeDecodeError as exc:
            raise TransferError(
                f"not UTF-8 text ({exc.reason} at byte {exc.start} of a block read after "
                f"line {reader.line_num})",
                path,
            ) from None
        except TransferError as exc:
            exc.stored = stored
            raise
        except csv.Error as exc:
            raise TransferError(f"not CSV: {exc}", path, reader.line_num) from None
    notes = [f"{skipped} skipped: already stored"] if skipped else []
    if corrected:
        notes.append(f"{corrected} of them corrections")
    return Summary(stored, "row(s)", notes)


def export_csv(
    storage: GatewayStorage,
    key: str,
    out: TextIO,
    *,
    progress: bool = True,
    time: TimeFormat = "unit",
) -> Summary:
    """Write every record of the List or Dict ``key``, oldest first (per field).

    A List is written as ``t,v`` rows, a Dict as ``field,t,v`` rows, its fields in the
    order ``hkeys`` lists them; ``t`` in the rule's time unit, or ISO-8601 UTC with
    ``time="iso"``.

    Raises:
        TransferError: no such mapped key.
        CodecError: a record's payload does not decode with the rule's codec.
        TStorageUnavailable: TStorage did not answer.
    """
    from gateway.timeseries.reads import TimeSeriesReads  # (it imports the storage)

    target = mapped_target(storage, key)
    unit = target.rule.shape.time
    parts: list[tuple[str | None, ListTarget]]
    columns: Sequence[str]
    if isinstance(target, ListTarget):
        parts, columns = [(None, target)], LIST_COLUMNS
    else:
        parts = [
            (name, field_series(target, target.moid_for_field(name)))
            for name in storage.series.hkeys(target)
        ]
        columns = DICT_COLUMNS
    reads = TimeSeriesReads(storage)
    # counted before the header is written: an unreachable TStorage leaves the output empty
    total = sum(reads.info(series)[0] for _, series in parts)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    written = 0
    with progress_bar(f"export {user_key(target.key)}", "rows", total, progress) as bar:
        for field, series in parts:
            prefix = [] if field is None else [field]
            cursor: int | None = None
            while True:  # a batch at a time, from where the last ended: memory stays flat
                w = reads.range(series, cursor, None, limit=BATCH_ROWS)
                chunk = w.caps.tolist()
                times: Sequence[int | float | str] = (
                    iso_times(chunk) if time == "iso" else [cap_to_time(c, unit) for c in chunk]
                )
                writer.writerows(
                    [*prefix, t, json.dumps(v)]
                    for t, v in zip(times, w.values, strict=True)
                )  # fmt: skip
                written += len(chunk)
                bar.update(len(chunk))
                if w.next_cap is None:
                    break
                cursor = w.next_cap
    return Summary(written, "row(s)")
