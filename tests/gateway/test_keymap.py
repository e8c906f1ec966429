"""The key map: pattern parsing, first match wins, and the key ↔ series bijection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.codecs import parse_codec
from gateway.elements import ElementShape
from gateway.errors import KeyMappingError
from gateway.keymap import (
    ACQ_END,
    ACQ_MIN,
    CAP_END,
    CAP_RANGE,
    DICT_PREFIX,
    LIST_PREFIX,
    MID_RANGE,
    MOID_RANGE,
    DictTarget,
    KeyMap,
    ListTarget,
    Rule,
    SeriesKey,
    box_since,
    compile_pattern,
    record_box,
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


def test_rule_and_target_boxes_hold_exactly_what_their_keys_can_name() -> None:
    km = _rules()
    every_cap, every_acq = (CAP_RANGE[0], CAP_END), (ACQ_MIN, ACQ_END)
    fixed, general, meter, phases = km.rules
    # (cid, mid range, moid range) of each rule's box, all caps and acqs
    shown = {
        rule.index: (lo[0], (lo[1], hi[1]), (lo[2], hi[2]), (lo[3], hi[3]), (lo[4], hi[4]))
        for rule in km.rules
        for lo, hi in [rule.key_range()]
    }
    every_mid, every_moid = (MID_RANGE[0], MID_RANGE[1] + 1), (MOID_RANGE[0], MOID_RANGE[1] + 1)
    assert shown[fixed.index] == (9, (100, 101), every_moid, every_cap, every_acq)
    assert shown[general.index] == (1, every_mid, every_moid, every_cap, every_acq)
    assert shown[meter.index] == (1, every_mid, every_moid, every_cap, every_acq)
    assert shown[phases.index] == (2, every_mid, (1, 4), every_cap, every_acq)
    site = km.resolve(DICT_PREFIX + "site/4/phases")
    assert isinstance(site, DictTarget)
    assert site.key_range() == ((2, 4, 1, CAP_RANGE[0], ACQ_MIN), (3, 5, 4, CAP_END, ACQ_END))
    lst = km.resolve(LIST_PREFIX + "meters/7/3")
    assert isinstance(lst, ListTarget) and lst.key_range() == SeriesKey(1, 7, 3).key_range()


def test_record_box_and_change_feed_box() -> None:
    assert record_box(5, 7, 3, 100) == ((5, 7, 3, 100, ACQ_MIN), (6, 8, 4, 101, ACQ_END))
    assert record_box(5, 7, 3, 100, 42)[0][4] == 42
    box = SeriesKey(1, 7, 3).key_range(10, 20)
    assert box_since(box, 99) == ((1, 7, 3, 10, 99), box[1])


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
