"""``List``: a ``MutableSequence`` whose items live in a Redis-like list on the server."""

from __future__ import annotations

from collections.abc import Iterable, MutableSequence
from typing import TYPE_CHECKING, Any

import redis.exceptions

from znsocket.objects.base import (
    LIST_PREFIX,
    Converters,
    FallbackPolicy,
    ListCallbackTypedDict,
    ListRepr,
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

DELETED = "__DELETED__"  # raw marker: proxies only ever store JSON, so it cannot collide


class List(ProxyMixin, MutableSequence[Any], ZnSocketObject):
    """A list stored on the server under ``znsocket.List:<key>``; nothing is cached locally.

    Works over a :class:`~znsocket.Client`, a :class:`~znsocket.client.Pipeline` (writes
    are queued), or a ``redis.Redis`` client. With a socket (the Client itself, or
    ``socket``), writes emit ``refresh`` events to other clients and reads fall back to a
    registered :class:`~znsocket.ListAdapter`.

    Args:
        r: Connection to the data.
        key: User key; the stored key is ``znsocket.List:<key>``.
        socket: Client for refresh events and adapters; defaults to ``r`` if a Client.
        callbacks: Local callbacks ``setitem``, ``delitem``, ``insert``, ``append``.
        repr_type: ``"length"``, ``"minimal"`` or ``"full"``.
        converter: znjson converters for the values.
        convert_nan: Store NaN/±Infinity as ``null`` instead of raising ``ValueError``.
        fallback: User key of a list to read from while this one is empty.
        fallback_policy: ``"copy"`` copies the fallback on creation (and before the first
            append); ``"frozen"`` reads through it; ``None`` reads items through it.

    Example:
        >>> lst = List(client, "my_list")
        >>> lst.extend([1, 2, 3])
        >>> lst[-1]
        3
    """

    PREFIX = LIST_PREFIX
    NOUN = "list"

    def __init__(
        self,
        r: Client | Any,
        key: str,
        socket: Client | None = None,
        callbacks: ListCallbackTypedDict | None = None,
        repr_type: ListRepr = "length",
        converter: Converters | None = None,
        convert_nan: bool = False,
        fallback: str | None = None,
        fallback_policy: FallbackPolicy | None = None,
    ) -> None:
        self.redis = r
        self._key = key
        self.repr_type = repr_type
        self.socket = socket_for(r, socket)
        self.converter = converter
        self.convert_nan = convert_nan
        self.fallback = fallback
        self.fallback_policy = fallback_policy
        self._callbacks: dict[str, Callable[..., Any] | None] = {
            "setitem": None,
            "delitem": None,
            "insert": None,
            "append": None,
        }
        if callbacks:
            self._callbacks.update(callbacks)  # type: ignore[arg-type]
        self._adapter_available = check_adapter(self.socket, self.key)
        if (
            fallback is not None
            and fallback_policy == "copy"
            and not self._adapter_available
            and int(self.redis.llen(self.key)) == 0
        ):
            self._copy_fallback()

    # ------------------------------------------------------------ helpers
    def _fallback_list(self, with_converter: bool = True) -> List:
        assert self.fallback is not None
        return type(self)(
            r=self.redis,
            key=self.fallback,
            socket=self.socket,
            convert_nan=self.convert_nan,
            converter=self.converter if with_converter else None,
        )

    def _copy_fallback(self) -> None:
        source = self._fallback_list()
        if len(source) > 0:
            source.copy(self._key)

    def _refresh(self, data: Any) -> None:
        emit_refresh(self.socket, self.key, data)

    def _item(self, text: Any) -> Any:
        return resolve_reference(self._codec.decode(text), self.redis)

    # ------------------------------------------------------------ reads
    def __len__(self) -> int:
        length = int(self.redis.llen(self.key))
        if length == 0 and self._adapter_available:
            length = int(self._adapter("__len__"))
        if (
            length == 0
            and self.fallback is not None
            and self.fallback_policy is not None
            and self.fallback_policy != "copy"
        ):
            length = len(self._fallback_list(with_converter=False))
        return length

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int):
            return self._get_many([index])[0]
        if isinstance(index, slice):
            if self._adapter_available:
                return self._adapter_slice(index)
            indices = list(range(*index.indices(len(self))))
            if indices and index.step in (None, 1):
                fast = self._get_range(indices[0], indices[-1])
                if fast is not None:
                    return fast
            return self._get_many(indices)
        if isinstance(index, (str, bytes)) or not hasattr(index, "__iter__"):
            raise TypeError(f"list indices must be integers or slices, not {type(index).__name__}")
        indices = list(index)
        if any(not isinstance(i, int) for i in indices):
            raise TypeError("list indices must be integers or slices")
        return self._get_many(indices)

    def _adapter_slice(self, index: slice) -> list[Any]:
        start, stop, step = index.indices(len(self))
        if step < 0:
            # The owner slices with these numbers; a negative stop would mean "from the
            # end" there, so ask for the same items in ascending order and reverse.
            wanted = range(start, stop, step)
            if not wanted:
                return []
            answer = self._adapter("slice", start=wanted[-1], stop=wanted[0] + 1, step=-step)
            return [self._item(v) for v in reversed(answer)]
        answer = self._adapter("slice", start=start, stop=stop, step=step)
        return [self._item(v) for v in answer]

    def _get_range(self, first: int, last: int) -> list[Any] | None:
        """A contiguous run in one ``lrange``; ``None`` if some item is missing."""
        values = self.redis.lrange(self.key, first, last)
        if not isinstance(values, list) or len(values) != last - first + 1:
            return None  # shorter than expected (concurrent change): per-index path
        return [self._item(v) for v in values]

    def _get_many(self, indices: list[int]) -> list[Any]:
        pipe = self.redis.pipeline()
        for i in indices:
            pipe.lindex(self.key, i)
        values = pipe.execute()
        items = []
        for i, value in zip(indices, values, strict=False):
            if value is None:
                value = self._missing_item(i)
            items.append(self._item(value))
        return items

    def _missing_item(self, index: int) -> Any:
        value = None
        if self._adapter_available:
            value = self._adapter("__getitem__", index=index)
        if value is None and self.fallback is not None and self.fallback_policy != "copy":
            try:
                value = self._codec.encode(self._fallback_list()[index])
            except IndexError:
                value = None
        if value is None:
            raise IndexError("list index out of range")
        return value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, List):
            return bool(self[:] == other[:])
        if isinstance(other, list):
            return bool(self[:] == other)
        return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.repr_type == "length":
            return f"List(len={len(self)})"
        if self.repr_type == "minimal":
            return "List(<unknown>)"
        if self.repr_type == "full":
            data = [self._codec.decode(v) for v in self.redis.lrange(self.key, 0, -1)]
            return f"List({data})"
        raise ValueError(f"Invalid repr_type: {self.repr_type}")

    # ------------------------------------------------------------ writes
    def __setitem__(self, index: Any, value: Any) -> None:
        self._frozen_check()
        if isinstance(index, int):
            indices: list[Any] = [index]
            values: list[Any] = [value]
        else:
            values = list(value) if not isinstance(value, list) else value
            length = len(self)
            indices = (
                list(range(*index.indices(length))) if isinstance(index, slice) else list(index)
            )
        length = len(self) if isinstance(index, int) else length
        if any(not isinstance(i, int) for i in indices):
            raise TypeError("list indices must be integers or slices")
        if len(indices) != len(values):
            raise ValueError(
                f"attempt to assign sequence of size {len(values)} "
                f"to extended slice of size {len(indices)}"
            )
        pipe = self.redis.pipeline()
        for i, v in zip(indices, values, strict=True):
            if i >= length or i < -length:
                raise IndexError("list index out of range")
            if isinstance(v, List) and v.key == self.key:
                raise ValueError("Can not set circular reference to self")
            pipe.lset(self.key, i, self._codec.encode(self._stored_form(v)))
        pipe.execute()
        if callback := self._callbacks["setitem"]:
            callback(indices, values)
        self._refresh({"indices": indices})

    def __delitem__(self, index: Any) -> None:
        self._frozen_check()
        if isinstance(index, int):
            indices = [index]
        elif isinstance(index, slice):
            indices = list(range(*index.indices(len(self))))
        else:
            indices = list(index)
        if not indices:
            return
        pipe = self.redis.pipeline()
        for i in indices:
            pipe.lset(self.key, i, DELETED)
        pipe.lrem(self.key, 0, DELETED)
        try:
            pipe.execute()
        except redis.exceptions.ResponseError as err:
            raise IndexError("list index out of range") from err
        if callback := self._callbacks["delitem"]:
            callback(indices)
        self._refresh({"start": min(indices), "stop": None})

    def insert(self, index: int, value: Any) -> None:
        """Insert ``value`` before position ``index`` (at the end if ``index >= len``)."""
        self._frozen_check()
        value = self._stored_form(value)
        text = self._codec.encode(value)
        if index >= len(self):
            self.redis.rpush(self.key, text)
        elif index == 0:
            self.redis.lpush(self.key, text)
        else:
            # Positions are found by value on the server (linsert), as upstream does.
            pivot = self.redis.lindex(self.key, index)
            self.redis.linsert(self.key, "BEFORE", pivot, text)
        if callback := self._callbacks["insert"]:
            callback(index, value)
        self._refresh({"start": index, "stop": None})

    def append(self, value: Any) -> None:
        """Append ``value`` to the end of the list.

        Raises:
            FrozenStorageError: The list is served by an adapter (read-only).
            ValueError: ``value`` is this list itself.
        """
        self._frozen_check()
        if (
            self.fallback is not None
            and self.fallback_policy is not None
            and int(self.redis.llen(self.key)) == 0
        ):
            self._copy_fallback()  # copy-on-write before the first own item
        if callback := self._callbacks["append"]:
            callback(value)
        new_length = self.redis.rpush(self.key, self._codec.encode(self._stored_form(value)))
        if self.socket is not None:
            # rpush answers the new length; other connections (a pipeline) ask again.
            if not isinstance(new_length, int):
                new_length = len(self)
            self._refresh({"indices": [new_length - 1]})

    def extend(self, values: Iterable[Any]) -> None:
        """Append every item of ``values`` in one pipeline (one refresh event)."""
        self._frozen_check()
        start = len(self) if self.socket is not None else None
        pipe = self.redis.pipeline()
        for value in values:
            pipe.rpush(self.key, self._codec.encode(self._stored_form(value)))
        pipe.execute()
        if self.socket is not None:
            self._refresh({"start": start, "stop": None})

    def pop(self, index: int = -1) -> Any:
        """Remove and return the item at ``index`` (references are not resolved)."""
        self._frozen_check()
        if index < 0:
            index += len(self)
        value = self.redis.lindex(self.key, index)
        if value is None:
            raise IndexError("pop index out of range")
        pipe = self.redis.pipeline()
        pipe.lset(self.key, index, DELETED)
        pipe.lrem(self.key, 0, DELETED)
        try:
            pipe.execute()
        except redis.exceptions.ResponseError as err:
            raise IndexError("pop index out of range") from err
        self._refresh({"start": index, "stop": None})
        return self._codec.decode(value)
