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

With ``--build`` it first stores the series (``--records`` records, PUTAs of 2M records)
into the empty ``--data`` with ``--segment-records``; with ``--evict`` every cold GET
opens the store afresh after dropping the store file from the page cache
(``posix_fadvise(DONTNEED)``, this file only), so that each one is cold even in a store
that fits the cache. Only use ``--evict`` on a store no server has open.

Usage::

    .venv/bin/python bench/tstorage_cold_get.py --data /work/scale-1b --records 1000000000
    .venv/bin/python bench/tstorage_cold_get.py --data /tmp/seg --records 20000000 \
        --build --evict
"""

from __future__ import annotations

import argparse
import os
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


BATCH = 2_000_000


def build(data: str, records: int, segment_records: int) -> None:
    """Stores the series in PUTAs of ``BATCH`` records (one block each)."""
    import numpy as np

    from tstorage_client.block import KEY_DTYPE, RecordBlock
    from tstorage_server.store import LmdbStore

    store = LmdbStore(data, segment_records=segment_records)
    try:
        for start in range(0, records, BATCH):
            n = min(BATCH, records - start)
            keys = np.zeros(n, dtype=KEY_DTYPE)
            keys["cid"], keys["mid"], keys["moid"] = 1, 1, 1
            keys["cap"] = T0 + (start + np.arange(n, dtype=np.int64)) * STEP
            keys["acq"] = start + np.arange(n, dtype=np.int64)
            payload = np.arange(start, start + n, dtype="<f8").tobytes()
            offsets = np.arange(n + 1, dtype=np.int64) * 8
            store.put_blocks([RecordBlock(keys, offsets, payload)], assign_acq=False)
    finally:
        store.close()


def evict(data: str) -> None:
    """Drops the store file from the page cache (it must not be mapped by anyone)."""
    fd = os.open(f"{data}/tstorage.lmdb/data.mdb", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def evicted_times(data: str, starts: list[int], size: int) -> tuple[list[float], float]:
    """Each GET on a store opened after the file left the page cache: times, MB read/GET."""
    from tstorage_server.store import LmdbStore

    times, mb = [], 0.0
    for i in starts:
        evict(data)
        store = LmdbStore(data)
        try:
            with store.snapshot() as snap:
                a = T0 + i * STEP
                before, t0 = read_bytes(), time.perf_counter()
                got = sum(
                    len(p)
                    for p in snap.query((1, 1, 1, a, 0), (2, 2, 2, a + size * STEP, snap.watermark))
                )
                times.append((time.perf_counter() - t0) * 1000)
                mb += (read_bytes() - before) / 1e6
                if got != size:
                    raise RuntimeError(f"{got} records instead of {size}")
        finally:
            store.close()
    return sorted(times), mb / len(starts)


def main() -> None:
    from tstorage_server.store import LmdbStore
    from tstorage_server.store.lmdb import DEFAULT_SEGMENT_RECORDS, _bkey

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--records", type=int, default=1_000_000_000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--build", action="store_true", help="store the series first")
    parser.add_argument("--segment-records", type=int, default=DEFAULT_SEGMENT_RECORDS)
    parser.add_argument("--evict", action="store_true", help="each cold GET truly cold")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.build:
        build(args.data, args.records, args.segment_records)
    if args.evict:
        starts = [rng.randrange(0, args.records - args.size) for _ in range(args.repeats)]
        times, mb = evicted_times(args.data, starts, args.size)
        print(
            f"acq < watermark, evicted: median {statistics.median(times):7.2f} ms, "
            f"p90 {times[int(0.9 * (len(times) - 1))]:7.2f} ms, {mb:6.1f} MB read/GET"
        )
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
                if value is None:  # a block stored in segments
                    continue
                size = len(value)
                print(
                    f"block {meta.block_id} part {kind.decode()}: {size / 1e6:.0f} MB value, "
                    f"get {ms:.1f} ms, {(read_bytes() - before) / 1e6:.1f} MB read"
                )
        txn.abort()
    finally:
        store.close()


if __name__ == "__main__":
    main()
