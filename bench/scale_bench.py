#!/usr/bin/env python3
"""One long series: gateway memory and first answers, with chunk summaries against the
whole-series index.

Loads one ``struct:<d`` series of ``--records`` records (1 ms apart) with numpy PUTs into a
TStorage server process, and a Dict meter of 16 fields (1,000 records each), then for each
design runs the gateway as a process on it and measures, through ``znsocket.Client``:

* ``len``, ``lst[i]`` at a random ``i``, ``lst[-1000:]``, the Dict's 16 latest values,
  ``ts:latest``, and ``ts:range`` with 1,000 buckets over the whole series and over a
  random 1% window: the first call in a fresh gateway, then warm (median of ``--repeats``);
* the gateway's resident memory (VmRSS) after them, and its peak (VmHWM);
* for the summaries, the one-time build (``gateway index build``: it reads the series once
  and saves its summaries, in records/s), then a fresh gateway that starts from them.

The designs: ``summaries`` (this tree) and ``whole`` (the whole-series in-memory index, run
from another checkout given by ``--old-tree``; skipped with ``--old-tree ''`` or when it
would not fit). TStorage runs as its own process in both cases (as the gateway's embedded
server does by default), so the gateway's memory is measured alone.

Usage::

    .venv/bin/python bench/scale_bench.py --records 10000000 --old-tree /path/to/old/checkout
    .venv/bin/python bench/scale_bench.py --records 100000000 --data /work/scale-data --keep
    .venv/bin/python bench/scale_bench.py --records 10000000 --build-only /path/to/old/checkout

``--build-only`` times only the one-time build, by this tree and by each other checkout
given, taking turns (``--repeats`` builds each).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import znsocket  # noqa: E402
from gateway.timeseries.proxy import TimeSeries  # noqa: E402
from tests._config_text import meter_rules  # noqa: E402
from tests._servers import VENV_BIN, ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import NumpyPayloadType  # noqa: E402
from tstorage_client.timestamp import EPOCH_OFFSET_NS  # noqa: E402

CID, MID, MOID, DICT_MID, FIELDS = 1, 1, 1, 2, 16
T0 = 800_000_000 * 10**9
STEP = 10**6  # 1 ms between records
BATCH = 2_000_000


def put_series(port: int, mid: int, moid: int, start: int, n: int) -> None:
    with Channel("127.0.0.1", port, NumpyPayloadType("<f8"), timeout=600) as ch:
        for a in range(0, n, BATCH):
            b = min(a + BATCH, n)
            i = np.arange(start + a, start + b, dtype=np.int64)
            res = ch.put(
                {  # type: ignore[arg-type]  # numpy payload types take a dict of columns
                    "cid": np.full(b - a, CID, dtype=np.int32),
                    "mid": np.full(b - a, mid, dtype=np.int64),
                    "moid": np.full(b - a, moid, dtype=np.int32),
                    "cap": T0 + i * STEP,
                    "v0": np.sin(i / 1000.0),
                }
            )
            if not res.is_ok():
                raise RuntimeError(f"PUT failed: {res.status}")


def load(port: int, records: int) -> float:
    t0 = time.perf_counter()
    for a in range(0, records, 50_000_000):
        put_series(port, MID, MOID, a, min(50_000_000, records - a))
        print(f"  loaded {min(a + 50_000_000, records):,} records", file=sys.stderr)
    for f in range(FIELDS):
        put_series(port, DICT_MID, f, 0, 1000)
    return time.perf_counter() - t0


def config_text(port: int, generic_cid: int, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [tstorage]
        host = "127.0.0.1"
        port = {port}
        timeout = 600
        {extra}

        [generic]
        cid = {generic_cid}

        """
    ) + meter_rules(CID)


