"""Generic (unmapped) keys as JSON Lines: one key per line, with its type and whole value.

A line is a JSON object::

    {"key": "site:name", "type": "string", "value": "Plant 7"}
    {"key": "znsocket.List:jobs", "type": "list", "value": ["\\"a\\"", "\\"b\\""]}
    {"key": "znsocket.Dict:settings", "type": "hash", "value": {"mode": "\\"auto\\""}}
    {"key": "tags", "type": "set", "value": ["a", "b"]}
    {"key": "ranks", "type": "zset", "value": [["alice", 1.5], ["bob", 2.0]]}
    {"key": "session:1", "type": "string", "value": "x", "expire_at": 1763812345}

Why this shape: the generic store holds Redis types whose members are text, and JSON holds
each of them exactly (strings, arrays of strings, an object of strings, sorted-set pairs in
score order); one line per key keeps a file streamable, greppable and line-numbered for
errors, whatever its size, and it is what ``redis-dump``-style tools write. ``type`` uses
the names of Redis ``TYPE``. ``expire_at`` (Unix seconds, absent when the key does not
expire) is an absolute time, as the store itself keeps it, so a key expires at the same
moment however long the file waits between export and import. Sorted-set scores of
``±inf`` are written as ``Infinity``/``-Infinity`` (Python's JSON reads them back).

Import restores each key to exactly the file's value. A key that already holds exactly that
is left alone (so an interrupted import can simply be run again); a key that holds
something else is refused unless ``replace`` is given, as Redis ``RESTORE`` refuses a busy
key without ``REPLACE``. Keys are checked a batch at a time before any is written.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TextIO

from gateway.errors import KeyMappingError, TStorageOutcomeUnknown, TStorageUnavailable
from gateway.keymap import DICT_PREFIX, LIST_PREFIX
from gateway.storage import GatewayStorage
from gateway.storage.generic import GenericKeys
from gateway.transfer.common import (
    BATCH_ROWS,
    Summary,
    TransferError,
    batches,
    count_lines,
    progress_bar,
)

TYPES = ("string", "list", "hash", "set", "zset")
_FIELDS = ("key", "type", "value", "expire_at")
_GLOB = set("*?[")


@dataclass(frozen=True)
class KeyEntry:
    """One generic key: name, Redis type, whole value and absolute expiry (Unix seconds)."""

    key: str
    type: str
    value: Any
    expire_at: float | None = None

    def line(self) -> str:
        """The JSON Lines form (one line, no newline)."""
        out: dict[str, Any] = {"key": self.key, "type": self.type, "value": self.value}
        if self.expire_at is not None:
            out["expire_at"] = self.expire_at
        return json.dumps(out, ensure_ascii=False)

    def state(self) -> dict[str, Any]:
        """The generic store's snapshot of this key (``gateway/storage/generic.py``)."""
        out: dict[str, Any] = {"k": self.key, "t": self.type, "v": self.value}
        if self.expire_at is not None:
            out["x"] = self.expire_at
        return out

    def same_as(self, other: KeyEntry) -> bool:
        """Same type and value, and expiries at most two seconds apart (the store keeps
        whole-second TTLs, so an expiry read back can be off by a rounding either way)."""
        if self.type != other.type or _comparable(self) != _comparable(other):
            return False
        if self.expire_at is None or other.expire_at is None:
            return self.expire_at is None and other.expire_at is None
        return abs(self.expire_at - other.expire_at) <= 2


def _comparable(entry: KeyEntry) -> Any:
    if entry.type == "set":
        return set(entry.value)
    if entry.type == "zset":
        return {m: float(s) for m, s in entry.value}
    return entry.value


# ------------------------------------------------------------------- parsing
def _texts(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"a {what} value is a non-empty array of strings")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"a {what} holds strings only (the store keeps text); got {value!r:.80}")
    return value


def _no_repeats(members: list[str], what: str) -> None:
    if len(set(members)) != len(members):
        repeated = sorted({m for m in members if members.count(m) > 1})
        raise ValueError(f"the {what} names member(s) {repeated!r:.80} more than once")


