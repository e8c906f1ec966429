"""znsocket keys ↔ TStorage key ranges: the only place the mapping is known.

Strategy
--------
A map rule pairs a key *pattern* such as ``meters/{mid:int}/{moid:int}`` with a TStorage
series (``cid``, ``mid``, ``moid``). Upstream znsocket stores a ``List("k")`` under the full
key ``znsocket.List:k`` and a ``Dict("k")`` under ``znsocket.Dict:k``; a rule of kind
``list`` matches only keys with the ``znsocket.List:`` prefix and a rule of kind ``dict``
only keys with the ``znsocket.Dict:`` prefix, and its pattern is matched against the rest
(the user-visible key). Raw keys without a prefix never match a rule.

* A list key names one series ``(cid, mid, moid)``; its elements are the series' records.
* A dict key names ``(cid, mid)``; its fields are moids, named by the rule's ``fields``
  table or, without one, by the moid in decimal.

Bijection: integer placeholders match only canonical decimals (no ``+``, no leading zeros,
no ``-0``), every placeholder must feed ``mid`` or ``moid``, and rules are tried in order
(first match wins). So ``resolve(render(x)) == x`` for every series a rule owns, and
``render(resolve(k)) == k`` for every key that resolves; ``keys_for_series`` drops keys
shadowed by an earlier rule, so the inverse never names a key that resolves elsewhere.

A key that has a rule's literal shape but a placeholder of the wrong type or out of range
raises :class:`KeyMappingError` instead of silently falling through to generic storage.

A key resolves to a target that carries its :class:`Rule`, with the settings the views of
the key need (element shape, write permissions, labels): nothing looks a rule up again.

Key boxes: every TStorage box the gateway reads is built here: a series'
(:meth:`SeriesKey.key_range`), a rule's (:meth:`Rule.key_range`), a target's, the versions
of one record key (:func:`record_box`), any other (:func:`key_box`), and the change feed of
a box from its watermark (:func:`box_since`). The bounds of each key component are here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from gateway.errors import KeyMappingError
from znsocket.objects.base import DICT_PREFIX, LIST_PREFIX, SEGMENTS_PREFIX

if TYPE_CHECKING:  # elements needs this module's ranges at import: no import cycle
    from gateway.elements import ElementShape

PREFIXES: dict[str, str] = {"list": LIST_PREFIX, "dict": DICT_PREFIX}


def user_key(key: str) -> str:
    """The key as the user names it: ``key`` without its znsocket object prefix.

    ``znsocket.List:meters/7``, ``znsocket.Dict:meters/7`` and ``znsocket.Segments:meters/7``
    all give ``meters/7``; a key without one of these prefixes comes back unchanged.
    """
    for prefix in (LIST_PREFIX, DICT_PREFIX, SEGMENTS_PREFIX):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


# Valid components stay below TStorage's maxima: key_max is exclusive, and a record with a
# maximal component is dropped by servers (protocol spec §4.8).
CID_RANGE = (0, 2**31 - 2)
MID_RANGE = (-(2**63), 2**63 - 2)
MOID_RANGE = (-(2**31), 2**31 - 2)
CAP_RANGE = (-(2**63), 2**63 - 2)
#: Exclusive upper bound of a box's caps: a box up to it holds every capture time.
CAP_END = CAP_RANGE[1] + 1
#: The lowest acq: a box from it holds every version; a watermark at it has read nothing.
ACQ_MIN = -(2**63)
#: Exclusive upper bound of a box's acqs: a box up to it holds every version.
ACQ_END = 2**63 - 1

_CANONICAL_INT = r"(?:0|-?[1-9][0-9]*)"
_PLACEHOLDER = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PLACEHOLDER_TYPES = ("int",)

Kind = Literal["list", "dict"]
KeyTuple = tuple[int, int, int, int, int]
"""(cid, mid, moid, cap, acq), the order of TStorage keys on the wire."""
Box = tuple[KeyTuple, KeyTuple]
"""A TStorage key box ``[lo, hi)``: what one GET selects."""


@dataclass(frozen=True)
class Pattern:
    """A compiled key pattern: literal text and ``{name:int}`` placeholders."""

    source: str
    parts: tuple[str | tuple[str, str], ...]
    regex: re.Pattern[str]
    loose: re.Pattern[str]

    @property
    def names(self) -> tuple[str, ...]:
        """Placeholder names in order of appearance."""
        return tuple(p[0] for p in self.parts if isinstance(p, tuple))

    def match(self, user_key: str) -> dict[str, int] | None:
        """Placeholder values of ``user_key``, or ``None`` if it does not have this shape.

        Raises:
            KeyMappingError: the literal shape matches but a placeholder is not a
                canonical integer.
        """
        m = self.regex.fullmatch(user_key)
        if m is not None:
            return {name: int(text) for name, text in m.groupdict().items()}
        loose = self.loose.fullmatch(user_key)
        if loose is None:
            return None
        for name, text in loose.groupdict().items():
            if not re.fullmatch(_CANONICAL_INT, text):
                raise KeyMappingError(
                    f"key {user_key!r} has the shape of pattern {self.source!r} but "
                    f"placeholder {name!r} is {text!r}, not a canonical integer"
                )
        return None  # pragma: no cover - regex and loose agree on canonical input

    def render(self, values: Mapping[str, int]) -> str:
        """The user key with ``values`` substituted for the placeholders."""
        return "".join(p if isinstance(p, str) else str(values[p[0]]) for p in self.parts)


def compile_pattern(source: str) -> Pattern:
    """Parse a key pattern.

    Raises:
        ValueError: empty pattern, stray braces, unknown placeholder type, duplicate or
            adjacent placeholders.
    """
    if not source:
        raise ValueError("pattern is empty")
    parts: list[str | tuple[str, str]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(source):
        literal = source[pos : m.start()]
        _check_literal(literal, source)
        if literal:
            parts.append(literal)
        name, typ = m.group(1), m.group(2) or ""
        if not _NAME.fullmatch(name):
            raise ValueError(f"placeholder {m.group(0)!r} needs a name such as {{mid:int}}")
        if typ not in PLACEHOLDER_TYPES:
            raise ValueError(
                f"placeholder {m.group(0)!r} has type {typ or '(none)'!r}; "
                f"supported: {', '.join(PLACEHOLDER_TYPES)} (write {{{name}:int}})"
            )
        if parts and isinstance(parts[-1], tuple):
            raise ValueError(
                f"placeholders {{{parts[-1][0]}}} and {{{name}}} touch: put literal text "
                "between them so a key splits one way only"
            )
        if name in [p[0] for p in parts if isinstance(p, tuple)]:
            raise ValueError(f"placeholder {name!r} appears twice")
        parts.append((name, typ))
        pos = m.end()
    tail = source[pos:]
    _check_literal(tail, source)
    if tail:
        parts.append(tail)
    strict = "".join(
        re.escape(p) if isinstance(p, str) else f"(?P<{p[0]}>{_CANONICAL_INT})" for p in parts
    )
    # The loose form spots keys of this shape with a bad placeholder; a placeholder never
    # spans a "/" or the first character of the literal that follows it.
    loose_parts: list[str] = []
    for i, p in enumerate(parts):
        if isinstance(p, str):
            loose_parts.append(re.escape(p))
            continue
        nxt = parts[i + 1] if i + 1 < len(parts) else ""
        stop = "/" + (nxt[0] if isinstance(nxt, str) and nxt else "")
        loose_parts.append(f"(?P<{p[0]}>[^{re.escape(stop)}]+)")
    loose = "".join(loose_parts)
    return Pattern(source, tuple(parts), re.compile(strict), re.compile(loose))


def _check_literal(literal: str, source: str) -> None:
    if "{" in literal or "}" in literal:
        raise ValueError(f"pattern {source!r} has an unmatched brace")


@dataclass(frozen=True)
class Rule:
    """A map rule (built from the configuration) as a key resolves to it: what the key map
    matches, and the settings the List and Dict views of its keys need, so a target carries
    everything about its rule.

    Attributes:
        index: position in the configuration's ``[[map]]`` list (first match wins).
        kind: ``list`` (one series) or ``dict`` (moids of one meter as fields).
        pattern: the user-visible key pattern.
        cid: fixed TStorage client id.
        mid: a fixed meter id, or the name of the placeholder that supplies it.
        moid: (lists) a fixed object id or a placeholder name; ``None`` for dicts.
        fields: (dicts) field name → moid; ``None`` means fields are decimal moids.
        shape: how a record of the rule looks to clients (codec, element, time unit).
        read_only: every write to the rule's keys is refused.
        allow_corrections: a record at an existing cap may replace the element.
        unit: what the values measure, for people (the dashboard shows it).
        label: a name for the values, for people (the dashboard shows it).
    """

    index: int
    kind: Kind
    pattern: Pattern
    cid: int
    mid: int | str
    moid: int | str | None = None
    fields: tuple[tuple[str, int], ...] | None = None
    shape: ElementShape = field(kw_only=True)
    read_only: bool = field(default=False, kw_only=True)
    allow_corrections: bool = field(default=False, kw_only=True)
    unit: str | None = field(default=None, kw_only=True)
    label: str | None = field(default=None, kw_only=True)

    def field_names(self) -> dict[int, str]:
        """moid → field name for dict rules with a ``fields`` table."""
        return {moid: name for name, moid in self.fields or ()}

    def moids(self) -> tuple[int, int]:
        """The half-open range of moids this rule's keys can show: a fixed moid, the
        moids of the ``fields`` table, or every moid."""
        if self.fields is not None:
            moids = [m for _, m in self.fields]
            return min(moids), max(moids) + 1
        if isinstance(self.moid, int):
            return self.moid, self.moid + 1
        return MOID_RANGE[0], MOID_RANGE[1] + 1

    def key_range(self) -> Box:
        """The box holding every series this rule's keys can name (all caps and acqs)."""
        mids = (self.mid, self.mid + 1) if isinstance(self.mid, int) else _ALL_MIDS
        return key_box(self.cid, mids, self.moids())


