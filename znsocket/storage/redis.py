"""RedisStorage: the storage command interface over a real redis-server (redis-py).

Each command forwards to the redis-py method of the same name with the interface's
arguments only, so a client can reach nothing but the interface: no ``execute_command``,
``config_set``, ``shutdown``, ``eval`` or other client method. Replies are redis-py's with
``decode_responses=True``, except that ``hexists``, ``sismember``, ``smove`` and ``expire``
are returned as integers 1/0 (redis-py turns them into booleans; the interface and the
TypeScript client expect the integers Redis sends).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import redis

from znsocket.storage.base import COMMANDS, CommandCall, StorageCommands

__all__ = ["RedisStorage"]


def _forward(name: str, as_int: bool = False) -> Callable[..., Any]:
    # Bind against the interface's signature first: redis-py methods take more options
    # (score_cast_func, exat, ...) than the interface offers, and none may leak through.
    signature = inspect.signature(getattr(StorageCommands, name))

    def command(self: RedisStorage, *args: Any, **kwargs: Any) -> Any:
        signature.bind(self, *args, **kwargs)
        result = getattr(self.client, name)(*args, **kwargs)
        return int(result) if as_int else result

    command.__name__ = name
    command.__qualname__ = f"RedisStorage.{name}"
    command.__doc__ = f"Redis ``{name.upper()}`` through redis-py."
    return command


class RedisStorage(StorageCommands):
    """Storage backed by a redis-server.

    Args:
        client: A redis-py client created with ``decode_responses=True``.

    Example:
        >>> storage = RedisStorage.from_url("redis://127.0.0.1:6379/0")  # doctest: +SKIP
        >>> storage.set("k", "v")  # doctest: +SKIP
        True
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStorage:
        """Connect to ``redis://host:port/db`` (responses decoded as text).

        Args:
            url: A redis-py URL.
            **kwargs: Further ``redis.Redis.from_url`` options.
        """
        kwargs.setdefault("decode_responses", True)
        return cls(redis.Redis.from_url(url, **kwargs))

    def __repr__(self) -> str:
        return f"RedisStorage({self.client!r})"

    def close(self) -> None:
        """Close the connections to redis-server."""
        self.client.close()

    def execute_many(self, calls: Sequence[CommandCall]) -> list[Any]:
        """Run the commands in one redis-py pipeline (one round trip).

        Returns results up to and including the first error, like the sequential default;
        Redis itself runs the commands after an error too (a non-transactional pipeline).
        """
        results: list[Any] = []
        try:
            pipe = self.client.pipeline(transaction=False)
            for name, args, kwargs in calls:
                _SIGNATURES[name].bind(self, *args, **kwargs)
                getattr(pipe, name)(*args, **kwargs)
            replies = pipe.execute(raise_on_error=False)
        except Exception as exc:  # argument errors surface before anything was sent
            return [exc]
        for (name, _args, _kwargs), reply in zip(calls, replies, strict=False):
            if isinstance(reply, Exception):
                results.append(reply)
                break
            results.append(int(reply) if name in _INT_REPLIES else reply)
        return results

    # keys
    delete = _forward("delete")
    exists = _forward("exists")
    type = _forward("type")
    expire = _forward("expire", as_int=True)
    ttl = _forward("ttl")
    copy = _forward("copy")
    flushall = _forward("flushall")
    # strings
    set = _forward("set")
    get = _forward("get")
    mget = _forward("mget")

    def setex(self, name: Any, time: Any, value: Any) -> bool:
        """Redis ``SET ... EX`` (redis-py deprecates its ``setex``)."""
        return bool(self.client.set(name, value, ex=time))

    incr = _forward("incr")
    decr = _forward("decr")
    # hashes
    hset = _forward("hset")
    hget = _forward("hget")
    hmget = _forward("hmget")
    hkeys = _forward("hkeys")
    hvals = _forward("hvals")
    hlen = _forward("hlen")
    hgetall = _forward("hgetall")
    hexists = _forward("hexists", as_int=True)
    hdel = _forward("hdel")
    # lists
    llen = _forward("llen")
    lindex = _forward("lindex")
    lrange = _forward("lrange")
    lset = _forward("lset")
    lrem = _forward("lrem")
    linsert = _forward("linsert")
    lpush = _forward("lpush")
    rpush = _forward("rpush")
    lpop = _forward("lpop")
    rpop = _forward("rpop")
    # sets
    sadd = _forward("sadd")
    srem = _forward("srem")
    smembers = _forward("smembers")
    scard = _forward("scard")
    sismember = _forward("sismember", as_int=True)
    smove = _forward("smove", as_int=True)
    srandmember = _forward("srandmember")
    # sorted sets
    zadd = _forward("zadd")
    zcard = _forward("zcard")
    zscore = _forward("zscore")
    zrange = _forward("zrange")
    zrangebyscore = _forward("zrangebyscore")
    zrevrangebyscore = _forward("zrevrangebyscore")
    zrem = _forward("zrem")
    zcount = _forward("zcount")


_INT_REPLIES = frozenset({"expire", "hexists", "sismember", "smove"})
_SIGNATURES = {name: inspect.signature(getattr(StorageCommands, name)) for name in COMMANDS}
