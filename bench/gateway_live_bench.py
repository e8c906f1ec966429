#!/usr/bin/env python3
"""Live time series through the gateway: follow latency and downsampling cost.

Two measurements, on real processes on 127.0.0.1 (a ``tstorage-server`` and a
``gateway run`` on it, default ``follow_interval`` 0.25 s):

* **follow latency** - a plain ``tstorage_client`` writer PUTs one record into a series
  that ``N`` ``znsocket.Client`` connections watch (each read it once and registered a
  ``refresh`` callback); the latency is the time from just before the PUT to each client's
  callback (also reported from the PUT's acknowledgement, and the PUT's own time, which
  includes TStorage's commit). Writes are spaced by a random 0.05-0.35 s so they land anywhere in the follow
  cycle; one unmeasured write comes first. Reported: median and p99 over all
  (write, client) pairs, for N = 1 and N = 100.
  The watching clients run in child processes, 25 per process.
* **downsampling** - ``ts:range`` with ``buckets=1000`` (``align="equal"``: equal slices,
  as the figures in ``bench/gateway_live.md`` were made) over a series of ``--records``
  records (default 10,000,000, loaded with ``tstorage_client`` numpy PUTs): the first
  request (which builds the gateway's index by streaming the series from TStorage) and
  then warm requests (median, p99), plus the numpy part alone in this process
  (:func:`gateway.timeseries.downsample.downsample` on arrays of the same size).

Usage::

    .venv/bin/python bench/gateway_live_bench.py                     # about 2 minutes
    .venv/bin/python bench/gateway_live_bench.py --records 1000000 --writes 20
    .venv/bin/python bench/gateway_live_bench.py --only downsample --first-runs 5
    .venv/bin/python bench/gateway_live_bench.py --only downsample --tstorage 127.0.0.1:5930
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import znsocket  # noqa: E402
from gateway.storage.link import LinkSettings, TStorageLink  # noqa: E402
from gateway.timeseries.downsample import downsample  # noqa: E402
from tests._servers import ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import NumpyPayloadType  # noqa: E402

CID = 1
BIG = (1, 1)  # mid, moid of the large series
LIVE = (2, 1)  # the watched series
T0 = 800_000_000 * 10**9


def stats(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    return {
        "median_ms": round(statistics.median(s), 1),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))], 1),
        "max_ms": round(s[-1], 1),
        "samples": len(s),
    }


def put_columns(port: int, mid: int, moid: int, caps: np.ndarray, values: np.ndarray) -> None:
    n = len(caps)
    with Channel("127.0.0.1", port, NumpyPayloadType("<f8"), timeout=120) as ch:
        res = ch.put(
            {  # type: ignore[arg-type]  # numpy payload types take a dict of columns
                "cid": np.full(n, CID, dtype=np.int32),
                "mid": np.full(n, mid, dtype=np.int64),
                "moid": np.full(n, moid, dtype=np.int32),
                "cap": caps,
                "v0": values,
            }
        )
        assert res.is_ok(), res


WATCHER = r"""
import sys, threading, time
import znsocket
url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = threading.Lock()
clients = []
for i in range(n):
    c = znsocket.Client.from_url(url)
    len(znsocket.List(c, key.split(":", 1)[1]))  # reading the key: the gateway follows it
    def on_refresh(_data, i=i):
        t = time.monotonic()
        with out:
            print(i, t, flush=True)
    c.refresh_callbacks[key] = on_refresh
    clients.append(c)
print("ready", flush=True)
sys.stdin.read()
for c in clients:
    c.sio.disconnect()
