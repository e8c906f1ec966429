"""Throughput of tstorage_server through tstorage_client, next to raw loopback TCP.

One run measures put and get of N records (8-byte payload) on the object path
(``Record`` objects, ``StructPayloadType("<q")``) and the numpy path
(``NumpyPayloadType(np.int64)``), with 1 client and with 8 client processes sharing the
work, against a fresh ``tstorage-server`` process; and, as the physical reference, raw
loopback TCP moving the same number of bytes (one sender, one receiver, no protocol work).

    .venv/bin/python bench/tstorage_bench.py [--records 1000000] [--clients 8]

Times cover the client call only (records are built before the clock starts). With several
clients, the rate is all records over the time from the first start to the last finish.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD_BYTES = 8
PUT_WIRE_BYTES = 4 + 20 + PAYLOAD_BYTES  # per record in a PUT request
GET_WIRE_BYTES = 4 + 32 + PAYLOAD_BYTES  # per record in a GET response
TARGETS = {  # records/s the product brief asks for
    ("object", "put"): 500_000,
    ("object", "get"): 250_000,
    ("numpy", "put"): 1_000_000,
    ("numpy", "get"): 2_000_000,
}
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


# -- server -------------------------------------------------------------------------------
def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = Path(sys.executable).parent / "tstorage-server"
    proc = subprocess.Popen(
        [str(exe), "--data-dir", str(data_dir), "--port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    m = re.search(r"listening on \S+?:(\d+)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(m.group(1))


# -- one client's work (runs in a child process) --------------------------------------------
def client_job(path: str, op: str, port: int, cid: int, count: int, barrier: Any, out: Any) -> None:
    from tstorage_client.channel import Channel
    from tstorage_client.payload_type import NumpyPayloadType, StructPayloadType
    from tstorage_client.record import Key, Record

    kmin = Key(cid, I64_MIN, I32_MIN, I64_MIN, I64_MIN)
    kmax = Key(cid + 1, I64_MAX, I32_MAX, I64_MAX, I64_MAX)
    data: Any = None
    if path == "numpy":
        ptype: Any = NumpyPayloadType(np.int64)
        if op == "put":
            data = {
                "cid": np.full(count, cid, dtype=np.int32),
                "mid": np.arange(count, dtype=np.int64),
                "moid": np.zeros(count, dtype=np.int32),
                "cap": np.full(count, 1000, dtype=np.int64),
                "v0": np.arange(count, dtype=np.int64),
            }
    else:
        ptype = StructPayloadType("<q")
        if op == "put":
            data = [Record(Key(cid, i, 0, 1000), i) for i in range(count)]
    with Channel("127.0.0.1", port, ptype) as ch:
        barrier.wait()
        t0 = time.perf_counter()
        if op == "put":
            ok = ch.put(data).is_ok()
            got = count
        else:
            resp = ch.get(kmin, kmax)
            ok = resp.is_ok()
            got = (
                sum(len(a) for a in cast(list[Any], resp.data))
                if path == "numpy"
                else len(resp.data)
            )
        t1 = time.perf_counter()
    out.put((t0, t1, ok, got))


def run_clients(path: str, op: str, port: int, clients: int, records: int, base_cid: int) -> float:
    """Records/s of ``clients`` processes sharing ``records`` records."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(clients)
    out = ctx.Queue()
    per = records // clients
    procs = [
        ctx.Process(target=client_job, args=(path, op, port, base_cid + i, per, barrier, out))
        for i in range(clients)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    if not all(ok for _, _, ok, _ in results):
        raise RuntimeError(f"{path} {op} with {clients} clients failed")
    got = sum(n for *_, n in results)
    if got != per * clients:
        raise RuntimeError(f"{path} {op}: expected {per * clients} records, got {got}")
    start = min(t0 for t0, *_ in results)
    end = max(t1 for _, t1, *_ in results)
    return got / (end - start)


# -- raw TCP reference ----------------------------------------------------------------------
def raw_tcp_mb_s(nbytes: int) -> float:
    """MB/s of one loopback TCP connection moving ``nbytes`` (sender to receiver, acked)."""
    payload = os.urandom(1 << 20) * (nbytes // (1 << 20) + 1)
    payload = payload[:nbytes]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def sink() -> None:
        conn, _ = listener.accept()
        buf = bytearray(1 << 20)
        left = nbytes
        while left:
            n = conn.recv_into(buf, min(left, len(buf)))
            if not n:
                break
            left -= n
        conn.sendall(b"k")
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(payload)
        s.recv(1)
        t1 = time.perf_counter()
    t.join()
    listener.close()
    return nbytes / (t1 - t0) / 1e6


# -- report -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    n = args.records

    raw = {"put": raw_tcp_mb_s(n * PUT_WIRE_BYTES), "get": raw_tcp_mb_s(n * GET_WIRE_BYTES)}
    tmp = Path(tempfile.mkdtemp(prefix="tstorage-bench-"))
    proc, port = start_server(tmp / "data")
    rows: list[tuple[str, str, int, float]] = []
    try:
        cid = 1
        for path in ("numpy", "object"):
            for clients in (1, args.clients):
                for op in ("put", "get"):
                    rate = run_clients(path, op, port, clients, n, cid)
                    rows.append((path, op, clients, rate))
                cid += clients
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {n} records, 8-byte payload"
    )
    print(f"raw loopback TCP: {raw['put']:.0f} MB/s (put-sized), {raw['get']:.0f} MB/s (get-sized)")
    head = f"{'path':7} {'op':4} {'clients':>7} {'records/s':>12} {'MB/s':>8} {'target':>10} {'vs target':>9} {'vs raw TCP':>10}"
    print(head)
    print("-" * len(head))
    one: dict[tuple[str, str], float] = {}
    for path, op, clients, rate in rows:
        wire = PUT_WIRE_BYTES if op == "put" else GET_WIRE_BYTES
        mb_s = rate * wire / 1e6
        target = TARGETS[(path, op)]
        if clients == 1:
            one[(path, op)] = rate
        print(
            f"{path:7} {op:4} {clients:>7} {rate:>12,.0f} {mb_s:>8.1f} {target:>10,} {rate / target:>8.2f}x {mb_s / raw[op]:>9.1%}"
        )
    print()
    for path, op, clients, rate in rows:
        if clients != 1:
            print(f"{path} {op}: {clients} clients / 1 client = {rate / one[(path, op)]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