@dataclass(frozen=True)
class SeriesKey:
    """One TStorage series: every record with this ``(cid, mid, moid)``."""

    cid: int
    mid: int
    moid: int

    def key_range(
        self,
        cap_min: int = CAP_RANGE[0],
        cap_max: int = CAP_END,
        *,
        acq_min: int = ACQ_MIN,
        acq_max: int = ACQ_END,
    ) -> Box:
        """Key box ``[min, max)`` selecting this series' captures ``cap_min <= cap < cap_max``
        acquired in ``acq_min <= acq < acq_max``.

        A TStorage box bounds every component separately, so cid/mid/moid are ``[x, x+1)``.
        """
        return key_box(
            self.cid, (self.mid, self.mid + 1), (self.moid, self.moid + 1), (cap_min, cap_max),
            acq_min=acq_min, acq_max=acq_max,
        )  # fmt: skip


_ALL_MIDS = (MID_RANGE[0], MID_RANGE[1] + 1)
_ALL_MOIDS = (MOID_RANGE[0], MOID_RANGE[1] + 1)


def key_box(
    cid: int,
    mids: tuple[int, int] = _ALL_MIDS,
    moids: tuple[int, int] = _ALL_MOIDS,
    caps: tuple[int, int] = (CAP_RANGE[0], CAP_END),
    *,
    acq_min: int = ACQ_MIN,
    acq_max: int = ACQ_END,
) -> Box:
    """The TStorage key box ``[lo, hi)`` of one client id: mids, moids and caps each given
    as a half-open range ``(min, max)`` (all of them when left out), acquired in
    ``acq_min <= acq < acq_max``."""
    lo = (cid, mids[0], moids[0], caps[0], acq_min)
    hi = (cid + 1, mids[1], moids[1], caps[1], acq_max)
    return lo, hi


