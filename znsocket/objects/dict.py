"""``Dict``: a ``MutableMapping`` whose fields live in a Redis-like hash on the server."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from znsocket.objects.base import (
    DICT_PREFIX,
    Converters,
    DictCallbackTypedDict,
    DictRepr,
    FallbackPolicy,
    ProxyMixin,
    ZnSocketObject,
    check_adapter,
    emit_refresh,
    resolve_reference,
    socket_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from znsocket.client.client import Client


class Dict(ProxyMixin, MutableMapping[Any, Any], ZnSocketObject):
    """A dict stored on the server under ``znsocket.Dict:<key>``; nothing is cached locally.

    Works over a :class:`~znsocket.Client`, a :class:`~znsocket.client.Pipeline` (writes
    are queued) or a ``redis.Redis`` client. Field order is the hash's insertion order.

    Args:
        r: Connection to the data.
        key: User key; the stored key is ``znsocket.Dict:<key>``.
        socket: Client for refresh events and adapters; defaults to ``r`` if a Client.
        callbacks: Local callbacks ``setitem(key, value)`` and ``delitem(key)``.
        repr_type: ``"keys"``, ``"minimal"`` or ``"full"``.
        converter: znjson converters for the values.
        convert_nan: Store NaN/±Infinity as ``null`` instead of raising ``ValueError``.
        fallback: User key of a dict read while this one is empty (missing keys then
            read as ``None``).
        fallback_policy: ``"copy"`` copies the fallback on creation; ``"frozen"`` or
            ``None`` read through it.

    Example:
        >>> d = Dict(client, "my_dict")
        >>> d["a"] = {"x": 1}
        >>> d["a"]
        {'x': 1}
    """

    PREFIX = DICT_PREFIX
    NOUN = "dict"

    def __init__(
        self,
        r: Client | Any,
        key: str,
        socket: Client | None = None,
        callbacks: DictCallbackTypedDict | None = None,
        repr_type: DictRepr = "keys",
        converter: Converters | None = None,
        convert_nan: bool = False,
        fallback: str | None = None,
        fallback_policy: FallbackPolicy | None = None,
    ) -> None:
        self.redis = r
        self.socket = socket_for(r, socket)
        self.converter = converter
        self._key = key
        self.repr_type = repr_type
        self.convert_nan = convert_nan
        self.fallback = fallback
        self.fallback_policy = fallback_policy
        self._callbacks: dict[str, Callable[..., Any] | None] = {"setitem": None, "delitem": None}
        if callbacks:
            self._callbacks.update(callbacks)  # type: ignore[arg-type]
        self._adapter_available = check_adapter(self.socket, self.key)
        self._fallback_object: Dict | None = None
        if (
            fallback is not None
            and not self._adapter_available
            and int(self.redis.hlen(self.key)) == 0
        ):
            self._fallback_object = type(self)(
                r=self.redis,
                key=fallback,
                socket=self.socket,
                convert_nan=convert_nan,
                converter=converter,
                repr_type=repr_type,
            )
            if fallback_policy == "copy" and len(self._fallback_object) > 0:
                self._fallback_object.copy(self._key)

    # ------------------------------------------------------------ helpers
    def _value(self, text: Any) -> Any:
        return resolve_reference(self._codec.decode(text), self.redis, self.repr_type)

    def _refresh(self, keys: list[Any]) -> None:
        emit_refresh(self.socket, self.key, {"keys": keys})

    # ------------------------------------------------------------ reads
    def __getitem__(self, key: Any) -> Any:
        value = self.redis.hget(self.key, key)
        if value is None:
            if self._adapter_available:
                value = self._adapter("__getitem__", dict_key=key)
            if value is None:
                if self._fallback_object is not None:
                    return self._fallback_object.get(key, None)
                raise KeyError(key)
        return self._value(value)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def __len__(self) -> int:
        length = int(self.redis.hlen(self.key))
        if length == 0 and self._adapter_available:
            length = int(self._adapter("__len__"))
        if length == 0 and self._fallback_object is not None:
            length = len(self._fallback_object)
        return length

    def keys(self) -> list[Any]:  # type: ignore[override]
        """The field names, in insertion order."""
        result = self.redis.hkeys(self.key)
        if len(result) == 0 and self._adapter_available:
            result = self._adapter("keys")
        if len(result) == 0 and self._fallback_object is not None:
            result = self._fallback_object.keys()
        return list(result)

    def values(self) -> list[Any]:  # type: ignore[override]
        """The decoded values, in field order."""
        stored = self.redis.hvals(self.key)
        if len(stored) == 0 and self._adapter_available:
            stored = self._adapter("values")
        elif len(stored) == 0 and self._fallback_object is not None:
            return self._fallback_object.values()
        return [self._value(v) for v in stored]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        """``(field, decoded value)`` pairs, in field order."""
        stored = self.redis.hgetall(self.key)
        if len(stored) == 0 and self._adapter_available:
            pairs = self._adapter("items")
        elif len(stored) == 0 and self._fallback_object is not None:
            return self._fallback_object.items()
        else:
            pairs = stored.items()
        return [(k, self._value(v)) for k, v in pairs]

    def __contains__(self, key: object) -> bool:
        found: Any = self.redis.hexists(self.key, key)
        if not found and self._adapter_available:
            found = self._adapter("__contains__", dict_key=key)
        if not found and self._fallback_object is not None:
            found = key in self._fallback_object
        return bool(found)

    def __repr__(self) -> str:
        if self.repr_type == "keys":
            return f"Dict(keys={self.keys()})"
        if self.repr_type == "minimal":
            return "Dict(<unknown>)"
        if self.repr_type == "full":
            return f"Dict({dict(self.items())})"
        raise ValueError(f"Invalid repr_type: {self.repr_type}")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dict):
            return dict(self) == dict(other)
        if isinstance(other, dict):
            return dict(self) == other
        return False

    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Mapping[Any, Any]) -> dict[Any, Any]:
        if isinstance(other, Dict):
            other = dict(other)
        return dict(self) | dict(other)

    # ------------------------------------------------------------ writes
    def __setitem__(self, key: Any, value: Any) -> None:
        self._frozen_check()
        value = self._stored_form(value)
        self.redis.hset(self.key, key, self._codec.encode(value))
        if callback := self._callbacks["setitem"]:
            callback(key, value)
        self._refresh([key])

    def __delitem__(self, key: Any) -> None:
        self._frozen_check()
        if not self.redis.hexists(self.key, key):
            raise KeyError(key)
        self.redis.hdel(self.key, key)
        if callback := self._callbacks["delitem"]:
            callback(key)
        self._refresh([key])

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Write several fields in one pipeline (one refresh event).

        Accepts one ``Dict`` or mutable mapping, or keyword arguments.

        Raises:
            TypeError: More than one positional argument, or one that is not a mutable
                mapping (as upstream: a list of pairs is refused).
        """
        self._frozen_check()
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 argument, got {len(args)}")
        if args:
            other = args[0]
            if isinstance(other, Dict):
                other = dict(other)
            elif not isinstance(other, MutableMapping):
                raise TypeError(f"update expected a mutable mapping, got {type(other).__name__}")
        else:
            other = kwargs
        pipe = self.redis.pipeline()
        for k, v in other.items():
            pipe.hset(self.key, k, self._codec.encode(self._stored_form(v)))
        pipe.execute()
        self._refresh(list(other.keys()))
