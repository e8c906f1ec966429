"""Cost of a small PUT on ``tstorage-server``: wall time per request and server CPU.

One ``Channel`` PUTs ``--records`` records (8-byte payloads) per request, ``--puts``
requests per round, against a fresh server; the server's CPU (user and system, from
``/proc/PID/stat``) is read before and after each round. With ``--baseline DIR`` a second
server runs from the packages in ``DIR`` (a copy of ``tstorage_client`` and
``tstorage_server`` of another revision) and the rounds alternate between the two, so a
machine whose speed drifts affects both alike. The client is always this tree's.

Usage (from the repository root)::

    .venv/bin/python bench/tstorage_small_put.py [--baseline DIR] [--rounds 6] [--puts 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests._servers import ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import StructPayloadType  # noqa: E402
from tstorage_client.record import Key, Record  # noqa: E402

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """One ``tstorage-server`` process and what was measured against it."""

    label: str
    process: ServerProcess
    wall_us: list[float] = field(default_factory=list)
    user_us: list[float] = field(default_factory=list)
    sys_us: list[float] = field(default_factory=list)
    loop_us: list[float] = field(default_factory=list)


def start(label: str, pythonpath: Path, data_dir: str) -> Server:
    """Start a server whose packages come from ``pythonpath``; wait until it listens."""
    # run outside the checkout, so that ``-m`` imports the packages of ``pythonpath``
    process = spawn(
        [sys.executable, "-m", "tstorage_server", "--data-dir", data_dir, "--port", "0"],
        env={"PYTHONPATH": str(pythonpath)},
        cwd=tempfile.gettempdir(),
    )
    return Server(label, process)


def cpu_ticks(pid: int) -> tuple[int, int, int]:
    """(utime, stime, CPU of the main thread) of process ``pid`` in clock ticks; the
    main thread runs the server's event loop, the others are its store workers."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        loop = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12]), int(loop[11]) + int(loop[12])


def run_round(server: Server, cid: int, puts: int, records: int) -> None:
    """``puts`` PUTs of ``records`` records each; appends the per-PUT figures."""
    ptype: StructPayloadType[int] = StructPayloadType("<q")
    batches = [
        [Record(Key(cid, i * records + j, 0, 1000), i) for j in range(records)] for i in range(puts)
    ]
    with Channel("127.0.0.1", server.process.port, ptype) as ch:
        for batch in batches[:50]:  # warm-up: connection, caches, first blocks
            if not ch.put(batch).is_ok():
                raise RuntimeError(f"{server.label}: PUT failed")
        u0, s0, l0 = cpu_ticks(server.process.proc.pid)
        t0 = time.perf_counter()
        for batch in batches:
            if not ch.put(batch).is_ok():
                raise RuntimeError(f"{server.label}: PUT failed")
        wall = time.perf_counter() - t0
        u1, s1, l1 = cpu_ticks(server.process.proc.pid)
    server.wall_us.append(wall / puts * 1e6)
    server.user_us.append((u1 - u0) * TICK_S / puts * 1e6)
    server.sys_us.append((s1 - s0) * TICK_S / puts * 1e6)
    server.loop_us.append((l1 - l0) * TICK_S / puts * 1e6)


def commit_floor_us(directory: str, commits: int = 1000) -> tuple[float, float, float]:
    """CPU (user, system) and wall time in microseconds of one durable LMDB commit shaped
    like a one-record PUT's (keys, payload, index row, clock floor), with the store's
    settings: the part of a small PUT that no protocol or server code can remove (the wall
    time is mostly the two ``fdatasync`` calls, data then meta page)."""
    import lmdb

    from tstorage_server.store import lmdb as store_lmdb

    env = lmdb.open(directory, map_size=1 << 30, max_dbs=4, sync=True, metasync=True)
    blocks, index, state = (env.open_db(name) for name in (b"blocks", b"index", b"state"))
    r0, t0 = os.times(), time.perf_counter()
    for i in range(commits):
        with env.begin(write=True) as txn:
            key = i.to_bytes(8, "big")
            txn.put(key + b"k", bytes(32), db=blocks)
            txn.put(key + b"p", bytes(8), db=blocks)
            txn.put(key, bytes(store_lmdb.META_ROW.size), db=index)
            txn.put(b"acq_floor", key, db=state)
    r1, t1 = os.times(), time.perf_counter()
    env.close()
    return (
        (r1.user - r0.user) / commits * 1e6,
        (r1.system - r0.system) / commits * 1e6,
        (t1 - t0) / commits * 1e6,
    )


def main() -> int:
    """Run the rounds and print one line per server (medians over rounds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="directory with another revision's packages")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per server (default 6)")
    parser.add_argument("--puts", type=int, default=2000, help="PUT requests per round")
    parser.add_argument("--records", type=int, default=1, help="records per PUT (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tstorage-small-put-") as tmp:
        servers = []
        if args.baseline is not None:
            servers.append(start("baseline", args.baseline.resolve(), f"{tmp}/baseline"))
        servers.append(start("this tree", ROOT, f"{tmp}/tree"))
        floor: list[tuple[float, float, float]] = []
        try:
            for r in range(args.rounds):
                for s in servers if r % 2 == 0 else reversed(servers):
                    run_round(s, 1000 + r, args.puts, args.records)
                floor.append(commit_floor_us(f"{tmp}/commit-{r}"))
        finally:
            for s in servers:
                s.process.stop()
    print(f"{args.records} record(s) per PUT, {args.puts} PUTs x {args.rounds} rounds per server")
    print("medians over the rounds (lowest-highest); microseconds per PUT")
    print(
        f"{'server':<10} {'wall':>16} {'server CPU':>16} {'user':>5} {'sys':>5} "
        f"{'loop thread':>11} {'workers':>7}"
    )
    for s in servers:
        cpu = [u + y for u, y in zip(s.user_us, s.sys_us, strict=True)]
        workers = [c - lp for c, lp in zip(cpu, s.loop_us, strict=True)]
        print(
            f"{s.label:<10} {statistics.median(s.wall_us):>5.0f} "
            f"({min(s.wall_us):.0f}-{max(s.wall_us):.0f}) "
            f"{statistics.median(cpu):>5.0f} ({min(cpu):.0f}-{max(cpu):.0f}) "
            f"{statistics.median(s.user_us):>5.0f} {statistics.median(s.sys_us):>5.0f} "
            f"{statistics.median(s.loop_us):>11.0f} {statistics.median(workers):>7.0f}"
        )
    user = statistics.median(u for u, _, _ in floor)
    system = statistics.median(y for _, y, _ in floor)
    wall = statistics.median(w for _, _, w in floor)
    print(
        f"bare LMDB commit of the same shape, in this process: {wall:.0f} us wall, "
        f"{user + system:.0f} us CPU (user {user:.0f}, sys {system:.0f}; median of {len(floor)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
