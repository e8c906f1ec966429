"""The key map: pattern parsing, first match wins, and the key ↔ series bijection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import parse_codec
from gateway.elements import ElementShape
from gateway.errors import KeyMappingError
from gateway.keymap import (
    DICT_PREFIX,
    LIST_PREFIX,
    MID_RANGE,
    MOID_RANGE,
    DictTarget,
    KeyMap,
    ListTarget,
    Rule,
    SeriesKey,
    compile_pattern,
    user_key,
)


_JSON = ElementShape(parse_codec("json"))


def _rules() -> KeyMap:
    return KeyMap(
        [
            # a fixed series shadows part of the general rule below it
            Rule(
                0,
                "list",
                compile_pattern("meters/1/{moid:int}"),
                cid=9,
                mid=100,
                moid="moid",
                shape=_JSON,
            ),
            Rule(
                1,
                "list",
                compile_pattern("meters/{mid:int}/{moid:int}"),
                1,
                "mid",
                "moid",
                shape=_JSON,
            ),
            Rule(2, "dict", compile_pattern("meters/{mid:int}"), 1, "mid", shape=_JSON),
            Rule(
                3,
                "dict",
                compile_pattern("site/{mid:int}/phases"),
                2,
                "mid",
                fields=(("L1", 1), ("L2", 2), ("L3", 3)),
                shape=_JSON,
            ),
        ]
    )


def test_list_and_dict_prefixes_select_rule_kinds() -> None:
    km = _rules()
    t = km.resolve(LIST_PREFIX + "meters/7/3")
    assert isinstance(t, ListTarget) and t.series == SeriesKey(1, 7, 3)
    d = km.resolve(DICT_PREFIX + "meters/7")
    assert isinstance(d, DictTarget) and (d.cid, d.mid) == (1, 7)
    assert km.resolve(DICT_PREFIX + "meters/7/3") is None
    assert km.resolve("meters/7/3") is None  # raw keys never match a rule


def test_first_match_wins() -> None:
    t = _rules().resolve(LIST_PREFIX + "meters/1/5")
    assert isinstance(t, ListTarget)
    assert t.rule.index == 0 and t.series == SeriesKey(9, 100, 5)


@pytest.mark.parametrize(
    "user_key", ["meters/abc/3", "meters/07/3", "meters/+7/3", "meters/-0/3", "meters/7/3.5"]
)
def test_wrong_placeholder_type_is_refused(user_key: str) -> None:
    with pytest.raises(KeyMappingError, match="not a canonical integer"):
        _rules().resolve(LIST_PREFIX + user_key)


def test_out_of_range_component_is_refused() -> None:
    with pytest.raises(KeyMappingError, match="outside TStorage's range"):
        _rules().resolve(LIST_PREFIX + f"meters/7/{2**31}")
    with pytest.raises(KeyMappingError, match="mid"):
        _rules().resolve(LIST_PREFIX + f"meters/{2**63}/1")


def test_dict_fields() -> None:
    d = _rules().resolve(DICT_PREFIX + "site/4/phases")
    assert isinstance(d, DictTarget)
    assert d.moid_for_field("L2") == 2 and d.field_for_moid(3) == "L3"
    assert d.field_for_moid(9) is None
    with pytest.raises(KeyMappingError, match="no field 'L9'"):
        d.moid_for_field("L9")
    plain = _rules().resolve(DICT_PREFIX + "meters/4")
    assert isinstance(plain, DictTarget)
    assert plain.moid_for_field("12") == 12 and plain.field_for_moid(12) == "12"
    with pytest.raises(KeyMappingError):
        plain.moid_for_field("voltage")


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ("", "empty"),
        ("a/{x}", "type"),
        ("a/{x:str}", "type"),
        ("a/{:int}", "needs a name"),
        ("a/{x:int}{y:int}", "touch"),
        ("a/{x:int}/{x:int}", "twice"),
        ("a/{x:int", "unmatched brace"),
        ("a}/{x:int}", "unmatched brace"),
    ],
)
def test_bad_patterns(pattern: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        compile_pattern(pattern)


mids = st.integers(MID_RANGE[0], MID_RANGE[1])
moids = st.integers(MOID_RANGE[0], MOID_RANGE[1])


@given(mids, moids)
def test_series_to_key_to_series(mid: int, moid: int) -> None:
    km = _rules()
    for cid in (1, 9):
        keys = list(km.keys_for_series(SeriesKey(cid, mid, moid)))
        for key, field in keys:
            target = km.resolve(key)
            assert target is not None
            if field is None:
                assert isinstance(target, ListTarget)
                assert target.series == SeriesKey(cid, mid, moid)
            else:
                assert isinstance(target, DictTarget)
                assert (target.cid, target.mid, target.moid_for_field(field)) == (cid, mid, moid)
        if cid == 1:
            # the general rules own every (mid, moid) of cid 1, except what rule 0 shadows
            list_keys = [k for k, f in keys if f is None]
            assert len(list_keys) == (0 if mid == 1 else 1)
            assert [f for _, f in keys if f is not None] == [str(moid)]


@given(mids, moids)
def test_key_to_series_to_key(mid: int, moid: int) -> None:
    km = _rules()
    key = f"{LIST_PREFIX}meters/{mid}/{moid}"
    target = km.resolve(key)
    assert isinstance(target, ListTarget)
    assert (key, None) in list(km.keys_for_series(target.series))


@given(st.text(max_size=30))
def test_arbitrary_keys_resolve_or_raise_mapping_error(text: str) -> None:
    km = _rules()
    for key in (LIST_PREFIX + text, DICT_PREFIX + text, text):
        try:
            target = km.resolve(key)
        except KeyMappingError:
            continue
        if target is not None:
            assert target.key == key


def test_series_key_range_is_one_series_box() -> None:
    lo, hi = SeriesKey(1, 7, 3).key_range(100, 200)
    assert lo == (1, 7, 3, 100, -(2**63))
    assert hi == (2, 8, 4, 200, 2**63 - 1)


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("znsocket.List:meters/7/3", "meters/7/3"),
        ("znsocket.Dict:meters/7", "meters/7"),
        ("znsocket.Segments:doc", "doc"),
        ("znsocket.List:a:b", "a:b"),
        ("raw", "raw"),
        ("znsocket.Other:x", "znsocket.Other:x"),
    ],
)
def test_user_key_drops_any_znsocket_object_prefix(key: str, shown: str) -> None:
    # one function for authorisation errors, series reads, the dashboard and CSV transfers
    assert user_key(key) == shown
