"""Interop driver: exercises a znsocket server through whichever ``znsocket`` imports.

Run as ``python driver.py znsocket://127.0.0.1:PORT`` by upstream's interpreter (the
released znsocket 0.3.0) or ours. It prints one JSON document: the observable result of
every step (values, lengths, exception class names). Tests compare these documents
between client/server pairings; nothing here knows which implementation runs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import znsocket


def outcome(fn: Callable[[], Any]) -> Any:
    """The JSON-able result of ``fn``, or the class name of what it raised."""
    try:
        value = fn()
    except Exception as exc:
        return {"raised": type(exc).__name__}
    if isinstance(value, set):
        return {"set": sorted(value)}
    if isinstance(value, (znsocket.List, znsocket.Dict)):
        return {"proxy": value.key}
    return value


def commands(c: Any) -> dict[str, Any]:
    r: dict[str, Any] = {}
    r["set"] = outcome(lambda: c.set("name", "Fabian"))
    r["get"] = outcome(lambda: c.get("name"))
    r["get_missing"] = outcome(lambda: c.get("missing"))
    r["hset"] = outcome(lambda: c.hset("h", mapping={"a": "1", "b": "2"}))
    r["hgetall"] = outcome(lambda: c.hgetall("h"))
    r["hkeys"] = outcome(lambda: c.hkeys("h"))
    r["rpush"] = [outcome(functools.partial(c.rpush, "l", v)) for v in ("x", "y", "z")]
    r["lrange"] = outcome(lambda: c.lrange("l", 0, -1))
    r["lindex_out"] = outcome(lambda: c.lindex("l", 10))
    r["lset_nokey"] = outcome(lambda: c.lset("nolist", 0, "v"))
    r["lindex_none"] = outcome(lambda: c.lindex("l", None))
    r["sadd"] = outcome(lambda: c.sadd("s", "m"))
    r["smembers"] = outcome(lambda: c.smembers("s"))
    r["smembers_wrongtype"] = outcome(lambda: c.smembers("name"))
    r["hset_on_string"] = outcome(lambda: c.hset("name", "f", "v"))
    r["copy"] = [outcome(lambda: c.copy("name", "name2")), outcome(lambda: c.copy("name", "name2"))]
    r["exists_delete"] = [outcome(lambda: c.exists("name2")), outcome(lambda: c.delete("name2"))]
    r["unknown"] = outcome(lambda: c.call("nosuchcmd", "x"))
    return r


def pipelines(c: Any) -> dict[str, Any]:
    r: dict[str, Any] = {}
    p = c.pipeline()
    p.set("p1", "v1").get("p1").hset("ph", "f", "v").smembers("s").lindex("l", 0)
    r["mixed"] = outcome(lambda: [sorted(x) if isinstance(x, set) else x for x in p.execute()])
    p = c.pipeline()
    for i in range(1000):
        p.hset("p1000", f"f{i}", "v")
    r["thousand"] = outcome(lambda: sum(p.execute()))
    p = c.pipeline()
    p.set("ok", "1")
    p.set("bad", None)
    r["error"] = outcome(p.execute)
    return r


def lists(c: Any) -> dict[str, Any]:
    r: dict[str, Any] = {}
    lst = znsocket.List(c, "list:1")
    lst.extend(["a", "b", "c", "d"])
    r["every_second"] = lst[::2]
    lst.append({"k": [1, 2]})
    lst[0] = "A"
    del lst[1]
    lst.insert(1, "ins")
    r["after_edits"] = lst[:]
    r["pop"] = lst.pop()
    r["len"] = len(lst)
    r["negative"] = lst[-1]
    r["out_of_range"] = outcome(lambda: lst[99])
    r["raw"] = c.lrange("znsocket.List:list:1", 0, -1)
    inner = znsocket.Dict(c, "inner")
    inner["x"] = 1
    lst.append(inner)
    r["nested"] = lst[-1]["x"]
    r["circular"] = outcome(lambda: lst.append(lst))
    r["copy"] = lst.copy("list:copy")[:2]
    r["copy_again"] = outcome(lambda: lst.copy("list:copy"))
    r["repr"] = repr(lst)
    base = znsocket.List(c, "fb:base")
    base.extend([1, 2, 3])
    frozen = znsocket.List(c, "fb:frozen", fallback="fb:base", fallback_policy="frozen")
    r["frozen_reads"] = [len(frozen), frozen[1]]
    frozen.append(4)
    r["frozen_after_append"] = frozen[:]
    r["nan"] = outcome(lambda: lst.append(float("nan")))
    return r


def dicts(c: Any) -> dict[str, Any]:
    r: dict[str, Any] = {}
    d = znsocket.Dict(c, "dict:1")
    d["Hello"] = "World"
    d.update({"b": [1, 2], "c": {"x": None}})
    d["Hello"] = "Again"
    r["items"] = [list(x) for x in d.items()]
    r["keys"] = d.keys()
    r["missing"] = outcome(lambda: d["nope"])
    r["contains"] = ["b" in d, "zz" in d]
    r["pop"] = d.pop("b")
    r["len"] = len(d)
    r["raw"] = c.hgetall("znsocket.Dict:dict:1")
    r["repr"] = repr(d)
    r["or"] = d | {"z": 1}
    r["circular"] = outcome(lambda: d.__setitem__("self", d))
    return r


def segments(c: Any) -> dict[str, Any]:
    origin = znsocket.List(c, "seg:origin")
    origin.extend(range(5))
    s = znsocket.Segments(c, origin, "seg")
    s[2] = "x"
    s[0] = "y"
    del s[-1]
    s.insert(1, "i")
    return {"items": s[:], "raw": s.get_raw(), "len": len(s), "origin": origin[:]}


def adapters(c: Any, c2: Any) -> dict[str, Any]:
    r: dict[str, Any] = {}
    data = [1, 2, 3, 4, 5]
    znsocket.ListAdapter(socket=c, key="data", object=data)
    shared = znsocket.List(r=c2, key="data")
    r["list"] = [len(shared), shared[0], shared[1:3], shared[-1]]
    data.append(6)
    r["list_live"] = [len(shared), shared[-1]]
    r["list_frozen"] = outcome(lambda: shared.append(7))
    user = {"name": "John", "age": 30}
    znsocket.DictAdapter(socket=c, key="user", object=user)
    ud = znsocket.Dict(r=c2, key="user")
    r["dict"] = [ud["name"], ud.keys(), "age" in ud, len(ud), outcome(lambda: ud["zip"])]
    r["taken"] = outcome(lambda: znsocket.ListAdapter(socket=c, key="list:1", object=[1]))
    copied = shared.copy("data:copy")
    r["copy"] = copied[:]

    def transform(item, key, socket, converter=None, convert_nan=False):  # type: ignore[no-untyped-def]
        return znsocket.DictAdapter(key, socket, {"v": item}, converter, convert_nan)

    znsocket.ListAdapter(socket=c, key="nested", object=[10, 20], item_transform_callback=transform)
    nested = znsocket.List(c2, "nested")
    r["nested"] = [outcome(lambda: nested[1]), nested[1]["v"]]
    return r


def refresh(c: Any, c2: Any) -> list[Any]:
    seen: list[Any] = []
    znsocket.List(c2, "watched").on_refresh(seen.append)
    znsocket.Dict(c2, "watchedd").on_refresh(seen.append)
    lst = znsocket.List(c, "watched")
    lst.extend([1, 2])
    lst.append(3)
    lst[0] = 0
    del lst[0]
    d = znsocket.Dict(c, "watchedd")
    d["a"] = 1
    d.update({"b": 2})
    deadline = time.monotonic() + 5
    while len(seen) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    return seen


def large(c: Any) -> dict[str, Any]:
    rnd = random.Random(42)
    value = base64.b64encode(rnd.randbytes(6 * 1024 * 1024)).decode()  # 8 MiB text
    r: dict[str, Any] = {"hset": outcome(lambda: c.hset("big", "f", value))}
    got = c.hget("big", "f")
    r["roundtrip"] = got == value
    r["sha"] = hashlib.sha256(got.encode()).hexdigest()[:16]
    d = znsocket.Dict(c, "bigdict")
    d["v"] = {"text": "abc" * 200_000}
    r["compressed_dict"] = len(d["v"]["text"])
    return r


def main() -> None:
    url = sys.argv[1]
    c = znsocket.Client.from_url(url)
    c2 = znsocket.Client.from_url(url)
    c.flushall()
    result = {
        "commands": commands(c),
        "pipelines": pipelines(c),
        "lists": lists(c),
        "dicts": dicts(c),
        "segments": segments(c),
        "adapters": adapters(c, c2),
        "refresh": refresh(c, c2),
        "large": large(c),
    }
    c.flushall()
    c.sio.disconnect()
    c2.sio.disconnect()
    print(json.dumps(result, sort_keys=True, default=repr))


if __name__ == "__main__":
    main()
