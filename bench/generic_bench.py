#!/usr/bin/env python3
"""Unmapped ("generic") keys: the gateway next to our znsocket server, in memory and on Redis.

Two parts, both on 127.0.0.1 with real server processes:

``session`` - a ZnDraw-like session through ``znsocket.Client`` + ``List``/``Dict``, one
client, run against (1) our znsocket server with ``--storage memory``, (2) our znsocket
server with ``--storage redis://`` on a private redis-server with ``appendonly yes``,
``appendfsync everysec``, (3) the gateway with an embedded TStorage (no map rule matches,
so every key is generic):

* ``append``  ``--frames`` frames (default 10,000) of about ``--frame-kb`` KB of JSON
  (default 50) appended one by one with ``List.append``;
* ``reads``   1,000 ``lst[i]`` at random ``i``;
* ``slices``  100 ``lst[a:a + 100]`` at random ``a``;
* ``dict``    ``--fields`` (default 10,000) ``d[f] = {...}`` on one ``Dict``, one by one.

For the gateway it also reports the bytes of the records under the generic cid in
TStorage (everything the gateway wrote there, log and checkpoints) against the bytes of the
values the client sent (the JSON text of frames and fields), and the resident memory of the
gateway process and of its TStorage child.

``restart`` - ``--writes`` (default 100,000 and 1,000,000) writes to 1,000 generic keys
(``hset`` of one of 50 fields per key, 100-byte values, in pipelines of 100 writes to one
key, through ``GatewayStorage`` in this process on a ``tstorage-server`` process), then the
time of a fresh ``GatewayStorage.load()`` (what a gateway does at start) and the bytes it
read.

Usage::

    .venv/bin/python bench/generic_bench.py                       # full size
    .venv/bin/python bench/generic_bench.py --frames 1000 --fields 1000 --writes 10000 100000
    .venv/bin/python bench/generic_bench.py --only restart
    .venv/bin/python bench/generic_bench.py --only session --servers gateway \
        --frames 4000 --frame-kb 50 --fields 100 --value-cache-mb 32     # RSS bound
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import znsocket  # noqa: E402
from gateway.config import DEFAULT_GENERIC_CID, load_config  # noqa: E402
from gateway.storage import GatewayStorage, LinkSettings, TStorageLink  # noqa: E402
from tests._servers import ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import BytesPayloadType  # noqa: E402
from tstorage_client.record import Key  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def stored_bytes(port: int, cid: int) -> tuple[int, int]:
    """(records, payload bytes) under ``cid`` in the TStorage at ``port``."""
    total = [0, 0]

    def count(records: Any) -> None:
        for r in records:
            total[0] += 1
            total[1] += len(r.value)

    with Channel("127.0.0.1", port, BytesPayloadType(), timeout=60) as ch:
        res = ch.get_stream(
            Key(cid, -(2**63), -(2**31), -(2**63), -(2**63)),
            Key(cid + 1, 2**63 - 1, 2**31 - 1, 2**63 - 1, 2**63 - 1),
            count,
        )
        assert res.is_ok(), res.status
    return total[0], total[1]


def make_frame(i: int, kb: int) -> dict[str, Any]:
    """A frame like ZnDraw's: numbers and a few properties, about ``kb`` KB as JSON."""
    rng = random.Random(i)
    n = kb * 1024 // 39
    return {
        "index": i,
        "numbers": [6] * n,
        "positions": [[round(rng.uniform(-50, 50), 6) for _ in range(3)] for _ in range(n)],
        "info": {"energy": rng.random(), "step": i},
    }


