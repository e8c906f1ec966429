"""Large values of generic keys: kept in TStorage and a bounded cache, not in the store.

A value (list element, hash field or value, string, set member) of at least ``threshold``
characters is written once as its own record and the in-memory store holds a short
*reference* in its place: ``"\\udfff" + digest + ":" + length``. The reference is derived
from the content alone (BLAKE2b), so equal values have equal references and every command
that compares values (``lrem``, ``linsert``, ``hget`` of a large field, ``sismember``)
still compares contents. A reference starts with a lone surrogate, which no client text can
hold (such text is refused), so it is never confused with a value. Sorted-set members are
never replaced (their order is the text's order).

Every reply is passed through :meth:`LargeValues.resolve`, which puts the contents back:
from an LRU cache of at most ``cache_bytes`` characters, or by one GET of the value's
record. Logs and checkpoints hold the references, so a start reads none of the large
values, and a compaction does not copy them.

Record of a value: ``cid = generic.cid``, ``mid`` = 8 bytes of the digest (signed),
``moid`` = 31 more bits of it, ``cap = 2`` (outside the keys' box, whose records have
``cap = 0``, and the epoch markers at ``cap = 1``); the payload is the UTF-8 text.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.keymap import MID_RANGE, record_box
from gateway.storage.link import PutRecord, TStorageLink

PREFIX = "\udfff"
VALUE_CAP = 2

#: Per command: the positions and keyword names of its arguments that are values, fields
#: or members (``None``: every position from the first on).
VALUE_ARGS: dict[str, tuple[tuple[int, ...] | None, frozenset[str]]] = {
    "set": ((1,), frozenset({"value"})),
    "setex": ((2,), frozenset({"value"})),
    "rpush": (None, frozenset()),
    "lpush": (None, frozenset()),
    "lset": ((2,), frozenset({"value"})),
    "lrem": ((2,), frozenset({"value"})),
    "linsert": ((2, 3), frozenset({"refvalue", "value"})),
    "hset": ((1, 2, 3, 4), frozenset({"key", "value", "mapping", "items"})),
    "hget": ((1,), frozenset({"key"})),
    "hmget": (None, frozenset({"keys"})),
    "hdel": (None, frozenset()),
    "hexists": ((1,), frozenset({"key"})),
    "sadd": (None, frozenset()),
    "srem": (None, frozenset()),
    "sismember": ((1,), frozenset({"value"})),
    "smove": ((2,), frozenset({"value"})),
}


def _address(digest: bytes) -> tuple[int, int]:
    mid = min(int.from_bytes(digest[:8], "little", signed=True), MID_RANGE[1])
    moid = int.from_bytes(digest[8:12], "little") & 0x7FFFFFFE
    return mid, moid


class LargeValues:
    """References for large values, their pending records and a bounded read cache.

    Args:
        link: where value records are read from.
        cid: the reserved cid of generic keys.
        threshold: values of at least this many characters are kept out of memory
            (0: never).
        cache_bytes: characters of large values kept in the LRU cache.
    """

    def __init__(self, link: TStorageLink, cid: int, threshold: int, cache_bytes: int) -> None:
        self.link = link
        self.cid = cid
        self.threshold = threshold
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        #: value records to store with the next PUT of the store (reference -> record)
        self.pending: dict[str, PutRecord] = {}

    @property
    def cached_bytes(self) -> int:
        """Characters of large values held in the cache now."""
        return self._cached

    # ---------------------------------------------------------------- writing
    def ref(self, value: str, store: bool = True) -> str:
        """The reference of ``value``; with ``store``, its record is noted for the next PUT."""
        data = value.encode()
        digest = hashlib.blake2b(data, digest_size=16).digest()
        ref = f"{PREFIX}{digest.hex()}:{len(value)}"
        if store:
            if ref not in self.pending:
                mid, moid = _address(digest)
                self.pending[ref] = ((self.cid, mid, moid, VALUE_CAP), data)
            self._remember(ref, value)
        return ref

    def swap(self, value: Any, store: bool = True) -> Any:
        """``value`` with every large text (in lists, tuples and dict values and keys)
        replaced by its reference."""
        if self.threshold <= 0:
            return value
        if type(value) is str:
            return self.ref(value, store) if len(value) >= self.threshold else value
        if isinstance(value, (bytes, bytearray)) and len(value) >= self.threshold:
            try:
                return self.ref(bytes(value).decode(), store)
            except UnicodeDecodeError:
                return value  # the store reports it
        if isinstance(value, dict):
            return {self.swap(k, store): self.swap(v, store) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.swap(v, store) for v in value)
        return value

    def swap_args(
        self, command: str, args: Sequence[Any], kwargs: Mapping[str, Any], store: bool
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of ``command`` with large values replaced (key names kept);
        ``store`` for a write (its values' records go with its PUT)."""
        spec = VALUE_ARGS.get(command)
        if self.threshold <= 0 or spec is None:
            return tuple(args), dict(kwargs)
        positions, names = spec
        out = tuple(
            self.swap(a, store) if i and (positions is None or i in positions) else a
            for i, a in enumerate(args)
        )
        return out, {k: (self.swap(v, store) if k in names else v) for k, v in kwargs.items()}

    def take_pending(self) -> list[PutRecord]:
        """The value records noted since the last call."""
        records = list(self.pending.values())
        self.pending.clear()
        return records

    # ---------------------------------------------------------------- reading
    def resolve(self, value: Any) -> Any:
        """``value`` (a reply) with every reference replaced by its text."""
        if type(value) is str:
            return self._text(value) if value.startswith(PREFIX) else value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.resolve(v) for v in value)
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        if isinstance(value, set):
            return {self.resolve(v) for v in value}
        return value

    def _text(self, ref: str) -> str:
        with self._lock:
            hit = self._cache.get(ref)
            if hit is not None:
                self._cache.move_to_end(ref)
                return hit
        digest_hex, _, length = ref[len(PREFIX) :].partition(":")
        mid, moid = _address(bytes.fromhex(digest_hex))
        records, _ = self.link.get(*record_box(self.cid, mid, moid, VALUE_CAP))
        for _, payload in records:
            text = bytes(payload).decode()
            if len(text) == int(length):
                self._remember(ref, text)
                return text
        raise LookupError(f"the record of a large value ({length} characters) is missing")

    def _remember(self, ref: str, text: str) -> None:
        if len(text) > self.cache_bytes:
            return
        with self._lock:
            if ref in self._cache:
                self._cache.move_to_end(ref)
                return
            self._cache[ref] = text
            self._cached += len(text)
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= len(old)

    def forget(self, refs: Iterable[str]) -> None:
        """Drop cached texts whose records were not stored."""
        with self._lock:
            for ref in refs:
                old = self._cache.pop(ref, None)
                if old is not None:
                    self._cached -= len(old)