"""
PER_PROCESS = 25


def follow_latency(gw: ServerProcess, ts: ServerProcess, clients: int, writes: int) -> dict:
    """Watchers in child processes (25 each) so their callbacks do not queue on one GIL;
    time.monotonic() is one clock for every process of the machine."""
    url = f"znsocket://127.0.0.1:{gw.port}"
    key = f"znsocket.List:meters/{LIVE[0]}/{LIVE[1]}"
    arrivals: dict[tuple[int, int], list[float]] = {}
    cond = threading.Condition()
    procs = []
    for w in range((clients + PER_PROCESS - 1) // PER_PROCESS):
        n = min(PER_PROCESS, clients - w * PER_PROCESS)
        p = subprocess.Popen(
            [sys.executable, "-c", WATCHER, url, key, str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
        for i in range(n):
            arrivals[(w, i)] = []

        def pump(p: subprocess.Popen[str] = p, w: int = w) -> None:
            assert p.stdout is not None
            for line in p.stdout:
                i, t = line.split()
                with cond:
                    arrivals[(w, int(i))].append(float(t))
                    cond.notify_all()

        threading.Thread(target=pump, daemon=True).start()
        procs.append(p)
    rng = random.Random(11)
    latencies: list[float] = []
    after_ack: list[float] = []
    put_ms: list[float] = []
    cap = T0 + 10**12 * (clients + 1)
    with Channel("127.0.0.1", ts.port, NumpyPayloadType("<f8"), timeout=30) as ch:
        for w in range(-1, writes):  # write -1 warms the path up and is not counted
            time.sleep(rng.uniform(0.05, 0.35))
            seen = {k: len(a) for k, a in arrivals.items()}
            cap += 1
            sent = time.monotonic()
            res = ch.put(
                {  # type: ignore[arg-type]
                    "cid": np.asarray([CID], dtype=np.int32),
                    "mid": np.asarray([LIVE[0]], dtype=np.int64),
                    "moid": np.asarray([LIVE[1]], dtype=np.int32),
                    "cap": np.asarray([cap], dtype=np.int64),
                    "v0": np.asarray([float(max(w, 0))]),
                }
            )
            assert res.is_ok(), res
            acked = time.monotonic()

            def all_in(seen: dict[tuple[int, int], int] = seen) -> bool:
                return all(len(a) > seen[k] for k, a in arrivals.items())

            with cond:
                cond.wait_for(all_in, 5.0)
                if w < 0:
                    continue
                for k, a in arrivals.items():
                    if len(a) > seen[k]:
                        latencies.append((a[seen[k]] - sent) * 1e3)
                        after_ack.append((a[seen[k]] - acked) * 1e3)
                put_ms.append((acked - sent) * 1e3)
    missing = writes * clients - len(latencies)
    for p in procs:
        p.communicate("", timeout=30)
    return {
        "clients": clients,
        "writes": writes,
        "missed": missing,
        **stats(latencies),
        "from_put_ack": stats(after_ack),
        "put": stats(put_ms),
    }


def downsample_requests(
    gw: ServerProcess, records: int, repeats: int, interval: float = 0.01
) -> dict[str, Any]:
    """The first ``ts:range`` with ``buckets=1000`` (builds the index), then warm ones.

    Meanwhile another client asks ``ts:info`` of a small series every ``interval`` seconds
    (0: no other client): how long other clients wait while a large index builds.
    """
    out: dict[str, Any] = {}
    url = f"znsocket://127.0.0.1:{gw.port}"
    c = znsocket.Client.from_url(url)
    other = znsocket.Client.from_url(url)
    small = f"meters/{LIVE[0]}/{LIVE[1]}"
    other.call("ts:info", small)  # its index is built before the measurement
    key = f"meters/{BIG[0]}/{BIG[1]}"
    busy = threading.Event()
    waits: list[float] = []

    def meanwhile() -> None:
        busy.wait()
        while busy.is_set():
            t = time.perf_counter()
            other.call("ts:info", small)
            waits.append((time.perf_counter() - t) * 1e3)
            time.sleep(interval)  # a client calling now and then, not a load generator

    poller = threading.Thread(target=meanwhile, daemon=True)
    if interval > 0:
        poller.start()
        busy.set()
    t0 = time.perf_counter()
    first = c.call("ts:range", key, buckets=1000, align="equal")
    out["downsample_first_s"] = round(time.perf_counter() - t0, 2)
    busy.clear()
    if interval > 0:
        poller.join(10)
    assert first["data"]["count"] == records, first
    if waits:
        out["other_client_during_first"] = stats(waits)
    other.sio.disconnect()
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        got = c.call("ts:range", key, buckets=1000, align="equal")
        warm.append((time.perf_counter() - t0) * 1e3)
        assert len(got["data"]["t"]) == 1000
    if warm:
        out["downsample_warm"] = stats(warm)
    c.sio.disconnect()
    return out


def raw_streams(host: str, port: int, runs: int) -> list[dict[str, float]]:
    """The big series streamed by the gateway's link alone (no index): wall and CPU time
    of this process (the client side; TStorage works in its own process meanwhile)."""
    lo = (CID, BIG[0], BIG[1], -(2**63) + 1, -(2**63))
    hi = (CID + 1, BIG[0] + 1, BIG[1] + 1, 2**63 - 1, 2**63 - 1)
    out = []
    for _ in range(runs):
        link = TStorageLink(LinkSettings(host, port, timeout=120))
        count = [0]

        def sink(arr: Any, count: list[int] = count) -> None:
            count[0] += len(arr)

        t0, c0 = time.perf_counter(), time.process_time()
        try:
            link.stream_columns(lo, hi, 8, sink, 4 * 1024 * 1024)
        finally:
            link.close()
        out.append(
            {
                "records": count[0],
                "wall_s": round(time.perf_counter() - t0, 2),
                "client_cpu_s": round(time.process_time() - c0, 2),
            }
        )
    return out


def gateway_config(
    path: Path, host: str, port: int, records: int, embedded: str | None = None
) -> Path:
    """The gateway's configuration; ``embedded``: data_dir of an embedded TStorage."""
    where = f'host = "{host}"\n            port = {port}'
    if embedded is not None:
        where = f'embedded = {{ data_dir = "{embedded}" }}'
    path.write_text(
        textwrap.dedent(
            f"""
            [tstorage]
            {where}
            index_budget = {max(2 * records, 1000)}

            [[map]]
            pattern = "meters/{{mid:int}}/{{moid:int}}"
            cid = {CID}
            mid = "{{mid}}"
            moid = "{{moid}}"
            codec = "struct:<d"
            """
        )
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--writes", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument(
        "--only",
        choices=["follow", "downsample"],
        help="run one of the two measurements (default: both)",
    )
    ap.add_argument(
        "--tstorage",
        metavar="HOST:PORT",
        help="with --only downsample: a TStorage already holding the series "
        f"(cid {CID}, mid {BIG[0]}, moid {BIG[1]}, --records records of '<f8'); "
        "nothing is loaded or written",
    )
    ap.add_argument("--first-runs", type=int, default=1, help="cold requests (a new gateway each)")
    ap.add_argument(
        "--embedded",
        action="store_true",
        help="with --only downsample: the gateway runs TStorage itself (as its child process) "
        "on the loaded data, instead of talking to a separate one",
    )
    ap.add_argument(
        "--other-client",
        type=float,
        default=0.01,
        metavar="SECONDS",
        help="during the first downsample another client calls ts:info this often (0: none)",
    )
    ap.add_argument(
        "--raw-streams",
        type=int,
        default=2,
        metavar="N",
        help="after the downsample requests, stream the series N times with the gateway's "
        "TStorage link alone (no index): what the stream itself costs",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.tstorage and args.only != "downsample":
        ap.error("--tstorage needs --only downsample (the follow test writes)")
    if args.embedded and (args.only != "downsample" or args.tstorage):
        ap.error("--embedded needs --only downsample (and its own data: no --tstorage)")
    out: dict[str, Any] = {"records": args.records, "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        ts: ServerProcess | None = None
        if args.tstorage:
            host, port = args.tstorage.rsplit(":", 1)
        else:
            ts = spawn(["tstorage-server", "--data-dir", tmp + "/ts", "--port", "0"])
            host, port = ts.host, str(ts.port)
        try:
            cfg = gateway_config(Path(tmp) / "gateway.toml", host, int(port), args.records)
            if ts is not None:
                put_columns(ts.port, *LIVE, np.asarray([T0], dtype=np.int64), np.zeros(1))
            if ts is not None and args.only != "follow":
                t0 = time.perf_counter()
                chunk = 1_000_000
                for start in range(0, args.records, chunk):
                    n = min(chunk, args.records - start)
                    caps = T0 + (np.arange(start, start + n, dtype=np.int64) * 1_000_000)
                    put_columns(ts.port, *BIG, caps, np.sin(np.arange(start, start + n) / 1e4))
                out["load_s"] = round(time.perf_counter() - t0, 1)
            if args.only != "downsample":
                assert ts is not None
                with spawn(["gateway", "run", "--config", str(cfg), "--port", "0"]) as gw:
                    out["follow"] = [
                        follow_latency(gw, ts, 1, args.writes),
                        follow_latency(gw, ts, 100, max(10, args.writes // 2)),
                    ]
            if args.embedded:
                assert ts is not None
                ts.stop()  # the gateway opens the same data directory itself
                cfg = gateway_config(cfg, host, 0, args.records, str(Path(tmp) / "ts"))
                out["embedded"] = "process"
            if args.only != "follow":
                firsts: list[float] = []
                others: list[Any] = []
                for run in range(args.first_runs):
                    with spawn(["gateway", "run", "--config", str(cfg), "--port", "0"]) as gw:
                        got = downsample_requests(
                            gw, args.records, args.repeats if run == 0 else 0, args.other_client
                        )
                    firsts.append(got.pop("downsample_first_s"))
                    others.append(got.pop("other_client_during_first", None))
                    out.update(got)
                out["downsample_first_s"] = firsts[0] if len(firsts) == 1 else firsts
                out["other_client_during_first"] = others[0] if len(others) == 1 else others
                if args.raw_streams and not args.embedded:
                    # after the gateway's requests, so as not to warm TStorage for them
                    out["raw_stream"] = raw_streams(host, int(port), args.raw_streams)
        finally:
            if ts is not None:
                ts.stop()
    if args.only != "follow":
        caps = T0 + np.arange(args.records, dtype=np.int64) * 1_000_000
        vals = np.sin(np.arange(args.records) / 1e4)
        core = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            downsample(caps, vals, int(caps[0]), int(caps[-1]) + 1, 1000)
            core.append((time.perf_counter() - t0) * 1e3)
        out["downsample_numpy_only"] = stats(core)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
