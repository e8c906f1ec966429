#!/usr/bin/env python3
"""Narrow GETs into a store bigger than the page cache: cold against warm, and bytes read.

Opens ``LmdbStore`` on ``--data`` (only read; no other server may have it open) holding the
``struct:<d`` series of ``bench/scale_bench.py`` (cid 1, mid 1, moid 1, one record per ms
from T0), and for each acq bound (none, and the snapshot's watermark as the gateway's chunk
reads use) GETs ``--size`` records at ``--repeats`` random positions twice: the first pass
finds them mostly outside the page cache (cold), the second repeats the same boxes (warm).
Each line gives the median and 90th percentile of the store's own time per GET and the
disk bytes the process read per GET (``read_bytes`` of ``/proc/self/io``).

It then times a bare LMDB read of the keys and the payload part of a few random blocks,
which is where a cold GET's time goes.

Usage::

    .venv/bin/python bench/tstorage_cold_get.py --data /work/scale-1b --records 1000000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

T0 = 800_000_000 * 10**9
STEP = 10**6
ACQ_MAX = 2**62


def read_bytes() -> int:
    """Bytes this process has made the kernel read from disk so far."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes"):
                return int(line.split()[1])
    return 0


def main() -> None:
    from tstorage_server.store import LmdbStore
    from tstorage_server.store.lmdb import _bkey

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--records", type=int, default=1_000_000_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    store = LmdbStore(args.data)
    try:
        snap = store.snapshot()
        print(f"blocks: {store.block_count}")
        for name, acq in (("no acq bound", ACQ_MAX), ("acq < watermark", snap.watermark)):
            starts = [rng.randrange(0, args.records - args.size) for _ in range(args.repeats)]
            for phase in ("cold", "warm"):
                times, before = [], read_bytes()
                for i in starts:
                    a = T0 + i * STEP
                    b = a + args.size * STEP
                    t0 = time.perf_counter()
                    got = sum(len(p) for p in snap.query((1, 1, 1, a, 0), (2, 2, 2, b, acq)))
                    times.append((time.perf_counter() - t0) * 1000)
                    if got != args.size:
                        raise RuntimeError(f"{got} records instead of {args.size}")
                times.sort()
                mb = (read_bytes() - before) / 1e6 / len(starts)
                print(
                    f"{name:16} {phase}: median {statistics.median(times):7.2f} ms, "
                    f"p90 {times[int(0.9 * (len(times) - 1))]:7.2f} ms, {mb:6.1f} MB read/GET"
                )
        snap.close()
        big = [m for m in store._index.metas if m.count > 1_000_000]
        txn = store._env.begin(db=store._blocks, buffers=True)
        for meta in rng.sample(big, min(5, len(big))):
            for kind in (b"k", b"p"):
                before, t0 = read_bytes(), time.perf_counter()
                value = txn.get(_bkey(meta.block_id, kind))
                ms = (time.perf_counter() - t0) * 1000
                size = len(value) if value is not None else 0
                print(
                    f"block {meta.block_id} part {kind.decode()}: {size / 1e6:.0f} MB value, "
                    f"get {ms:.1f} ms, {(read_bytes() - before) / 1e6:.1f} MB read"
                )
        txn.abort()
    finally:
        store.close()


if __name__ == "__main__":
    main()
