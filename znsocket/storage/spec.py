"""What each command reads and writes, and where its keys are: one spec per command.

:data:`COMMAND_SPECS` holds one :class:`CommandSpec` for every command of
:class:`~znsocket.storage.base.StorageCommands` (a test checks that none is missing), and
:data:`EVENT_SPECS` one for each non-storage event that names keys (``refresh`` and the
adapter events). Everything that must know which keys a call touches derives it from here:
the gateway's per-key authorization (``gateway.auth``) and the set of keys a generic write
persists (``gateway.storage.generic.WRITES``).

Strategy: a call's arguments are bound to the interface method's signature
(:meth:`inspect.Signature.bind`), exactly as Python binds them when the storage method is
called. So ``copy("a", "b")`` and ``copy(source="a", destination="b")`` name the same keys,
and a call that cannot be bound (an unknown keyword, a keyword repeating a positional) is
refused with the ``TypeError`` the method itself would raise, before it reaches storage.
A key parameter is one name, every item of ``*args``, or, marked ``list_or_one``, redis-py's
"one name or a list of names" (``mget``'s ``keys``, resolved by :func:`list_or_args`, which
the storage backends use too).

Events carry keyword fields only (``{"key": ...}``, ``{"target": ...}``) and may carry
fields a client adds; every field that could name a key (:data:`KEY_FIELDS`) is a key of
the event, so no field can smuggle one past a check made on another.

The interface has no command that lists keys (``keys``, ``scan``, ``scan_iter``): such a
command would need its *answer* filtered per client, not only its arguments checked, and a
server answers ``UnknownEventError`` to it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from znsocket.protocol.events import Event
from znsocket.storage.base import StorageCommands

__all__ = [
    "COMMAND_SPECS",
    "EVENT_SPECS",
    "KEY_FIELDS",
    "Access",
    "CommandSpec",
    "KeyParam",
    "list_or_args",
    "spec_of",
]

Access = Literal["read", "write"]

#: Payload fields of a non-storage event that name keys. ``key`` is the adapter events'
#: key, ``target`` the refresh target and the key an adapter ``copy`` writes; ``name`` is
#: read by nothing here but forwarded to adapter owners, so it is checked too.
KEY_FIELDS: tuple[str, ...] = ("key", "target", "name")


def list_or_args(keys: Any, args: Iterable[Any] = ()) -> list[Any]:
    """redis-py's ``list_or_args``: one name or an iterable of names, plus extra names."""
    if isinstance(keys, (str, bytes, bytearray, memoryview)):
        out = [keys]
    else:
        try:
            out = list(keys)
        except TypeError:
            out = [keys]
    out.extend(args)
    return out


@dataclass(frozen=True)
class KeyParam:
    """A parameter (or event field) that names keys.

    Attributes:
        name: The parameter's name in the interface method (or the payload field).
        access: Whether the command reads or changes the key(s).
        list_or_one: The value is one name or a list of names (see :func:`list_or_args`).
        variadic: A ``*args`` parameter: one key per item (set from the signature).
    """

    name: str
    access: Access
    list_or_one: bool = False
    variadic: bool = False


