"""Memory hostile clients can make tstorage-server hold, and what it keeps after they go.

    .venv/bin/python bench/tstorage_memory.py [--baseline DIR]

Scenarios, each against a fresh server process (its anonymous resident memory, RssAnon,
read from /proc; the store's file mapping is not counted):

* ``put``: three clients each send about 300 MB of complete PUT batches without the end
  marker and hold them; then they leave (two close, one resets); three rounds.
* ``get`` / ``get-sieve``: 20 MB (``get``) or 40 MB (``get-sieve``) of 500-byte records are
  stored; 60 clients send a GET and never read (receive buffer 4 KiB), then close. ``get``
  asks for all records, ``get-sieve`` for every other one (a box that cuts stored blocks).

``--baseline DIR`` runs the same against the ``tstorage_client`` and ``tstorage_server``
packages in DIR (e.g. ``git archive OLD tstorage_client tstorage_server | tar -x -C DIR``).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = struct.Struct("<iQ")
KEY = struct.Struct("<iqiqq")
KEY_MIN = (0, -(2**63), -(2**31), -(2**63), -(2**63))
KEY_MAX = (2**31 - 1, 2**63 - 1, 2**31 - 1, 2**63 - 1, 2**63 - 1)


def rss_anon_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no RssAnon")


def start(tree: Path, data_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    argv = [sys.executable, "-m", "tstorage_server", "--data-dir", data_dir, "--port", "0"]
    # cwd: ``python -m`` would put the current folder, maybe another tree, first on the path
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=tree
    )
    assert proc.stdout is not None
    m = re.search(r":(\d+)", proc.stdout.readline().decode())
    if not m:
        raise RuntimeError("server did not start")
    return proc, int(m.group(1))


def batch(records: list[tuple[tuple[int, ...], bytes]]) -> bytes:
    """One PUTA batch (all records of one cid)."""
    body = b"".join(
        struct.pack("<iqiqq", 28 + len(p), k[1], k[2], k[3], k[4]) + p for k, p in records
    )
    return struct.pack("<ii", records[0][0][0], len(body)) + body


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port))


def scenario_put(pid: int, port: int) -> list[str]:
    ten_mb = batch([((1, i, 0, 0, 1), b"x" * 10_000) for i in range(1000)])
    out = []
    for round_ in range(3):
        clients = [connect(port) for _ in range(3)]
        for c in clients:
            c.sendall(HEADER.pack(6, 0))
            for _ in range(30):
                c.sendall(ten_mb)
        time.sleep(2)
        held = rss_anon_mb(pid)
        for i, c in enumerate(clients):
            if i == round_:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        time.sleep(3)
        out.append(f"round {round_ + 1}: held {held} MB, after {rss_anon_mb(pid)} MB")
    return out


def scenario_get(pid: int, port: int, sieve: bool) -> list[str]:
    count = 80_000 if sieve else 40_000
    with connect(port) as c:
        records = [((5, i, i % 2, 0, 1), b"r" * 500) for i in range(count)]
        c.sendall(HEADER.pack(6, 0) + batch(records) + b"\xff" * 4)
        c.recv(28)
    time.sleep(1)
    base = rss_anon_mb(pid)
    kmin = (5, KEY_MIN[1], 0, KEY_MIN[3], KEY_MIN[4]) if sieve else KEY_MIN
    kmax = (6, KEY_MAX[1], 1, *KEY_MAX[3:]) if sieve else KEY_MAX
    request = HEADER.pack(1, 64) + KEY.pack(*kmin) + KEY.pack(*kmax)
    clients = []
    for _ in range(60):
        c = connect(port)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.sendall(request)
        clients.append(c)
    time.sleep(5)
    held = rss_anon_mb(pid)
    for c in clients:
        c.close()
    time.sleep(3)
    return [f"stored {base} MB; 60 unread GETs {held} MB; after they left {rss_anon_mb(pid)} MB"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="also run the packages in this folder")
    args = parser.parse_args(argv)
    trees = [("this tree", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
    for name, tree in trees:
        for scenario in ("put", "get", "get-sieve"):
            with tempfile.TemporaryDirectory() as data_dir:
                proc, port = start(tree, data_dir)
                try:
                    start_mb = rss_anon_mb(proc.pid)
                    if scenario == "put":
                        lines = scenario_put(proc.pid, port)
                    else:
                        lines = scenario_get(proc.pid, port, scenario == "get-sieve")
                finally:
                    proc.terminate()
                    proc.wait(30)
            for line in lines:
                print(f"{name:9} {scenario:9} started {start_mb} MB; {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