def memory(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def timed_ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return round((time.perf_counter() - t0) * 1e3, 2)


def workload(address: str, records: int, repeats: int, seed: int) -> dict[str, Any]:
    """First calls (in the order listed), then warm medians."""
    rng = random.Random(seed)
    c = znsocket.Client.from_url(address)
    try:
        lst = znsocket.List(c, f"meters/{MID}/{MOID}")
        d = znsocket.Dict(c, f"meters/{DICT_MID}")
        ts = TimeSeries(c, f"meters/{MID}/{MOID}")
        span = records * STEP
        # gateway.TimeSeries takes unix times (the series' caps are TStorage ns)
        w0 = T0 + EPOCH_OFFSET_NS + rng.randrange(0, span - span // 100)

        def checked_len() -> None:
            assert len(lst) == records

        def checked_index() -> None:
            i = rng.randrange(records)
            assert lst[i] == float(np.sin(i / 1000.0))

        def checked_tail() -> None:
            assert len(lst[-1000:]) == 1000

        def checked_dict() -> None:
            assert len(dict(d.items())) == FIELDS

        def checked_latest() -> None:
            assert len(ts.latest(1).v) == 1

        def checked_whole() -> None:
            assert int(ts.range(buckets=1000).n.sum()) == records

        def checked_window() -> None:
            assert len(ts.range(w0, w0 + span // 100, buckets=1000).n) > 0

        calls = {
            "len": checked_len,
            "lst[i]": checked_index,
            "lst[-1000:]": checked_tail,
            "dict_16": checked_dict,
            "ts:latest": checked_latest,
            "range_1000_whole": checked_whole,
            "range_1000_1pct": checked_window,
        }
        first = {name: timed_ms(fn) for name, fn in calls.items()}
        warm = {
            name: round(statistics.median(timed_ms(fn) for _ in range(repeats)), 2)
            for name, fn in calls.items()
        }
        return {"first_ms": first, "warm_ms": warm}
    finally:
        c.close()


def gateway(config: Path, tree: Path) -> ServerProcess:
    env = {"PYTHONPATH": str(tree)}
    return spawn(
        ["gateway", "run", "--config", str(config), "--port", "0", "--log-level", "WARNING"],
        env=env,
        cwd=tree,
        timeout=120,
    )


def one_time_build(config: Path, tree: Path) -> dict[str, Any]:
    """``gateway index build`` of ``tree`` with ``config``: it reads the series once and
    saves its summaries (the command first finds the series, as the dashboard does)."""
    out: dict[str, Any] = {}
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [str(VENV_BIN / "gateway"), "index", "build", "--config", str(config)],
        env=dict(os.environ, PYTHONPATH=str(tree)),
        cwd=tree,
        capture_output=True,
        text=True,
    )
    build_s = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"index build failed: {done.stderr}")
    out["build_command_s"] = round(build_s, 2)  # finding the series, then building
    # the command's own CPU (both steps): unlike its duration, not the machine's load
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    out["build_command_cpu_s"] = round(cpu, 2)
    # the build of the series alone, as the gateway logs it
    found = re.search(rf"built summaries of cid {CID} mid {MID} moid {MOID}: "
                      r"(\d+) records in ([\d.]+) s", done.stderr)  # fmt: skip
    if found:
        out["build_s"] = float(found.group(2))
        out["build_records_per_s"] = round(int(found.group(1)) / float(found.group(2)))
    return out


def run_design(
    name: str, tree: Path, ts_port: int, tmp: Path, records: int, repeats: int, gcid: int
) -> dict[str, Any]:
    config = tmp / f"{name}.toml"
    # summaries of an earlier run on kept data are not reused: a cid of this run's own
    extra = f"index_cid = {gcid + 500_000}" if name == "summaries" else ""
    config.write_text(config_text(ts_port, gcid, extra))
    out: dict[str, Any] = {}
    if name == "summaries":
        # the one-time build, ahead of time: the gateways below start from its summaries
        out.update(one_time_build(config, tree))
    with gateway(config, tree) as gw:
        try:
            out.update(workload(f"znsocket://127.0.0.1:{gw.port}", records, repeats, records))
        except Exception as exc:  # e.g. a first read so long that the client gave up
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["memory_mb"] = memory(gw.pid)
    return out


def builds(trees: list[Path], ts_port: int, tmp: Path, repeats: int) -> dict[str, Any]:
    """Build rates of the one-time build by each tree, the trees taking turns (a loaded
    machine then weighs on each alike); each build saves summaries of its own."""
    rates: dict[str, list[int]] = {str(tree): [] for tree in trees}
    cpus: dict[str, list[float]] = {str(tree): [] for tree in trees}
    for r in range(repeats):
        for i, tree in enumerate(trees):
            gcid = 2_000_000_000 + int(time.time()) % 1_000_000 + 10 * r + i
            config = tmp / f"build-{r}-{i}.toml"
            config.write_text(config_text(ts_port, gcid, f"index_cid = {gcid + 500_000}"))
            got = one_time_build(config, tree)
            rates[str(tree)].append(got.get("build_records_per_s", 0))
            cpus[str(tree)].append(got["build_command_cpu_s"])
            print(f"  {tree}: {got}", file=sys.stderr)
    return {
        tree: {
            "build_records_per_s": r,
            "median": round(statistics.median(r)),
            "build_command_cpu_s": cpus[tree],
        }
        for tree, r in rates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--old-tree", default="", help="checkout of the whole-series design")
    parser.add_argument("--old-max", type=int, default=100_000_000, help="skip it above this")
    parser.add_argument("--data", help="TStorage data directory (kept with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep and reuse --data")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument(
        "--build-only",
        nargs="*",
        metavar="TREE",
        help="only the one-time summary build, by this tree and each TREE given (other "
        "checkouts), taking turns, --repeats times each",
    )
    args = parser.parse_args()
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="scale-bench-"))
    loaded = (data / "loaded").exists() and args.keep
    data.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"records": args.records}
    ts = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"], timeout=600)
    try:
        if not loaded:
            result["load_s"] = round(load(ts.port, args.records), 1)
            (data / "loaded").write_text(str(args.records))
        with tempfile.TemporaryDirectory(prefix="scale-bench-cfg-") as tmp:
            designs = [("summaries", ROOT)] if args.build_only is None else []
            if args.build_only is not None:
                trees = [ROOT, *map(Path, args.build_only)]
                result["builds"] = builds(trees, ts.port, Path(tmp), args.repeats)
            elif args.old_tree and args.records <= args.old_max:
                designs.append(("whole", Path(args.old_tree)))
            for i, (name, tree) in enumerate(designs):
                print(f"  measuring {name}", file=sys.stderr)
                # a generic cid per run: the gateways start with nothing of an earlier run
                gcid = 2_000_000_000 + int(time.time()) % 1_000_000 + i
                result[name] = run_design(
                    name, tree, ts.port, Path(tmp), args.records, args.repeats, gcid
                )
    finally:
        ts.stop()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
