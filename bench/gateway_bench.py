#!/usr/bin/env python3
"""The gateway against our in-memory znsocket server, on the same client workload.

Workload (through ``znsocket.Client`` + ``List``/``Dict``, one client):

* ``slice_last_1000``  ``lst[-1000:]`` on a series of ``--records`` elements (default 1M)
* ``len``              ``len(lst)``
* ``index``            ``lst[i]`` at random ``i``
* ``append``           ``lst.append(x)`` for 10,000 points (reported as points/s)
* ``append_writers``   ``--writers`` (default 4 and 16) client processes appending one point
                       at a time to their own series for ``--window`` seconds: the server's
                       append capacity (points/s), where concurrent PUTs share a commit
* ``dict_16``          ``d.items()`` of a Dict whose 16 fields each have ``--history``
                       records behind them (the latest one is shown)

The gateway runs with an embedded TStorage (a child process) in a temporary directory; its
series are loaded with ``tstorage_client`` directly (PUT in large batches), then the
gateway's index is warmed by one ``len``. The in-memory server gets the same elements by
pipelined ``rpush``. Every server is a real process on 127.0.0.1.

Usage::

    .venv/bin/python bench/gateway_bench.py                # 1M records, a few minutes
    .venv/bin/python bench/gateway_bench.py --records 100000 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import random
import socket
import statistics
import struct
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import znsocket  # noqa: E402
from tests._config_text import meter_rules  # noqa: E402
from tests._servers import ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import BytesPayloadType  # noqa: E402
from tstorage_client.record import Key, Record  # noqa: E402

CID = 1
SERIES_MID, SERIES_MOID = 1, 1
DICT_MID = 2
FIELDS = 16
APPEND_POINTS = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Median and p99 latency in milliseconds over ``repeats`` calls."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
    }


def value_of(i: int) -> float:
    return i * 0.5


def load_tstorage(port: int, records: int, history: int) -> None:
    base = 1_000_000_000
    with Channel("127.0.0.1", port, BytesPayloadType(), timeout=60) as ch:
        batch = 200_000
        for start in range(0, records, batch):
            data = [
                Record(
                    Key(CID, SERIES_MID, SERIES_MOID, base + i * 1000),
                    struct.pack("<d", value_of(i)),
                )
                for i in range(start, min(records, start + batch))
            ]
            assert ch.put(data).is_ok()
        data = [
            Record(Key(CID, DICT_MID, moid, base + i * 1000), struct.pack("<d", value_of(i) + moid))
            for moid in range(FIELDS)
            for i in range(history)
        ]
        assert ch.put(data).is_ok()


def load_memory(c: znsocket.Client, records: int, history: int) -> None:
    key = "znsocket.List:meters/1/1"
    chunk = 10_000
    for start in range(0, records, chunk):
        pipe = c.pipeline()
        for i in range(start, min(records, start + chunk)):
            pipe.rpush(key, json.dumps(value_of(i)))
        pipe.execute()
    pipe = c.pipeline()
    for moid in range(FIELDS):
        pipe.hset("znsocket.Dict:meters/2", str(moid), json.dumps(value_of(history - 1) + moid))
    pipe.execute()


def workload(
    c: znsocket.Client, records: int, repeats: int, history: int, appends: int
) -> dict[str, Any]:
    lst = znsocket.List(c, "meters/1/1")
    d = znsocket.Dict(c, "meters/2")
    t0 = time.perf_counter()
    n = len(lst)
    first_len_s = time.perf_counter() - t0
    assert n == records, (n, records)
    tail = lst[-1000:]
    assert tail[-1] == value_of(records - 1) and len(tail) == 1000
    items = dict(d.items())
    assert len(items) == FIELDS and items["3"] == value_of(history - 1) + 3
    rng = random.Random(7)
    out: dict[str, Any] = {"first_len_s": round(first_len_s, 3)}
    out["slice_last_1000"] = timed(lambda: lst[-1000:], max(5, repeats // 20))
    out["len"] = timed(lambda: len(lst), repeats)
    out["index"] = timed(lambda: lst[rng.randrange(records)], repeats)
    out["dict_16"] = timed(lambda: d.items(), repeats)
    # One connection appends one point at a time; the other connections of this run are
    # closed first, as upstream's List.append broadcasts a refresh to every other client.
    c.sio.disconnect()
    c = znsocket.Client.from_url(c.address)
    app = znsocket.List(c, "meters/1/2")
    t0 = time.perf_counter()
    for i in range(appends):
        app.append(float(i))
    elapsed = time.perf_counter() - t0
    assert len(app) == appends
    c.sio.disconnect()
    out["append"] = {"points_per_s": round(appends / elapsed, 1), "total_s": round(elapsed, 2)}
    return out


def _append_writer(address: str, k: int, start_at: Any, window: float, ready: Any, q: Any) -> None:
    # One writer process: appends to its own series during the shared window.
    try:
        import znsocket as zn

        c = zn.Client.from_url(address)
        lst = zn.List(c, f"meters/{100 + k}/1")
        lst.append(0.0)
        ready.wait(timeout=120)
        while time.time() < start_at.value:
            time.sleep(0.001)
        end = start_at.value + window
        n = 0
        while time.time() < end:
            lst.append(float(n))
            n += 1
        q.put({"count": n})
    except Exception as exc:  # reported by the parent
        with contextlib.suppress(Exception):
            ready.abort()
        q.put({"error": repr(exc)})


def append_writers(address: str, writers: int, window: float) -> dict[str, Any]:
    """``writers`` processes appending one point at a time for ``window`` seconds at once."""
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(writers + 1)
    start_at = ctx.Value("d", time.time() + 1e9)
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_append_writer, args=(address, k, start_at, window, ready, q))
        for k in range(writers)
    ]
    for p in procs:
        p.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(timeout=180)
    start_at.value = time.time() + 0.2
    results = [q.get(timeout=window + 180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"append writers failed: {errors}")
    total = sum(r["count"] for r in results)
    return {"writers": writers, "window_s": window, "points_per_s": round(total / window, 1)}


def gateway_config(data_dir: Path, ts_port: int) -> str:
    return textwrap.dedent(
        f"""
        [tstorage.embedded]
        data_dir = "{data_dir}"
        port = {ts_port}

        """
    ) + meter_rules(CID)


def run_gateway(
    records: int,
    repeats: int,
    history: int,
    appends: int,
    writers: list[int],
    window: float,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        ts_port = free_port()
        config = Path(tmp) / "gateway.toml"
        config.write_text(gateway_config(Path(tmp) / "data", ts_port))
        proc: ServerProcess = spawn(
            ["gateway", "run", "--config", str(config), "--port", "0", "--log-level", "WARNING"]
        )
        try:
            t0 = time.perf_counter()
            load_tstorage(ts_port, records, history)
            load_s = time.perf_counter() - t0
            c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{proc.port}")
            out = workload(c, records, repeats, history, appends)
            out["load_s"] = round(load_s, 2)
            out["append_writers"] = {str(n): append_writers(c.address, n, window) for n in writers}
            return out
        except Exception:
            print(proc.text()[-5000:], file=sys.stderr)
            raise
        finally:
            proc.stop()


def run_memory(
    records: int, repeats: int, history: int, appends: int, writers: list[int], window: float
) -> dict[str, Any]:
    proc = spawn(
        [
            "znsocket",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--storage",
            "memory",
            "--log-level",
            "WARNING",
        ]
    )
    try:
        c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{proc.port}")
        t0 = time.perf_counter()
        load_memory(c, records, history)
        load_s = time.perf_counter() - t0
        c.sio.disconnect()  # a fresh connection, like the gateway's
        c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{proc.port}")
        out = workload(c, records, repeats, history, appends)
        out["load_s"] = round(load_s, 2)
        out["append_writers"] = {str(n): append_writers(c.address, n, window) for n in writers}
        return out
    finally:
        proc.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=1_000_000, help="series length (default 1M)")
    ap.add_argument("--history", type=int, default=1000, help="records behind each Dict field")
    ap.add_argument("--repeats", type=int, default=200, help="samples per latency figure")
    ap.add_argument("--appends", type=int, default=APPEND_POINTS, help="points appended one by one")
    ap.add_argument(
        "--writers", default="4,16", help="writer processes for the append capacity (comma list)"
    )
    ap.add_argument("--window", type=float, default=3.0, help="seconds per append capacity run")
    ap.add_argument("--json", dest="json_out", help="write the results here")
    args = ap.parse_args(argv)
    writers = [int(n) for n in args.writers.split(",") if n]
    results: dict[str, Any] = {
        "records": args.records,
        "embedded_tstorage": "process",
        "memory": run_memory(
            args.records, args.repeats, args.history, args.appends, writers, args.window
        ),
        "gateway": run_gateway(
            args.records,
            args.repeats,
            args.history,
            args.appends,
            writers,
            args.window,
        ),
    }
    ratios = {}
    for op in ("slice_last_1000", "len", "index", "dict_16"):
        ratios[op] = round(
            results["gateway"][op]["median_ms"] / results["memory"][op]["median_ms"], 2
        )
    for n in writers:
        ratios[f"append_throughput_{n}_writers"] = round(
            results["gateway"]["append_writers"][str(n)]["points_per_s"]
            / results["memory"]["append_writers"][str(n)]["points_per_s"],
            2,
        )
    ratios["append_throughput"] = round(
        results["gateway"]["append"]["points_per_s"] / results["memory"]["append"]["points_per_s"],
        2,
    )
    results["gateway_vs_memory"] = ratios
    text = json.dumps(results, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
