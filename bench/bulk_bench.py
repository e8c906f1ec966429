#!/usr/bin/env python3
"""Bulk writes and reads through the gateway as binary columns, next to TStorage direct.

One run, side by side (every server a real process on 127.0.0.1):

* write ``--points`` (default 10M) float64 points to one series with
  ``gateway.TimeSeries.extend`` (binary columns, ``ts:extend``), with ``List.extend`` (JSON
  ``rpush``; ``--json-points``, default 1M, in batches of 100k) and with ``tstorage_client``'s
  numpy PUT straight to the gateway's embedded TStorage (``--direct-chunk`` points per PUT);
  the gateway's TStorage runs with ``sync = "commit"`` (fsync before every answer);
* read the series back into numpy with ``TimeSeries.range()`` (binary columns, pages of
  1,048,576 points) and with a direct numpy GET: the first read of each kind in a new
  client process (a process's first large arrays cost page faults that its later reads
  reuse), then ``--reads`` more of each in turn in this process;
* one writer's ``List.append`` rate (``--appends`` points, one at a time, in ``--rounds``
  rounds taken in turn; the median round) on a second gateway whose TStorage runs with
  ``sync = "interval"``, on a third that also acknowledges writes from its journal
  (``[tstorage.journal]``), and on our in-memory znsocket server;
* the gateway process's resident memory (its TStorage child excluded), sampled every 20 ms
  during the bulk write and the bulk read;
* the CPU time each process spends (``/proc``, Linux): the gateway and its TStorage per point
  of the bulk write (with the change feed that brings it back) and of the bulk read, and the
  gateway, its TStorage, the in-memory server and the client per append.

With ``--old-tree DIR`` (another checkout, e.g. ``git worktree add /tmp/base main``) the
same measurements run on that tree's code and on this one, each in a child process whose
servers run that tree's code too, taken in turn (``--runs`` times each, old first), and the
results are printed side by side.

Usage::

    .venv/bin/python bench/bulk_bench.py                       # 10M points, a few minutes
    .venv/bin/python bench/bulk_bench.py --points 1000000 --json out.json
    .venv/bin/python bench/bulk_bench.py --old-tree /tmp/base  # the tree before, then this one
    .venv/bin/python bench/bulk_bench.py --read-only --reads 3  # the writes, then 3 reads each
    .venv/bin/python bench/bulk_bench.py --only append --appends 4000  # the append rates only
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# the tree whose code runs (an --old-tree child runs another checkout's)
ROOT = Path(os.environ.get("BULK_BENCH_TREE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

import znsocket  # noqa: E402
from gateway import TimeSeries  # noqa: E402
from tests._servers import ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import NumpyPayloadType  # noqa: E402
from tstorage_client.record import Key  # noqa: E402

CID = 1
T0 = 800_000_000 * 10**9  # TStorage ns
STEP = 1_000_000  # 1 kHz data
I64_MIN, I64_MAX, I32_MIN, I32_MAX = -(2**63), 2**63 - 1, -(2**31), 2**31 - 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_pid(pid: int) -> int:
    """The (first) child process of ``pid``: a gateway's embedded TStorage."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        if kids:
            return int(kids[0])
    raise RuntimeError(f"process {pid} has no child")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_per(points: int, pids: dict[str, int]) -> Iterator[dict[str, float]]:
    """CPU microseconds per point each process spends while the block runs."""
    out: dict[str, float] = {}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    yield out
    for name, pid in pids.items():
        out[name] = round((cpu_seconds(pid) - before[name]) / points * 1e6, 3)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def peak_rss(pid: int, every_s: float = 0.02) -> Iterator[dict[str, float]]:
    """The process's resident memory before and at its peak while the block runs."""
    out = {"before_mb": rss_mb(pid), "peak_mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out["peak_mb"] = max(out["peak_mb"], rss_mb(pid))
            time.sleep(every_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join()
        out["peak_mb"] = round(max(out["peak_mb"], rss_mb(pid)), 1)
        out["before_mb"] = round(out["before_mb"], 1)


def config(data_dir: Path, ts_port: int, sync: str) -> str:
    return textwrap.dedent(
        f"""
        [tstorage.embedded]
        data_dir = "{data_dir}"
        port = {ts_port}
        sync = "{sync}"

        [[map]]
        pattern = "meters/{{mid:int}}/{{moid:int}}"
        cid = {CID}
        mid = "{{mid}}"
        moid = "{{moid}}"
        codec = "struct:<d"
        """
    )


def start_gateway(
    tmp: Path, name: str, sync: str, journal: bool = False
) -> tuple[ServerProcess, int]:
    ts_port = free_port()
    path = tmp / f"{name}.toml"
    text = config(tmp / name, ts_port, sync)
    if journal:  # writes acknowledged from the gateway's journal, stored right after
        text += f'\n[tstorage.journal]\ndir = "{tmp / name}-journal"\n'
    path.write_text(text)
    proc = spawn(["gateway", "run", "--config", str(path), "--port", "0", "--log-level", "WARNING"])
    return proc, ts_port


def rate(points: int, seconds: float) -> dict[str, float]:
    return {"points": points, "s": round(seconds, 3), "points_per_s": round(points / seconds)}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    got = fn()
    return got, time.perf_counter() - t0


def direct_put(ts_port: int, mid: int, caps: np.ndarray, values: np.ndarray, chunk: int) -> None:
    n = len(caps)
    with Channel("127.0.0.1", ts_port, NumpyPayloadType("<f8"), timeout=300) as ch:
        for i in range(0, n, chunk):
            part = slice(i, i + chunk)
            m = len(caps[part])
            data: Any = {
                "cid": np.full(m, CID, dtype=np.int32),
                "mid": np.full(m, mid, dtype=np.int64),
                "moid": np.full(m, 1, dtype=np.int32),
                "cap": caps[part],
                "v0": values[part],
            }
            assert ch.put(data).is_ok()


def direct_get(ts_port: int, mid: int) -> int:
    with Channel(
        "127.0.0.1", ts_port, NumpyPayloadType("<f8"), timeout=300, memory_limit=1 << 30
    ) as ch:
        res = ch.get(Key(CID, mid, 1, I64_MIN, I64_MIN), Key(CID + 1, mid + 1, 2, I64_MAX, I64_MAX))
        assert res.is_ok(), res.status
        arrays = res.data if isinstance(res.data, list) else [res.data]
        return sum(len(a) for a in arrays)


def fresh_read(how: list[str], n: int) -> float:
    """Seconds of one read of the bulk series by a new client process (``--read-*``)."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *how],
        stdout=subprocess.PIPE,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    got = json.loads(done.stdout)
    assert got["points"] == n, got
    return float(got["s"])


def read_once(how: str, where: str) -> dict[str, float]:
    """One read of the bulk series (meters/1/1) in this process: through the gateway at
    ``where`` (``znsocket://...``) or straight from TStorage on port ``where``."""
    if how == "gateway":
        c = znsocket.Client.from_url(where)
        window, s = timed(TimeSeries(c, "meters/1/1").range)
        c.sio.disconnect()
        return {"points": len(window), "s": s}
    got, s = timed(lambda: direct_get(int(where), 1))
    return {"points": got, "s": s}


def append_rate(address: str, key: str, appends: int) -> dict[str, float]:
    c = znsocket.Client.from_url(address)
    try:
        lst = znsocket.List(c, key)
        lst.append(0.0)
        t0 = time.perf_counter()
        for i in range(appends):
            lst.append(float(i))
        elapsed = time.perf_counter() - t0
        assert len(lst) == appends + 1
        return rate(appends, elapsed)
    finally:
        c.sio.disconnect()


def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as tmp_s:
        tmp = Path(tmp_s)
        if args.only != "append":
            bulk(args, tmp, out)
        if args.read_only and args.only != "append":
            return {**out, "ratios": _ratios(out)}
        appends(args, tmp, out)
    out["ratios"] = _ratios(out)
    return out


def bulk(args: argparse.Namespace, tmp: Path, out: dict[str, Any]) -> None:
    """The bulk write and read figures, into ``out``."""
    n = args.points
    caps = T0 + np.arange(n, dtype=np.int64) * STEP
    values = np.sin(np.arange(n) / 1000.0)
    times = (caps + 978_307_200 * 10**9).astype("datetime64[ns]")
    out["points"] = n
    gw, ts_port = start_gateway(tmp, "commit", "commit")
    try:
        address = f"znsocket://127.0.0.1:{gw.port}"
        c = znsocket.Client.from_url(address)
        ts = TimeSeries(c, "meters/1/1")
        pids = {"gateway": gw.pid, "tstorage": child_pid(gw.pid)}
        with cpu_per(n, pids) as cpu_w:
            with peak_rss(gw.pid) as mem_w:
                length, s = timed(lambda: ts.extend(times, values, chunk=args.chunk))
            # the change feed brings the last own records back (follow_interval 0.25 s)
            time.sleep(0.5)
        assert length == n, length
        out["write_columns"] = rate(n, s)
        out["write_columns"]["points_per_event"] = args.chunk or "default"
        out["write_columns_gateway_rss"] = mem_w
        out["write_columns_cpu_us_per_point"] = cpu_w
        # the JSON series too with --read-only: the two together exceed index_budget
        # (10M records), so a read goes to TStorage for the chunks given way
        lst = znsocket.List(c, "meters/2/1")
        m = args.json_points
        jv = values[:m].tolist()

        def json_extend() -> None:
            for i in range(0, m, 100_000):
                lst.extend(jv[i : i + 100_000])

        _, s = timed(json_extend)
        out["write_json_list_extend"] = rate(m, s)
        if not args.read_only:
            _, s = timed(lambda: direct_put(ts_port, 3, caps, values, args.direct_chunk))
            out["write_direct_numpy_put"] = rate(n, s)
            out["write_direct_numpy_put"]["points_per_put"] = args.direct_chunk
        assert len(ts) == n
        # The first read of each kind runs in a fresh client process: a process's first
        # large arrays cost page faults that later ones reuse (a direct GET in a fresh
        # process runs at about half the speed of the next), so first reads are compared
        # with first reads, and later reads, in this process, with later reads.
        # Whichever goes first finds TStorage's own first-read costs still to pay: the
        # gateway's by default (the figure it could lose by), --direct-first the other way.
        if args.direct_first:
            out["read_direct_first"] = rate(n, fresh_read(["--read-direct", str(ts_port)], n))
        with cpu_per(n, pids) as cpu_r, peak_rss(gw.pid) as mem_r:
            s = fresh_read(["--read-gateway", address], n)
        out["read_columns"] = rate(n, s)
        out["read_columns_gateway_rss"] = mem_r
        out["read_columns_cpu_us_per_point"] = cpu_r
        if not args.direct_first:
            out["read_direct_first"] = rate(n, fresh_read(["--read-direct", str(ts_port)], n))
        out["first_reads_order"] = "direct, gateway" if args.direct_first else "gateway, direct"
        reads: list[float] = []
        for _ in range(args.reads):  # gateway and direct in turn: the load moves
            window, s = timed(ts.range)
            assert len(window) == n and float(window.v[-1]) == float(values[-1])
            reads.append(s)
            del window
            got, s = timed(lambda: direct_get(ts_port, 1))
            assert got == n, got
            out.setdefault("read_direct_s", []).append(s)
        if reads:
            out["read_columns_again"] = rate(n, statistics.median(reads))
            out["read_columns_again"]["rounds_points_per_s"] = [
                rate(n, x)["points_per_s"] for x in reads
            ]
            out["read_direct_numpy_get"] = rate(n, statistics.median(out.pop("read_direct_s")))
        c.sio.disconnect()
    except Exception:
        print(gw.text()[-5000:], file=sys.stderr)
        raise
    finally:
        gw.stop()


def appends(args: argparse.Namespace, tmp: Path, out: dict[str, Any]) -> None:
    """One writer's append rate on a gateway and on the in-memory server, into ``out``."""
    # Both servers up at once, rounds taken in turn: on a shared machine the load moves
    # within seconds, so one figure each would compare different moments.
    gw, _ = start_gateway(tmp, "interval", "interval")
    gj, _ = start_gateway(tmp, "journal", "interval", journal=True)
    mem = spawn(["znsocket", "--host", "127.0.0.1", "--port", "0", "--storage", "memory",
                 "--log-level", "WARNING"])  # fmt: skip
    try:
        per_round = max(1, args.appends // args.rounds)
        names = ("gateway", "journal", "memory")
        rounds: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        servers = {
            "gateway": {"gateway": gw.pid, "tstorage": child_pid(gw.pid)},
            "journal": {"gateway": gj.pid, "tstorage": child_pid(gj.pid)},
            "memory": {"znsocket": mem.pid},
        }
        for k in range(args.rounds):
            for name, proc in (("gateway", gw), ("journal", gj), ("memory", mem)):
                with cpu_per(per_round, {**servers[name], "client": os.getpid()}) as used:
                    got = append_rate(
                        f"znsocket://127.0.0.1:{proc.port}", f"meters/5/{k + 1}", per_round
                    )
                rounds[name].append(got["points_per_s"])
                cpu[name].append(used)
        for name, key in (("gateway", "append_gateway_sync_interval"),
                          ("journal", "append_gateway_journal"),
                          ("memory", "append_memory_znsocket")):  # fmt: skip
            out[key] = {
                "points_per_round": per_round,
                "rounds_points_per_s": rounds[name],
                "points_per_s": round(statistics.median(rounds[name])),
                # median over the rounds, per process (the client: this one)
                "cpu_us_per_append": {
                    p: round(statistics.median(c[p] for c in cpu[name]), 1) for p in cpu[name][0]
                },
            }
    finally:
        gw.stop()
        gj.stop()
        mem.stop()


def _ratios(out: dict[str, Any]) -> dict[str, float]:
    # the ratios of the figures a run took (--read-only takes the reads and the write)
    pairs = {
        "write_columns_vs_direct": ("write_columns", "write_direct_numpy_put", 2),
        "write_columns_vs_json": ("write_columns", "write_json_list_extend", 1),
        "read_columns_vs_direct": ("read_columns", "read_direct_first", 2),
        "read_again_vs_direct": ("read_columns_again", "read_direct_numpy_get", 2),
        "append_interval_vs_memory": (
            "append_gateway_sync_interval", "append_memory_znsocket", 2
        ),
        "append_journal_vs_memory": ("append_gateway_journal", "append_memory_znsocket", 2),
    }  # fmt: skip
    return {
        name: round(out[a]["points_per_s"] / out[b]["points_per_s"], digits)
        for name, (a, b, digits) in pairs.items()
        if a in out and b in out
    }


def compare(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Run the measurements on ``--old-tree`` and on this tree in turn, in child processes."""
    trees = {"old": Path(args.old_tree).resolve(), "new": Path(__file__).resolve().parent.parent}
    child_argv = []
    skip = False
    for a in argv:  # the same options, without --old-tree/--runs/--json
        if skip:
            skip = False
            continue
        if a in ("--old-tree", "--runs", "--json"):
            skip = True
            continue
        if a.startswith(("--old-tree=", "--runs=", "--json=")):
            continue
        child_argv.append(a)
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for _ in range(args.runs):
        for name, tree in trees.items():
            env = dict(os.environ, BULK_BENCH_TREE=str(tree), PYTHONPATH=str(tree))
            load = os.getloadavg()[0]
            done = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), *child_argv],
                env=env,
                stdout=subprocess.PIPE,
                check=True,
            )
            got = json.loads(done.stdout)
            got["tree"] = str(tree)
            got["load_average_before"] = round(load, 2)
            got["load_average_after"] = round(os.getloadavg()[0], 2)
            runs[name].append(got)
            print(f"{name}: {summary(got)}", file=sys.stderr)
    return runs


def summary(r: dict[str, Any]) -> str:
    """One line of a run's main figures."""
    if "write_columns" not in r:  # --only append
        return f"{_appends(r)}, load {r.get('load_average_before')}-{r.get('load_average_after')}"
    if "append_memory_znsocket" not in r:  # --read-only
        return (
            f"write {r['write_columns']['points_per_s']:,}/s, "
            f"{_reads(r)}, "
            f"load {r.get('load_average_before')}-{r.get('load_average_after')}"
        )
    return (
        f"write {r['write_columns']['points_per_s']:,}/s "
        f"(direct {r['write_direct_numpy_put']['points_per_s']:,}/s, "
        f"ratio {r['ratios']['write_columns_vs_direct']}), "
        f"{_reads(r)}, "
        f"{_appends(r)}, load {r.get('load_average_before')}-{r.get('load_average_after')}"
    )


def _reads(r: dict[str, Any]) -> str:
    first = r.get("read_direct_first")  # absent in runs of a tree before fresh first reads
    text = f"first read {r['read_columns']['points_per_s']:,}/s"
    if first:
        text += (
            f" (direct {first['points_per_s']:,}/s, ratio {r['ratios']['read_columns_vs_direct']})"
        )
    if "read_columns_again" in r and "read_direct_numpy_get" in r:
        text += (
            f", later reads {r['read_columns_again']['points_per_s']:,}/s (direct "
            f"{r['read_direct_numpy_get']['points_per_s']:,}/s, ratio "
            f"{r['ratios'].get('read_again_vs_direct')})"
        )
    return text


def _appends(r: dict[str, Any]) -> str:
    journal = r.get("append_gateway_journal")  # absent in runs of a tree without a journal
    return (
        f"append {r['append_gateway_sync_interval']['points_per_s']:,}/s"
        + (f", with the journal {journal['points_per_s']:,}/s" if journal else "")
        + f" vs memory {r['append_memory_znsocket']['points_per_s']:,}/s (ratios "
        f"{r['ratios']['append_interval_vs_memory']}"
        + (f", {r['ratios']['append_journal_vs_memory']}" if journal else "")
        + ")"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--points", type=int, default=10_000_000, help="bulk points (default 10M)")
    ap.add_argument("--json-points", type=int, default=1_000_000, help="points via List.extend")
    ap.add_argument(
        "--direct-chunk", type=int, default=1_048_576, help="points per direct numpy PUT"
    )
    ap.add_argument(
        "--chunk", type=int, default=None, help="points per ts:extend event (default: extend's)"
    )
    ap.add_argument("--appends", type=int, default=4000, help="points appended one by one")
    ap.add_argument("--rounds", type=int, default=8, help="append rounds per server, in turn")
    ap.add_argument(
        "--read-only",
        action="store_true",
        help="only the writes (no direct PUT) the reads need, then the reads",
    )
    ap.add_argument(
        "--only",
        choices=("all", "append"),
        default="all",
        help="append: only the one-writer append rates (no bulk write or read)",
    )
    ap.add_argument(
        "--reads", type=int, default=1, help="later reads of each kind, in turn (the median)"
    )
    ap.add_argument(
        "--direct-first",
        action="store_true",
        help="the first direct GET before the gateway's first read (default: after it)",
    )
    ap.add_argument("--old-tree", help="also measure this checkout's code, in turn with this one")
    ap.add_argument("--runs", type=int, default=1, help="with --old-tree: runs of each tree")
    ap.add_argument("--json", dest="json_out", help="write the results here")
    # one read in this (new) process, for the first reads of a run
    ap.add_argument("--read-gateway", metavar="ADDRESS", help=argparse.SUPPRESS)
    ap.add_argument("--read-direct", metavar="PORT", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    if args.read_gateway or args.read_direct:
        how = "gateway" if args.read_gateway else "direct"
        print(json.dumps(read_once(how, args.read_gateway or args.read_direct)))
        return 0
    results: dict[str, Any]
    if args.old_tree:
        results = compare(args, argv)
    else:
        load = os.getloadavg()[0]
        results = run(args)
        results["load_average_before"] = round(load, 2)
        results["load_average_after"] = round(os.getloadavg()[0], 2)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
