"""What the object proxies share: the marker base class, typed payloads, value codec.

Values of ``List`` items and ``Dict`` fields are stored as JSON text (spec §7.2):
``json.dumps(value, allow_nan=False)`` with Python's default separators, through znjson
converters when given. A stored value that decodes to an error envelope raises (this is
how an adapter's error reaches the reader). Strings ``znsocket.List:<key>`` and
``znsocket.Dict:<key>`` are references to other proxies (spec §7.3).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict, cast

import znjson
from typing_extensions import NotRequired, Self

from znsocket.exceptions import FrozenStorageError
from znsocket.protocol import raise_for_error

if TYPE_CHECKING:
    from znsocket.client.client import Client

LIST_PREFIX = "znsocket.List:"
DICT_PREFIX = "znsocket.Dict:"
SEGMENTS_PREFIX = "znsocket.Segments:"
REFRESH_NAMESPACE = "/znsocket"  # upstream always emits refreshes here

ListRepr = Literal["full", "length", "minimal"]
DictRepr = Literal["full", "keys", "minimal"]
FallbackPolicy = Literal["copy", "frozen"]
Converters = list[type[znjson.ConverterBase]]


class ZnSocketObject:
    """Base class of every znsocket proxy (``List``, ``Dict``, ``Segments``)."""


class RefreshTypeDict(TypedDict):
    """Payload of a ``refresh`` event: what changed in the target object."""

    start: NotRequired[int | None]
    stop: NotRequired[int | None]
    step: NotRequired[int | None]
    indices: NotRequired[list[int]]
    keys: NotRequired[list[str | int | float]]


class RefreshDataTypeDict(TypedDict):
    """A ``refresh`` event: the full key of the changed object and the change."""

    target: str
    data: RefreshTypeDict


class ListCallbackTypedDict(TypedDict, total=False):
    """Local callbacks of a ``List``, run after the write (``append``: before)."""

    setitem: Callable[[list[int], Any], None]
    delitem: Callable[[list[int]], None]
    insert: Callable[[int, Any], None]
    append: Callable[[Any], None]


class DictCallbackTypedDict(TypedDict, total=False):
    """Local callbacks of a ``Dict``, run after the write."""

    setitem: Callable[[str, Any], None]
    delitem: Callable[[str], None]


class ValueCodec:
    """JSON text <-> value for one proxy: its converters and NaN policy.

    Args:
        converter: znjson converter classes, or ``None`` for plain JSON.
        convert_nan: Store NaN and ±Infinity as ``null`` instead of failing.
    """

    def __init__(self, converter: Converters | None, convert_nan: bool) -> None:
        self.converter = converter
        self.convert_nan = convert_nan
        self._encoder_cls = znjson.ZnEncoder.from_converters(converter) if converter else None
        self._decoder_cls = znjson.ZnDecoder.from_converters(converter) if converter else None

    def encode(self, value: Any) -> str:
        """Encode ``value`` as the JSON text stored on the server.

        Raises:
            ValueError: NaN or infinity without ``convert_nan``.
        """
        try:
            return json.dumps(value, cls=self._encoder_cls, allow_nan=False)
        except ValueError:
            if not self.convert_nan:
                raise
        text = json.dumps(value, cls=self._encoder_cls, allow_nan=True)
        # Upstream replaces the tokens anywhere in the text, strings included.
        return text.replace("NaN", "null").replace("-Infinity", "null").replace("Infinity", "null")

    def decode(self, text: str | bytes) -> Any:
        """Decode stored JSON text; an error envelope raises its mapped exception."""
        value = json.loads(text, cls=self._decoder_cls) if self._decoder_cls else json.loads(text)
        if isinstance(value, dict) and "error" in value:
            raise_for_error(value)
        return value


class CodecMixin:
    """Gives ``self._codec`` for the object's current ``converter`` and ``convert_nan``.

    Both may be changed after construction (upstream reads them at every call).
    """

    converter: Converters | None
    convert_nan: bool

    @property
    def _codec(self) -> ValueCodec:
        codec: ValueCodec | None = self.__dict__.get("_codec_cache")
        if (
            codec is None
            or codec.converter is not self.converter
            or codec.convert_nan != self.convert_nan
        ):
            codec = ValueCodec(self.converter, self.convert_nan)
            self.__dict__["_codec_cache"] = codec
        return codec


class ProxyMixin(CodecMixin):
    """What ``List`` and ``Dict`` share: the full key, adapters, references, copy, callbacks.

    Subclasses set ``PREFIX`` (the full-key prefix) and ``NOUN`` (for messages), and the
    attributes every proxy has: ``redis``, ``socket``, ``_key``, ``_adapter_available``.
    """

    PREFIX: ClassVar[str]
    NOUN: ClassVar[str]
    redis: Any
    socket: Client | None
    _key: str
    _adapter_available: bool

    @property
    def key(self) -> str:
        """The full key on the server, ``<prefix><key>``."""
        return f"{self.PREFIX}{self._key}"

    def _adapter(self, method: str, **kwargs: Any) -> Any:
        assert self.socket is not None
        return self.socket.call("adapter:get", key=self.key, method=method, **kwargs)

    def _frozen_check(self) -> None:
        if self._adapter_available:
            raise FrozenStorageError(key=self.key)

    def _stored_form(self, value: Any) -> Any:
        """References are stored as the referenced object's full key."""
        if isinstance(value, ProxyMixin):
            if value.key == self.key:
                raise ValueError("Can not set circular reference to self")
            return value.key
        return value

    def copy(self, key: str) -> Self:
        """Copy the object to user key ``key`` on the server and return a proxy for it.

        Raises:
            ValueError: The target exists already (or the copy failed).
        """
        if self._adapter_available:
            raise_for_error(self._adapter("copy", target=key))
        elif not self.redis.copy(self.key, f"{self.PREFIX}{key}"):
            raise ValueError(f"Could not copy {self.NOUN}")
        # the subclasses' constructors take these keywords
        return cast(
            Self,
            cast(Any, type(self))(
                r=self.redis,
                key=key,
                socket=self.socket,
                converter=self.converter,
                convert_nan=self.convert_nan,
            ),
        )

    def on_refresh(self, callback: Callable[[RefreshDataTypeDict], None]) -> None:
        """Call ``callback(payload)`` when another client changes this object.

        Raises:
            ValueError: The object has no socket connection.
        """
        if self.socket is None:
            raise ValueError("No socket connection available")
        self.socket.refresh_callbacks[self.key] = callback


