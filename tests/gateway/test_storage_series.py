"""GatewayStorage over a real TStorage server: mapped Lists/Dicts and generic keys."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.exceptions

from gateway.errors import CodecError, KeyMappingError, TStorageUnavailable
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record

Make = Callable[[str], GatewayStorage]
L = "znsocket.List:"
D = "znsocket.Dict:"


def records_of(ts: ServerProcess, cid: int) -> list[tuple[tuple[int, int, int, int], bytes]]:
    """Every record under ``cid``, read with tstorage_client directly, in key order."""
    with Channel("127.0.0.1", ts.port, BytesPayloadType(), timeout=5) as ch:
        res = ch.get(
            Key(cid, -(2**63), -(2**31), -(2**63), -(2**63)),
            Key(cid + 1, 2**63 - 1, 2**31 - 1, 2**63 - 1, 2**63 - 1),
        )
        assert res.is_ok()
        return sorted(((r.key.cid, r.key.mid, r.key.moid, r.key.cap), r.value) for r in res.data)


def put_direct(ts: ServerProcess, records: list[tuple[tuple[int, int, int, int], bytes]]) -> None:
    with Channel("127.0.0.1", ts.port, BytesPayloadType(), timeout=5) as ch:
        assert ch.put([Record(Key(*k), v) for k, v in records]).is_ok()


@pytest.fixture
def cid(fresh_cid: Callable[[], int]) -> int:
    return fresh_cid()


@pytest.fixture
def gw(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> GatewayStorage:
    return make_storage(meter_config(tstorage, cid, fresh_cid()))


def test_appends_read_back_as_a_list_and_as_records(
    gw: GatewayStorage, tstorage: ServerProcess, cid: int
) -> None:
    key = L + "meters/7/3"
    assert gw.llen(key) == 0 and gw.lindex(key, 0) is None and gw.lrange(key, 0, -1) == []
    assert gw.rpush(key, "1.5") == 1
    assert gw.rpush(key, "2.5", "-3") == 3
    assert gw.llen(key) == 3
    assert [gw.lindex(key, i) for i in (0, 1, 2, -1, -3, 3, -4)] == [
        "1.5",
        "2.5",
        "-3.0",
        "-3.0",
        "1.5",
        None,
        None,
    ]
    assert gw.lrange(key, 0, -1) == ["1.5", "2.5", "-3.0"]
    assert gw.lrange(key, -2, 10) == ["2.5", "-3.0"]
    assert gw.type(key) == "list" and gw.exists(key) == 1
    recs = records_of(tstorage, cid)
    assert [(k[:3], struct.unpack("<d", v)[0]) for k, v in recs] == [
        ((cid, 7, 3), 1.5),
        ((cid, 7, 3), 2.5),
        ((cid, 7, 3), -3.0),
    ]
    caps = [k[3] for k, _ in recs]
    assert caps == sorted(set(caps))


def test_records_put_directly_appear_in_views(
    gw: GatewayStorage, tstorage: ServerProcess, cid: int
) -> None:
    key = L + "meters/1/2"
    assert gw.llen(key) == 0
    put_direct(tstorage, [((cid, 1, 2, cap), struct.pack("<d", cap / 10)) for cap in (30, 10, 20)])
    time.sleep(gw.series.max_staleness + 0.05)
    assert gw.lrange(key, 0, -1) == ["1.0", "2.0", "3.0"]
    assert gw.hgetall(D + "meters/1") == {"2": "3.0"}
    # a newer record with an existing cap is a correction: the newest acq wins
    put_direct(tstorage, [((cid, 1, 2, 20), struct.pack("<d", 99.0))])
    time.sleep(gw.series.max_staleness + 0.05)
    assert gw.lrange(key, 0, -1) == ["1.0", "99.0", "3.0"] and gw.llen(key) == 3


def test_two_appends_in_one_nanosecond_are_two_elements(
    gw: GatewayStorage, tstorage: ServerProcess, cid: int
) -> None:
    gw.series.clock = lambda: 5_000
    key = L + "meters/2/0"
    gw.rpush(key, "1")
    gw.rpush(key, "2")
    gw.rpush(key, "3", "4")
    assert gw.lrange(key, 0, -1) == ["1.0", "2.0", "3.0", "4.0"]
    assert [k[3] for k, _ in records_of(tstorage, cid)] == [5_000, 5_001, 5_002, 5_003]


def test_bad_input_is_refused_and_nothing_written(
    gw: GatewayStorage, tstorage: ServerProcess, cid: int
) -> None:
    key = L + "meters/3/1"
    gw.rpush(key, "1")
    with pytest.raises(redis.exceptions.DataError, match="needs a number"):
        gw.rpush(key, "2", '"text"')  # all-or-nothing: "2" is not stored either
    with pytest.raises(redis.exceptions.DataError, match="not JSON"):
        gw.rpush(key, "not json")
    with pytest.raises(KeyMappingError, match="not a canonical integer"):
        gw.rpush(L + "meters/abc/1", "1")
    with pytest.raises(KeyMappingError, match="outside"):
        gw.llen(L + f"meters/1/{2**31}")
    assert gw.llen(key) == 1 and len(records_of(tstorage, cid)) == 1


@pytest.mark.parametrize(
    ("command", "args", "needle"),
    [
        ("lpush", ("1",), "head"),
        ("linsert", ("BEFORE", "1.0", "2"), "middle"),
        ("lrem", (0, "1.0"), "removed"),
        ("lpop", (), "removed"),
        ("rpop", (), "removed"),
        ("lset", (0, "5"), "allow_corrections"),
        ("get", (), "WRONGTYPE"),
        ("hget", ("f",), "WRONGTYPE"),
        ("expire", (10,), "cannot expire"),
    ],
)
def test_refused_list_commands(
    gw: GatewayStorage, command: str, args: tuple[object, ...], needle: str
) -> None:
    key = L + "meters/4/1"
    gw.rpush(key, "1")
    with pytest.raises(redis.exceptions.ResponseError, match=needle):
        getattr(gw, command)(key, *args)
    with pytest.raises(redis.exceptions.ResponseError, match="cannot be deleted"):
        gw.delete(key)
    assert gw.lrange(key, 0, -1) == ["1.0"]


def test_corrections_and_timestamped_elements(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    extra = f"""
    [[map]]
    pattern = "events/{{mid:int}}"
    cid = {cid + 100000}
    mid = "{{mid}}"
    moid = 0
    codec = "json"
    element = "timestamped"
    time = "tstorage_ns"
    allow_corrections = true
    """
    gw = make_storage(meter_config(tstorage, cid, fresh_cid(), extra))
    key = L + "events/1"
    assert (
        gw.rpush(key, json.dumps({"t": 100, "v": {"a": 1}}), json.dumps({"t": 200, "v": [1]})) == 2
    )
    assert [json.loads(x) for x in gw.lrange(key, 0, -1)] == [
        {"t": 100, "v": {"a": 1}},
        {"t": 200, "v": [1]},
    ]
    with pytest.raises(redis.exceptions.ResponseError, match="middle"):
        gw.rpush(key, json.dumps({"t": 150, "v": 0}))
    # an existing t is a correction (allowed by this rule), and so is lset
    assert gw.rpush(key, json.dumps({"t": 100, "v": "fixed"})) == 2
    assert gw.lset(key, -1, json.dumps({"v": "also fixed"})) is True
    with pytest.raises(redis.exceptions.ResponseError, match="keeps its time"):
        gw.lset(key, 0, json.dumps({"t": 5, "v": 0}))
    assert [json.loads(x)["v"] for x in gw.lrange(key, 0, -1)] == ["fixed", "also fixed"]
    with pytest.raises(redis.exceptions.DataError, match="outside TStorage's time range"):
        gw.rpush(key, json.dumps({"t": 2**64, "v": 0}))
    assert gw.llen(key) == 2


def test_dict_of_latest_values(gw: GatewayStorage, tstorage: ServerProcess, cid: int) -> None:
    d = D + "meters/9"
    assert gw.hgetall(d) == {} and gw.hlen(d) == 0 and gw.hget(d, "1") is None
    assert gw.hset(d, "1", "10") == 1
    assert gw.hset(d, mapping={"2": "20", "1": "11"}) == 1
    assert gw.hget(d, "1") == "11.0" and gw.hget(d, "3") is None
    assert gw.hkeys(d) == ["1", "2"] and gw.hlen(d) == 2 and gw.hexists(d, "2") == 1
    assert gw.hgetall(d) == {"1": "11.0", "2": "20.0"}
    assert gw.hmget(d, ["2", "nope", "1"]) == ["20.0", None, "11.0"]
    # the list view of moid 1 shows the history
    assert gw.lrange(L + "meters/9/1", 0, -1) == ["10.0", "11.0"]
    with pytest.raises(redis.exceptions.ResponseError, match="cannot be removed"):
        gw.hdel(d, "1")
    with pytest.raises(KeyMappingError):
        gw.hset(d, "voltage", "1")


def test_dict_with_named_fields(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    extra = f"""
    [[map]]
    kind = "dict"
    pattern = "site/{{mid:int}}/phases"
    cid = {cid + 200000}
    mid = "{{mid}}"
    codec = "struct:<d"
    fields = {{ L1 = 1, L2 = 2, L3 = 3 }}
    """
    gw = make_storage(meter_config(tstorage, cid, fresh_cid(), extra))
    d = D + "site/5/phases"
    gw.hset(d, mapping={"L3": "3", "L1": "1"})
    assert gw.hkeys(d) == ["L1", "L3"]  # configured order
    assert gw.hgetall(d) == {"L1": "1.0", "L3": "3.0"}
    recs = records_of(tstorage, cid + 200000)
    assert [(k[:3], struct.unpack("<d", v)[0]) for k, v in recs] == [
        ((cid + 200000, 5, 1), 1.0),
        ((cid + 200000, 5, 3), 3.0),
    ]


def test_pipeline_batches_lindex_and_rpush(gw: GatewayStorage) -> None:
    key = L + "meters/6/6"
    res = gw.execute_many([("rpush", (key, str(i)), {}) for i in range(50)])
    assert res == list(range(1, 51))
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("lindex", (key, i), {}) for i in range(-10, 0)
    ] + [("llen", (key,), {})]
    assert gw.execute_many(calls) == [f"{float(i)}" for i in range(40, 50)] + [50]
    # a bad value stops the batched run: nothing of it is stored
    res = gw.execute_many([("rpush", (key, "1"), {}), ("rpush", (key, "[1, 2]"), {})])
    assert len(res) == 1 and isinstance(res[0], redis.exceptions.DataError)
    assert gw.llen(key) == 50


def test_generic_keys_survive_a_restart_and_are_shared(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    text = meter_config(tstorage, cid, fresh_cid())
    a = make_storage(text)
    a.set("greeting", "hello")
    a.rpush("znsocket.List:todo", '"a"', '"b"')
    a.hset("znsocket.Dict:conf", mapping={"x": "1"})
    a.sadd("tags", "red", "blue")
    a.delete("greeting")
    a.set("greeting", "hi")
    b = make_storage(text)  # a second gateway, or the first after a restart
    assert b.get("greeting") == "hi"
    assert b.lrange("znsocket.List:todo", 0, -1) == ['"a"', '"b"']
    assert b.hgetall("znsocket.Dict:conf") == {"x": "1"}
    assert b.smembers("tags") == {"red", "blue"}
    b.rpush("znsocket.List:todo", '"c"')
    a.set("greeting", "hey")
    time.sleep(a.generic.max_staleness + 0.05)
    assert a.lrange("znsocket.List:todo", 0, -1) == ['"a"', '"b"', '"c"']
    assert b.get("greeting") == "hey"
    assert a.get("greeting") == "hey"  # its own echo does not roll it back


def test_unmapped_keys_can_be_rejected(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    text = meter_config(tstorage, cid, fresh_cid()).replace(
        "[generic]", '[generic]\nunmapped = "reject"'
    )
    gw = make_storage(text)
    with pytest.raises(KeyMappingError, match="no map rule matches key 'foo'"):
        gw.set("foo", "1")
    assert gw.rpush(L + "meters/1/1", "1") == 1


def test_tstorage_down_gives_a_clear_error(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    gw = make_storage(meter_config(tstorage, cid, fresh_cid()))
    gw.set("k", "v")
    gw.rpush(L + "meters/1/1", "1")
    dead = TStorageLink(LinkSettings("127.0.0.1", 1, timeout=0.5, reconnect_max_delay=0.1))
    gw.link.close()
    gw.series.link = gw.generic.link = gw.link = dead
    start = time.monotonic()
    with pytest.raises(TStorageUnavailable, match=r"127\.0\.0\.1:1"):
        gw.set("k", "changed")
    assert time.monotonic() - start < 2
    with pytest.raises(TStorageUnavailable):
        gw.rpush(L + "meters/1/1", "2")
    assert gw.generic.mem.get("k") == "v"  # rolled back: not acknowledged, not kept


def test_corrections_read_back_at_once_and_caches_stay_coherent(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    text = meter_config(tstorage, cid, fresh_cid()).replace(
        'codec = "struct:<d"\n', 'codec = "struct:<d"\nallow_corrections = true\n', 1
    )
    a, b = make_storage(text), make_storage(text)
    key = L + "meters/5/5"
    a.rpush(key, "1", "2")
    time.sleep(b.series.max_staleness + 0.05)
    assert b.lrange(key, 0, -1) == ["1.0", "2.0"]  # b caches both values
    a.lset(key, 0, "10")
    assert a.lindex(key, 0) == "10.0"  # read your own correction, no wait
    b.lset(key, 1, "20")
    assert b.lindex(key, 1) == "20.0"
    time.sleep(a.series.max_staleness + 0.05)
    assert a.lrange(key, 0, -1) == b.lrange(key, 0, -1) == ["10.0", "20.0"]


def test_names_with_the_same_hash_get_their_own_slots(
    make_storage: Make,
    tstorage: ServerProcess,
    cid: int,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gateway.storage.generic as generic

    monkeypatch.setattr(generic, "name_hash", lambda name: 42)  # every name collides
    gcid = fresh_cid()
    text = meter_config(tstorage, cid, gcid)
    a = make_storage(text)
    a.set("first", "1")
    a.set("second", "2")
    a.delete("first")
    a.set("third", "3")
    slots = sorted((k[1], k[2]) for k, _ in records_of(tstorage, gcid))
    assert {s for s in slots} == {(42, 0), (42, 1), (42, 2)}
    b = make_storage(text)  # rebuilt from the names kept in the payloads
    assert (b.get("first"), b.get("second"), b.get("third")) == (None, "2", "3")
    b.set("fourth", "4")
    assert b.generic._slots["fourth"] == (42, 3)


def test_large_generic_values_survive_a_restart(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    text = meter_config(tstorage, cid, fresh_cid())
    big = "x" * (8 * 1024 * 1024)
    make_storage(text).hset("znsocket.Dict:blobs", "one", big)
    assert make_storage(text).hget("znsocket.Dict:blobs", "one") == big


def test_a_foreign_payload_of_the_wrong_size_is_reported_not_fatal(
    gw: GatewayStorage, tstorage: ServerProcess, cid: int
) -> None:
    put_direct(tstorage, [((cid, 8, 8, c), struct.pack("<d", c)) for c in range(1, 5)])
    put_direct(tstorage, [((cid, 8, 8, 10), b"odd")])
    key = L + "meters/8/8"
    assert gw.llen(key) == 5  # the index is built although columns cannot hold "odd"
    assert gw.lrange(key, 0, 3) == ["1.0", "2.0", "3.0", "4.0"]
    with pytest.raises(CodecError, match="not a struct:<d value"):
        gw.lindex(key, -1)
    with pytest.raises(CodecError, match="not a struct:<d value"):
        gw.hget(D + "meters/8", "8")  # the latest record of moid 8 is the odd one


def test_read_only_rules_refuse_every_write(
    make_storage: Make, tstorage: ServerProcess, cid: int, fresh_cid: Callable[[], int]
) -> None:
    ro_cid = cid + 400000
    extra = f"""
    [[map]]
    pattern = "counters/{{mid:int}}"
    cid = {ro_cid}
    mid = "{{mid}}"
    moid = 0
    codec = "struct:<q"
    read_only = true
    allow_corrections = true
    """
    gw = make_storage(meter_config(tstorage, cid, fresh_cid(), extra))
    put_direct(tstorage, [((ro_cid, 1, 0, 5), struct.pack("<q", 42))])
    key = L + "counters/1"
    assert gw.lrange(key, 0, -1) == ["42"]
    for call in (lambda: gw.rpush(key, "1"), lambda: gw.lset(key, 0, "1")):
        with pytest.raises(redis.exceptions.ResponseError, match="read-only"):
            call()
    assert gw.execute_many([("rpush", (key, "1"), {})])[0].__class__.__name__ == "ResponseError"
    assert records_of(tstorage, ro_cid) == [((ro_cid, 1, 0, 5), struct.pack("<q", 42))]
