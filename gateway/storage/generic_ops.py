"""What one command did to one generic key: the log operations it adds, and its undo.

A command runs on the in-memory store (:class:`znsocket.storage.memory.MemoryStorage`),
which gives it Redis semantics. Around it, :func:`capture` notes, before the command, just
enough to describe afterwards what changed and to put it back:

* the **operations** (:meth:`Change.ops`) are what the log record of the write holds. They
  cost what the command changed, not the key's size, for the commands that grow or edit
  containers (``rpush``/``lpush``/``lpop``/``rpop``/``lset``, ``hset``/``hdel``,
  ``sadd``/``srem``, ``zadd``/``zrem``, ``expire``); the rest (strings, ``copy``, ``lrem``,
  ``linsert``, ``smove``) write the key's whole new value, a ``put``;
* the **undo** (:meth:`Change.undo`) restores the key when the command failed half-way or
  its record could not be stored, so a failed write leaves nothing behind. It costs what
  the command changed for the growing commands, and a copy of the key's element references
  (not of its bytes) for the rest.

Operations (JSON lists, values are the store's text):
``["del"]``, ``["put", {"t": type, "v": value, "x": expiry}]``, ``["x", expiry]``,
``["rpush", [v...]]``, ``["lpush", [v...]]`` (the new head, in list order),
``["lpop", n]``, ``["rpop", n]``, ``["lset", i, v]``, ``["hset", {f: v}]``,
``["hdel", [f...]]``, ``["sadd", [m...]]``, ``["srem", [m...]]``, ``["zadd", [[m, s]...]]``,
``["zrem", [m...]]``. Expiries are absolute times of the store's clock (seconds).
:func:`replay` applies them; replaying a key's operations in acq order over its checkpoint
rebuilds the key exactly.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from znsocket.exceptions import DataError
from znsocket.storage.memory import MemoryStorage

Op = list[Any]
State = dict[str, Any]

_HSET = inspect.signature(MemoryStorage.hset)


def text(value: Any) -> str:
    """A field, member or value as the store keeps it (redis-py's encoding)."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        raise DataError("Invalid input of type: 'bool'.")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode()
    return str(value)


def check_text(value: Any, depth: int = 0) -> None:
    """Refuse text that cannot be stored as UTF-8 (a lone surrogate), before any change.

    Raises:
        DataError: the offending text is named; nothing was stored.
    """
    if type(value) is str:
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise DataError(
                f"Invalid input: text is not valid Unicode ({exc.reason} at position "
                f"{exc.start}); not stored"
            ) from None
    elif isinstance(value, dict) and depth < 4:
        for k, v in value.items():
            check_text(k, depth + 1)
            check_text(v, depth + 1)
    elif isinstance(value, (list, tuple)) and depth < 4:
        for v in value:
            check_text(v, depth + 1)


def snapshot(mem: MemoryStorage, name: str, clock: Callable[[], float]) -> State:
    """The whole state of ``name``: ``{"k", "t", "v", "x"}`` (``"t": "none"`` if absent).

    Containers are copied by reference to their elements: O(elements), not O(bytes)."""
    kind = mem.type(name)
    state: State = {"k": name, "t": kind}
    if kind == "none":
        return state
    if kind == "string":
        state["v"] = mem.get(name)
    elif kind == "list":
        state["v"] = mem.lrange(name, 0, -1)
    elif kind == "hash":
        state["v"] = mem.hgetall(name)
    elif kind == "set":
        state["v"] = sorted(mem.smembers(name))
    elif kind == "zset":
        state["v"] = [[m, s] for m, s in mem.zrange(name, 0, -1, withscores=True)]
    state["x"] = expiry(mem, name, clock)
    return state


def expiry(mem: MemoryStorage, name: str, clock: Callable[[], float]) -> float | None:
    """The absolute expiry of ``name`` in ``clock`` seconds, ``None`` if it has none."""
    ttl = mem.ttl(name)
    return clock() + ttl if ttl >= 0 else None


def restore(mem: MemoryStorage, state: State, clock: Callable[[], float]) -> None:
    """Make ``state["k"]`` hold ``state`` (a :func:`snapshot`) exactly."""
    name, kind, v = state["k"], state["t"], state.get("v")
    mem.delete(name)
    if kind == "string":
        mem.set(name, v)
    elif kind == "list" and v:
        mem.rpush(name, *v)
    elif kind == "hash" and v:
        mem.hset(name, mapping=v)
    elif kind == "set" and v:
        mem.sadd(name, *v)
    elif kind == "zset" and v:
        mem.zadd(name, {member: score for member, score in v})
    _expire_at(mem, name, state.get("x"), clock)


def _expire_at(mem: MemoryStorage, name: str, at: float | None, clock: Callable[[], float]) -> None:
    if at is None or not mem.exists(name):
        return
    left = at - clock()
    if left <= 0:
        mem.delete(name)
    else:
        mem.expire(name, max(1, math.ceil(left)))


def replay(mem: MemoryStorage, name: str, ops: Sequence[Op], clock: Callable[[], float]) -> None:
    """Apply logged operations to ``name`` (see the module docstring)."""
    for op in ops:
        kind = op[0]
        if kind == "del":
            mem.delete(name)
        elif kind == "put":
            restore(mem, {**op[1], "k": name}, clock)
        elif kind == "x":
            _expire_at(mem, name, op[1], clock)
        elif kind == "rpush":
            mem.rpush(name, *op[1])
        elif kind == "lpush":
            mem.lpush(name, *reversed(op[1]))
        elif kind == "lpop":
            mem.lpop(name, op[1])
        elif kind == "rpop":
            mem.rpop(name, op[1])
        elif kind == "lset":
            mem.lset(name, op[1], op[2])
        elif kind == "hset":
            mem.hset(name, mapping=op[1])
        elif kind == "hdel":
            mem.hdel(name, *op[1])
        elif kind == "sadd":
            mem.sadd(name, *op[1])
        elif kind == "srem":
            mem.srem(name, *op[1])
        elif kind == "zadd":
            mem.zadd(name, {m: s for m, s in op[1]})
        elif kind == "zrem":
            mem.zrem(name, *op[1])
        else:
            raise ValueError(f"unknown generic-key operation {kind!r}")


class Change:
    """One command's effect on one key: created by :func:`capture` before the command."""

    def __init__(self, mem: MemoryStorage, name: str, clock: Callable[[], float]) -> None:
        self.mem, self.name, self.clock = mem, name, clock
        self.kind = mem.type(name)
        self._whole: State | None = None
        self._undo: Callable[[], None] | None = None
        self._ops: Callable[[], list[Op]] | None = None

    def keep_whole(self) -> None:
        """Fall back to a copy of the whole key for the undo."""
        self._whole = snapshot(self.mem, self.name, self.clock)

    def undo(self) -> None:
        """Put the key back as it was before the command."""
        if self._undo is not None:
            self._undo()
        elif self._whole is not None:
            restore(self.mem, self._whole, self.clock)

    def ops(self) -> list[Op]:
        """The log operations that turn the old state into the current one (after the
        command succeeded); ``[]`` when nothing changed."""
        after = self.mem.type(self.name)
        if after == "none":
            return [] if self.kind == "none" else [["del"]]
        if self._ops is not None:
            return self._ops()
        state = snapshot(self.mem, self.name, self.clock)
        if self._whole is not None and state == self._whole:
            return []
        del state["k"]
        return [["put", state]]


def _count(args: Sequence[Any], kwargs: Mapping[str, Any]) -> int | None:
    raw = args[1] if len(args) > 1 else kwargs.get("count")
    return None if raw is None else int(text(raw))


def capture(
    mem: MemoryStorage,
    command: str,
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    clock: Callable[[], float],
) -> Change:
    """Note what ``command`` (about to run with ``args``/``kwargs``) needs, for key ``name``.

    ``args[0]`` is the key for the single-key commands; for the others (``delete``,
    ``copy``, ``smove``, ``flushall``) the whole key is kept.
    """
    c = Change(mem, name, clock)
    try:
        _capture_cheap(c, command, args, kwargs)
    except Exception:
        c._undo = c._ops = None  # the command reports the error (or the whole key is used)
    if c._undo is None:
        c.keep_whole()
    return c


def _capture_cheap(c: Change, command: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    mem, name, kind = c.mem, c.name, c.kind
    if not args or text(args[0]) != name:
        return
    gone = kind == "none"
    ttl_at = expiry(mem, name, c.clock) if not gone else None

    def back_to_none_or(fn: Callable[[], None]) -> Callable[[], None]:
        def undo() -> None:
            if gone:
                mem.delete(name)
                return
            fn()
            if mem.exists(name) and ttl_at is not None and mem.ttl(name) < 0:
                _expire_at(mem, name, ttl_at, c.clock)

        return undo

    if command in ("rpush", "lpush") and kind in ("list", "none"):
        n0 = mem.llen(name)
        left = command == "lpush"

        def undo_push() -> None:
            extra = mem.llen(name) - n0
            if extra > 0:
                (mem.lpop if left else mem.rpop)(name, extra)

        def push_ops() -> list[Op]:
            extra = mem.llen(name) - n0
            if extra <= 0:
                return []
            new = mem.lrange(name, 0, extra - 1) if left else mem.lrange(name, n0, -1)
            return [[command, new]]

        c._undo, c._ops = back_to_none_or(undo_push), push_ops
    elif command in ("lpop", "rpop") and kind in ("list", "none"):
        n0 = mem.llen(name)
        k = _count(args, kwargs)
        k = 1 if k is None else max(0, min(k, n0))
        left = command == "lpop"
        taken = (mem.lrange(name, 0, k - 1) if left else mem.lrange(name, n0 - k, -1)) if k else []

        def undo_pop() -> None:
            missing = n0 - mem.llen(name)
            if missing <= 0:
                return
            if left:
                mem.lpush(name, *reversed(taken[:missing]))
            else:
                mem.rpush(name, *taken[k - missing :])

        def pop_ops() -> list[Op]:
            removed = n0 - mem.llen(name)
            return [[command, removed]] if removed > 0 else []

        c._undo, c._ops = back_to_none_or(undo_pop), pop_ops
    elif command == "lset" and kind == "list":
        n0 = mem.llen(name)
        i = int(text(args[1]) if len(args) > 1 else text(kwargs["index"]))
        i = i + n0 if i < 0 else i
        old = mem.lindex(name, i)

        def undo_lset() -> None:
            if old is not None:
                mem.lset(name, i, old)

        c._undo = undo_lset
        c._ops = lambda: [["lset", i, mem.lindex(name, i)]]
    elif command in ("hset", "hdel") and kind in ("hash", "none"):
        if command == "hset":
            bound = _HSET.bind(None, *args, **kwargs).arguments
            pieces: list[Any] = list(bound.get("items") or ())
            if bound.get("key") is not None:
                pieces += [bound["key"], bound.get("value")]
            for pair in (bound.get("mapping") or {}).items():
                pieces.extend(pair)
            fields = [text(f) for f in pieces[0::2]]
        else:
            fields = [text(f) for f in args[1:]]
        old_values = mem.hmget(name, fields) if fields and not gone else [None] * len(fields)

        def undo_hash() -> None:
            for f, v in zip(fields, old_values, strict=True):
                if v is None:
                    mem.hdel(name, f)
                else:
                    mem.hset(name, f, v)

        def hash_ops() -> list[Op]:
            if command == "hdel":
                return [["hdel", fields]] if any(v is not None for v in old_values) else []
            now = mem.hmget(name, fields)
            return [["hset", {f: v for f, v in zip(fields, now, strict=True) if v is not None}]]

        c._undo, c._ops = back_to_none_or(undo_hash), hash_ops
    elif command in ("sadd", "srem") and kind in ("set", "none"):
        members = [text(m) for m in args[1:]]
        had = (
            [bool(mem.sismember(name, m)) for m in members] if not gone else [False] * len(members)
        )

        def undo_set() -> None:
            for m, h in zip(members, had, strict=True):
                (mem.sadd if h else mem.srem)(name, m)

        c._undo = back_to_none_or(undo_set)
        c._ops = lambda: [[command, members]]
    elif command in ("zadd", "zrem") and kind in ("zset", "none"):
        if command == "zadd":
            mapping = args[1] if len(args) > 1 else kwargs["mapping"]
            members = [text(m) for m in mapping]
        else:
            members = [text(m) for m in args[1:]]
        scores = [mem.zscore(name, m) for m in members] if not gone else [None] * len(members)

        def undo_zset() -> None:
            for m, s in zip(members, scores, strict=True):
                if s is None:
                    mem.zrem(name, m)
                else:
                    mem.zadd(name, {m: s})

        def zset_ops() -> list[Op]:
            if command == "zrem":
                return [["zrem", members]]
            now = [(m, mem.zscore(name, m)) for m in members]
            return [["zadd", [[m, s] for m, s in now if s is not None]]]

        c._undo, c._ops = back_to_none_or(undo_zset), zset_ops
    elif command == "expire":
        c.keep_whole()  # the undo may have to bring back a key expire deleted
        c._ops = lambda: [["x", expiry(mem, name, c.clock)]]
        whole = c._whole
        c._undo = lambda: restore(mem, whole, c.clock) if whole is not None else None
