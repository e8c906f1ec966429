"""A sample call of every storage command, passed in every way Python allows.

:data:`SAMPLES` gives, per command of the interface, the type of value its keys hold and its
arguments by parameter name, with :data:`KEY` where a key goes. :func:`fill` puts keys in
those places, :func:`as_call` turns the arguments into ``(args, kwargs)`` with the first
``positional`` parameters passed by position and the rest by keyword. A sample leaves out
a ``*args`` parameter where that lets the parameters before it go by keyword (``mget``'s
``keys``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from znsocket.storage.spec import COMMAND_SPECS

KEY = object()  # where a key goes


#: command -> (type of value its keys hold, arguments by parameter name)
SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "delete": ("string", {"names": [KEY, KEY]}),
    "exists": ("string", {"names": [KEY, KEY]}),
    "type": ("string", {"name": KEY}),
    "expire": ("string", {"name": KEY, "time": 1000}),
    "ttl": ("string", {"name": KEY}),
    "copy": ("string", {"source": KEY, "destination": KEY, "replace": True}),
    "flushall": ("string", {}),
    "set": ("string", {"name": KEY, "value": "v"}),
    "get": ("string", {"name": KEY}),
    "mget": ("string", {"keys": [KEY, KEY]}),
    "setex": ("string", {"name": KEY, "time": 1000, "value": "v"}),
    "incr": ("string", {"name": KEY, "amount": 2}),
    "decr": ("string", {"name": KEY, "amount": 2}),
    "hset": ("hash", {"name": KEY, "key": "f", "value": "v"}),
    "hget": ("hash", {"name": KEY, "key": "f"}),
    "hmget": ("hash", {"name": KEY, "keys": ["f", "g"]}),
    "hkeys": ("hash", {"name": KEY}),
    "hvals": ("hash", {"name": KEY}),
    "hlen": ("hash", {"name": KEY}),
    "hgetall": ("hash", {"name": KEY}),
    "hexists": ("hash", {"name": KEY, "key": "f"}),
    "hdel": ("hash", {"name": KEY, "keys": ["f"]}),
    "llen": ("list", {"name": KEY}),
    "lindex": ("list", {"name": KEY, "index": 0}),
    "lrange": ("list", {"name": KEY, "start": 0, "end": -1}),
    "lset": ("list", {"name": KEY, "index": 0, "value": "w"}),
    "lrem": ("list", {"name": KEY, "count": 0, "value": "v"}),
    "linsert": ("list", {"name": KEY, "where": "BEFORE", "refvalue": "v", "value": "w"}),
    "lpush": ("list", {"name": KEY, "values": ["v", "w"]}),
    "rpush": ("list", {"name": KEY, "values": ["v"]}),
    "lpop": ("list", {"name": KEY, "count": 1}),
    "rpop": ("list", {"name": KEY, "count": 1}),
    "sadd": ("set", {"name": KEY, "values": ["m"]}),
    "srem": ("set", {"name": KEY, "values": ["m"]}),
    "smembers": ("set", {"name": KEY}),
    "scard": ("set", {"name": KEY}),
    "sismember": ("set", {"name": KEY, "value": "m"}),
    "smove": ("set", {"src": KEY, "dst": KEY, "value": "m"}),
    "srandmember": ("set", {"name": KEY, "number": 1}),
    "zadd": ("zset", {"name": KEY, "mapping": {"m": 1.0}}),
    "zcard": ("zset", {"name": KEY}),
    "zscore": ("zset", {"name": KEY, "value": "m"}),
    "zrange": ("zset", {"name": KEY, "start": 0, "end": -1}),
    "zrangebyscore": ("zset", {"name": KEY, "min": "-inf", "max": "+inf"}),
    "zrevrangebyscore": ("zset", {"name": KEY, "max": "+inf", "min": "-inf"}),
    "zrem": ("zset", {"name": KEY, "values": ["m"]}),
    "zcount": ("zset", {"name": KEY, "min": "-inf", "max": "+inf"}),
}


def key_slots(command: str) -> int:
    """How many keys the sample call of ``command`` names."""
    params = SAMPLES[command][1]
    return sum(
        sum(v is KEY for v in value) if isinstance(value, list) else int(value is KEY)
        for value in params.values()
    )


def fill(command: str, keys: Iterable[Any]) -> dict[str, Any]:
    """The sample arguments of ``command`` with its key places taken, in order, by ``keys``."""
    it = iter(keys)
    out: dict[str, Any] = {}
    for name, value in SAMPLES[command][1].items():
        if isinstance(value, list):
            out[name] = [next(it) if v is KEY else v for v in value]
        else:
            out[name] = next(it) if value is KEY else value
    return out


def positional_range(command: str) -> range:
    """The possible numbers of parameters passed by position for the sample call."""
    params = list(COMMAND_SPECS[command].signature.parameters.values())  # type: ignore[union-attr]
    given = SAMPLES[command][1]
    names = [p.name for p in params if p.name in given]
    variadic = [
        i
        for i, p in enumerate(params)
        if p.kind is inspect.Parameter.VAR_POSITIONAL and p.name in given
    ]
    # a non-empty *args forces every parameter up to it to be positional
    low = variadic[0] + 1 if variadic else 0
    return range(low, len(names) + 1)


def as_call(
    command: str, arguments: dict[str, Any], positional: int
) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` passing the first ``positional`` given parameters by position."""
    params = COMMAND_SPECS[command].signature.parameters.values()  # type: ignore[union-attr]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    passed = 0
    for p in params:
        if p.name not in arguments:
            continue
        value = arguments[p.name]
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            args.extend(value)
        elif passed < positional:
            args.append(value)
        else:
            kwargs[p.name] = value
        passed += 1
    return args, kwargs