def record_box(cid: int, mid: int, moid: int, cap: int, acq_min: int = ACQ_MIN) -> Box:
    """The box of every version of the record at ``(cid, mid, moid, cap)`` acquired at or
    after ``acq_min``: where the gateway keeps one value under a fixed key."""
    return key_box(cid, (mid, mid + 1), (moid, moid + 1), (cap, cap + 1), acq_min=acq_min)


def box_since(box: Box, acq0: int) -> Box:
    """``box`` narrowed to the records acquired at or after ``acq0``: the change feed from
    the watermark ``acq0`` of an earlier read of ``box``."""
    lo, hi = box
    return (lo[0], lo[1], lo[2], lo[3], acq0), hi


def boxes_without(box: Box, series: Iterable[tuple[int, int]]) -> list[Box]:
    """``box`` (of one cid) cut into boxes that hold every key of it except those of the
    ``(mid, moid)`` series given; series outside the box are ignored.

    A GET selects a product of half-open intervals (``docs`` of the TStorage protocol,
    "the box query"), so leaving out one series takes the mids before its mid, the moids
    before and after it at its mid, and the mids after: at most two boxes per mid left out
    plus one per series."""
    lo, hi = box
    cut = sorted({(m, o) for m, o in series if lo[1] <= m < hi[1] and lo[2] <= o < hi[2]})
    out: list[Box] = []

    def add(m0: int, m1: int, o0: int, o1: int) -> None:
        if m0 < m1 and o0 < o1:
            out.append(((lo[0], m0, o0, lo[3], lo[4]), (hi[0], m1, o1, hi[3], hi[4])))

    mid_from = lo[1]
    i = 0
    while i < len(cut):
        mid = cut[i][0]
        add(mid_from, mid, lo[2], hi[2])
        moid_from = lo[2]
        while i < len(cut) and cut[i][0] == mid:
            add(mid, mid + 1, moid_from, cut[i][1])
            moid_from = cut[i][1] + 1
            i += 1
        add(mid, mid + 1, moid_from, hi[2])
        mid_from = mid + 1
    add(mid_from, hi[1], lo[2], hi[2])
    return out


