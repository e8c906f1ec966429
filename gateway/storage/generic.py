"""Keys no map rule maps, kept durably under the reserved cid (``generic.cid``).

Strategy: a log of operations plus checkpoints
------------------------------------------------
Current values live in a :class:`znsocket.storage.MemoryStorage`, which gives every command
its Redis semantics. A command that changes keys appends, per changed key, one *log record*
holding what it changed (``gateway.storage.generic_ops``: the pushed elements, the set
fields, ...), and its reply is released only once TStorage answered OK. A command that
fails, or whose record cannot be stored, is undone, so a failed write leaves nothing
behind. A pipeline's run of writes to one key is one record and one PUT.

Records (``cid = generic.cid``, ``mid`` = first 8 bytes of BLAKE2b of the key name (signed),
``moid`` = collision slot, ``cap = 0``; JSON payloads, the name in every one):

* operation: ``{"k": name, "o": [op, ...]}``;
* checkpoint part: ``{"k": name, "b": base, "i": i, "n": parts, "c": state}``: the key's
  whole state after every record with ``acq < base``, split into parts of at most
  :data:`CHECKPOINT_PART_BYTES`;
* snapshot (the format before the log, still read): ``{"k": name, "t": type, "v": value,
  "x": expiry}``, the whole state;
* epoch marker, at ``(mid 0, moid 0, cap 1)``, outside the keys' box: ``{"epoch": base}``:
  every live key has a complete checkpoint with that base, so records with ``acq < base``
  are never needed again.

A key's state is its newest complete checkpoint plus its records with ``acq >= base``,
applied in acq order. When the bytes written since the epoch began exceed twice the live
data (plus ``checkpoint_min_bytes``), a background compaction catches up, takes every key's
state at watermark ``W``, writes their checkpoints with base ``W`` and then the marker.
Start-up reads the newest marker and streams only the records with ``acq >= W``: the
checkpoints and the log after them, not the history. ``docs/data-model.md`` gives the
reasoning and the costs.

Coherence: before serving a command, if the last catch-up is older than ``max_staleness``,
the records that arrived since the box's watermark are applied in acq order. Our own
records come back too: each key keeps a queue of its unconfirmed payloads, and an echo is
recognised and skipped. A foreign record that arrives while one of ours is unconfirmed was
ordered before ours by TStorage, although we applied ours first: the key is then rebuilt
from TStorage, so every gateway ends in the order TStorage gave. Checkpoints change no
state (they equal the log before them) and are skipped by the feed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.keymap import (
    ACQ_MIN,
    DICT_PREFIX,
    LIST_PREFIX,
    MID_RANGE,
    MOID_RANGE,
    Box,
    key_box,
    record_box,
)
from gateway.storage import generic_ops as ops
from gateway.storage.generic_values import PREFIX, LargeValues
from gateway.storage.link import Fetched, PutRecord, TStorageLink
from znsocket.exceptions import DataError
from znsocket.storage.base import CommandCall
from znsocket.storage.memory import MemoryStorage
from znsocket.storage.spec import COMMAND_SPECS

logger = logging.getLogger(__name__)


#: Commands that change keys named by their arguments -> the keys a call of it changes,
#: from the command specs (``flushall``, which changes every key, is not here). Raises
#: ``TypeError`` for arguments the command cannot bind, before anything changes.
WRITES: dict[str, Callable[[Sequence[Any], dict[str, Any]], list[Any]]] = {
    name: spec.written for name, spec in COMMAND_SPECS.items() if spec.writes and not spec.all_keys
}


def key_name(name: Any) -> str:
    """A key name as redis-py would send it (str kept, numbers as repr, bytes decoded).

    Raises:
        DataError: ``None``, ``bool`` or another type Redis cannot hold.
    """
    if type(name) is str:
        return name
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        return repr(name)
    if isinstance(name, (bytes, bytearray)):
        try:
            return bytes(name).decode()
        except UnicodeDecodeError as exc:
            raise DataError(f"Invalid input: bytes are not UTF-8 text ({exc})") from exc
    raise DataError(
        f"Invalid input of type: '{type(name).__name__}'. "
        "Convert to a bytes, string, int or float first."
    )


def name_hash(name: str) -> int:
    """The mid of a key name: 8 bytes of BLAKE2b, signed, kept below TStorage's maximum."""
    h = int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "little", signed=True
    )
    return min(h, MID_RANGE[1])


