"""MemoryStorage: the in-process, Redis-compatible reference storage.

``MemoryStorage`` (public name ``znsocket.Storage``) implements
:class:`~znsocket.storage.base.StorageCommands` over plain Python containers: ``str`` for
strings, ``list`` for lists, ``dict`` (insertion-ordered) for hashes, ``set`` for sets and a
score map plus a ``SortedList`` for sorted sets. One re-entrant lock serialises commands, so
an instance may be shared by threads (for example a Flask app next to the server).

Semantics: Redis, where upstream's in-memory store deviated from it. The same test suite
(``tests/znsocket/storage_suite.py``) runs against this class and against a real
redis-server through :class:`~znsocket.storage.redis.RedisStorage`, so a client sees the
same answers whichever backend a server uses, and data written through znsocket reads the
same through redis-py. The deliberate differences from upstream 0.3.0's ``MemoryStorage``:

* values, fields and key names are encoded as redis-py encodes them: ``str`` kept, ``int``
  and ``float`` as ``repr``, ``bytes`` decoded as UTF-8, ``None``/``bool``/containers
  refused with redis-py's ``DataError`` text (``Invalid input of type: 'NoneType'. Convert
  to a bytes, string, int or float first.``). Upstream validated only ``set``/``hset``
  values and stored list elements and set members unchecked (a JSON list sent to ``rpush``
  became a Python list in the store);
* a command on a key holding another type raises ``ResponseError`` ``WRONGTYPE ...`` (upstream
  raised ``TypeError``/``AttributeError`` from Python internals for ``hset``/``rpush``/``sadd``);
* counting replies as Redis: ``hset`` counts only new fields, ``sadd`` returns the number
  added, ``lrem`` the number removed (negative counts remove from the tail), ``linsert``
  the new length, ``lset``/``flushall`` ``True``; the multi-argument forms
  (``delete(*names)``, ``rpush(name, *values)``, ``hdel(name, *keys)``, ...) work;
* ``lrange`` treats every negative end inclusively (upstream dropped one element for ends
  below -1);
* containers that become empty are deleted (``exists`` then answers 0), and ``delete``,
  ``set`` and ``flushall`` clear a key's time to live (upstream kept stale TTL entries, so a
  re-created key inherited the old expiry);
* every command honours expiry (upstream checked it in some commands only), and expired
  keys nobody touches are reclaimed too, at most every 0.1 s while commands run (as Redis's
  active expiry; upstream kept them forever);
* ``copy`` copies the time to live, accepts ``replace`` and refuses ``source == destination``
  with ``ResponseError`` as Redis does; ``zrange``'s fourth positional argument is ``desc``
  and the score bounds are called ``min``/``max`` (redis-py spelling);
* ``get`` has no ``default`` argument; ``mget`` with no keys returns ``[]`` (as redis-py);
* ``scan_iter`` and ``pipeline`` are offered in process only (they are not commands: their
  results cannot cross the wire). ``scan_iter``'s ``count`` is a hard limit on the keys
  yielded, as upstream's store has it (for Redis it is a batch-size hint); ``pipeline``
  returns a :class:`~znsocket.storage.pipeline.StoragePipeline`.
"""

from __future__ import annotations

import builtins
import fnmatch
import heapq
import math
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedList

from znsocket.exceptions import DataError, ResponseError
from znsocket.storage.base import CommandCall, StorageCommands
from znsocket.storage.spec import list_or_args

#: how often, at most, expired keys that no command touched are reclaimed
_SWEEP_INTERVAL_S = 0.1

__all__ = ["MemoryStorage"]

if TYPE_CHECKING:
    from znsocket.storage.pipeline import StoragePipeline

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "value is not an integer or out of range"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")


def _encode(value: Any) -> str:
    """Encode a key, field, member or value as redis-py does (then decode the reply)."""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        raise DataError(
            "Invalid input of type: 'bool'. Convert to a bytes, string, int or float first."
        )
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError as exc:
            raise DataError(f"Invalid input: bytes are not UTF-8 text ({exc})") from exc
    raise DataError(
        f"Invalid input of type: '{type(value).__name__}'. "
        "Convert to a bytes, string, int or float first."
    )


