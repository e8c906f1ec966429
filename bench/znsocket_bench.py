"""Side-by-side benchmark: upstream znsocket 0.3.0 and ours, mixed, plus Redis.

One run starts upstream's server (from ``.venv-upstream-znsocket``), our server and a
private ``redis-server`` on free loopback ports, then runs the shared yardstick
``../shared/bench/znsocket_ops.py`` beside the checkout (override with ``--ops-script``)
five times:

=====================  ======================  =================
pairing                client (interpreter)    server
=====================  ======================  =================
``anchor``             upstream                upstream
``up->ours``           upstream                ours
``ours->up``           ours                    upstream
``ours->ours``         ours                    ours
``redis``              redis-py                redis-server
=====================  ======================  =================

It prints a Markdown table of medians with each pairing's speed-up over the anchor
(anchor latency / pairing latency; > 1 is faster) and keeps the raw JSON in
``bench/results/`` (gitignored).

Usage (from the repository root)::

    .venv/bin/python bench/znsocket_bench.py                 # default, ~6 minutes
    .venv/bin/python bench/znsocket_bench.py --n 300 --repeats 1 --duration 2 --big-reps 1
    .venv/bin/python bench/znsocket_bench.py --rounds 3      # interleaved rounds, medians

With ``--rounds K`` the five pairings run K times, interleaved (every pairing once per
round), and each cell is the median over the rounds, with the range over rounds of the
concurrent figures beside it: a single 3-second concurrency window on a shared machine
moves by tens of percent, and interleaving keeps a slow minute from landing on one
pairing only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests._servers import ServerProcess, spawn  # noqa: E402
from tests._upstream import free_port, start_upstream_server, upstream_python  # noqa: E402

# The shared folder lies beside the checkout (and beside CI's clone).
DEFAULT_OPS_SCRIPT = ROOT.parent / "shared" / "bench" / "znsocket_ops.py"
LATENCY_OPS = [
    "set",
    "get",
    "hset",
    "hget",
    "rpush",
    "lindex_10k",
    "lrange_1000",
    "list_append_dict",
    "list_slice_last100",
    "dict_set",
    "dict_get",
    "pipeline_1000_hset",
]
PAIRINGS = ["anchor", "up->ours", "ours->up", "ours->ours", "redis"]


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server on a free loopback port, without persistence."""
    import redis

    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


def run_ops(
    python: str, url: str, pid: int, out: Path, args: argparse.Namespace, redis: bool
) -> dict[str, Any]:
    argv = [
        python,
        str(args.ops_script),
        "--url",
        url,
        "--n",
        str(args.n),
        "--repeats",
        str(args.repeats),
        "--clients",
        args.clients,
        "--duration",
        str(args.duration),
        "--big-reps",
        str(args.big_reps),
        "--server-pid",
        str(pid),
        "--json",
        str(out),
    ]
    if redis:
        argv.append("--redis")
    print("$", " ".join(argv), file=sys.stderr, flush=True)
    env = None
    if python != sys.executable:
        # upstream's interpreter imports its own znsocket, wherever PYTHONPATH points ours
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(argv, check=True, cwd="/tmp", env=env)
    return json.loads(out.read_text())