def parse_entry(text: str) -> KeyEntry:
    """A :class:`KeyEntry` from one line of a JSON Lines file.

    Raises:
        ValueError: not a JSON object, unknown or missing fields, a value that does not fit
            its type (the message says what is expected).
    """
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"not JSON: {getattr(exc, 'msg', exc)} (column {getattr(exc, 'colno', '?')})"
        ) from None
    if not isinstance(obj, dict):
        raise ValueError('each line is one JSON object {"key": ..., "type": ..., "value": ...}')
    unknown = [f for f in obj if f not in _FIELDS]
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; a line has key, type, value "
            "and optionally expire_at"
        )
    missing = [f for f in _FIELDS[:3] if f not in obj]
    if missing:
        raise ValueError(f"the line has no {', '.join(map(repr, missing))}")
    key, kind, value, expire_at = obj["key"], obj["type"], obj["value"], obj.get("expire_at")
    if not isinstance(key, str) or not key:
        raise ValueError(f"'key' is a non-empty string, got {key!r:.80}")
    if kind not in TYPES:
        raise ValueError(f"type {kind!r:.40} is not one of {', '.join(TYPES)}")
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"a string value is JSON text in quotes, got {value!r:.80}")
    elif kind in ("list", "set"):
        _texts(value, kind)
        if kind == "set":
            _no_repeats(value, "set")
    elif kind == "hash":
        if not isinstance(value, dict) or not value:
            raise ValueError("a hash value is a non-empty object of strings")
        if not all(isinstance(v, str) for v in value.values()):
            raise ValueError(f"a hash holds strings only (the store keeps text); got {value!r:.80}")
    else:
        if (
            not isinstance(value, list)
            or not value
            or not all(
                isinstance(p, list)
                and len(p) == 2
                and isinstance(p[0], str)
                and isinstance(p[1], (int, float))
                and not isinstance(p[1], bool)
                and not math.isnan(p[1])
                for p in value
            )
        ):
            raise ValueError(
                'a zset value is a non-empty array of [member, score] pairs, e.g. [["a", 1.5]]'
            )
        _no_repeats([m for m, _ in value], "zset")
    if expire_at is not None and (
        isinstance(expire_at, bool)
        or not isinstance(expire_at, (int, float))
        or not math.isfinite(expire_at)
    ):
        raise ValueError(f"'expire_at' is a time in Unix seconds, got {expire_at!r:.40}")
    return KeyEntry(key, kind, value, expire_at)


# --------------------------------------------------------------- the store
def read_key(generic: GenericKeys, name: str) -> KeyEntry | None:
    """The current state of a generic key, or ``None`` if it does not exist."""
    state = generic.state(name)
    if state is None:
        return None
    expiry = state.get("x")
    return KeyEntry(name, state["t"], state["v"], round(expiry) if expiry is not None else None)


def _refuse_mapped(storage: GatewayStorage, pattern: str) -> None:
    # A plain key that a map rule maps is a series: say so instead of exporting nothing.
    if _GLOB & set(pattern):
        return
    for full in (pattern, LIST_PREFIX + pattern, DICT_PREFIX + pattern):
        try:
            target = storage.keymap.resolve(full)
        except KeyMappingError:
            continue
        if target is not None:
            raise TransferError(
                f"{pattern!r} is a mapped {'List' if full.startswith(LIST_PREFIX) else 'Dict'}"
                " (TStorage series): export it as CSV (a .csv file or --format csv)"
            )


def export_jsonl(
    storage: GatewayStorage, pattern: str | None, out: TextIO, *, progress: bool = True
) -> Summary:
    """Write every generic key whose name matches ``pattern`` (all when ``None``).

    ``pattern`` is a glob as Redis ``SCAN MATCH`` takes it (``*``, ``?``, ``[abc]``; ``[!a]``
    negates), matched against the full key name (``znsocket.List:jobs``). Keys are written
    in name order.

    Raises:
        TransferError: ``pattern`` names a mapped key, or a single key (no glob
            characters) that does not exist.
        TStorageUnavailable: TStorage did not answer.
    """
    if pattern is not None:
        _refuse_mapped(storage, pattern)
    generic = storage.generic
    generic.catch_up(force=True)
    names = sorted(n for n in list(generic.mem.content) if fnmatchcase(n, pattern or "*"))
    if pattern is not None and not _GLOB & set(pattern) and not names:
        raise TransferError(
            f"{pattern!r} is not a List or Dict key of any map rule, and no generic key "
            "has that name"
        )
    written = 0
    with progress_bar("export keys", "keys", len(names), progress) as bar:
        for name in names:
            entry = read_key(generic, name)
            if entry is not None:  # None: it expired meanwhile
                out.write(entry.line() + "\n")
                written += 1
            bar.update(1)
    return Summary(written, "key(s)")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TransferError(f"not UTF-8 text ({exc.reason})", path, n) from None
            if text.strip():
                yield n, text