# ------------------------------------------------------------------- session
def session(url: str, args: argparse.Namespace) -> dict[str, Any]:
    c = znsocket.Client.from_url(url)
    lst = znsocket.List(c, "frames")
    d = znsocket.Dict(c, "properties")
    base = [make_frame(i, args.frame_kb) for i in range(16)]
    out: dict[str, Any] = {}
    value_bytes = 0
    t0 = time.perf_counter()
    for i in range(args.frames):
        frame = base[i % len(base)]
        frame["index"] = i
        lst.append(frame)
    out["append_s"] = round(time.perf_counter() - t0, 2)
    value_bytes += sum(len(json.dumps({**base[i % 16], "index": i})) for i in range(args.frames))
    rng = random.Random(1)
    t0 = time.perf_counter()
    for _ in range(1000):
        lst[rng.randrange(args.frames)]
    out["reads_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    for _ in range(100):
        a = rng.randrange(max(1, args.frames - 100))
        got = lst[a : a + 100]
        assert len(got) == min(100, args.frames - a)
    out["slices_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    for i in range(args.fields):
        value = {"energy": i * 0.5, "forces": [i, i + 1, i + 2], "label": f"frame-{i}"}
        d[f"field-{i}"] = value
    out["dict_s"] = round(time.perf_counter() - t0, 2)
    value_bytes += sum(
        len(json.dumps({"energy": i * 0.5, "forces": [i, i + 1, i + 2], "label": f"frame-{i}"}))
        for i in range(args.fields)
    )
    assert len(lst) == args.frames and len(d) == args.fields
    out["total_s"] = round(sum(out[k] for k in ("append_s", "reads_s", "slices_s", "dict_s")), 2)
    out["value_mb"] = round(value_bytes / 1e6, 1)
    c.sio.disconnect()
    return out


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    proc = spawn(["znsocket", "--host", "127.0.0.1", "--port", "0", "--storage", "memory"])
    try:
        out = session(f"znsocket://127.0.0.1:{proc.port}", args)
        out["server_rss_mb"] = rss_mb(proc.pid)
        return out
    finally:
        proc.stop()


def run_redis(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import redis

    port = free_port()
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    rdir = tmp / "redis"
    rdir.mkdir()
    rproc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(rdir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        proc = spawn(
            [
                "znsocket",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--storage",
                f"redis://127.0.0.1:{port}",
            ]
        )
        try:
            out = session(f"znsocket://127.0.0.1:{proc.port}", args)
            out["server_rss_mb"] = rss_mb(proc.pid)
            out["redis_rss_mb"] = rss_mb(rproc.pid)
            return out
        finally:
            proc.stop()
    finally:
        rproc.terminate()
        rproc.wait(30)


def gateway_config(data_dir: Path, ts_port: int, generic: str = "") -> str:
    return textwrap.dedent(
        f"""
        [tstorage.embedded]
        data_dir = "{data_dir}"
        port = {ts_port}

        [generic]
        {generic}

        [[map]]
        pattern = "meters/{{mid:int}}/{{moid:int}}"
        cid = 1
        mid = "{{mid}}"
        moid = "{{moid}}"
        codec = "struct:<d"
        """
    )


def run_gateway(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    ts_port = free_port()
    config = tmp / "gateway.toml"
    generic = []
    if args.large_value_kb is not None:
        generic.append(f"large_value_bytes = {args.large_value_kb * 1024}")
    if args.value_cache_mb is not None:
        generic.append(f"value_cache_bytes = {args.value_cache_mb * 1024 * 1024}")
    config.write_text(gateway_config(tmp / "data", ts_port, "\n        ".join(generic)))
    proc: ServerProcess = spawn(
        ["gateway", "run", "--config", str(config), "--port", "0", "--log-level", "WARNING"],
        timeout=120,
    )
    try:
        out = session(f"znsocket://127.0.0.1:{proc.port}", args)
        out["server_rss_mb"] = rss_mb(proc.pid)
        out["tstorage_rss_mb"] = sum(rss_mb(p) for p in children(proc.pid))
        records, size = stored_bytes(ts_port, DEFAULT_GENERIC_CID)
        out["tstorage_records"] = records
        out["tstorage_mb"] = round(size / 1e6, 1)
        out["tstorage_over_values"] = round(size / (out["value_mb"] * 1e6), 2)
        return out
    except Exception:
        print(proc.text()[-5000:], file=sys.stderr)
        raise
    finally:
        proc.stop()


# ------------------------------------------------------------------- restart
def restart(writes: int, tmp: Path) -> dict[str, Any]:
    data = tmp / f"restart-{writes}"
    ts = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"])
    config = tmp / f"restart-{writes}.toml"
    rules = gateway_config(data, 0).split("[[map]]", 1)[1]
    config.write_text(f'[tstorage]\nhost = "127.0.0.1"\nport = {ts.port}\n\n[[map]]{rules}')
    cfg = load_config(config)
    links: list[TStorageLink] = []

    def open_storage() -> GatewayStorage:
        link = TStorageLink(LinkSettings.for_config(cfg.tstorage, "127.0.0.1", ts.port))
        links.append(link)
        return GatewayStorage(link, cfg)

    try:
        gw = open_storage()
        gw.load()
        rng = random.Random(writes)
        value = "v" * 100
        t0 = time.perf_counter()
        done = 0
        while done < writes:
            key = f"znsocket.Dict:key-{rng.randrange(1000)}"
            calls = [("hset", (key, f"f{rng.randrange(50)}", value), {}) for _ in range(100)]
            res = gw.execute_many(calls)
            assert len(res) == 100 and not isinstance(res[-1], Exception), res[-1]
            done += 100
        write_s = time.perf_counter() - t0
        gw.generic.wait_compaction(600)
        live = gw.generic.live_bytes()
        records, history = stored_bytes(ts.port, cfg.generic.cid)
        t0 = time.perf_counter()
        again = open_storage()
        again.load()
        load_s = time.perf_counter() - t0
        assert again.generic.mem.content.keys() == gw.generic.mem.content.keys()
        return {
            "writes": writes,
            "write_s": round(write_s, 1),
            "records_in_tstorage": records,
            "history_mb": round(history / 1e6, 1),
            "live_mb": round(live / 1e6, 2),
            "start_read_mb": round(again.generic.loaded_bytes / 1e6, 2),
            "start_s": round(load_s, 3),
        }
    finally:
        for link in links:
            link.close()
        ts.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--frame-kb", type=int, default=50)
    p.add_argument("--fields", type=int, default=10_000)
    p.add_argument("--writes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--only", choices=["session", "restart"])
    p.add_argument("--servers", nargs="+", default=["memory", "redis", "gateway"])
    p.add_argument("--large-value-kb", type=int, help="the gateway's [generic] large_value_bytes")
    p.add_argument("--value-cache-mb", type=int, help="the gateway's [generic] value_cache_bytes")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="generic-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.only in (None, "session"):
            runs: dict[str, Callable[[], dict[str, Any]]] = {
                "memory": lambda: run_memory(args),
                "redis": lambda: run_redis(args, tmp),
                "gateway": lambda: run_gateway(args, tmp),
            }
            for name, run in runs.items():
                if name in args.servers:
                    results[name] = run()
                    print(name, json.dumps(results[name]), flush=True)
            if "gateway" in results and "redis" in results:
                results["gateway_over_redis"] = round(
                    results["gateway"]["total_s"] / results["redis"]["total_s"], 2
                )
                print("gateway_over_redis", results["gateway_over_redis"], flush=True)
        if args.only in (None, "restart"):
            for n in args.writes:
                results[f"restart_{n}"] = restart(n, tmp)
                print(f"restart_{n}", json.dumps(results[f"restart_{n}"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
