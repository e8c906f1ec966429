#!/usr/bin/env python3
"""Narrow GETs into one long series: latency by result size, this tree against another.

Uses the one ``struct:<d`` series of ``bench/scale_bench.py`` (cid 1, mid 1, moid 1, one
record per ms, stored in PUTs of 2M records, so in blocks of 2M), loading it into
``--data`` first if that directory holds no loaded series. For each tree (``--old-tree``
first, then this one), on the same random positions:

* ``store``: the TStorage store alone, in a process of that tree (``LmdbStore`` opened on
  the data, a snapshot, the box query, its pieces consumed): the server's own time;
* ``wire``: a GET through ``tstorage_client.Channel`` (numpy columns) from a
  ``tstorage_server`` process of that tree: what a client waits for.

Each cell is the median (and 90th percentile) over ``--repeats`` GETs of ``n`` records at
random positions. The data directory is only read, but LMDB needs it writable: point
``--data`` at a copy of data you want to keep untouched.

Usage::

    .venv/bin/python bench/tstorage_narrow_get.py --data /tmp/narrow-10m --records 10000000 \\
        --old-tree /path/to/old/checkout [--sizes 64,4096,100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The store timing runs in a process of the tree under test: this module imports nothing
# of the project at its top, and the outer process adds this tree to the path in main().

# the series of bench/scale_bench.py
CID, MID, MOID = 1, 1, 1
T0 = 800_000_000 * 10**9
STEP = 10**6
SIZES = (64, 4096, 100_000)
ACQ_MAX = 2**62


def boxes(
    records: int, repeats: int, seed: int, sizes: tuple[int, ...] = SIZES
) -> dict[int, list[tuple[int, int]]]:
    """For each size, ``repeats`` cap ranges ``[a, b)`` of that many records."""
    rng = random.Random(seed)
    out = {}
    for n in sizes:
        starts = [rng.randrange(0, records - n) for _ in range(repeats)]
        out[n] = [(T0 + i * STEP, T0 + (i + n) * STEP) for i in starts]
    return out


def summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
    }


WARM_UP = 3


def timed(
    count: Callable[[int, int], int], plan: dict[int, list[tuple[int, int]]]
) -> dict[str, Any]:
    """Times ``count(a, b)`` (records with cap in ``[a, b)``) over the plan, after a few
    GETs elsewhere so that a fresh process's first calls are not what is measured."""
    for a, b in plan[min(plan)][:WARM_UP]:
        count(a + STEP * 7919, b + STEP * 7919)
    out: dict[str, Any] = {}
    for n, ranges in plan.items():
        times = []
        for a, b in ranges:
            t0 = time.perf_counter()
            got = count(a, b)
            times.append((time.perf_counter() - t0) * 1000)
            if got != n:
                raise RuntimeError(f"{got} records instead of {n}")
        out[str(n)] = summary(times)
    return out


def store_times(data: str, plan: dict[int, list[tuple[int, int]]]) -> dict[str, Any]:
    """Runs inside a process of the tree under test: the store's own time per GET."""
    from tstorage_server.store import LmdbStore

    store = LmdbStore(data)

    def count(a: int, b: int) -> int:
        with store.snapshot() as snap:
            box = snap.query((CID, MID, MOID, a, 0), (CID + 1, MID + 1, MOID + 1, b, ACQ_MAX))
            return sum(len(piece) for piece in box)

    try:
        return timed(count, plan)
    finally:
        store.close()


def wire_times(port: int, plan: dict[int, list[tuple[int, int]]]) -> dict[str, Any]:
    import numpy as np

    from tstorage_client.channel import Channel
    from tstorage_client.payload_type import NumpyPayloadType
    from tstorage_client.record import Key

    ptype: Any = NumpyPayloadType(np.dtype("<f8"))  # GETs yield arrays, not records
    with Channel("127.0.0.1", port, ptype, timeout=120) as ch:

        def count(a: int, b: int) -> int:
            res = ch.get(Key(CID, MID, MOID, a, 0), Key(CID + 1, MID + 1, MOID + 1, b, ACQ_MAX))
            if not res.is_ok():
                raise RuntimeError(f"GET failed: {res.status}")
            parts: list[Any] = list(res.data)  # numpy payload types: one array per batch
            return sum(len(part) for part in parts)

        return timed(count, plan)


def run_tree(tree: Path, data: Path, plan: dict[int, list[tuple[int, int]]]) -> dict[str, Any]:
    from tests._servers import python_argv, spawn

    env = dict(os.environ, PYTHONPATH=str(tree))
    inner = subprocess.run(
        [sys.executable, __file__, "--data", str(data), "--inner-store"],
        input=json.dumps({str(k): v for k, v in plan.items()}),
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = {"store": json.loads(inner.stdout)}
    with spawn(
        python_argv("tstorage_server", "--data-dir", str(data), "--port", "0"),
        env={"PYTHONPATH": str(tree)},
        cwd=tree,
        timeout=120,
    ) as srv:
        result["wire"] = wire_times(srv.port, plan)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="data directory (loaded if empty)")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--old-tree", default="", help="checkout to compare with ('' skips it)")
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="records per GET, comma-separated (default %(default)s)",
    )
    parser.add_argument("--inner-store", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner_store:
        plan = {int(k): [(a, b) for a, b in v] for k, v in json.loads(sys.stdin.read()).items()}
        print(json.dumps(store_times(str(args.data), plan)))
        return
    sys.path.insert(0, str(ROOT))
    from bench import scale_bench
    from tests._servers import python_argv, spawn

    assert (scale_bench.CID, scale_bench.T0, scale_bench.STEP) == (CID, T0, STEP)
    marker = args.data / "loaded"
    if not marker.exists():
        with spawn(
            python_argv("tstorage_server", "--data-dir", str(args.data), "--port", "0"),
            timeout=120,
        ) as srv:
            seconds = scale_bench.load(srv.port, args.records)
            print(f"loaded in {seconds:.1f} s", file=sys.stderr)
        marker.write_text(str(args.records))
    records = int(marker.read_text())
    sizes = tuple(int(n) for n in args.sizes.split(","))
    plan = boxes(records, args.repeats, args.seed, sizes)
    trees = [("old", Path(args.old_tree))] if args.old_tree else []
    trees.append(("new", ROOT))
    results = {name: run_tree(tree, args.data, plan) for name, tree in trees}
    print(json.dumps({"records": records, "repeats": args.repeats, **results}, indent=1))
    print(f"\n{'records':>8} {'path':>5} " + " ".join(f"{name:>18}" for name, _ in trees))
    for n in sizes:
        for path in ("store", "wire"):
            cells = [
                f"{results[name][path][str(n)]['median_ms']:>8} ({results[name][path][str(n)]['p90_ms']})"
                for name, _ in trees
            ]
            print(f"{n:>8} {path:>5} " + " ".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
