"""The storage command interface: every command a znsocket server may dispatch.

A znsocket server maps an event name onto a storage command. Upstream looked the name up
with ``getattr`` on any object, which exposed private attributes, dunder methods and, with
Redis, the whole redis-py client (``execute_command``, ``config_set``, ``shutdown``). Here the
vocabulary is closed: it is exactly the abstract methods of :class:`StorageCommands`,
collected in :data:`COMMANDS`, and the server dispatches nothing else.

Names and signatures follow redis-py (``delete``, not ``del``; ``hset`` with ``mapping``);
semantics follow Redis with ``decode_responses=True`` (strings in, strings out) except where
a method's docstring says otherwise. The list is what upstream's ``List``/``Dict``/
``Segments`` proxies and clients send (spec §8.2/§8.3) plus the string, hash, list, set and
sorted-set commands of upstream's in-memory store (§8.1). ``scan_iter`` and ``pipeline``
are not commands: their results cannot cross the wire.

To add a backend, subclass :class:`StorageCommands`, implement every command and run the
shared suite ``tests/znsocket/storage_suite.py`` against it.

Return-value conventions (all backends):

* integer replies stay integers, including ``hexists``, ``sismember``, ``smove`` and
  ``expire`` (1/0, as Redis answers them and as the TypeScript client compares with ``=== 1``);
* ``copy`` returns ``True``/``False``; ``set`` returns ``True`` (or ``None`` when ``nx``/``xx``
  prevented the write); ``lset``, ``setex`` and ``flushall`` return ``True``;
* ``smembers`` returns a ``set`` (sent as ``{"data": [...], "type": "set"}``);
* ``zrange(..., withscores=True)`` and the ``*byscore`` variants return ``[member, score]``
  pairs.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["COMMANDS", "CommandCall", "StorageCommands", "command_table"]

#: One queued command: ``(name, args, kwargs)``.
CommandCall = tuple[str, Sequence[Any], Mapping[str, Any]]


class StorageCommands(abc.ABC):
    """Abstract Redis-like storage: the only commands a znsocket server dispatches.

    Every method raises :class:`znsocket.exceptions.ResponseError` (or redis-py's) where Redis
    answers with an error (``WRONGTYPE``, ``no such key``, ...), and
    :class:`znsocket.exceptions.DataError` for arguments Redis cannot hold (``None``, ``bool``,
    containers), mirroring redis-py's encoder.
    """

    # ----------------------------------------------------------------- keys
    @abc.abstractmethod
    def delete(self, *names: Any) -> int:
        """Delete keys; returns how many existed. Same semantics as Redis DEL."""

    @abc.abstractmethod
    def exists(self, *names: Any) -> int:
        """Count the given keys that exist (repeats count twice). Redis EXISTS."""

    @abc.abstractmethod
    def type(self, name: Any) -> str:
        """``string``, ``list``, ``hash``, ``set``, ``zset`` or ``none``. Redis TYPE."""

    @abc.abstractmethod
    def expire(self, name: Any, time: Any) -> int:
        """Set a time to live in seconds; 1 if the key exists, else 0. Redis EXPIRE."""

    @abc.abstractmethod
    def ttl(self, name: Any) -> int:
        """Seconds left to live; -1 without expiry, -2 for a missing key. Redis TTL."""

    @abc.abstractmethod
    def copy(self, source: Any, destination: Any, replace: bool = False) -> bool:
        """Copy a key's value; ``False`` if the source is missing or the target exists. Redis COPY."""

    @abc.abstractmethod
    def flushall(self) -> bool:
        """Delete every key. Redis FLUSHALL."""

    # -------------------------------------------------------------- strings
    @abc.abstractmethod
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
        """Set a string value. Redis SET (``ex``/``px``/``nx``/``xx``/``keepttl``/``get``)."""

    @abc.abstractmethod
    def get(self, name: Any) -> str | None:
        """The string value or ``None``. Redis GET."""

    @abc.abstractmethod
    def mget(self, keys: Any, *args: Any) -> list[str | None]:
        """Values of several string keys. Redis MGET (``keys`` may be one name or a list)."""

    @abc.abstractmethod
    def setex(self, name: Any, time: Any, value: Any) -> bool:
        """Set a value with a time to live in seconds. Redis SETEX."""

    @abc.abstractmethod
    def incr(self, name: Any, amount: Any = 1) -> int:
        """Increment an integer string. Redis INCRBY."""

    @abc.abstractmethod
    def decr(self, name: Any, amount: Any = 1) -> int:
        """Decrement an integer string. Redis DECRBY."""

    # --------------------------------------------------------------- hashes
    @abc.abstractmethod
    def hset(
        self,
        name: Any,
        key: Any = None,
        value: Any = None,
        mapping: Any = None,
        items: Any = None,
    ) -> int:
        """Set hash fields; returns the number of new fields. Redis HSET (redis-py arguments)."""

    @abc.abstractmethod
    def hget(self, name: Any, key: Any) -> str | None:
        """A field's value or ``None``. Redis HGET."""

    @abc.abstractmethod
    def hmget(self, name: Any, keys: Any, *args: Any) -> list[str | None]:
        """Values of several fields. Redis HMGET."""

    @abc.abstractmethod
    def hkeys(self, name: Any) -> list[str]:
        """Field names in insertion order. Redis HKEYS."""

    @abc.abstractmethod
    def hvals(self, name: Any) -> list[str]:
        """Field values in insertion order. Redis HVALS."""

    @abc.abstractmethod
    def hlen(self, name: Any) -> int:
        """Number of fields. Redis HLEN."""

    @abc.abstractmethod
    def hgetall(self, name: Any) -> dict[str, str]:
        """All fields and values, in insertion order. Redis HGETALL."""

    @abc.abstractmethod
    def hexists(self, name: Any, key: Any) -> int:
        """1 if the field exists, else 0. Redis HEXISTS."""

    @abc.abstractmethod
    def hdel(self, name: Any, *keys: Any) -> int:
        """Delete fields; returns how many existed. Redis HDEL."""

    # ---------------------------------------------------------------- lists
    @abc.abstractmethod
    def llen(self, name: Any) -> int:
        """Length of a list. Redis LLEN."""

    @abc.abstractmethod
    def lindex(self, name: Any, index: Any) -> str | None:
        """Element at ``index`` (negative from the end) or ``None``. Redis LINDEX."""

    @abc.abstractmethod
    def lrange(self, name: Any, start: Any, end: Any) -> list[str]:
        """Elements ``start..end``, both inclusive, negatives from the end. Redis LRANGE."""

    @abc.abstractmethod
    def lset(self, name: Any, index: Any, value: Any) -> bool:
        """Replace an element; ``no such key`` / ``index out of range`` errors. Redis LSET."""

    @abc.abstractmethod
    def lrem(self, name: Any, count: Any, value: Any) -> int:
        """Remove ``count`` occurrences (0: all, negative: from the tail). Redis LREM."""

    @abc.abstractmethod
    def linsert(self, name: Any, where: Any, refvalue: Any, value: Any) -> int:
        """Insert before/after the first ``refvalue``; new length, -1 or 0. Redis LINSERT."""

    @abc.abstractmethod
    def lpush(self, name: Any, *values: Any) -> int:
        """Prepend values (each to the head in turn); returns the new length. Redis LPUSH."""

    @abc.abstractmethod
    def rpush(self, name: Any, *values: Any) -> int:
        """Append values; returns the new length. Redis RPUSH."""

    @abc.abstractmethod
    def lpop(self, name: Any, count: Any = None) -> Any:
        """Remove and return the first element(s). Redis LPOP."""

    @abc.abstractmethod
    def rpop(self, name: Any, count: Any = None) -> Any:
        """Remove and return the last element(s). Redis RPOP."""

    # ----------------------------------------------------------------- sets
    @abc.abstractmethod
    def sadd(self, name: Any, *values: Any) -> int:
        """Add members; returns how many were new. Redis SADD."""

    @abc.abstractmethod
    def srem(self, name: Any, *values: Any) -> int:
        """Remove members; returns how many existed. Redis SREM."""

    @abc.abstractmethod
    def smembers(self, name: Any) -> builtins.set[str]:
        """All members. Redis SMEMBERS."""

    @abc.abstractmethod
    def scard(self, name: Any) -> int:
        """Number of members. Redis SCARD."""

    @abc.abstractmethod
    def sismember(self, name: Any, value: Any) -> int:
        """1 if ``value`` is a member, else 0. Redis SISMEMBER."""

    @abc.abstractmethod
    def smove(self, src: Any, dst: Any, value: Any) -> int:
        """Move a member between sets; 1 if moved, else 0. Redis SMOVE."""

    @abc.abstractmethod
    def srandmember(self, name: Any, number: Any = None) -> Any:
        """Random member(s). Redis SRANDMEMBER."""

    # ---------------------------------------------------------- sorted sets
    @abc.abstractmethod
    def zadd(
        self, name: Any, mapping: Any, nx: bool = False, xx: bool = False, ch: bool = False
    ) -> int:
        """Add members with scores; returns how many were new (changed with ``ch``). Redis ZADD."""

    @abc.abstractmethod
    def zcard(self, name: Any) -> int:
        """Number of members. Redis ZCARD."""

    @abc.abstractmethod
    def zscore(self, name: Any, value: Any) -> float | None:
        """A member's score or ``None``. Redis ZSCORE."""

    @abc.abstractmethod
    def zrange(
        self, name: Any, start: Any, end: Any, desc: bool = False, withscores: bool = False
    ) -> list[Any]:
        """Members by rank ``start..end`` inclusive. Redis ZRANGE (rank form)."""

    @abc.abstractmethod
    def zrangebyscore(
        self,
        name: Any,
        min: Any,
        max: Any,
        start: Any = None,
        num: Any = None,
        withscores: bool = False,
    ) -> list[Any]:
        """Members with ``min <= score <= max`` (``(`` exclusive, ``-inf``/``+inf``). Redis ZRANGEBYSCORE."""

    @abc.abstractmethod
    def zrevrangebyscore(
        self,
        name: Any,
        max: Any,
        min: Any,
        start: Any = None,
        num: Any = None,
        withscores: bool = False,
    ) -> list[Any]:
        """As :meth:`zrangebyscore`, highest score first. Redis ZREVRANGEBYSCORE."""

    @abc.abstractmethod
    def zrem(self, name: Any, *values: Any) -> int:
        """Remove members; returns how many existed. Redis ZREM."""

    @abc.abstractmethod
    def zcount(self, name: Any, min: Any, max: Any) -> int:
        """Number of members with a score in the range. Redis ZCOUNT."""

    # ------------------------------------------------------------- batches
    def execute_many(self, calls: Sequence[CommandCall]) -> list[Any]:
        """Run commands in order, stopping at the first that raises.

        This is how the server runs a ``pipeline`` event. Backends may override it to batch
        round trips, as long as the result has the same shape.

        Args:
            calls: ``(name, args, kwargs)`` triples; every name is in :data:`COMMANDS`.

        Returns:
            One result per command that ran; if a command raised, its exception instance
            is the last element and the commands after it were not run.
        """
        results: list[Any] = []
        for name, args, kwargs in calls:
            try:
                results.append(getattr(self, name)(*args, **kwargs))
            except Exception as exc:  # the caller turns it into an error envelope
                results.append(exc)
                break
        return results


#: Every command name the server may dispatch.
COMMANDS: frozenset[str] = frozenset(StorageCommands.__abstractmethods__)


def command_table(storage: object) -> dict[str, Callable[..., Any]]:
    """Bind the interface's commands of ``storage`` once, for fast dispatch.

    Only names in :data:`COMMANDS` are looked up, so no other attribute of the object is
    ever reachable. A duck-typed object lacking a command simply does not offer it.

    Args:
        storage: A :class:`StorageCommands` implementation (or a duck-typed equivalent).

    Returns:
        Command name -> bound method.
    """
    table: dict[str, Callable[..., Any]] = {}
    for name in COMMANDS:
        method = getattr(type(storage), name, None)
        if callable(method):
            table[name] = getattr(storage, name)
    return table