#: Target size of one checkpoint record (a key's checkpoint is split into parts).
CHECKPOINT_PART_BYTES = 4 * 1024 * 1024
#: Where the epoch markers live: outside the keys' box (their records have ``cap = 0``).
_MARKER_SLOT = (0, 0, 1)

Record = dict[str, Any]


class GenericKeys:
    """Redis-semantics storage for unmapped keys, durable in TStorage.

    Args:
        link: the TStorage connection pool.
        cid: the reserved cid of generic keys.
        max_staleness: how old the last catch-up with TStorage may be when a command runs.
        checkpoint_min_bytes: log bytes tolerated beyond twice the live data before a
            compaction writes checkpoints (see the module docstring).
        large_value_bytes: values of at least this many characters are kept in TStorage
            and a cache instead of memory (``gateway.storage.generic_values``; 0: never).
        value_cache_bytes: characters of large values the cache keeps.
        clock: wall clock of expiries (seconds).
    """

    def __init__(
        self,
        link: TStorageLink,
        cid: int,
        *,
        max_staleness: float = 0.1,
        checkpoint_min_bytes: int = 8 * 1024 * 1024,
        large_value_bytes: int = 16 * 1024,
        value_cache_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.values = LargeValues(link, cid, large_value_bytes, value_cache_bytes)
        self.link = link
        self.cid = cid
        self.max_staleness = max_staleness
        self.checkpoint_min_bytes = checkpoint_min_bytes
        self.clock = clock
        self.mem = MemoryStorage()
        self._lock = threading.RLock()
        self._slots: dict[str, tuple[int, int]] = {}
        self._by_mid: dict[int, list[str]] = {}
        self._by_slot: dict[tuple[int, int], str] = {}
        self._unconfirmed: dict[str, deque[bytes]] = {}
        self._reloaded: dict[str, int] = {}  # name -> acq up to which a reload applied it
        self._acq0 = ACQ_MIN
        self._refreshed_at = float("-inf")
        self._loaded = False
        self._epoch = ACQ_MIN  # base of the newest epoch marker we know
        self._written = 0  # bytes of records seen or written since start (a counter)
        self._epoch_start = 0  # value of _written when the current epoch's bytes began
        self._next_check = checkpoint_min_bytes
        self._compacting: threading.Thread | None = None
        #: ``(full_key, refresh_payload)`` callback for keys changed by another gateway.
        self.on_change: Callable[[str, dict[str, Any]], None] | None = None
        #: bytes of the records this gateway wrote (log and checkpoints), for measurements.
        self.bytes_put = 0
        #: bytes of the records the last :meth:`load` read, for measurements.
        self.loaded_bytes = 0

    # ------------------------------------------------------------------ slots
    def _slot(self, name: str) -> tuple[int, int]:
        slot = self._slots.get(name)
        if slot is None:
            mid = name_hash(name)
            names = self._by_mid.setdefault(mid, [])
            slot = (mid, len(names))
            if slot[1] > MOID_RANGE[1]:  # pragma: no cover - 2^31 names on one hash
                raise DataError(f"too many key names share the hash of {name!r}")
            names.append(name)
            self._slots[name] = slot
            self._by_slot[slot] = name
        return slot

    def _claim(self, name: str, slot: tuple[int, int]) -> None:
        # A slot seen in TStorage belongs to the name in its payload.
        if name in self._slots:
            return
        self._slots[name] = slot
        self._by_slot[slot] = name
        names = self._by_mid.setdefault(slot[0], [])
        while len(names) <= slot[1]:
            names.append("")
        names[slot[1]] = name

    def _snapshot(self, name: str) -> dict[str, Any]:
        return ops.snapshot(self.mem, name, self.clock)

    @staticmethod
    def _encode(record: Record) -> bytes:
        # references to large values start with a lone surrogate (see generic_values)
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")

    @property
    def link(self) -> TStorageLink:
        """The TStorage connection pool (of records and of large values)."""
        return self._link

    @link.setter
    def link(self, link: TStorageLink) -> None:
        self._link = link
        self.values.link = link

    # ---------------------------------------------------------------- reading
    def _box(self, acq_min: int) -> Box:
        # the keys' records (cap 0, moids from 0) of every mid, acquired from acq_min
        return key_box(self.cid, moids=(0, MOID_RANGE[1] + 1), caps=(0, 1), acq_min=acq_min)

    def _slot_box(self, slot: tuple[int, int], acq_min: int) -> Box:
        mid, moid = slot
        return record_box(self.cid, mid, moid, 0, acq_min)

    def _read_epoch(self) -> int:
        records, _ = self.link.get(*record_box(self.cid, *_MARKER_SLOT))
        if not records:
            return ACQ_MIN
        _, payload = max(records, key=lambda r: r[0].acq)
        return int(json.loads(payload)["epoch"])

    def load(self) -> None:
        """Rebuild every generic key from TStorage: the newest epoch marker, then one
        streamed GET of the records since its base (checkpoints and the log after them)."""
        by_slot: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
        size = [0]

        def keep(batch: list[Fetched]) -> None:
            for key, payload in batch:
                by_slot.setdefault((key.mid, key.moid), []).append((key.acq, bytes(payload)))
                size[0] += len(payload)

        with self._lock:
            epoch = self._read_epoch()
            lo, hi = self._box(epoch)
            acq0 = self.link.stream(lo, hi, keep)
            legacy = False
            for slot, records in sorted(by_slot.items()):
                records.sort(key=lambda r: r[0])
                decoded = [(acq, _decode(p)) for acq, p in records]
                name = decoded[-1][1]["k"]
                self._claim(name, slot)
                legacy = legacy or any("t" in r for _, r in decoded)
                self._rebuild(name, decoded)
            by_slot.clear()
            self._epoch = epoch
            self.loaded_bytes = size[0]
            self._written += size[0]
            self._epoch_start = self._written - size[0]
            self._next_check = 0  # measure the live data at the first write
            self._acq0 = acq0
            self._refreshed_at = time.monotonic()
            self._loaded = True
            if legacy and epoch == ACQ_MIN:
                self._start_compaction()  # write the new format; later starts skip history

    def _rebuild(self, name: str, records: list[tuple[int, Record]]) -> None:
        """Make ``name`` hold what its records (acq order, since an epoch base) say."""
        parts: dict[int, dict[int, Record]] = {}
        for _, r in records:
            if "b" in r:
                parts.setdefault(r["b"], {})[r["i"]] = r
        base, state = ACQ_MIN, None
        for b in sorted(parts, reverse=True):
            got = parts[b]
            if len(got) == next(iter(got.values()))["n"]:
                base, state = b, _assemble(name, [got[i]["c"] for i in range(len(got))])
                break
        # the newest whole-state record after the checkpoint is an even later start
        start = 0
        for i in range(len(records) - 1, -1, -1):
            acq, r = records[i]
            if acq < base:
                break
            if "t" in r or ("o" in r and r["o"] and r["o"][0][0] in ("put", "del")):
                start = i
                base, state = acq, None
                break
        self.mem.delete(name)
        if state is not None:
            ops.restore(self.mem, state, self.clock)
        for acq, r in records[start:]:
            if acq >= base or state is None:
                self._apply_record(name, r)

    def _apply_record(self, name: str, r: Record) -> None:
        if "t" in r:
            ops.restore(self.mem, {**r, "k": name}, self.clock)
        elif "o" in r:
            ops.replay(self.mem, name, r["o"], self.clock)
        # a checkpoint part changes nothing: it equals the records before it

    def _reload(self, name: str) -> int:
        """Rebuild ``name`` from its records in TStorage; returns the read's watermark."""
        records, acq0 = self.link.get(*self._slot_box(self._slot(name), self._epoch))
        decoded = sorted(((k.acq, _decode(p)) for k, p in records), key=lambda r: r[0])
        self._rebuild(name, [(a, r) for a, r in decoded if r.get("k") == name])
        self._unconfirmed.pop(name, None)
        return acq0

    def catch_up(self, force: bool = False) -> list[str]:
        """Apply records that arrived since the watermark; returns the names changed."""
        with self._lock:
            if not self._loaded:
                self.load()
                return []
            if not force and time.monotonic() - self._refreshed_at < self.max_staleness:
                return []
            started = time.monotonic()
            lo, hi = self._box(self._acq0)
            records, acq0 = self.link.get(lo, hi)
            changed: list[str] = []
            conflicted: list[str] = []
            for key, payload in sorted(records, key=lambda r: r[0].acq):
                r = _decode(payload)
                name = r["k"]
                self._claim(name, (key.mid, key.moid))
                mine = self._unconfirmed.get(name)
                if mine and mine[0] == payload:
                    mine.popleft()
                    continue
                if "b" in r:
                    continue  # a checkpoint: no change (its bytes count where it is written)
                self._written += len(payload)
                if key.acq < self._reloaded.get(name, ACQ_MIN) or name in conflicted:
                    continue
                if mine:
                    conflicted.append(name)  # ordered before ours by TStorage
                    continue
                self._apply_record(name, r)
                changed.append(name)
            for name in conflicted:
                self._reloaded[name] = self._reload(name)
                changed.append(name)
            self._acq0 = max(self._acq0, acq0)
            self._reloaded = {n: a for n, a in self._reloaded.items() if a > self._acq0}
            self._refreshed_at = started
            if self.on_change is not None:
                for name in dict.fromkeys(changed):
                    if name.startswith(LIST_PREFIX):
                        self.on_change(name, {"start": 0, "stop": None})
                    elif name.startswith(DICT_PREFIX):
                        self.on_change(name, {"keys": self.values.resolve(self.mem.hkeys(name))})
            return changed

    # --------------------------------------------------------------- commands
    def call(self, command: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """Run one command with Redis semantics; writes are durable before it returns.

        Raises:
            TStorageUnavailable: the change could not be stored; the keys are unchanged.
            DataError, ResponseError: refused; the keys are unchanged.
        """
        with self._lock:
            self.catch_up()
            if command != "flushall" and command not in WRITES:
                return self._read(command, args, kwargs)
            changes = self._apply(command, args, kwargs)
            self._persist([changes])
            return self.values.resolve(changes.result)

    def _read(self, command: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        args, kw = self.values.swap_args(command, args, kwargs, store=False)
        return self.values.resolve(getattr(self.mem, command)(*args, **kw))

    def call_many(self, calls: Sequence[CommandCall]) -> list[Any]:
        """Run a pipeline's run of commands on generic keys with one durable PUT.

        Pipeline semantics: the commands run in order and the first that raises ends the
        run, its exception as its result; the writes before it are stored. If the PUT
        fails, every command of the run is undone and the error is the run's only result.
        """
        with self._lock:
            self.catch_up()
            done: list[_Applied] = []
            results: list[Any] = []
            for command, args, kwargs in calls:
                try:
                    if command != "flushall" and command not in WRITES:
                        results.append(self._read(command, args, kwargs))
                        continue
                    done.append(self._apply(command, args, kwargs))
                    results.append(done[-1].result)
                except Exception as exc:
                    results.append(exc)
                    break
            try:
                self._persist(done)
            except Exception as exc:
                return [exc]
            return [r if isinstance(r, Exception) else self.values.resolve(r) for r in results]

    def state(self, name: str) -> dict[str, Any] | None:
        """The whole current state of ``name`` as a snapshot (see :meth:`restore_many`),
        read in one step under the lock; ``None`` when the key does not exist."""
        with self._lock:
            self.catch_up()
            state = self._snapshot(key_name(name))
            if "v" in state:
                state["v"] = self.values.resolve(state["v"])
        return None if state["t"] == "none" else state

    def restore_many(self, states: Sequence[dict[str, Any]]) -> None:
        """Make each key hold a whole state, all with one durable PUT (bulk import).

        A state is a snapshot ``{"k": name, "t": type, "v": value, "x": expiry}`` (see the
        module docstring; ``x`` in :attr:`clock` seconds or absent). Other gateways see
        each key go from its old to its new state, never missing in between.

        Raises:
            TStorageUnavailable: not stored; every key keeps what it held.
            DataError, ResponseError: a state the store cannot hold; nothing changed.
        """
        with self._lock:
            self.catch_up()
            applied: list[_Applied] = []
            try:
                for state in states:
                    name = key_name(state["k"])
                    ops.check_text(state)
                    step = _Applied(None)
                    change = ops.Change(self.mem, name, self.clock)
                    change.keep_whole()
                    step.changes.append(change)
                    applied.append(step)
                    held = dict(state, k=name)
                    if "v" in held and held["t"] != "zset":
                        held["v"] = self.values.swap(held["v"])
                    ops.restore(self.mem, held, self.clock)
                    step.ops.append((name, [["put", _without_k(self._snapshot(name))]]))
            except Exception:
                self._undo(applied)
                raise
            self._persist(applied)

    def _apply(self, command: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> _Applied:
        """Run one write on the store, noting its log operations and its undo."""
        if command == "flushall":
            names = list(self.mem.content)
        else:
            names = [key_name(n) for n in WRITES[command](args, dict(kwargs)) if n is not None]
        ops.check_text(args)
        ops.check_text(dict(kwargs))
        args, kwargs = self.values.swap_args(command, args, kwargs, store=True)
        if command in ("incr", "decr") and args:
            self._unswap_counter(key_name(args[0]))
        step = _Applied(None)
        for name in dict.fromkeys(names):
            step.changes.append(ops.capture(self.mem, command, name, args, kwargs, self.clock))
        try:
            step.result = getattr(self.mem, command)(*args, **kwargs)
            for change in step.changes:
                step.ops.append((change.name, change.ops()))
        except Exception:
            self._undo([step])
            raise
        return step

    def _unswap_counter(self, name: str) -> None:
        # a counter's text must be in the store for incr/decr to parse it
        if self.mem.type(name) == "string":
            value = self.mem.get(name)
            if value is not None and value.startswith(PREFIX):
                self.mem.set(name, self.values.resolve(value), keepttl=True)

    @staticmethod
    def _undo(steps: Sequence[_Applied]) -> None:
        for step in reversed(steps):
            for change in reversed(step.changes):
                change.undo()

    def _persist(self, steps: Sequence[_Applied]) -> None:
        """Store the operations of ``steps`` with one PUT (one record per key); on any
        error undo every step and re-raise. Holds ``_lock``."""
        queued: list[tuple[str, bytes]] = []
        refs: list[str] = []
        try:
            by_name: dict[str, list[ops.Op]] = {}
            for step in steps:
                for name, step_ops in step.ops:
                    if step_ops:
                        by_name.setdefault(name, []).extend(step_ops)
            records: list[PutRecord] = []
            for name, name_ops in by_name.items():
                if name_ops == [["del"]] and name not in self._slots:
                    continue
                mid, moid = self._slot(name)
                payload = self._encode({"k": name, "o": name_ops})
                records.append(((self.cid, mid, moid, 0), payload))
                queued.append((name, payload))
            refs = list(self.values.pending)
            value_records = self.values.take_pending()
            if not records:
                return
            for name, payload in queued:
                self._unconfirmed.setdefault(name, deque()).append(payload)
            self.link.put(value_records + records)
        except BaseException:
            for name, payload in queued:
                q = self._unconfirmed.get(name)
                if q and q[-1] == payload:
                    q.pop()
            self.values.forget(refs)
            self.values.pending.clear()
            self._undo(steps)
            raise
        size = sum(len(p) for _, p in queued)
        self._written += size  # the log's bytes: value records are never read at start
        self.bytes_put += size + sum(len(p) for _, p in value_records)
        self._check_compaction()

    # ------------------------------------------------------------- compaction
    def live_bytes(self) -> int:
        """An estimate of the live data's size (text of values, fields and members)."""
        total = 0
        with self._lock:
            for name, value in list(self.mem.content.items()):
                total += len(name) + 16
                if isinstance(value, str):
                    total += len(value)
                elif isinstance(value, list):
                    total += sum(len(v) + 3 for v in value)
                elif isinstance(value, dict):
                    total += sum(len(k) + len(v) + 6 for k, v in value.items())
                elif isinstance(value, set):
                    total += sum(len(v) + 3 for v in value)
                else:  # a sorted set
                    total += sum(len(m) + 24 for m in getattr(value, "scores", ()))
        return total

    def _check_compaction(self) -> None:
        epoch_bytes = self._written - self._epoch_start
        if epoch_bytes <= self._next_check:
            return
        threshold = 2 * self.live_bytes() + self.checkpoint_min_bytes
        if epoch_bytes > threshold:
            self._start_compaction()
            threshold = epoch_bytes + self.checkpoint_min_bytes
        self._next_check = threshold

    def _start_compaction(self) -> None:
        if self._compacting is not None and self._compacting.is_alive():
            return
        self._compacting = threading.Thread(
            target=self._compact_quietly, name="generic-compaction", daemon=True
        )
        self._compacting.start()

    def _compact_quietly(self) -> None:
        try:
            self.compact()
        except Exception:  # retried at a later write; the log stays complete meanwhile
            logger.warning("compaction of generic keys failed", exc_info=True)

    def wait_compaction(self, timeout: float | None = None) -> None:
        """Wait for a compaction running in the background (tests, shutdown)."""
        t = self._compacting
        if t is not None:
            t.join(timeout)

    def compact(self) -> int:
        """Write a checkpoint of every key and a new epoch marker; returns the bytes written.

        The keys' states are taken under the lock at the watermark ``W`` of a forced
        catch-up (with no PUT of ours in flight, so every record before ``W`` is applied);
        encoding and PUTs run outside it, in parts, while commands go on: their records
        have ``acq >= W`` and are applied after the checkpoints at the next start.
        """
        with self._lock:
            self.catch_up(force=True)
            base = self._acq0
            mark = self._written
            states = [self._snapshot(n) for n in list(self.mem.content)]
        written = 0
        batch: list[PutRecord] = []
        batch_bytes = 0
        for state in states:
            if state["t"] == "none":
                continue
            with self._lock:
                mid, moid = self._slot(state["k"])
            pieces = _split(state)
            for i, piece in enumerate(pieces):
                payload = self._encode(
                    {"k": state["k"], "b": base, "i": i, "n": len(pieces), "c": piece}
                )
                batch.append(((self.cid, mid, moid, 0), payload))
                batch_bytes += len(payload)
                if batch_bytes >= CHECKPOINT_PART_BYTES:
                    self.link.put(batch)
                    written += batch_bytes
                    batch, batch_bytes = [], 0
        marker = self._encode({"epoch": base})
        batch.append(((self.cid, *_MARKER_SLOT), marker))
        self.link.put(batch)
        written += batch_bytes + len(marker)
        with self._lock:
            self.bytes_put += written
            if base > self._epoch:
                self._epoch = base
                # the epoch now holds the checkpoints and what was written since W
                self._epoch_start = mark - written
                self._next_check = 0
        return written


class _Applied:
    """One command run on the store: its result, per-key changes and log operations."""

    __slots__ = ("changes", "ops", "result")

    def __init__(self, result: Any) -> None:
        self.result = result
        self.changes: list[ops.Change] = []
        self.ops: list[tuple[str, list[ops.Op]]] = []


def _decode(payload: bytes | memoryview) -> Record:
    # references to large values start with a lone surrogate (see generic_values)
    decoded: Record = json.loads(bytes(payload).decode("utf-8", "surrogatepass"))
    return decoded


def _without_k(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "k"}


def _split(state: dict[str, Any]) -> list[dict[str, Any]]:
    """A checkpoint state in parts of about :data:`CHECKPOINT_PART_BYTES` of text."""
    head = _without_k(state)
    value = head.get("v")
    if state["t"] == "string" or not value:
        return [head]
    items: list[Any] = list(value.items()) if isinstance(value, dict) else list(value)
    pieces: list[list[Any]] = [[]]
    size = 0
    for item in items:
        n = len(item) if isinstance(item, str) else sum(len(str(x)) for x in item)
        if size + n > CHECKPOINT_PART_BYTES and pieces[-1]:
            pieces.append([])
            size = 0
        pieces[-1].append(item)
        size += n
    as_value = dict if isinstance(value, dict) else list
    out = [{**head, "v": as_value(pieces[0])}]
    out += [{"v": as_value(p)} for p in pieces[1:]]
    return out


def _assemble(name: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The state of :func:`_split`'s parts, put back together."""
    state = {**parts[0], "k": name}
    if len(parts) > 1:
        value = state["v"]
        if isinstance(value, dict):
            value = dict(value)
            for p in parts[1:]:
                value.update(p["v"])
        else:
            value = list(value)
            for p in parts[1:]:
                value.extend(p["v"])
        state["v"] = value
    return state