def socket_for(r: Any, socket: Client | None) -> Client | None:
    """The client that carries refreshes and adapter calls: ``socket``, else ``r`` if a Client."""
    from znsocket.client.client import Client

    if socket:
        return socket
    return r if isinstance(r, Client) else None


def emit_refresh(socket: Client | None, target: str, data: RefreshTypeDict) -> None:
    """Tell the other clients that ``target`` changed (fire-and-forget, as upstream)."""
    if socket is not None:
        payload: RefreshDataTypeDict = {"target": target, "data": data}
        socket.sio.emit("refresh", payload, namespace=REFRESH_NAMESPACE)


def check_adapter(socket: Client | None, key: str) -> bool:
    """Ask the server whether an adapter serves ``key`` (marks the key as in use)."""
    if socket is None:
        return False
    return bool(socket.call("check_adapter", key=key))


def resolve_reference(value: Any, r: Any, repr_type: DictRepr | None = None) -> Any:
    """Turn a stored ``znsocket.List:``/``znsocket.Dict:`` string into a proxy on ``r``."""
    if isinstance(value, str):
        if value.startswith(LIST_PREFIX):
            from znsocket.objects.list import List

            return List(r=r, key=value.split(":", 1)[1])
        if value.startswith(DICT_PREFIX):
            from znsocket.objects.dict import Dict

            if repr_type is None:
                return Dict(r=r, key=value.split(":", 1)[1])
            return Dict(r=r, key=value.split(":", 1)[1], repr_type=repr_type)
    return value