def median_result(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result with the median over rounds of every figure the table shows.

    Concurrent figures also keep ``range`` (min, max over rounds).
    """
    if len(runs) <= 1:
        return runs[0] if runs else {}
    out: dict[str, Any] = {"single_client": {}, "concurrent_hget": {}, "rounds": len(runs)}
    for op in LATENCY_OPS:
        vals = [
            r["single_client"][op]["median_us"] for r in runs if op in r.get("single_client", {})
        ]
        if vals:
            out["single_client"][op] = {"median_us": statistics.median(vals)}
    bigs = [r["big_value"]["roundtrip_median_s"] for r in runs if r.get("big_value")]
    if bigs:
        out["big_value"] = {"roundtrip_median_s": statistics.median(bigs)}
    for n in runs[0].get("concurrent_hget", {}):
        vals = [
            r["concurrent_hget"][n]["agg_ops_per_s"]
            for r in runs
            if n in r.get("concurrent_hget", {})
        ]
        out["concurrent_hget"][n] = {
            "agg_ops_per_s": statistics.median(vals),
            "range": (min(vals), max(vals)),
        }
    return out


def fmt_us(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    anchor = results["anchor"]
    head = "| op | " + " | ".join(PAIRINGS) + " |"
    lines = [
        "Median latency per operation in µs (speed-up vs the anchor in brackets; > 1 = faster).",
        "",
        head,
        "|" + "---|" * (len(PAIRINGS) + 1),
    ]
    for op in LATENCY_OPS:
        base = anchor.get("single_client", {}).get(op, {}).get("median_us")
        cells = []
        for name in PAIRINGS:
            v = results[name].get("single_client", {}).get(op, {}).get("median_us")
            if v is None:
                cells.append("-")
            else:
                ratio = f" ({base / v:.1f}x)" if base and name != "anchor" else ""
                cells.append(fmt_us(v) + ratio)
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    cells = []
    base_big = anchor.get("big_value", {}).get("roundtrip_median_s")
    for name in PAIRINGS:
        b = results[name].get("big_value")
        if not b:
            cells.append("-")
            continue
        v = b["roundtrip_median_s"]
        ratio = f" ({base_big / v:.1f}x)" if base_big and name != "anchor" else ""
        cells.append(f"{v:.3f} s{ratio}")
    lines.append("| 8 MB hset+hget round trip | " + " | ".join(cells) + " |")
    lines += ["", "Concurrent `hget` clients (separate processes): aggregate ops/s.", ""]
    lines += [head, "|" + "---|" * (len(PAIRINGS) + 1)]
    counts: list[str] = []
    for r in results.values():
        counts += [n for n in r.get("concurrent_hget", {}) if n not in counts]
    for n in counts:
        base = anchor.get("concurrent_hget", {}).get(n, {}).get("agg_ops_per_s")
        cells = []
        for name in PAIRINGS:
            v = results[name].get("concurrent_hget", {}).get(n, {}).get("agg_ops_per_s")
            if v is None:
                cells.append("-")
            else:
                ratio = f" ({v / base:.1f}x)" if base and name != "anchor" else ""
                spread = results[name]["concurrent_hget"][n].get("range")
                extra = f" [{spread[0]:,.0f}-{spread[1]:,.0f}]" if spread else ""
                cells.append(f"{v:,.0f}{ratio}{extra}")
        lines.append(f"| {n} clients | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--ops-script",
        type=Path,
        default=DEFAULT_OPS_SCRIPT,
        help="the shared yardstick (default: ../shared/bench/znsocket_ops.py beside the checkout)",
    )
    ap.add_argument("--n", type=int, default=1000, help="operations per latency test")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--big-reps", type=int, default=2)
    ap.add_argument("--only", default=",".join(PAIRINGS), help="comma list of pairings to run")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (cells: median)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    if not args.ops_script.is_file():
        ap.error(f"no yardstick at {args.ops_script}: give its path with --ops-script")
    args.out.mkdir(parents=True, exist_ok=True)
    only = [p for p in args.only.split(",") if p]

    up_py = str(upstream_python())
    our_py = sys.executable
    upstream: ServerProcess = start_upstream_server()
    ours: ServerProcess = spawn(["znsocket", "--port", "0", "--host", "127.0.0.1"])
    redis_proc, redis_port = start_redis()
    plan = {
        "anchor": (up_py, upstream, False),
        "up->ours": (up_py, ours, False),
        "ours->up": (our_py, upstream, False),
        "ours->ours": (our_py, ours, False),
        "redis": (our_py, None, True),
    }
    stamp = time.strftime("%Y%m%dT%H%M%S")
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in PAIRINGS}
    try:
        for k in range(args.rounds):
            for name in PAIRINGS:
                if name not in only:
                    continue
                python, server, is_redis = plan[name]
                if is_redis:
                    url, pid = f"redis://127.0.0.1:{redis_port}", redis_proc.pid
                else:
                    assert server is not None
                    url, pid = f"znsocket://127.0.0.1:{server.port}", server.pid
                tag = name.replace("->", "-to-") + (f"-r{k + 1}" if args.rounds > 1 else "")
                out = args.out / f"znsocket-{stamp}-{tag}.json"
                rounds[name].append(run_ops(python, url, pid, out, args, is_redis))
    finally:
        upstream.stop()
        ours.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
    results = {name: median_result(runs) for name, runs in rounds.items()}
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
