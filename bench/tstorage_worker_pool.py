#!/usr/bin/env python3
"""The TStorage server's worker pool against ``loop.run_in_executor``: cost per call.

Each round awaits ``--calls`` trivial jobs one after another, then in groups of 8 (the
server's default worker count), alternating the two ways; the best and median round of
each are printed in µs per call.

Usage::

    .venv/bin/python bench/tstorage_worker_pool.py            # about 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tstorage_server._workers import WorkerPool


def _job(x: int) -> int:
    return x


async def _round(call: Callable[[], Awaitable[Any]], calls: int) -> tuple[float, float]:
    t = time.perf_counter()
    for _ in range(calls):
        await call()
    one = (time.perf_counter() - t) / calls * 1e6
    t = time.perf_counter()
    for _ in range(calls // 8):
        await asyncio.gather(*[call() for _ in range(8)])
    eight = (time.perf_counter() - t) / (calls // 8 * 8) * 1e6
    return one, eight


async def main(calls: int, rounds: int) -> None:
    loop = asyncio.get_running_loop()
    pool = WorkerPool(8)
    executor = concurrent.futures.ThreadPoolExecutor(8)
    ways: dict[str, Callable[[], Awaitable[Any]]] = {
        "WorkerPool.run": lambda: pool.run(_job, 1),
        "run_in_executor": lambda: loop.run_in_executor(executor, _job, 1),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, call in ways.items():
            results[name].append(await _round(call, calls))
    pool.close()
    executor.shutdown()
    print(f"{'':16} {'one at a time':>24} {'8 at once':>24}   (µs per call: best / median)")
    for name, got in results.items():
        one = [r[0] for r in got]
        eight = [r[1] for r in got]
        print(
            f"{name:16} {min(one):11.1f} / {statistics.median(one):8.1f}"
            f"   {min(eight):11.1f} / {statistics.median(eight):8.1f}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=5000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    asyncio.run(main(args.calls, args.rounds))
