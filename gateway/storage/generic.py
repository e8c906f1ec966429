"""Keys no map rule maps, kept durably under the reserved cid (``generic.cid``).

Strategy
--------
Current values live in a :class:`znsocket.storage.MemoryStorage`, which gives every command
its Redis semantics. After a command that changes keys, the new state of each changed key
is written to TStorage as one *snapshot* record, and the command's reply is released only
once TStorage answered OK; if the PUT fails, the keys are put back as they were and the
client gets the error. ``docs/data-model.md`` weighs this against an operation log.

Layout of a snapshot: ``cid = generic.cid``, ``mid`` = first 8 bytes of BLAKE2b of the key
name (signed), ``moid`` = collision slot (0 for the first name seen on that mid), ``cap = 0``;
the payload is JSON ``{"k": name, "t": type, "v": value, "x": expiry}`` and the newest ``acq``
is the current state. A deleted key is ``{"k": name, "t": "none"}``.

Coherence: at start the whole reserved box is streamed and the newest record per slot
restored. Before serving a command, if the last catch-up is older than ``max_staleness``,
the records that arrived since the box's watermark are applied in acq order. A record we
wrote ourselves comes back this way too: it is recognised by its payload (each key keeps a
queue of its own unconfirmed snapshots) and skipped, and a foreign record that arrives
while one of ours is still unconfirmed is older than ours (the feed is in acq order), so it
is skipped as superseded.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gateway.errors import TStorageUnavailable
from gateway.keymap import KeyTuple
from gateway.storage.link import Fetched, PutRecord, TStorageLink
from znsocket.exceptions import DataError
from znsocket.storage.memory import MemoryStorage
from znsocket.storage.spec import COMMAND_SPECS

_ACQ_MIN, _ACQ_MAX = -(2**63), 2**63 - 1
_MID_MIN, _MID_MAX = -(2**63), 2**63 - 2
_MOID_MAX = 2**31 - 2

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
    return min(h, _MID_MAX)


class GenericKeys:
    """Redis-semantics storage for unmapped keys, durable in TStorage."""

    def __init__(
        self,
        link: TStorageLink,
        cid: int,
        *,
        max_staleness: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.cid = cid
        self.max_staleness = max_staleness
        self.clock = clock
        self.mem = MemoryStorage()
        self._lock = threading.RLock()
        self._slots: dict[str, tuple[int, int]] = {}
        self._by_mid: dict[int, list[str]] = {}
        self._by_slot: dict[tuple[int, int], str] = {}
        self._unconfirmed: dict[str, deque[bytes]] = {}
        self._acq0 = _ACQ_MIN
        self._refreshed_at = float("-inf")
        self._loaded = False
        #: ``(full_key, refresh_payload)`` callback for keys changed by another gateway.
        self.on_change: Callable[[str, dict[str, Any]], None] | None = None

    # ------------------------------------------------------------------ slots
    def _slot(self, name: str) -> tuple[int, int]:
        slot = self._slots.get(name)
        if slot is None:
            mid = name_hash(name)
            names = self._by_mid.setdefault(mid, [])
            slot = (mid, len(names))
            if slot[1] > _MOID_MAX:  # pragma: no cover - 2^31 names on one hash
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

    # -------------------------------------------------------------- snapshots
    def _snapshot(self, name: str) -> dict[str, Any]:
        m = self.mem
        kind = m.type(name)
        state: dict[str, Any] = {"k": name, "t": kind}
        if kind == "none":
            return state
        if kind == "string":
            state["v"] = m.get(name)
        elif kind == "list":
            state["v"] = m.lrange(name, 0, -1)
        elif kind == "hash":
            state["v"] = m.hgetall(name)
        elif kind == "set":
            state["v"] = sorted(m.smembers(name))
        elif kind == "zset":
            state["v"] = [
                [member, score] for member, score in m.zrange(name, 0, -1, withscores=True)
            ]
        ttl = m.ttl(name)
        state["x"] = self.clock() + ttl if ttl >= 0 else None
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        m, name, kind, v = self.mem, state["k"], state["t"], state.get("v")
        m.delete(name)
        if kind == "string":
            m.set(name, v)
        elif kind == "list" and v:
            m.rpush(name, *v)
        elif kind == "hash" and v:
            m.hset(name, mapping=v)
        elif kind == "set" and v:
            m.sadd(name, *v)
        elif kind == "zset" and v:
            m.zadd(name, {member: score for member, score in v})
        expiry = state.get("x")
        if expiry is not None and m.exists(name):
            left = expiry - self.clock()
            if left <= 0:
                m.delete(name)
            else:
                m.expire(name, max(1, math.ceil(left)))

    @staticmethod
    def _encode(state: dict[str, Any]) -> bytes:
        return json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()

    # ------------------------------------------------------------ change feed
    def _box(self, acq_min: int) -> tuple[KeyTuple, KeyTuple]:
        lo: KeyTuple = (self.cid, _MID_MIN, 0, 0, acq_min)
        hi: KeyTuple = (self.cid + 1, _MID_MAX + 1, _MOID_MAX + 1, 1, _ACQ_MAX)
        return lo, hi

    def load(self) -> None:
        """Rebuild every generic key from TStorage (one streamed GET of the reserved box)."""
        newest: dict[tuple[int, int], tuple[int, bytes]] = {}

        def keep(batch: list[Fetched]) -> None:
            for key, payload in batch:
                slot = (key.mid, key.moid)
                prev = newest.get(slot)
                if prev is None or key.acq > prev[0]:
                    newest[slot] = (key.acq, payload)

        with self._lock:
            lo, hi = self._box(_ACQ_MIN)
            acq0 = self.link.stream(lo, hi, keep)
            for slot, (_, payload) in sorted(newest.items()):
                state = json.loads(payload)
                self._claim(state["k"], slot)
                self._restore(state)
            self._acq0 = acq0
            self._refreshed_at = time.monotonic()
            self._loaded = True

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
            for key, payload in sorted(records, key=lambda r: r[0].acq):
                state = json.loads(payload)
                name = state["k"]
                self._claim(name, (key.mid, key.moid))
                mine = self._unconfirmed.get(name)
                if mine:
                    if mine[0] == payload:
                        mine.popleft()
                    continue  # ours, or older than ours
                self._restore(state)
                changed.append(name)
            self._acq0 = max(self._acq0, acq0)
            self._refreshed_at = started
            if self.on_change is not None:
                for name in dict.fromkeys(changed):
                    if name.startswith("znsocket.List:"):
                        self.on_change(name, {"start": 0, "stop": None})
                    elif name.startswith("znsocket.Dict:"):
                        self.on_change(name, {"keys": self.mem.hkeys(name)})
            return changed

    # --------------------------------------------------------------- commands
    def call(self, command: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """Run one command with Redis semantics; writes are durable before it returns.

        Raises:
            TStorageUnavailable: the change could not be stored; the keys are unchanged.
        """
        with self._lock:
            self.catch_up()
            method = getattr(self.mem, command)
            affected = WRITES.get(command)
            if command == "flushall":
                names = [n for n in self._slots if self.mem.exists(n)]
            elif affected is None:
                return method(*args, **kwargs)
            else:
                names = [key_name(n) for n in affected(args, kwargs) if n is not None]
            return self._change(names, lambda: method(*args, **kwargs))

    def state(self, name: str) -> dict[str, Any] | None:
        """The whole current state of ``name`` as a snapshot (see :meth:`restore_many`),
        read in one step under the lock; ``None`` when the key does not exist."""
        with self._lock:
            self.catch_up()
            state = self._snapshot(key_name(name))
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

            def apply() -> None:
                for state in states:
                    self._restore({**state, "k": key_name(state["k"])})

            self._change([key_name(state["k"]) for state in states], apply)

    def _change(self, names: list[str], apply: Callable[[], Any]) -> Any:
        """Run ``apply`` on the keys ``names`` and store what changed with one durable PUT;
        an exception from ``apply`` puts the keys back as they were. Holds ``_lock``."""
        names = list(dict.fromkeys(names))
        before = {n: self._snapshot(n) for n in names}
        try:
            result = apply()
        except Exception:
            for state in before.values():
                self._restore(state)
            raise
        self._persist(names, before)
        return result

    def _persist(self, names: list[str], before: dict[str, dict[str, Any]]) -> None:
        records: list[PutRecord] = []
        queued: list[tuple[str, bytes]] = []
        for name in names:
            after = self._snapshot(name)
            if after == before[name] or (after["t"] == "none" and name not in self._slots):
                continue
            mid, moid = self._slot(name)
            payload = self._encode(after)
            records.append(((self.cid, mid, moid, 0), payload))
            queued.append((name, payload))
        if not records:
            return
        for name, payload in queued:
            self._unconfirmed.setdefault(name, deque()).append(payload)
        try:
            self.link.put(records)
        except TStorageUnavailable:
            for name, payload in queued:
                q = self._unconfirmed[name]
                if q and q[-1] == payload:
                    q.pop()
            for state in before.values():
                self._restore(state)
            raise