def _integer(value: Any, message: str = NOT_INTEGER) -> int:
    """Parse an integer argument as Redis does (from its encoded form)."""
    text = _encode(value)
    if _INTEGER.fullmatch(text):
        number = int(text)
        if INT64_MIN <= number <= INT64_MAX:
            return number
    raise ResponseError(message)


def _float(value: Any, message: str) -> float:
    """Parse a score (``inf``/``+inf``/``-inf`` allowed, ``nan`` refused)."""
    text = _encode(value).strip()
    lowered = text.lower()
    if lowered in ("inf", "+inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    try:
        number = float(text)
    except ValueError:
        raise ResponseError(message) from None
    if math.isnan(number) or lowered in ("infinity", "+infinity", "-infinity"):
        raise ResponseError(message)
    return number


def _bound(value: Any) -> tuple[float, bool]:
    """Parse a score bound: ``(1.5`` is exclusive; returns ``(score, exclusive)``."""
    text = _encode(value)
    if text.startswith("("):
        return _float(text[1:], "min or max is not a float"), True
    return _float(text, "min or max is not a float"), False


def _score_out(score: float) -> float:
    return float(score)


class _ZSet:
    """Sorted set: member -> score, and (score, member) pairs in Redis order."""

    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self.order: SortedList = SortedList()

    def add(self, member: str, score: float) -> None:
        old = self.scores.get(member)
        if old is not None:
            self.order.remove((old, member))
        self.scores[member] = score
        self.order.add((score, member))

    def remove(self, member: str) -> bool:
        old = self.scores.pop(member, None)
        if old is None:
            return False
        self.order.remove((old, member))
        return True

    def copy(self) -> _ZSet:
        new = _ZSet()
        new.scores = dict(self.scores)
        new.order = SortedList(self.order)
        return new

    def score_range(self, low: tuple[float, bool], high: tuple[float, bool]) -> tuple[int, int]:
        """Index range ``[i, j)`` of members whose score lies within the bounds."""
        lo, lo_ex = low
        hi, hi_ex = high
        start = self.order.bisect_left((math.nextafter(lo, math.inf),) if lo_ex else (lo,))
        if hi == math.inf and not hi_ex:
            stop = len(self.order)
        else:
            stop = self.order.bisect_left((hi,) if hi_ex else (math.nextafter(hi, math.inf),))
        return start, max(start, stop)


_TYPE_NAMES: dict[type, str] = {
    str: "string",
    list: "list",
    dict: "hash",
    set: "set",
    _ZSet: "zset",
}


def _limit(items: list[Any], start: Any, num: Any) -> list[Any]:
    if start is None and num is None:
        return items
    if start is None or num is None:
        raise DataError("``start`` and ``num`` must both be specified")
    offset, count = _integer(start), _integer(num)
    if offset < 0:
        return []
    return items[offset:] if count < 0 else items[offset : offset + count]


class MemoryStorage(StorageCommands):
    """In-memory Redis-compatible storage (see the module docstring for semantics).

    Args:
        content: Initial keys and values (strings, lists, dicts and sets), copied in.

    Example:
        >>> storage = MemoryStorage()
        >>> storage.hset("users", "user1", "John")
        1
        >>> storage.hget("users", "user1")
        'John'
    """

    def __init__(self, content: dict[str, Any] | None = None) -> None:
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        # (deadline, key) for every expiry set; entries whose key got another deadline
        # since are skipped when they come up
        self._expiry_heap: list[tuple[float, str]] = []
        self._next_sweep = 0.0
        for key, value in (content or {}).items():
            self._data[_encode(key)] = value

    def __repr__(self) -> str:
        return f"MemoryStorage(keys={len(self._data)})"

    @property
    def content(self) -> dict[str, Any]:
        """The live key -> value dictionary (upstream's attribute; not a command).

        Values are ``str``, ``list``, ``dict`` and ``set`` objects (sorted sets are internal
        objects). Keys past their time to live may stay present up to about 0.1 s (or until
        the next command).
        """
        return self._data

    # ----------------------------------------------------------- internals
    def _lookup(self, key: str) -> Any:
        """The live value of ``key`` or ``None``; purges it first if it has expired."""
        if self._expires:
            now = time.monotonic()
            if now >= self._next_sweep:
                self._sweep(now)
            deadline = self._expires.get(key)
            if deadline is not None and deadline <= now:
                del self._expires[key]
                self._data.pop(key, None)
                return None
        return self._data.get(key)

    def _set_expiry(self, key: str, deadline: float) -> None:
        self._expires[key] = deadline
        heapq.heappush(self._expiry_heap, (deadline, key))
        if len(self._expiry_heap) > 2 * len(self._expires) + 1024:
            # keys whose expiry changed many times: drop the stale entries
            self._expiry_heap = [(d, k) for k, d in self._expires.items()]
            heapq.heapify(self._expiry_heap)

    def _sweep(self, now: float, budget: int = 10_000) -> None:
        """Remove expired keys nobody asked for since (bounded work per call)."""
        heap = self._expiry_heap
        while heap and heap[0][0] <= now and budget:
            deadline, key = heapq.heappop(heap)
            budget -= 1
            if self._expires.get(key) == deadline:
                del self._expires[key]
                self._data.pop(key, None)
        self._next_sweep = now + (0.0 if heap and heap[0][0] <= now else _SWEEP_INTERVAL_S)

    def _typed(self, key: str, kind: type) -> Any:
        value = self._lookup(key)
        if value is not None and type(value) is not kind:
            raise ResponseError(WRONGTYPE)
        return value

    def _remove(self, key: str) -> None:
        self._data.pop(key, None)
        self._expires.pop(key, None)

    def _drop_if_empty(self, key: str, container: Any) -> None:
        if not container:
            self._remove(key)

    @staticmethod
    def _wrong_args(command: str) -> ResponseError:
        return ResponseError(f"wrong number of arguments for '{command}' command")

    # ---------------------------------------------------------------- keys
    def delete(self, *names: Any) -> int:
        if not names:
            raise self._wrong_args("del")
        keys = [_encode(n) for n in names]
        with self._lock:
            count = 0
            for key in keys:
                if self._lookup(key) is not None:
                    self._remove(key)
                    count += 1
            return count

    def exists(self, *names: Any) -> int:
        if not names:
            raise self._wrong_args("exists")
        keys = [_encode(n) for n in names]
        with self._lock:
            return sum(1 for key in keys if self._lookup(key) is not None)

    def type(self, name: Any) -> str:
        key = _encode(name)
        with self._lock:
            value = self._lookup(key)
            return "none" if value is None else _TYPE_NAMES[type(value)]

    def expire(self, name: Any, time: Any) -> int:
        key = _encode(name)
        seconds = _integer(time)
        with self._lock:
            if self._lookup(key) is None:
                return 0
            if seconds <= 0:
                self._remove(key)
            else:
                self._set_expiry(key, _now() + seconds)
            return 1

    def ttl(self, name: Any) -> int:
        key = _encode(name)
        with self._lock:
            if self._lookup(key) is None:
                return -2
            deadline = self._expires.get(key)
            if deadline is None:
                return -1
            left_ms = int((deadline - _now()) * 1000)
            return (left_ms + 500) // 1000

    def copy(self, source: Any, destination: Any, replace: bool = False) -> bool:
        src, dst = _encode(source), _encode(destination)
        with self._lock:
            if src == dst:
                raise ResponseError("source and destination objects are the same")
            value = self._lookup(src)
            if value is None:
                return False
            if self._lookup(dst) is not None and not replace:
                return False
            if type(value) is str:
                clone: Any = value
            elif type(value) is _ZSet:
                clone = value.copy()
            else:
                clone = type(value)(value)
            self._data[dst] = clone
            deadline = self._expires.get(src)
            if deadline is None:
                self._expires.pop(dst, None)
            else:
                self._set_expiry(dst, deadline)
            return True

    def flushall(self) -> bool:
        with self._lock:
            self._data.clear()
            self._expires.clear()
            self._expiry_heap.clear()
            return True

    # ------------------------------------------------------------- strings
    def set(
        self,
        name: Any,
        value: Any,
        ex: Any = None,
        px: Any = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
        get: bool = False,
    ) -> Any:
        key = _encode(name)
        text = _encode(value)
        ttl_s: float | None = None
        if ex is not None:
            ttl_s = _integer(ex)
            if ttl_s <= 0:
                raise ResponseError("invalid expire time in 'set' command")
        if px is not None:
            if ttl_s is not None:
                raise ResponseError("syntax error")
            millis = _integer(px)
            if millis <= 0:
                raise ResponseError("invalid expire time in 'set' command")
            ttl_s = millis / 1000
        if (nx and xx) or (keepttl and ttl_s is not None):
            raise ResponseError("syntax error")
        with self._lock:
            old = self._lookup(key)
            if get and old is not None and type(old) is not str:
                raise ResponseError(WRONGTYPE)
            if (nx and old is not None) or (xx and old is None):
                return old if get else None
            self._data[key] = text
            if ttl_s is not None:
                self._set_expiry(key, _now() + ttl_s)
            elif not keepttl:
                self._expires.pop(key, None)
            return old if get else True

    def get(self, name: Any) -> str | None:
        key = name if type(name) is str else _encode(name)
        with self._lock:
            value = self._lookup(key)
        if value is None or type(value) is str:
            return value
        raise ResponseError(WRONGTYPE)

    def mget(self, keys: Any, *args: Any) -> list[str | None]:
        names = [_encode(k) for k in list_or_args(keys, args)]
        if not names:
            return []  # redis-py answers an empty MGET without asking the server
        with self._lock:
            values = [self._lookup(k) for k in names]
        return [v if type(v) is str else None for v in values]

    def setex(self, name: Any, time: Any, value: Any) -> bool:
        key, text = _encode(name), _encode(value)
        seconds = _integer(time)
        if seconds <= 0:
            raise ResponseError("invalid expire time in 'setex' command")
        with self._lock:
            self._data[key] = text
            self._set_expiry(key, _now() + seconds)
            return True

    def incr(self, name: Any, amount: Any = 1) -> int:
        key = _encode(name)
        delta = _integer(amount)
        with self._lock:
            current = self._typed(key, str)
            base = 0 if current is None else _integer(current)
            result = base + delta
            if not INT64_MIN <= result <= INT64_MAX:
                raise ResponseError("increment or decrement would overflow")
            self._data[key] = str(result)
            return result

    def decr(self, name: Any, amount: Any = 1) -> int:
        key = _encode(name)
        delta = _integer(amount)
        with self._lock:
            current = self._typed(key, str)
            base = 0 if current is None else _integer(current)
            result = base - delta
            if not INT64_MIN <= result <= INT64_MAX:
                raise ResponseError("increment or decrement would overflow")
            self._data[key] = str(result)
            return result

    # -------------------------------------------------------------- hashes
    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: Any = None,
        items: Any = None,
    ) -> int:
        if (
            mapping is None
            and items is None
            and type(name) is str
            and type(key) is str
            and type(value) is str
        ):
            # the form every Dict write uses: one field, strings only
            with self._lock:
                hash_ = self._typed(name, dict)
                if hash_ is None:
                    self._data[name] = {key: value}
                    return 1
                new = key not in hash_
                hash_[key] = value
                return int(new)
        if key is None and not mapping and not items:
            raise DataError("'hset' with no key value pairs")
        pieces: list[Any] = []
        if items:
            if isinstance(items, (str, bytes, dict)) or not isinstance(items, Iterable):
                raise TypeError("items must be a list of alternating fields and values")
            pieces.extend(items)
        if key is not None:
            pieces.extend((key, value))
        if mapping:
            if not isinstance(mapping, dict):
                raise TypeError("mapping must be a dict of fields to values")
            for pair in mapping.items():
                pieces.extend(pair)
        hkey = _encode(name)
        encoded = [_encode(p) for p in pieces]
        if len(encoded) % 2:
            raise self._wrong_args("hset")
        with self._lock:
            hash_ = self._typed(hkey, dict)
            if hash_ is None:
                hash_ = self._data[hkey] = {}
            before = len(hash_)
            for i in range(0, len(encoded), 2):
                hash_[encoded[i]] = encoded[i + 1]
            return len(hash_) - before

    def hget(self, name: Any, key: Any) -> str | None:
        hkey = name if type(name) is str else _encode(name)
        field = key if type(key) is str else _encode(key)
        with self._lock:
            hash_ = self._typed(hkey, dict)
            return None if hash_ is None else hash_.get(field)

    def hmget(self, name: Any, keys: Any, *args: Any) -> list[str | None]:
        hkey = _encode(name)
        fields = [_encode(f) for f in list_or_args(keys, args)]
        if not fields:
            raise self._wrong_args("hmget")
        with self._lock:
            hash_ = self._typed(hkey, dict) or {}
            return [hash_.get(f) for f in fields]

    def hkeys(self, name: Any) -> list[str]:
        hkey = _encode(name)
        with self._lock:
            return list(self._typed(hkey, dict) or ())

    def hvals(self, name: Any) -> list[str]:
        hkey = _encode(name)
        with self._lock:
            return list((self._typed(hkey, dict) or {}).values())

    def hlen(self, name: Any) -> int:
        hkey = _encode(name)
        with self._lock:
            return len(self._typed(hkey, dict) or ())

    def hgetall(self, name: Any) -> dict[str, str]:
        hkey = _encode(name)
        with self._lock:
            return dict(self._typed(hkey, dict) or {})

    def hexists(self, name: Any, key: Any) -> int:
        hkey, field = _encode(name), _encode(key)
        with self._lock:
            hash_ = self._typed(hkey, dict)
            return int(hash_ is not None and field in hash_)

    def hdel(self, name: Any, *keys: Any) -> int:
        if not keys:
            raise self._wrong_args("hdel")
        hkey = _encode(name)
        fields = [_encode(f) for f in keys]
        with self._lock:
            hash_ = self._typed(hkey, dict)
            if hash_ is None:
                return 0
            count = 0
            for field in fields:
                if hash_.pop(field, None) is not None:
                    count += 1
            self._drop_if_empty(hkey, hash_)
            return count

    # --------------------------------------------------------------- lists
    def llen(self, name: Any) -> int:
        key = name if type(name) is str else _encode(name)
        with self._lock:
            return len(self._typed(key, list) or ())

    def lindex(self, name: Any, index: Any) -> str | None:
        key = name if type(name) is str else _encode(name)
        idx = index if type(index) is int else _integer(index)
        with self._lock:
            lst = self._typed(key, list)
            if lst is None or not -len(lst) <= idx < len(lst):
                return None
            return lst[idx]

    def lrange(self, name: Any, start: Any, end: Any) -> list[str]:
        key = _encode(name)
        first, last = _integer(start), _integer(end)
        with self._lock:
            lst = self._typed(key, list)
            if lst is None:
                return []
            size = len(lst)
            if first < 0:
                first = max(first + size, 0)
            if last < 0:
                last += size
            if first > last or first >= size:
                return []
            return lst[first : min(last, size - 1) + 1]

    def lset(self, name: Any, index: Any, value: Any) -> bool:
        key, text = _encode(name), _encode(value)
        idx = _integer(index)
        with self._lock:
            lst = self._typed(key, list)
            if lst is None:
                raise ResponseError("no such key")
            if not -len(lst) <= idx < len(lst):
                raise ResponseError("index out of range")
            lst[idx] = text
            return True

    def lrem(self, name: Any, count: Any, value: Any) -> int:
        key, text = _encode(name), _encode(value)
        limit = _integer(count)
        with self._lock:
            lst = self._typed(key, list)
            if lst is None:
                return 0
            before = len(lst)
            if limit == 0:
                lst[:] = [x for x in lst if x != text]
            else:
                positions = range(len(lst)) if limit > 0 else range(len(lst) - 1, -1, -1)
                doomed: list[int] = []
                for i in positions:
                    if lst[i] == text:
                        doomed.append(i)
                        if len(doomed) == abs(limit):
                            break
                for i in sorted(doomed, reverse=True):
                    del lst[i]
            removed = before - len(lst)
            self._drop_if_empty(key, lst)
            return removed

    def linsert(self, name: Any, where: Any, refvalue: Any, value: Any) -> int:
        key, place = _encode(name), _encode(where).upper()
        pivot, text = _encode(refvalue), _encode(value)
        if place not in ("BEFORE", "AFTER"):
            raise ResponseError("syntax error")
        with self._lock:
            lst = self._typed(key, list)
            if lst is None:
                return 0
            try:
                i = lst.index(pivot)
            except ValueError:
                return -1
            lst.insert(i if place == "BEFORE" else i + 1, text)
            return len(lst)

    def _push(self, command: str, name: Any, values: tuple[Any, ...], left: bool) -> int:
        if not values:
            raise self._wrong_args(command)
        key = name if type(name) is str else _encode(name)
        texts = [v if type(v) is str else _encode(v) for v in values]
        with self._lock:
            lst = self._typed(key, list)
            if lst is None:
                lst = self._data[key] = []
            if left:
                texts.reverse()
                lst[0:0] = texts
            else:
                lst.extend(texts)
            return len(lst)

    def lpush(self, name: Any, *values: Any) -> int:
        return self._push("lpush", name, values, left=True)

    def rpush(self, name: Any, *values: Any) -> int:
        return self._push("rpush", name, values, left=False)

    def _pop(self, name: Any, count: Any, left: bool) -> Any:
        key = _encode(name)
        n = None if count is None else _integer(count, "value is out of range, must be positive")
        if n is not None and n < 0:
            raise ResponseError("value is out of range, must be positive")
        with self._lock:
            lst = self._typed(key, list)
            if lst is None:
                return None
            if n is None:
                item = lst.pop(0 if left else -1)
                self._drop_if_empty(key, lst)
                return item
            if left:
                taken = lst[:n]
                del lst[:n]
            else:
                taken = lst[len(lst) - n :][::-1] if n else []
                del lst[len(lst) - len(taken) :]
            self._drop_if_empty(key, lst)
            return taken

    def lpop(self, name: Any, count: Any = None) -> Any:
        return self._pop(name, count, left=True)

    def rpop(self, name: Any, count: Any = None) -> Any:
        return self._pop(name, count, left=False)

    # ---------------------------------------------------------------- sets
    def sadd(self, name: Any, *values: Any) -> int:
        if not values:
            raise self._wrong_args("sadd")
        key = _encode(name)
        members = [_encode(v) for v in values]
        with self._lock:
            members_set = self._typed(key, set)
            if members_set is None:
                members_set = self._data[key] = set()
            before = len(members_set)
            members_set.update(members)
            return len(members_set) - before

    def srem(self, name: Any, *values: Any) -> int:
        if not values:
            raise self._wrong_args("srem")
        key = _encode(name)
        members = {_encode(v) for v in values}
        with self._lock:
            members_set = self._typed(key, set)
            if members_set is None:
                return 0
            before = len(members_set)
            members_set.difference_update(members)
            removed = before - len(members_set)
            self._drop_if_empty(key, members_set)
            return removed

    def smembers(self, name: Any) -> builtins.set[str]:
        key = _encode(name)
        with self._lock:
            return set(self._typed(key, set) or ())

    def scard(self, name: Any) -> int:
        key = _encode(name)
        with self._lock:
            return len(self._typed(key, set) or ())

    def sismember(self, name: Any, value: Any) -> int:
        key, member = _encode(name), _encode(value)
        with self._lock:
            return int(member in (self._typed(key, set) or ()))

    def smove(self, src: Any, dst: Any, value: Any) -> int:
        source, target, member = _encode(src), _encode(dst), _encode(value)
        with self._lock:
            from_set = self._typed(source, set)
            to_set = self._typed(target, set)
            if from_set is None or member not in from_set:
                return 0
            if source == target:
                return 1
            from_set.discard(member)
            self._drop_if_empty(source, from_set)
            if to_set is None:
                to_set = self._data[target] = set()
            to_set.add(member)
            return 1

    def srandmember(self, name: Any, number: Any = None) -> Any:
        key = _encode(name)
        n = None if number is None else _integer(number)
        with self._lock:
            members = sorted(self._typed(key, set) or ())
        if n is None:
            return random.choice(members) if members else None
        if not members or n == 0:
            return []
        if n > 0:
            return random.sample(members, min(n, len(members)))
        return [random.choice(members) for _ in range(-n)]

    # --------------------------------------------------------- sorted sets
    def zadd(
        self, name: Any, mapping: Any, nx: bool = False, xx: bool = False, ch: bool = False
    ) -> int:
        if not mapping:
            raise DataError("ZADD requires at least one element/score pair")
        if not isinstance(mapping, dict):
            raise TypeError("mapping must be a dict of members to scores")
        if nx and xx:
            raise DataError("ZADD allows either 'nx' or 'xx', not both")
        key = _encode(name)
        pairs = [(_encode(m), _encode(s)) for m, s in mapping.items()]
        scored = [(m, _float(s, "value is not a valid float")) for m, s in pairs]
        with self._lock:
            zset = self._typed(key, _ZSet)
            created = zset is None
            if zset is None:
                zset = _ZSet()
            added = changed = 0
            for member, score in scored:
                old = zset.scores.get(member)
                if old is None:
                    if xx:
                        continue
                    added += 1
                elif nx or old == score:
                    continue
                else:
                    changed += 1
                zset.add(member, score)
            if created and zset.scores:
                self._data[key] = zset
            return added + changed if ch else added

    def zcard(self, name: Any) -> int:
        key = _encode(name)
        with self._lock:
            zset = self._typed(key, _ZSet)
            return 0 if zset is None else len(zset.scores)

    def zscore(self, name: Any, value: Any) -> float | None:
        key, member = _encode(name), _encode(value)
        with self._lock:
            zset = self._typed(key, _ZSet)
            score = None if zset is None else zset.scores.get(member)
            return None if score is None else _score_out(score)

    @staticmethod
    def _ranked(pairs: list[tuple[float, str]], withscores: bool) -> list[Any]:
        if withscores:
            return [(member, _score_out(score)) for score, member in pairs]
        return [member for _, member in pairs]

    def zrange(
        self, name: Any, start: Any, end: Any, desc: bool = False, withscores: bool = False
    ) -> list[Any]:
        key = _encode(name)
        first, last = _integer(start), _integer(end)
        with self._lock:
            zset = self._typed(key, _ZSet)
            if zset is None:
                return []
            order = list(zset.order)
        if desc:
            order.reverse()
        size = len(order)
        if first < 0:
            first = max(first + size, 0)
        if last < 0:
            last += size
        if first > last or first >= size:
            return []
        return self._ranked(order[first : min(last, size - 1) + 1], withscores)

    def _by_score(
        self, name: Any, low: Any, high: Any, start: Any, num: Any, withscores: bool, desc: bool
    ) -> list[Any]:
        key = _encode(name)
        lo, hi = _bound(low), _bound(high)
        with self._lock:
            zset = self._typed(key, _ZSet)
            if zset is None:
                _limit([], start, num)
                return []
            i, j = zset.score_range(lo, hi)
            pairs = list(zset.order.islice(i, j))
        if desc:
            pairs.reverse()
        return self._ranked(_limit(pairs, start, num), withscores)

    def zrangebyscore(
        self,
        name: Any,
        min: Any,
        max: Any,
        start: Any = None,
        num: Any = None,
        withscores: bool = False,
    ) -> list[Any]:
        return self._by_score(name, min, max, start, num, withscores, desc=False)

    def zrevrangebyscore(
        self,
        name: Any,
        max: Any,
        min: Any,
        start: Any = None,
        num: Any = None,
        withscores: bool = False,
    ) -> list[Any]:
        return self._by_score(name, min, max, start, num, withscores, desc=True)

    def zrem(self, name: Any, *values: Any) -> int:
        if not values:
            raise self._wrong_args("zrem")
        key = _encode(name)
        members = [_encode(v) for v in values]
        with self._lock:
            zset = self._typed(key, _ZSet)
            if zset is None:
                return 0
            removed = sum(1 for m in members if zset.remove(m))
            self._drop_if_empty(key, zset.scores)
            return removed

    def zcount(self, name: Any, min: Any, max: Any) -> int:
        key = _encode(name)
        lo, hi = _bound(min), _bound(max)
        with self._lock:
            zset = self._typed(key, _ZSet)
            if zset is None:
                return 0
            i, j = zset.score_range(lo, hi)
            return j - i

    # ----------------------------------------------------- in process only
    def scan_iter(self, match: Any = None, count: Any = None) -> Iterator[str]:
        """Yield the live keys whose name matches the glob ``match`` (all when ``None``).

        At most ``count`` keys when given (upstream's meaning; Redis takes it as a hint).
        The key names are read once at the start; keys that expire meanwhile are skipped.
        """
        pattern = None if match is None else _encode(match)
        limit = None if count is None else _integer(count)
        with self._lock:
            names = list(self._data)
        yielded = 0
        for name in names:
            if limit is not None and yielded >= limit:
                return
            if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
                continue
            with self._lock:
                if self._lookup(name) is None:
                    continue
            yielded += 1
            yield name

    def pipeline(self, transaction: bool = False) -> StoragePipeline:
        """A pipeline of commands run by one :meth:`execute_many` (redis-py's shape;
        ``transaction`` is accepted for compatibility: commands run under one lock anyway)."""
        from znsocket.storage.pipeline import StoragePipeline  # loaded by code that pipelines

        return StoragePipeline(self)

    # ------------------------------------------------------------- batches
    def execute_many(self, calls: Sequence[CommandCall]) -> list[Any]:
        """Run a pipeline's commands in order under one acquisition of the lock.

        Same results as the interface's sequential default (stops at the first command
        that raises, whose exception is the last element). The one-field string ``hset``
        every Dict write sends is run inline: in a 1,000-command pipeline the per-command
        lock, method call and type lookup cost more than the write itself.
        """
        results: list[Any] = []
        append = results.append
        data = self._data
        with self._lock:
            for name, args, kwargs in calls:
                try:
                    if name == "hset" and len(args) == 3 and not kwargs:
                        hname, field, value = args
                        if type(hname) is str and type(field) is str and type(value) is str:
                            hash_ = self._lookup(hname) if self._expires else data.get(hname)
                            if hash_ is None:
                                data[hname] = {field: value}
                                append(1)
                            elif type(hash_) is dict:
                                new = field not in hash_
                                hash_[field] = value
                                append(1 if new else 0)
                            else:
                                raise ResponseError(WRONGTYPE)
                            continue
                    append(getattr(self, name)(*args, **kwargs))
                except Exception as exc:  # the caller turns it into an error envelope
                    append(exc)
                    break
        return results


def _now() -> float:
    return time.monotonic()
