"""Where the CPU goes when 1, 4 or 16 client processes share the machine with one server.

The yardstick's concurrency rows (``znsocket_bench.py``) give aggregate ops/s only. This
bench runs the same load - N processes, each calling ``hget`` in a loop on its own
connection - and adds what explains the figure, measured over the middle of each window:

* ``client us/op``: CPU time of the client processes (each worker's ``process_time``)
  per operation;
* ``server us/op`` and ``server util``: the server process's CPU (``/proc/PID/stat``);
* ``server waits``: share of the window the server's main thread was runnable but not
  running (``/proc/PID/schedstat``: it waited for a core);
* ``machine idle``: share of both cores idle (``/proc/stat``).

Usage (from the repository root; about 15 s per client count and server)::

    .venv/bin/python bench/znsocket_concurrency.py                       # our client
    .venv/bin/python bench/znsocket_concurrency.py --client upstream     # upstream's
    .venv/bin/python bench/znsocket_concurrency.py --servers ours --clients 4,16,4,16
    .venv/bin/python bench/znsocket_concurrency.py --servers ours --server-nice -10

The servers are ours (``znsocket``), upstream 0.3.0 (from ``.venv-upstream-znsocket``) and,
with ``--servers ...,redis``, a private ``redis-server`` driven by redis-py (a server whose
own CPU per command is small, so the client side shows alone), each started once on a free
loopback port. Workers are plain processes running this file
with ``--worker`` in the chosen client's interpreter, so they import that ``znsocket``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def worker(url: str, start_at: float, stop_at: float) -> None:
    """Call ``hget`` until ``stop_at``; count and time only from ``start_at`` on."""
    client: Any
    if url.startswith("redis://"):
        import redis

        client = redis.Redis.from_url(url)
    else:
        import znsocket  # the client under test: whichever this interpreter has

        client = znsocket.Client.from_url(url)
    client.hset("concurrency-bench", "field", "value")
    while time.time() < start_at:
        client.hget("concurrency-bench", "field")
    cpu0, switches0 = time.process_time(), _switches()
    ops = 0
    while time.time() < stop_at:
        client.hget("concurrency-bench", "field")
        ops += 1
    cpu = time.process_time() - cpu0
    print(json.dumps({"ops": ops, "cpu_s": cpu, "switches": _switches() - switches0}))


def _switches() -> int:
    """Voluntary plus involuntary context switches of this process so far."""
    text = Path("/proc/self/status").read_text()
    return sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", text))


def _machine() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def _server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_wait_s(pid: int) -> float:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def measure(python: str, url: str, server_pid: int, n: int, window: float) -> dict[str, Any]:
    """One window of ``n`` worker processes against the server at ``url``."""
    warm = 2.5 + 0.1 * n  # every worker connected and warm before the window opens
    start_at = time.time() + warm
    stop_at = start_at + window
    procs = [
        subprocess.Popen(
            [python, __file__, "--worker", url, repr(start_at), repr(stop_at)],
            stdout=subprocess.PIPE,
            cwd="/",  # import the interpreter's own znsocket, never this checkout's by path
        )
        for _ in range(n)
    ]
    # sample the middle of the window: workers start and stop at its edges
    time.sleep(max(0.0, start_at - time.time()) + 0.2)
    m0, c0, w0, t0 = _machine(), _server_cpu_s(server_pid), _server_wait_s(server_pid), time.time()
    time.sleep(window - 0.4)
    m1, c1, w1, t1 = _machine(), _server_cpu_s(server_pid), _server_wait_s(server_pid), time.time()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=window + 60)
        if p.returncode != 0:
            raise RuntimeError(f"a worker failed (exit {p.returncode})")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    ops = sum(r["ops"] for r in results)
    delta = [b - a for a, b in zip(m0, m1, strict=True)]
    span = t1 - t0
    return {
        "clients": n,
        "ops_per_s": ops / window,
        "client_cpu_us_per_op": sum(r["cpu_s"] for r in results) / ops * 1e6,
        "client_switches_per_op": sum(r["switches"] for r in results) / ops,
        "server_cpu_us_per_op": (c1 - c0) / (ops * span / window) * 1e6,
        "server_util": (c1 - c0) / span,
        "server_waits": (w1 - w0) / span,
        "machine_idle": (delta[3] + delta[4]) / sum(delta),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`measure` results."""
    lines = [
        "| server | clients | ops/s | client us/op | server us/op | server util | "
        "server waits | machine idle |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['clients']} | {r['ops_per_s']:,.0f} | "
            f"{r['client_cpu_us_per_op']:.0f} | {r['server_cpu_us_per_op']:.0f} | "
            f"{r['server_util']:.2f} | {r['server_waits']:.2f} | {r['machine_idle']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--client", choices=["ours", "upstream"], default="ours")
    ap.add_argument("--servers", default="ours,upstream", help="comma list: ours, upstream, redis")
    ap.add_argument("--clients", default="1,4,16", help="comma list of process counts")
    ap.add_argument("--window", type=float, default=4.0, help="seconds measured per count")
    ap.add_argument(
        "--server-nice",
        type=int,
        help="set the servers' nice value (below 0 needs root), as a service unit's Nice= would",
    )
    ap.add_argument("--json", type=Path, help="also write the rows to this file")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from znsocket_bench import start_redis

    from tests._servers import ServerProcess, spawn
    from tests._upstream import start_upstream_server, upstream_python

    python = sys.executable if args.client == "ours" else str(upstream_python())
    servers: dict[str, ServerProcess] = {}
    redis_server: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, Any]] = []
    try:
        for name in args.servers.split(","):
            if name == "ours":
                servers[name] = spawn(["znsocket", "--port", "0", "--host", "127.0.0.1"])
            elif name == "upstream":
                servers[name] = start_upstream_server()
            elif name == "redis":
                redis_server, port = start_redis()
                servers[name] = ServerProcess(["redis-server"], redis_server, "127.0.0.1", port)
            else:
                ap.error(f"unknown server {name!r}")
        if args.server_nice is not None:
            for server in servers.values():
                os.setpriority(os.PRIO_PROCESS, server.pid, args.server_nice)
        for n in (int(c) for c in args.clients.split(",")):
            for name, server in servers.items():
                scheme = "redis" if name == "redis" else "znsocket"
                py = sys.executable if name == "redis" else python
                url = f"{scheme}://127.0.0.1:{server.port}"
                row = measure(py, url, server.pid, n, args.window)
                rows.append({"server": name, **row})
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print(f"\nclient: {args.client}\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