@dataclass(frozen=True)
class CommandSpec:
    """How one command or event touches keys.

    Attributes:
        name: The command or event name.
        keys: Its key parameters (or, for an event, key fields).
        all_keys: The command touches every key (``flushall``).
        writes_all: With ``all_keys``: it changes them.
        signature: The interface method's signature without ``self``; ``None`` for an
            event, whose payload is keyword fields only.
        writes: Whether every call changes data (derived): a command with a key it
            changes, or an event all of whose key fields it changes. See :meth:`changes`
            for one call.
    """

    name: str
    keys: tuple[KeyParam, ...] = ()
    all_keys: bool = False
    writes_all: bool = False
    signature: inspect.Signature | None = field(default=None, compare=False)
    writes: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.signature is None:  # an event: fields may be absent
            writes = bool(self.keys) and all(k.access == "write" for k in self.keys)
        else:
            writes = self.writes_all or any(k.access == "write" for k in self.keys)
        object.__setattr__(self, "writes", writes)

    def changes(self, keys: Sequence[tuple[Any, Access]]) -> bool:
        """Whether the call whose keys (:meth:`keys_of`) are ``keys`` changes data: always
        for a writing command, and for an event when a field it writes is present
        (``adapter:get`` with a copy ``target``)."""
        return self.writes or any(access == "write" for _, access in keys)

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, as the storage method would bind them.

        Raises:
            TypeError: The arguments do not fit the method (or an event got positional
                arguments); the message says why, as Python's would.
        """
        if self.signature is None:
            if args:
                raise TypeError(
                    f"{self.name} takes keyword fields only, not {len(args)} positional"
                )
            return dict(kwargs)
        return self.signature.bind(*args, **kwargs).arguments

    def keys_of(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[tuple[Any, Access]]:
        """Every key the call names, with whether it is read or changed.

        Values are returned as sent (a key may be a number or bytes; the storage turns it
        into text). An event field that is absent names nothing.

        Raises:
            TypeError: As :meth:`bind`.
        """
        bound = self.bind(args, kwargs)
        out: list[tuple[Any, Access]] = []
        for param in self.keys:
            if param.name not in bound:
                continue
            value = bound[param.name]
            if param.variadic:
                out.extend((v, param.access) for v in value)
            elif param.list_or_one:
                out.extend((v, param.access) for v in list_or_args(value))
            else:
                out.append((value, param.access))
        return out

    def written(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        """The keys the call changes (without ``flushall``'s every key).

        Raises:
            TypeError: As :meth:`bind`.
        """
        return [key for key, access in self.keys_of(args, kwargs) if access == "write"]


def _r(name: str, list_or_one: bool = False) -> KeyParam:
    return KeyParam(name, "read", list_or_one)


def _w(name: str) -> KeyParam:
    return KeyParam(name, "write")


# The table: per command, its key parameters. Parameters not listed (values, fields,
# members, scores, options) name no key; a hash's ``key``/``keys`` are field names.
_COMMAND_KEYS: dict[str, tuple[KeyParam, ...]] = {
    # keys
    "delete": (_w("names"),),
    "exists": (_r("names"),),
    "type": (_r("name"),),
    "expire": (_w("name"),),
    "ttl": (_r("name"),),
    "copy": (_r("source"), _w("destination")),
    "flushall": (),
    # strings
    "set": (_w("name"),),
    "get": (_r("name"),),
    "mget": (_r("keys", list_or_one=True), _r("args")),
    "setex": (_w("name"),),
    "incr": (_w("name"),),
    "decr": (_w("name"),),
    # hashes
    "hset": (_w("name"),),
    "hget": (_r("name"),),
    "hmget": (_r("name"),),
    "hkeys": (_r("name"),),
    "hvals": (_r("name"),),
    "hlen": (_r("name"),),
    "hgetall": (_r("name"),),
    "hexists": (_r("name"),),
    "hdel": (_w("name"),),
    # lists
    "llen": (_r("name"),),
    "lindex": (_r("name"),),
    "lrange": (_r("name"),),
    "lset": (_w("name"),),
    "lrem": (_w("name"),),
    "linsert": (_w("name"),),
    "lpush": (_w("name"),),
    "rpush": (_w("name"),),
    "lpop": (_w("name"),),
    "rpop": (_w("name"),),
    # sets
    "sadd": (_w("name"),),
    "srem": (_w("name"),),
    "smembers": (_r("name"),),
    "scard": (_r("name"),),
    "sismember": (_r("name"),),
    "smove": (_w("src"), _w("dst")),
    "srandmember": (_r("name"),),
    # sorted sets
    "zadd": (_w("name"),),
    "zcard": (_r("name"),),
    "zscore": (_r("name"),),
    "zrange": (_r("name"),),
    "zrangebyscore": (_r("name"),),
    "zrevrangebyscore": (_r("name"),),
    "zrem": (_w("name"),),
    "zcount": (_r("name"),),
}
_EVERY_KEY_WRITTEN = {"flushall"}


def _signature(command: str) -> inspect.Signature:
    sig = inspect.signature(getattr(StorageCommands, command))
    return sig.replace(parameters=list(sig.parameters.values())[1:])


def _command_spec(command: str, keys: tuple[KeyParam, ...]) -> CommandSpec:
    sig = _signature(command)
    for param in keys:
        if param.name not in sig.parameters:
            raise ValueError(f"{command} has no parameter {param.name!r}")
    keys = tuple(
        replace(p, variadic=sig.parameters[p.name].kind is inspect.Parameter.VAR_POSITIONAL)
        for p in keys
    )
    every = command in _EVERY_KEY_WRITTEN
    return CommandSpec(command, keys, all_keys=every, writes_all=every, signature=sig)


def _event_spec(event: str, access: Mapping[str, Access]) -> CommandSpec:
    return CommandSpec(event, tuple(KeyParam(f, access.get(f, "read")) for f in KEY_FIELDS))


#: One spec per command of the storage interface (exactly :data:`~znsocket.storage.base.COMMANDS`).
COMMAND_SPECS: Mapping[str, CommandSpec] = {
    name: _command_spec(name, keys) for name, keys in sorted(_COMMAND_KEYS.items())
}

_WRITE_ALL: dict[str, Access] = dict.fromkeys(KEY_FIELDS, "write")
#: The non-storage events that name keys, with every :data:`KEY_FIELDS` field a key.
#: Announcing a change (``refresh``) and taking over a key (``register_adapter``) count as
#: writes; ``adapter:get`` reads its ``key`` and, for an adapter ``copy``, makes the owner
#: write ``target``.
EVENT_SPECS: Mapping[str, CommandSpec] = {
    Event.REFRESH: _event_spec(Event.REFRESH, _WRITE_ALL),
    Event.REGISTER_ADAPTER: _event_spec(Event.REGISTER_ADAPTER, _WRITE_ALL),
    Event.CHECK_ADAPTER: _event_spec(Event.CHECK_ADAPTER, {}),
    Event.ADAPTER_EXISTS: _event_spec(Event.ADAPTER_EXISTS, {}),
    Event.ADAPTER_GET: _event_spec(Event.ADAPTER_GET, {"target": "write"}),
}


def spec_of(name: str) -> CommandSpec | None:
    """The spec of a storage command or key-naming event, ``None`` for any other name."""
    return COMMAND_SPECS.get(name) or EVENT_SPECS.get(name)
