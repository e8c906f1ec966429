"""``Segments``: a copy-on-write view of a ``List`` kept as a piece table.

The server holds, under ``znsocket.Segments:<key>``, a list of JSON triples
``[start, end, target]``: the logical sequence is the concatenation of
``target[start:end]`` over the triples, in order (spec §7.8). New values go to the
companion list ``znsocket.List:<key>``; edits split one triple into up to three. A
triple is replaced in place by overwriting it with a marker, inserting the new triples
before the marker and removing the marker.
"""

from __future__ import annotations

import json
from collections.abc import MutableSequence
from typing import TYPE_CHECKING, Any

from znsocket.objects.base import SEGMENTS_PREFIX, ZnSocketObject

if TYPE_CHECKING:
    from znsocket.client.client import Client
    from znsocket.objects.list import List

_SETITEM = "__SETITEM_IDENTIFIER__"
_DELITEM = "__DELITEM_IDENTIFIER__"
_INSERT = "__INSERT_IDENTIFIER__"

Triple = tuple[int, int, str]


def _triple(start: int, end: int, target: str) -> str:
    return json.dumps((start, end, target))


class Segments(ZnSocketObject, MutableSequence[Any]):
    """A list that shares the items of ``origin`` and stores only its own edits.

    Creating it prepends the segment ``[0, len(origin), origin.key]``; so a second
    ``Segments`` on the same key adds another segment (as upstream).

    Args:
        r: Connection to the data.
        origin: The ``List`` whose items are shared.
        key: User key; stored as ``znsocket.Segments:<key>`` plus the companion list
            ``znsocket.List:<key>``.

    Raises:
        TypeError: ``origin`` is not a ``List``.

    Example:
        >>> base = List(client, "frames")
        >>> base.extend([1, 2, 3])
        >>> edit = Segments(client, base, "frames-edited")
        >>> edit[1] = "x"
        >>> edit[:]
        [1, 'x', 3]
    """

    def __init__(self, r: Client | Any, origin: List, key: str) -> None:
        from znsocket.objects.list import List

        if not isinstance(origin, List):
            raise TypeError("origin must be a List")
        self.redis = r
        self._origin = origin
        self._key = key
        self.converter = origin.converter
        self.convert_nan = origin.convert_nan
        self.redis.lpush(self.key, _triple(0, len(origin), origin.key))
        self._list = List(r=r, key=key, converter=self.converter, convert_nan=self.convert_nan)

    @classmethod
    def from_list(cls, origin: List, key: str) -> Segments:
        """Segments of ``origin`` over ``origin``'s own connection.

        Raises:
            TypeError: ``origin`` is not a ``List``.
        """
        from znsocket.objects.list import List

        if not isinstance(origin, List):
            raise TypeError("origin must be a List")
        return cls(origin.redis, origin, key)

    @property
    def key(self) -> str:
        """The full key of the piece table, ``znsocket.Segments:<key>``."""
        return f"{SEGMENTS_PREFIX}{self._key}"

    def _segments(self) -> list[Triple]:
        return [tuple(json.loads(s)) for s in self.redis.lrange(self.key, 0, -1)]

    def get_raw(self) -> list[list[Any]]:
        """The triples ``[start, end, target]`` in order."""
        return [json.loads(s) for s in self.redis.lrange(self.key, 0, -1)]

    def __len__(self) -> int:
        return sum(end - start for start, end, _ in self._segments())

    def _target(self, target: str) -> List:
        from znsocket.objects.list import List

        return List(
            r=self.redis,
            key=target.split(":", 1)[1],
            converter=self.converter,
            convert_nan=self.convert_nan,
        )

    def __getitem__(self, index: Any) -> Any:
        segments = self._segments()
        length = sum(end - start for start, end, _ in segments)
        single = isinstance(index, int)
        if single:
            wanted = [index]
        elif isinstance(index, slice):
            wanted = list(range(*index.indices(length)))
        else:
            wanted = list(index)
        wanted = [i + length if i < 0 else i for i in wanted]
        found: dict[int, Any] = {}
        offset = 0
        for start, end, target in segments:
            size = end - start
            inside = [i for i in wanted if offset <= i < offset + size]
            if inside:
                values = self._target(target)[[i - offset + start for i in inside]]
                found.update(zip(inside, values, strict=True))
            offset += size
        if single:
            if wanted[0] not in found:
                raise IndexError("list index out of range")
            return found[wanted[0]]
        return [found[i] for i in wanted if i in found]

    def _locate(self, index: int) -> tuple[int, int, int, str, int] | None:
        """(segment position, start, end, target, position in target) of ``index``."""
        offset = 0
        for pos, (start, end, target) in enumerate(self._segments()):
            if offset <= index < offset + end - start:
                return pos, start, end, target, index - offset + start
            offset += end - start
        return None

    def _replace(self, pos: int, marker: str, triples: list[str]) -> None:
        self.redis.lset(self.key, pos, marker)
        for t in triples:
            self.redis.linsert(self.key, "BEFORE", marker, t)
        self.redis.lrem(self.key, 0, marker)

    def __setitem__(self, index: Any, value: Any) -> None:
        self._list.append(value)  # upstream appends first, even if the index is invalid
        if index < 0:
            index += len(self)
        hit = self._locate(index)
        if hit is None:
            raise IndexError("list index out of range")
        pos, start, end, target, p = hit
        if target == self._list.key:
            self._list[p] = value  # already an own item: overwrite in place
            return
        n = len(self._list)
        triples = []
        if start < p:
            triples.append(_triple(start, p, target))
        triples.append(_triple(n - 1, n, self._list.key))
        if p + 1 < end:
            triples.append(_triple(p + 1, end, target))
        self._replace(pos, _SETITEM, triples)

    def __delitem__(self, index: Any) -> None:
        if index < 0:
            index += len(self)
        hit = self._locate(index)
        if hit is None:
            raise IndexError("list index out of range")
        pos, start, end, target, p = hit
        triples = []
        if start < p:
            triples.append(_triple(start, p, target))
        if p + 1 < end:
            triples.append(_triple(p + 1, end, target))
        self._replace(pos, _DELITEM, triples)

    def insert(self, index: int, value: Any) -> None:
        """Insert ``value`` before ``index`` (``index == len`` appends)."""
        if index < 0:
            index += len(self)
        self._list.append(value)
        n = len(self._list)
        own = _triple(n - 1, n, self._list.key)
        hit = self._locate(index)
        if hit is not None:
            pos, start, end, target, p = hit
            triples = []
            if start < p:
                triples.append(_triple(start, p, target))
            triples.append(own)
            if p < end:
                triples.append(_triple(p, end, target))
            self._replace(pos, _INSERT, triples)
            return
        if index == len(self):
            self.redis.rpush(self.key, own)
            return
        raise IndexError("list index out of range")
