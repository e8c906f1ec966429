"""``ListAdapter`` / ``DictAdapter``: serve a local object to other clients on demand.

The owner registers a key with the server (``register_adapter``); a ``List``/``Dict``
elsewhere that finds nothing stored under that key sends ``adapter:get`` with a
``method`` name, the server relays it to the owner, and the owner's answer (values as
stored JSON text) travels back unchanged (spec §6). Adapters are read-only for others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from znsocket.objects.base import DICT_PREFIX, LIST_PREFIX, CodecMixin, ValueCodec
from znsocket.protocol import raise_for_error

if TYPE_CHECKING:
    from znsocket.client.client import Client

log = logging.getLogger(__name__)


class ItemTransformCallback(Protocol):
    """Turns one item of a ``ListAdapter`` into a value or a nested object/adapter.

    Called with ``item``, the suggested ``key`` (``"<list key>:<index>"``; use it for a
    nested adapter to avoid clashes), ``socket``, ``converter`` and ``convert_nan``.
    Returning a ``Dict``/``List``/``Segments``/adapter makes the item a reference to it.
    """

    def __call__(
        self,
        item: Any,
        key: str,
        socket: Client,
        converter: list[type] | None = None,
        convert_nan: bool = False,
    ) -> Any: ...


def _error_text(codec: ValueCodec, exc: BaseException) -> str:
    """An exception as the stored error envelope the requester raises again."""
    return codec.encode({"error": {"msg": str(exc), "type": type(exc).__name__}})


# Upstream answers this as JSON *text*, which requesters do not raise (spec §6.4).
_ADAPTER_TAKEN = json.dumps(
    {
        "error": {
            "msg": "Adapter already registered to this key. Please select a different one.",
            "type": "KeyError",
        }
    }
)


def _register(socket: Client, key: str, callback: Any) -> None:
    raise_for_error(socket.call("register_adapter", key=key))
    socket.register_adapter_callback(key, callback)


@dataclass
class ListAdapter(CodecMixin):
    """Expose a local sequence as ``znsocket.List(<client>, key)`` to every client.

    Args:
        key: User key; registered as ``znsocket.List:<key>``.
        socket: The owner's connection, which answers the requests.
        object: The sequence to serve (read live at every request).
        item_transform_callback: Optional per-item transformation, e.g. into a nested
            ``DictAdapter`` (see :class:`ItemTransformCallback`).
        converter: znjson converters for the values.
        convert_nan: Send NaN/±Infinity as ``null``.
        r: Connection used by ``copy``; defaults to ``socket``.

    Raises:
        KeyError: The key was already used as a ``List``/``Dict`` by some client.

    Example:
        >>> adapter = ListAdapter("frames", client, [1, 2, 3])
        >>> List(other_client, "frames")[1]
        2
    """

    key: str
    socket: Client
    object: Sequence[Any]
    item_transform_callback: ItemTransformCallback | None = None
    converter: list[type] | None = None
    convert_nan: bool = False
    r: Client | None = None

    def __post_init__(self) -> None:
        self.key = f"{LIST_PREFIX}{self.key}"
        _register(self.socket, self.key, self.map_callback)
        if self.r is None:
            self.r = self.socket

    def _transformed(self, value: Any, index: int) -> str:
        from znsocket.objects.dict import Dict
        from znsocket.objects.list import List
        from znsocket.objects.segments import Segments

        suggested = f"{self.key}:{index}"
        for prefix in (DICT_PREFIX, LIST_PREFIX):
            if self.socket.call("adapter_exists", key=f"{prefix}{suggested}"):
                return json.dumps(f"{prefix}{suggested}")
        assert self.item_transform_callback is not None
        try:
            result = self.item_transform_callback(
                item=value,
                key=suggested,
                socket=self.socket,
                converter=self.converter,
                convert_nan=self.convert_nan,
            )
        except Exception as exc:
            log.error("item transform callback failed for %s: %s", suggested, exc)
            raise RuntimeError(f"Failed to transform item at index {index}: {exc}") from exc
        if isinstance(result, (Dict, List, ListAdapter, DictAdapter, Segments)):
            return json.dumps(result.key)
        return self._codec.encode(result)

    def map_callback(self, data: Any) -> Any:
        """Answer one ``adapter:get`` request ``[args, {"method": ..., ...}]``.

        Raises:
            NotImplementedError: Unknown method (the server then times out the request).
        """
        kwargs = data[1]
        method = kwargs["method"]
        if method == "__len__":
            return len(self.object)
        if method == "__getitem__":
            index = kwargs["index"]
            try:
                value = self.object[index]
                if self.item_transform_callback is not None:
                    return self._transformed(value, index)
                return self._codec.encode(value)
            except Exception as exc:
                return _error_text(self._codec, exc)
        if method == "slice":
            try:
                start = kwargs.get("start", 0)
                stop = kwargs.get("stop", len(self.object))
                step = kwargs.get("step", 1)
                return [self._codec.encode(v) for v in self.object[start:stop:step]]
            except Exception as exc:
                return {"error": {"msg": str(exc), "type": type(exc).__name__}}
        if method == "copy":
            from znsocket.objects.list import List

            target = List(
                r=self.r,
                key=kwargs["target"],
                socket=self.socket,
                converter=self.converter,
                convert_nan=self.convert_nan,
            )
            if target._adapter_available:
                return _ADAPTER_TAKEN
            target.extend(self.object)
            return True
        raise NotImplementedError(f"Method {method} not implemented")


@dataclass
class DictAdapter(CodecMixin):
    """Expose a local mapping as ``znsocket.Dict(<client>, key)`` to every client.

    Args:
        key: User key; registered as ``znsocket.Dict:<key>``.
        socket: The owner's connection, which answers the requests.
        object: The mapping to serve (read live at every request).
        converter: znjson converters for the values.
        convert_nan: Send NaN/±Infinity as ``null``.
        r: Connection used by ``copy``; defaults to ``socket``.

    Raises:
        KeyError: The key was already used as a ``List``/``Dict`` by some client.
    """

    key: str
    socket: Client
    object: Mapping[Any, Any]
    converter: list[type] | None = None
    convert_nan: bool = False
    r: Client | None = None

    def __post_init__(self) -> None:
        self.key = f"{DICT_PREFIX}{self.key}"
        _register(self.socket, self.key, self.map_callback)
        if self.r is None:
            self.r = self.socket

    def _encoded(self, get: Any) -> str:
        try:
            return self._codec.encode(get())
        except Exception as exc:
            return _error_text(self._codec, exc)

    def map_callback(self, data: Any) -> Any:
        """Answer one ``adapter:get`` request ``[args, {"method": ..., ...}]``.

        Raises:
            NotImplementedError: Unknown method (the server then times out the request).
        """
        kwargs = data[1]
        method = kwargs["method"]
        obj = self.object
        if method == "__len__":
            return len(obj)
        if method == "__getitem__":
            return self._encoded(lambda: obj[kwargs["dict_key"]])
        if method == "__contains__":
            return kwargs["dict_key"] in obj
        if method == "keys":
            return list(obj.keys())
        if method == "values":
            return [self._codec.encode(v) for v in obj.values()]
        if method == "items":
            return [(k, self._codec.encode(v)) for k, v in obj.items()]
        if method == "get":
            return self._encoded(lambda: obj.get(kwargs["dict_key"], kwargs.get("default")))
        if method == "copy":
            from znsocket.objects.dict import Dict

            target = Dict(
                r=self.r,
                key=kwargs["target"],
                socket=self.socket,
                converter=self.converter,
                convert_nan=self.convert_nan,
            )
            if target._adapter_available:
                return _ADAPTER_TAKEN
            target.update(dict(obj))
            return True
        raise NotImplementedError(f"Method {method} not implemented")