def import_jsonl(
    storage: GatewayStorage,
    path: Path,
    *,
    pattern: str | None = None,
    replace: bool = False,
    progress: bool = True,
) -> Summary:
    """Restore the generic keys of a JSON Lines file (only those matching ``pattern``).

    Raises:
        TransferError: a bad line, a key a map rule maps, a key named twice, or a key that
            holds something else while ``replace`` is off (with the line; ``stored`` tells
            how many keys earlier batches stored).
        TStorageUnavailable: TStorage did not answer before writing began.
    """
    generic = storage.generic
    generic.catch_up(force=True)
    total = count_lines(path) if progress else None
    first_line: dict[str, int] = {}
    written = unchanged = expired = filtered = 0
    batch_line = 1
    putting = False
    with progress_bar(f"import {path.name}", "lines", total, progress) as bar:
        try:
            for batch in batches(_lines(path), BATCH_ROWS):
                batch_line = batch[0][0]
                todo: list[KeyEntry] = []
                now = time.time()
                for n, text in batch:
                    try:
                        entry = parse_entry(text)
                    except ValueError as exc:
                        raise TransferError(str(exc), path, n) from None
                    if pattern is not None and not fnmatchcase(entry.key, pattern):
                        filtered += 1
                        continue
                    if entry.key in first_line:
                        raise TransferError(
                            f"key {entry.key!r} appears twice (first on line "
                            f"{first_line[entry.key]})",
                            path,
                            n,
                        )
                    first_line[entry.key] = n
                    try:
                        target = storage.resolve(entry.key)
                    except KeyMappingError as exc:
                        raise TransferError(str(exc), path, n) from None
                    if target is not None:
                        raise TransferError(
                            f"key {entry.key!r} is mapped by a map rule (a TStorage series): "
                            "import it from CSV with --key",
                            path,
                            n,
                        )
                    if entry.expire_at is not None and entry.expire_at <= now:
                        expired += 1
                        continue
                    current = read_key(generic, entry.key)
                    if current is not None:
                        if current.same_as(entry):
                            unchanged += 1
                            continue
                        if not replace:
                            other = (
                                "other content"
                                if current.type == entry.type
                                else f"a {current.type}, the file has a {entry.type}"
                            )
                            raise TransferError(
                                f"key {entry.key!r} exists and holds {other}; "
                                "--replace overwrites it",
                                path,
                                n,
                            )
                    todo.append(entry)
                # one durable PUT per batch: all of its keys are stored, or none
                putting = True
                generic.restore_many([entry.state() for entry in todo])
                putting = False
                written += len(todo)
                bar.update(len(batch))
        except TStorageUnavailable as exc:
            # While checking a batch nothing of it was written. A PUT that got no answer
            # may have been stored whole; importing again is safe either way (keys stored
            # already count as unchanged).
            outcome = (
                "may or may not be stored (import the file again: keys already stored are "
                "skipped as unchanged)"
                if putting and isinstance(exc, TStorageOutcomeUnknown)
                else "were not restored"
            )
            raise TransferError(
                f"{exc}; the keys from line {batch_line} on {outcome}",
                path,
                batch_line,
                stored=written,
                unit="key(s)",
                partial=putting,
            ) from None
        except TransferError as exc:
            exc.stored, exc.unit = written, "key(s)"
            raise
    notes = [
        f"{count} {what}"
        for count, what in (
            (unchanged, "unchanged"),
            (expired, "expired, skipped"),
            (filtered, f"not matching {pattern!r}"),
        )
        if count
    ]
    return Summary(written, "key(s)", notes)
