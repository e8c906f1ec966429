"""GatewayStorage: the znsocket storage command interface over TStorage.

Each command resolves its key through the key map (``gateway.keymap``):

* a key a ``list`` rule maps is a series (:class:`~gateway.storage.series.SeriesViews`):
  ``llen``/``lindex``/``lrange`` read it, ``rpush`` appends, ``lset`` corrects; the commands
  that would insert in the middle or remove elements are refused with ``ResponseError``;
* a key a ``dict`` rule maps is a meter: the hash commands read latest values and ``hset``
  appends; ``hdel`` is refused;
* any other command on a mapped key is a ``WRONGTYPE`` error, as in Redis;
* every other key is a generic key (:class:`~gateway.storage.generic.GenericKeys`), or a
  ``KeyMappingError`` when the configuration rejects unmapped keys.

Pipelines (:meth:`GatewayStorage.execute_many`) run consecutive ``lindex`` calls on one
series as one range read and consecutive ``rpush`` calls as one PUT, which is how upstream's
``lst[-1000:]`` and ``List.extend`` arrive; a run of writes to one generic key is one record
and one PUT too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config import GatewayConfig
from gateway.errors import KeyMappingError
from gateway.keymap import DictTarget, KeyMap, ListTarget
from gateway.storage.generic import WRITES, GenericKeys, key_name
from gateway.storage.link import TStorageLink
from gateway.storage.series import SeriesViews
from znsocket.exceptions import ResponseError
from znsocket.storage.base import COMMANDS, CommandCall, StorageCommands
from znsocket.storage.spec import list_or_args

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"

_LIST_REFUSED = {
    "lpush": "inserting at the head of a series is not supported (appends only)",
    "linsert": "inserting in the middle of a series is not supported (appends only)",
    "lrem": "records of a series cannot be removed",
    "lpop": "records of a series cannot be removed",
    "rpop": "records of a series cannot be removed",
}
#: Writes whose first argument is the only key they change: a pipeline's run of them on
#: one generic key is stored with one PUT.
_ONE_KEY_WRITES = frozenset(WRITES) - {"delete", "copy", "smove"}

_HASH_REFUSED = {"hdel": "the latest record of a field cannot be removed"}


def _split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    # The TypeScript client sends hset as [[], {name, mapping}]: the key may be a keyword.
    if args:
        return args[0], args[1:]
    if "name" in kwargs:
        return kwargs.pop("name"), ()
    raise TypeError("missing required argument: 'name'")


def _generic_only(cmd: str) -> Callable[..., Any]:
    def command(self: GatewayStorage, *args: Any, **kwargs: Any) -> Any:
        name, rest = _split(args, kwargs)
        if self.resolve(name) is not None:
            raise ResponseError(WRONGTYPE)
        return self.generic.call(cmd, (name, *rest), kwargs)

    command.__name__ = command.__qualname__ = cmd
    command.__doc__ = f"Same semantics as Redis {cmd.upper()} (unmapped keys only)."
    return command


def _typed(cmd: str, target: type, refused: dict[str, str]) -> Callable[..., Any]:
    def command(self: GatewayStorage, *args: Any, **kwargs: Any) -> Any:
        name, rest = _split(args, kwargs)
        t = self.resolve(name)
        if t is None:
            return self.generic.call(cmd, (name, *rest), kwargs)
        if not isinstance(t, target):
            raise ResponseError(WRONGTYPE)
        if cmd in refused:
            raise ResponseError(f"{t.key!r}: {refused[cmd]}")
        return getattr(self.series, cmd)(t, *rest, **kwargs)

    command.__name__ = command.__qualname__ = cmd
    kind = "series (List)" if target is ListTarget else "meter (Dict)"
    command.__doc__ = (
        f"Same semantics as Redis {cmd.upper()}; on a mapped key, see the {kind} model."
    )
    return command


class GatewayStorage(StorageCommands):
    """TStorage-backed storage for a znsocket server.

    Args:
        link: the TStorage connection pool.
        config: the validated gateway configuration (map rules, generic keys, and in
            ``[tstorage]`` the staleness bound and memory budgets of indexes and caches).
    """

    def __init__(self, link: TStorageLink, config: GatewayConfig) -> None:
        self.link = link
        self.config = config
        self.keymap: KeyMap = config.keymap()
        t = config.tstorage
        taken = {r.cid: f"map rule {i}" for i, r in enumerate(config.map)}
        taken[config.generic.cid] = "generic.cid"
        if t.index_persist and t.index_cid in taken:
            raise ValueError(
                f"[tstorage] index_cid = {t.index_cid} is also the cid of {taken[t.index_cid]}: "
                "pick a cid no rule uses for the persisted index summaries"
            )
        self.series = SeriesViews(
            link,
            max_staleness=t.max_staleness,
            index_budget=t.index_budget,
            index_budget_bytes=t.index_budget_bytes,
            index_chunk=t.index_chunk,
            index_cid=t.index_cid if t.index_persist else None,
            index_save=t.index_save,
            build_wait=t.build_wait,
            value_cache=t.value_cache,
        )
        self.generic = GenericKeys(
            link,
            config.generic.cid,
            max_staleness=t.max_staleness,
            checkpoint_min_bytes=config.generic.checkpoint_min_bytes,
            large_value_bytes=config.generic.large_value_bytes,
            value_cache_bytes=config.generic.value_cache_bytes,
        )

    def load(self) -> None:
        """Rebuild the generic keys from TStorage (call once at start)."""
        self.generic.load()

    def follow(self, on_change: Callable[[str, dict[str, Any]], None]) -> None:
        """Announce records that arrive from elsewhere as ``on_change(full_key, payload)``.

        Payloads are those of upstream ``refresh`` events (``{"start": i, "stop": None}``,
        ``{"indices": [...]}``, ``{"keys": [...]}``). Changes are found whenever an index or
        the generic keys catch up with TStorage, and by :meth:`poll`.
        """
        self.series.on_change = on_change
        self.generic.on_change = on_change

    def poll(self, watch_s: float = 60.0) -> None:
        """Catch up the indexes read within ``watch_s`` seconds and the generic keys now."""
        self.series.poll(watch_s)
        self.generic.catch_up(force=True)

    def resolve(self, name: Any) -> ListTarget | DictTarget | None:
        """The mapped target of a key, or ``None`` for a generic key.

        Raises:
            KeyMappingError: the key has a rule's shape but bad placeholders, or no rule
                matches and unmapped keys are rejected.
        """
        key = key_name(name)
        target = self.keymap.resolve(key)
        if target is None and self.config.generic.unmapped == "reject":
            raise KeyMappingError(
                f"no map rule matches key {key!r} and unmapped keys are rejected "
                '([generic] unmapped = "reject")'
            )
        return target

    # ------------------------------------------------------------------ keys
    def delete(self, *names: Any) -> int:
        """Same semantics as Redis DEL; mapped keys cannot be deleted."""
        for n in names:
            t = self.resolve(n)
            if t is not None:
                raise ResponseError(f"{t.key!r} is a TStorage series; it cannot be deleted")
        return int(self.generic.call("delete", names, {}))

    def exists(self, *names: Any) -> int:
        """Same semantics as Redis EXISTS; a mapped key exists once it has a record."""
        count = 0
        for n in names:
            t = self.resolve(n)
            if isinstance(t, ListTarget):
                count += int(self.series.llen(t) > 0)
            elif isinstance(t, DictTarget):
                count += int(self.series.hlen(t) > 0)
            else:
                count += int(self.generic.call("exists", (n,), {}))
        return count

    def type(self, name: Any) -> str:
        """Same semantics as Redis TYPE (``list``/``hash`` for mapped keys with records)."""
        t = self.resolve(name)
        if t is None:
            return str(self.generic.call("type", (name,), {}))
        return ("list" if isinstance(t, ListTarget) else "hash") if self.exists(name) else "none"

    def expire(self, name: Any, time: Any) -> int:
        """Same semantics as Redis EXPIRE; series never expire."""
        t = self.resolve(name)
        if t is not None:
            raise ResponseError(f"{t.key!r} is a TStorage series; it cannot expire")
        return int(self.generic.call("expire", (name, time), {}))

    def ttl(self, name: Any) -> int:
        """Same semantics as Redis TTL (-1 for a mapped key with records)."""
        t = self.resolve(name)
        if t is None:
            return int(self.generic.call("ttl", (name,), {}))
        return -1 if self.exists(name) else -2

    def copy(self, source: Any, destination: Any, replace: bool = False) -> bool:
        """Same semantics as Redis COPY, between unmapped keys only."""
        for n in (source, destination):
            t = self.resolve(n)
            if t is not None:
                raise ResponseError(
                    f"{t.key!r} is a TStorage series; copy it with a map rule instead"
                )
        return bool(self.generic.call("copy", (source, destination), {"replace": replace}))

    def flushall(self) -> bool:
        """Delete every unmapped key (TStorage series cannot be deleted). Redis FLUSHALL."""
        return bool(self.generic.call("flushall", (), {}))

    def mget(self, keys: Any, *args: Any) -> list[str | None]:
        """Same semantics as Redis MGET (mapped keys are not strings: ``None``)."""
        names = list_or_args(keys, args)
        out: list[str | None] = []
        for n in names:
            out.append(
                None if self.resolve(n) is not None else self.generic.call("mget", ([n],), {})[0]
            )
        return out

    def smove(self, src: Any, dst: Any, value: Any) -> int:
        """Same semantics as Redis SMOVE (unmapped keys only)."""
        if self.resolve(src) is not None or self.resolve(dst) is not None:
            raise ResponseError(WRONGTYPE)
        return int(self.generic.call("smove", (src, dst, value), {}))

    # -------------------------------------------------- strings, sets, zsets
    set = _generic_only("set")
    get = _generic_only("get")
    setex = _generic_only("setex")
    incr = _generic_only("incr")
    decr = _generic_only("decr")
    sadd = _generic_only("sadd")
    srem = _generic_only("srem")
    smembers = _generic_only("smembers")
    scard = _generic_only("scard")
    sismember = _generic_only("sismember")
    srandmember = _generic_only("srandmember")
    zadd = _generic_only("zadd")
    zcard = _generic_only("zcard")
    zscore = _generic_only("zscore")
    zrange = _generic_only("zrange")
    zrangebyscore = _generic_only("zrangebyscore")
    zrevrangebyscore = _generic_only("zrevrangebyscore")
    zrem = _generic_only("zrem")
    zcount = _generic_only("zcount")

    # ----------------------------------------------------------------- lists
    llen = _typed("llen", ListTarget, _LIST_REFUSED)
    lindex = _typed("lindex", ListTarget, _LIST_REFUSED)
    lrange = _typed("lrange", ListTarget, _LIST_REFUSED)
    lset = _typed("lset", ListTarget, _LIST_REFUSED)
    lrem = _typed("lrem", ListTarget, _LIST_REFUSED)
    linsert = _typed("linsert", ListTarget, _LIST_REFUSED)
    lpush = _typed("lpush", ListTarget, _LIST_REFUSED)
    rpush = _typed("rpush", ListTarget, _LIST_REFUSED)
    lpop = _typed("lpop", ListTarget, _LIST_REFUSED)
    rpop = _typed("rpop", ListTarget, _LIST_REFUSED)

    # ---------------------------------------------------------------- hashes
    hset = _typed("hset", DictTarget, _HASH_REFUSED)
    hget = _typed("hget", DictTarget, _HASH_REFUSED)
    hmget = _typed("hmget", DictTarget, _HASH_REFUSED)
    hkeys = _typed("hkeys", DictTarget, _HASH_REFUSED)
    hvals = _typed("hvals", DictTarget, _HASH_REFUSED)
    hlen = _typed("hlen", DictTarget, _HASH_REFUSED)
    hgetall = _typed("hgetall", DictTarget, _HASH_REFUSED)
    hexists = _typed("hexists", DictTarget, _HASH_REFUSED)
    hdel = _typed("hdel", DictTarget, _HASH_REFUSED)

    # ------------------------------------------------------------- batches
    def execute_many(self, calls: Sequence[CommandCall]) -> list[Any]:
        """Run a pipeline; runs of ``lindex``/``rpush`` on one series, and runs of writes to
        one generic key (:meth:`GenericKeys.call_many`), are batched.

        A batched run of ``rpush`` is one PUT: either every value of the run is stored or,
        if one cannot be encoded, none is and the error is the run's result.
        """
        results: list[Any] = []
        i = 0
        while i < len(calls):
            cmd, args, kwargs = calls[i]
            end = self._generic_run(calls, i)
            if end > i + 1:
                out = self.generic.call_many(calls[i:end])
                results.extend(out)
                if len(out) < end - i or (out and isinstance(out[-1], Exception)):
                    break
                i = end
                continue
            target = self._batchable(cmd, args, kwargs)
            if target is None:
                try:
                    results.append(getattr(self, cmd)(*args, **kwargs))
                except Exception as exc:
                    results.append(exc)
                    break
                i += 1
                continue
            key, end = args[0], len(calls)
            j = i + 1
            while j < end:
                name, a, kw = calls[j]
                if name != cmd or kw or len(a) < 2 or a[0] != key:
                    break
                j += 1
            group = calls[i:j]
            try:
                if cmd == "lindex":
                    if any(len(c[1]) != 2 for c in group):
                        raise TypeError("lindex takes a name and an index")
                    results.extend(self.series.lindex_many(target, [c[1][1] for c in group]))
                else:
                    values = [v for c in group for v in c[1][1:]]
                    final = self.series.rpush(target, *values)
                    remaining = len(values)
                    for c in group:
                        remaining -= len(c[1]) - 1
                        results.append(final - remaining)
            except Exception as exc:
                results.append(exc)
                break
            i = j
        return results

    def _generic_run(self, calls: Sequence[CommandCall], i: int) -> int:
        """The end of the run of writes to one generic key that starts at ``calls[i]``
        (``i + 1`` when there is no run of two or more)."""
        name = None
        j = i
        while j < len(calls):
            cmd, args, _ = calls[j]
            if cmd not in _ONE_KEY_WRITES or not args:
                break
            try:
                key = key_name(args[0])
                if name is None:
                    if self.resolve(key) is not None:
                        break
                    name = key
                elif key != name:
                    break
            except Exception:
                break  # the single call reports the error
            j += 1
        return max(j, i + 1)

    def _batchable(self, cmd: str, args: Sequence[Any], kwargs: Any) -> ListTarget | None:
        if cmd not in ("lindex", "rpush") or kwargs or len(args) < 2:
            return None
        try:
            t = self.resolve(args[0])
        except Exception:
            return None  # the single call reports the error
        if not isinstance(t, ListTarget) or (cmd == "rpush" and t.rule.read_only):
            return None
        return t


def _within_one_deadline(name: str) -> None:
    # Every command's TStorage requests share one deadline (TStorageLink.request), so a
    # command answers within about [tstorage] timeout even when it first waited for a lock
    # held by another request to a stalled TStorage. A pipeline's commands get one each.
    method = getattr(GatewayStorage, name)
    writes = name in WRITES or name == "flushall"

    @functools.wraps(method)
    def command(self: GatewayStorage, *args: Any, **kwargs: Any) -> Any:
        with self.link.request(writes):
            return method(self, *args, **kwargs)

    setattr(GatewayStorage, name, command)


for _name in COMMANDS:
    if callable(getattr(GatewayStorage, _name, None)):
        _within_one_deadline(_name)