@dataclass(frozen=True)
class ListTarget:
    """A full key that names one series, seen as a List."""

    key: str
    rule: Rule
    series: SeriesKey

    def key_range(self) -> Box:
        """The box of every record the List shows."""
        return self.series.key_range()


@dataclass(frozen=True)
class DictTarget:
    """A full key that names the moids of ``(cid, mid)``, seen as a Dict."""

    key: str
    rule: Rule
    cid: int
    mid: int

    def moid_for_field(self, field: str) -> int:
        """The moid a Dict field names.

        Raises:
            KeyMappingError: unknown field name / not a canonical integer in range.
        """
        if self.rule.fields is not None:
            for name, moid in self.rule.fields:
                if name == field:
                    return moid
            known = ", ".join(repr(n) for n, _ in self.rule.fields)
            raise KeyMappingError(f"{self.key!r} has no field {field!r}; fields: {known}")
        if not isinstance(field, str) or not re.fullmatch(_CANONICAL_INT, field):
            raise KeyMappingError(f"{self.key!r} has fields named by moid; {field!r} is not one")
        moid = int(field)
        _check_range("moid", moid, MOID_RANGE, self.key)
        return moid

    def field_for_moid(self, moid: int) -> str | None:
        """The field name of ``moid``, or ``None`` if the rule does not show that moid."""
        if self.rule.fields is None:
            return str(moid)
        return self.rule.field_names().get(moid)

    def series(self, moid: int) -> SeriesKey:
        """The series behind one field."""
        return SeriesKey(self.cid, self.mid, moid)

    def key_range(self) -> Box:
        """The box of every record the Dict's fields can show (the moids of its rule)."""
        return key_box(self.cid, (self.mid, self.mid + 1), self.rule.moids())


Target = ListTarget | DictTarget


def _check_range(what: str, value: int, bounds: tuple[int, int], key: str) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise KeyMappingError(
            f"key {key!r}: {what} {value} is outside TStorage's range [{bounds[0]}, {bounds[1]}]"
        )


class KeyMap:
    """Ordered map rules; resolves full znsocket keys and inverts series to keys."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    def resolve(self, key: str) -> Target | None:
        """The target a full znsocket key maps to, or ``None`` if no rule's shape matches.

        Raises:
            KeyMappingError: a rule's shape matches but a placeholder has the wrong type or
                is out of range (the key is refused rather than stored elsewhere).
        """
        for rule in self.rules:
            prefix = PREFIXES[rule.kind]
            if not key.startswith(prefix):
                continue
            values = rule.pattern.match(key[len(prefix) :])
            if values is None:
                continue
            mid = _component(rule.mid, values)
            _check_range("mid", mid, MID_RANGE, key)
            if rule.kind == "dict":
                return DictTarget(key, rule, rule.cid, mid)
            assert rule.moid is not None
            moid = _component(rule.moid, values)
            _check_range("moid", moid, MOID_RANGE, key)
            return ListTarget(key, rule, SeriesKey(rule.cid, mid, moid))
        return None

    def render(self, rule: Rule, mid: int, moid: int | None = None) -> str | None:
        """The full key of ``rule`` for a series/meter, or ``None`` if the rule does not own it."""
        values: dict[str, int] = {}
        if not _bind(rule.mid, mid, values):
            return None
        if rule.kind == "list" and (
            moid is None or rule.moid is None or not _bind(rule.moid, moid, values)
        ):
            return None
        return PREFIXES[rule.kind] + rule.pattern.render(values)

    def keys_for_series(self, series: SeriesKey) -> Iterator[tuple[str, str | None]]:
        """Every full key that shows ``series``: ``(list_key, None)`` or ``(dict_key, field)``.

        Keys shadowed by an earlier rule are skipped, so each yielded key resolves back to
        the rule that rendered it.
        """
        for rule in self.rules:
            if rule.cid != series.cid:
                continue
            key = self.render(rule, series.mid, series.moid if rule.kind == "list" else None)
            if key is None:
                continue
            try:
                target = self.resolve(key)
            except KeyMappingError:
                continue
            if target is None or target.rule.index != rule.index:
                continue
            if isinstance(target, DictTarget):
                field = target.field_for_moid(series.moid)
                if field is not None:
                    yield key, field
            else:
                yield key, None


def _component(spec: int | str, values: Mapping[str, int]) -> int:
    return spec if isinstance(spec, int) else values[spec]


def _bind(spec: int | str, value: int, values: dict[str, int]) -> bool:
    if isinstance(spec, int):
        return spec == value
    values[spec] = value
    return True
