"""Generic keys as a log plus checkpoints, on a real TStorage server.

What a user of unmapped keys relies on: a write costs what it adds, a restart reads the live
data and not the history, a failed write leaves nothing behind, several gateways agree, and
keys written in the snapshot format of earlier versions keep their values.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import znsocket
from gateway.errors import TStorageUnavailable
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink
from gateway.storage.generic import name_hash
from tests._servers import ServerProcess
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct, records_of
from znsocket.exceptions import DataError

Make = Callable[[str], GatewayStorage]
LIST = "znsocket.List:frames"


def config(
    tstorage: ServerProcess, fresh_cid: Callable[[], int], min_bytes: int | None = None
) -> tuple[str, int]:
    gcid = fresh_cid()
    text = meter_config(tstorage, fresh_cid(), gcid)
    if min_bytes is not None:
        text = text.replace("[generic]", f"[generic]\ncheckpoint_min_bytes = {min_bytes}")
    return text, gcid


def stored_bytes(tstorage: ServerProcess, gcid: int) -> int:
    return sum(len(payload) for _, payload in records_of(tstorage, gcid))


def test_appends_store_what_they_add_not_the_whole_list(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, gcid = config(tstorage, fresh_cid)
    gw = make_storage(text)
    item = json.dumps({"positions": "x" * 10_000})
    for i in range(100):
        assert gw.rpush(LIST, item) == i + 1
    values = 100 * len(item)
    assert stored_bytes(tstorage, gcid) <= 1.2 * values  # a snapshot per write: ~50x
    assert make_storage(text).lrange(LIST, 0, -1) == [item] * 100


def test_a_pipelines_run_of_writes_to_one_key_is_one_record(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, gcid = config(tstorage, fresh_cid)
    gw = make_storage(text)
    calls = [("rpush", (LIST, f'"{i}"'), {}) for i in range(50)]
    calls += [("hset", ("znsocket.Dict:d", f"f{i}", "1"), {}) for i in range(20)]
    assert gw.execute_many(calls) == list(range(1, 51)) + [1] * 20
    assert len(records_of(tstorage, gcid)) == 2
    again = make_storage(text)
    assert again.llen(LIST) == 50 and again.hlen("znsocket.Dict:d") == 20
    # a command of the run that fails ends it; the writes before it are kept
    res = gw.execute_many([("rpush", (LIST, '"a"'), {}), ("lset", (LIST, 999, '"b"'), {})])
    assert res[0] == 51 and isinstance(res[1], Exception)
    assert make_storage(text).llen(LIST) == 51


@pytest.mark.parametrize(
    "write",
    [
        lambda gw: gw.set("s", "bad \ud800"),
        lambda gw: gw.hset("znsocket.Dict:d", "f", '"bad \ud800"'),
        lambda gw: gw.hset("znsocket.Dict:d", mapping={"g": "1", "f": "\udfff"}),
        lambda gw: gw.rpush(LIST, '"ok"', '"bad \ud800"'),
        lambda gw: gw.execute_many(
            [("rpush", (LIST, '"ok"'), {}), ("rpush", (LIST, "\ud800"), {})]
        ),
    ],
)
def test_a_failed_write_leaves_nothing_behind(
    make_storage: Make,
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    write: Callable[[GatewayStorage], object],
) -> None:
    text, _ = config(tstorage, fresh_cid)
    gw = make_storage(text)
    gw.set("s", "old")
    gw.hset("znsocket.Dict:d", "f", '"old"')
    gw.rpush(LIST, '"first"')
    try:
        result = write(gw)
    except DataError as exc:
        assert "not stored" in str(exc)
    else:  # a pipeline answers the error as the result of the failing command
        assert isinstance(result, list) and isinstance(result[-1], DataError)
    for reader in (gw, make_storage(text)):
        assert reader.get("s") == "old"
        assert reader.hgetall("znsocket.Dict:d") == {"f": '"old"'}
        assert reader.lrange(LIST, 0, -1)[:1] == ['"first"']
    # the pipeline's first rpush succeeded and is kept; nothing else is
    assert gw.lrange(LIST, 0, -1) in (['"first"'], ['"first"', '"ok"'])


def test_a_write_tstorage_refused_is_undone(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, _ = config(tstorage, fresh_cid)
    gw = make_storage(text)
    gw.rpush(LIST, '"a"')
    gw.hset("znsocket.Dict:d", "f", "1")
    gw.sadd("tags", "x")
    dead = TStorageLink(LinkSettings("127.0.0.1", 1, timeout=0.3, reconnect_max_delay=0.1))
    live, gw.generic.link = gw.generic.link, dead
    gw.generic.max_staleness = 3600.0  # no catch-up with the dead link
    for write in (
        lambda: gw.rpush(LIST, '"b"', '"c"'),
        lambda: gw.lpop(LIST),
        lambda: gw.hset("znsocket.Dict:d", mapping={"f": "2", "g": "3"}),
        lambda: gw.hdel("znsocket.Dict:d", "f"),
        lambda: gw.sadd("tags", "y"),
        lambda: gw.srem("tags", "x"),
        lambda: gw.expire("tags", 0),
        lambda: gw.delete(LIST, "tags"),
    ):
        with pytest.raises(TStorageUnavailable):
            write()
    res = gw.execute_many([("rpush", (LIST, '"b"'), {}), ("rpush", (LIST, '"c"'), {})])
    assert len(res) == 1 and isinstance(res[0], TStorageUnavailable)
    assert gw.lrange(LIST, 0, -1) == ['"a"']
    assert gw.hgetall("znsocket.Dict:d") == {"f": "1"}
    assert gw.smembers("tags") == {"x"}
    gw.generic.link = live


def test_a_restart_reads_the_live_data_not_the_history(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, gcid = config(tstorage, fresh_cid, min_bytes=64 * 1024)
    gw = make_storage(text)
    for i in range(3000):  # 3,000 overwrites of 10 small keys
        gw.hset(f"znsocket.Dict:k{i % 10}", f"f{i % 7}", f'"{i:0100d}"')
        gw.rpush("journal", str(i)) if i % 100 == 0 else None
    gw.generic.wait_compaction(10)
    live = gw.generic.live_bytes()
    history = stored_bytes(tstorage, gcid)
    again = make_storage(text)
    assert again.generic.loaded_bytes < 3 * live + 64 * 1024 + 8192 < history / 2
    for i in range(10):
        assert again.hgetall(f"znsocket.Dict:k{i}") == gw.hgetall(f"znsocket.Dict:k{i}")
    assert again.lrange("journal", 0, -1) == [str(i) for i in range(0, 3000, 100)]
    # TStorage's bytes stay within a small factor of what the clients sent
    sent = sum(len(f"f{i % 7}") + 100 for i in range(3000))
    assert gw.generic.bytes_put < 3 * sent


def test_writes_during_a_compaction_are_kept(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, _ = config(tstorage, fresh_cid)
    a, b = make_storage(text), make_storage(text)
    for i in range(200):
        a.rpush(LIST, f'"{i}"')
        a.set(f"s{i % 5}", str(i))
    a.expire("s1", 3600)
    a.delete("s4")
    a.generic.compact()
    b.rpush(LIST, '"from b"')  # another gateway, after the checkpoint's watermark
    a.generic.compact()
    a.rpush(LIST, '"after"')
    c = make_storage(text)
    assert c.lrange(LIST, 0, -1) == [f'"{i}"' for i in range(200)] + ['"from b"', '"after"']
    assert [c.get(f"s{i}") for i in range(5)] == ["195", "196", "197", "198", None]
    assert 3500 < c.ttl("s1") <= 3600 and c.ttl("s0") == -1
    assert c.generic.loaded_bytes < 3 * c.generic.live_bytes()


def test_two_gateways_appending_to_one_list_agree_and_lose_nothing(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, _ = config(tstorage, fresh_cid)
    a, b = make_storage(text), make_storage(text)
    a.generic.max_staleness = b.generic.max_staleness = 3600.0  # catch up only when told
    for i in range(20):
        a.rpush(LIST, f'"a{i}"')
        b.rpush(LIST, f'"b{i}"')
        a.hset("znsocket.Dict:d", f"a{i}", "1")
        b.hset("znsocket.Dict:d", f"b{i}", "1")
    a.generic.catch_up(force=True)
    b.generic.catch_up(force=True)
    got = a.lrange(LIST, 0, -1)
    assert got == b.lrange(LIST, 0, -1) == make_storage(text).lrange(LIST, 0, -1)
    assert sorted(got) == sorted([f'"a{i}"' for i in range(20)] + [f'"b{i}"' for i in range(20)])
    assert a.hlen("znsocket.Dict:d") == b.hlen("znsocket.Dict:d") == 40


def test_keys_in_the_snapshot_format_are_read_and_then_compacted(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, gcid = config(tstorage, fresh_cid)

    def snap(state: dict[str, object]) -> tuple[tuple[int, int, int, int], bytes]:
        return (gcid, name_hash(str(state["k"])), 0, 0), json.dumps(state).encode()

    history = [
        {"k": LIST, "t": "list", "v": [f'"{i}"' for i in range(n)], "x": None} for n in range(1, 60)
    ]
    put_direct(tstorage, [snap(s) for s in history])  # 59 snapshots, as the old format wrote
    put_direct(
        tstorage,
        [
            snap({"k": "greeting", "t": "string", "v": "hi", "x": time.time() + 3600}),
            snap({"k": "znsocket.Dict:d", "t": "hash", "v": {"f": "1"}, "x": None}),
            snap({"k": "gone", "t": "string", "v": "x", "x": None}),
            snap({"k": "gone", "t": "none"}),
        ],
    )
    gw = make_storage(text)
    assert gw.lrange(LIST, 0, -1) == [f'"{i}"' for i in range(59)]
    assert gw.get("greeting") == "hi" and 3500 < gw.ttl("greeting") <= 3600
    assert gw.hgetall("znsocket.Dict:d") == {"f": "1"} and gw.exists("gone") == 0
    gw.generic.wait_compaction(10)  # the first start writes the new format
    gw.rpush(LIST, '"new"')
    again = make_storage(text)
    assert again.lrange(LIST, 0, -1) == [f'"{i}"' for i in range(59)] + ['"new"']
    assert again.get("greeting") == "hi" and again.ttl("greeting") > 3500
    assert again.exists("gone") == 0
    assert again.generic.loaded_bytes < stored_bytes(tstorage, gcid) / 10


def test_large_values_stay_in_tstorage_and_a_bounded_cache(
    make_storage: Make, tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    text, _ = config(tstorage, fresh_cid)
    text = text.replace(
        "[generic]", "[generic]\nlarge_value_bytes = 10000\nvalue_cache_bytes = 300000"
    )
    gw = make_storage(text)
    frames = [json.dumps({"i": i, "positions": str(i) * 100_000}) for i in range(40)]
    for frame in frames:
        gw.rpush(LIST, frame)
    gw.execute_many([("hset", ("znsocket.Dict:big", f"f{i}", frames[i]), {}) for i in range(10)])
    gw.set("small", "stays in memory")
    assert gw.generic.live_bytes() < 50_000  # ~4.5 MB of values held as references
    assert gw.generic.values.cached_bytes <= 300_000
    assert gw.lrange(LIST, 0, -1) == frames  # read back through the cache and TStorage
    assert gw.lindex(LIST, 7) == frames[7] and gw.hget("znsocket.Dict:big", "f3") == frames[3]
    assert gw.generic.values.cached_bytes <= 300_000
    # commands that compare values compare contents
    assert gw.lrem(LIST, 0, frames[5]) == 1 and gw.llen(LIST) == 39
    assert gw.linsert(LIST, "BEFORE", frames[6], frames[5]) == 40
    assert gw.lrange(LIST, 0, -1) == frames
    again = make_storage(text)
    assert again.generic.loaded_bytes < 100_000  # a start reads references, not values
    assert again.lrange(LIST, 0, -1) == frames
    assert again.hgetall("znsocket.Dict:big") == {f"f{i}": frames[i] for i in range(10)}
    assert again.get("small") == "stays in memory"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_a_gateway_holding_more_values_than_its_cache_stays_within_it(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    text, _ = config(tstorage, fresh_cid)
    text = text.replace("[generic]", "[generic]\nvalue_cache_bytes = 16777216")
    gw = start_gateway(text)
    client = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
    frames = znsocket.List(client, "trajectory")
    frames.append({"warm": "up"})
    before = rss_mb(gw.pid)
    chunk = [{"i": 0, "positions": "x" * 100_000}] * 20
    for i in range(100):  # 200 MB of frames in 100 List.extend calls
        frames.extend([{**f, "i": i * 20 + k} for k, f in enumerate(chunk)])
    grown = rss_mb(gw.pid) - before
    assert len(frames) == 2001 and frames[1234]["i"] == 1233
    assert grown < 120, f"the gateway grew by {grown:.0f} MB holding 200 MB of values"
    client.sio.disconnect()


@pytest.mark.slow
def test_a_large_extend_is_fast_and_other_clients_keep_being_served(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    """The shape of upstream's JavaScript chunking tests: 800 items of 10-25 KB appended
    to one unmapped List with one ``extend`` (before: 800 snapshots, gigabytes, minutes)."""
    text, gcid = config(tstorage, fresh_cid)
    gw = start_gateway(text)
    url = f"znsocket://127.0.0.1:{gw.port}"
    writer, other = znsocket.Client.from_url(url), znsocket.Client.from_url(url)
    items = [{"i": i, "data": "y" * (10_000 + 15 * i)} for i in range(800)]
    lst = znsocket.List(writer, "chunked")
    side = znsocket.Dict(other, "side")
    delays: list[float] = []
    done = threading.Event()

    def poke() -> None:
        while not done.is_set():
            t0 = time.monotonic()
            side["n"] = len(delays)
            delays.append(time.monotonic() - t0)

    poker = threading.Thread(target=poke)
    poker.start()
    t0 = time.monotonic()
    try:
        lst.extend(items)
    finally:
        done.set()
        poker.join(30)
    took = time.monotonic() - t0
    values = sum(len(json.dumps(item)) for item in items)
    assert len(lst) == 800 and lst[799] == items[799]
    assert took < 30, f"extend took {took:.1f} s"
    assert max(delays) < 5, f"another client waited {max(delays):.1f} s"
    assert stored_bytes(tstorage, gcid) < 1.2 * values + 100_000
    writer.sio.disconnect()
    other.sio.disconnect()
