"""Bulk import and export (``gateway import`` / ``gateway export``), straight on TStorage.

Two formats, one per kind of key (``docs/gateway.md`` has the operator's view):

* **CSV** (:mod:`~gateway.transfer.series_csv`) for mapped keys: a List is ``t,v`` rows, a
  Dict ``field,t,v`` rows (every record of every field);
* **JSON Lines** (:mod:`~gateway.transfer.generic_jsonl`) for generic keys: one key per
  line with its type, whole value and expiry; export takes a glob pattern.

The format is given, or follows the file's extension (``.csv``; ``.jsonl``/``.ndjson``),
or, for an export to standard output, the key: CSV for a mapped key, JSON Lines otherwise.
Both work through the gateway's storage directly, so no gateway needs to run; a running
gateway sees imported records through its change feed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TextIO

from gateway.errors import KeyMappingError
from gateway.storage import GatewayStorage
from gateway.transfer.common import BATCH_ROWS, Summary, TransferError
from gateway.transfer.generic_jsonl import KeyEntry, export_jsonl, import_jsonl, parse_entry
from gateway.transfer.series_csv import (
    EXISTING,
    Existing,
    TimeFormat,
    export_csv,
    import_csv,
    mapped_target,
)

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

__all__ = [
    "BATCH_ROWS",
    "EXISTING",
    "EXTENSIONS",
    "FORMATS",
    "Existing",
    "Format",
    "KeyEntry",
    "Summary",
    "TimeFormat",
    "TransferError",
    "choose_format",
    "export_csv",
    "export_jsonl",
    "export_to",
    "import_csv",
    "import_file",
    "import_jsonl",
    "mapped_target",
    "parse_entry",
]


def choose_format(
    given: str | None,
    path: Path | None,
    key: str | None = None,
    storage: GatewayStorage | None = None,
) -> Format:
    """The format of a transfer: ``given``, else the extension of ``path``, else the key's.

    Raises:
        TransferError: an unknown ``given`` format, or no way to tell.
    """
    if given is not None:
        if given not in FORMATS:
            raise TransferError(f"unknown format {given!r}; use csv or jsonl")
        return "csv" if given == "csv" else "jsonl"
    if path is not None and path.suffix.lower() in EXTENSIONS:
        return EXTENSIONS[path.suffix.lower()]
    if path is None and storage is not None:
        if key is None:
            return "jsonl"
        try:
            mapped_target(storage, key)
        except (TransferError, KeyMappingError):
            return "jsonl"
        return "csv"
    raise TransferError(
        f"cannot tell the format of {str(path)!r} from its extension "
        "(.csv, .jsonl, .ndjson): give --format csv or --format jsonl"
    )


def import_file(
    storage: GatewayStorage,
    path: Path,
    fmt: Format,
    *,
    key: str | None = None,
    replace: bool = False,
    progress: bool = True,
    existing: Existing = "error",
) -> Summary:
    """Import ``path``: CSV into the mapped key ``key``, JSON Lines as generic keys.

    For JSON Lines, ``key`` is an optional glob: only matching keys are restored.
    ``existing`` is the CSV policy for rows at times a series already holds.

    Raises:
        TransferError: see :func:`import_csv` and :func:`import_jsonl`.
    """
    if fmt == "csv":
        if key is None:
            raise TransferError(
                "a CSV import needs --key, the List or Dict it goes to (e.g. meters/7/3)"
            )
        if replace:
            raise TransferError(
                "--replace is for generic keys (JSON Lines); a series only grows, and "
                "records at an existing time are corrections (allow_corrections)"
            )
        return import_csv(storage, key, path, progress=progress, existing=existing)
    if existing != "error":
        raise TransferError(
            "--existing is for CSV rows of a series; JSON Lines imports leave keys that "
            "already hold the file's value alone and refuse others unless --replace"
        )
    return import_jsonl(storage, path, pattern=key, replace=replace, progress=progress)


def export_to(
    storage: GatewayStorage,
    out: TextIO,
    fmt: Format,
    *,
    key: str | None = None,
    progress: bool = True,
    time: TimeFormat = "unit",
) -> Summary:
    """Export to ``out``: the mapped key ``key`` as CSV, or generic keys as JSON Lines.

    For JSON Lines, ``key`` is a glob pattern (``None``: every generic key). ``time`` is
    how CSV writes ``t``: the rule's unit, or ``iso`` (ISO-8601 UTC).

    Raises:
        TransferError: see :func:`export_csv` and :func:`export_jsonl`.
    """
    if fmt == "csv":
        if key is None:
            raise TransferError(
                "a CSV export needs --key, the List or Dict to export (e.g. meters/7/3)"
            )
        return export_csv(storage, key, out, progress=progress, time=time)
    if time != "unit":
        raise TransferError("--time is for CSV; JSON Lines has no record times")
    return export_jsonl(storage, key, out, progress=progress)
