"""What hostile clients cost a znsocket server: memory held and other clients' latency.

Runs ``znsocket`` (1 MB packets) as a process from this tree, or with ``--tree DIR`` from
another checkout (e.g. an older commit unpacked with ``git archive``), and measures:

* attachments: server RSS growth after a binary event announced 100,000 attachments and
  100 frames of 900 kB followed (the event never completes);
* fragments: server RSS growth after one WebSocket message was sent as 100 frames of
  1 MB (never finished), and how many frames went out before the server closed the
  connection;
* gzip bomb: a ~280 kB ``compressed_message`` declaring 256 MiB that inflates past it,
  sent back to back by one client, while another measures its ``set`` round trips.

Usage::

    .venv/bin/python bench/znsocket_hostile.py [--tree DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import websocket  # noqa: E402

from tests._servers import spawn  # noqa: E402
from tests.znsocket.server.conftest import RawClient  # noqa: E402
from tests.znsocket.server.test_server_limits import RawSocketIO, rss_bytes  # noqa: E402

MIB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose server runs")
    args = parser.parse_args()
    env = {"PYTHONPATH": f"{args.tree.resolve()}:{ROOT}"}
    argv = ["znsocket", "--port", "0", "--max-http-buffer-size", "1100000"]
    with spawn(argv, env=env) as server:
        conn = RawSocketIO(server.port)
        before = rss_bytes(server.pid)
        conn.send('45100000-/znsocket,1["set",[["k",{"_placeholder":true,"num":0}],{}]]')
        for _ in range(100):
            conn.ws.send_binary(b"\0" * 900_000)
        probe = RawClient(server.url)
        probe.cmd("exists", "k")
        grown = (rss_bytes(server.pid) - before) / MIB
        print(f"attachments: RSS +{grown:.0f} MB after 90 MB of attachments")
        conn.close()

        conn = RawSocketIO(server.port)
        before = rss_bytes(server.pid)
        head = b'42/znsocket,1["set",[["frag","'
        conn.ws.send_frame(websocket.ABNF.create_frame(head, websocket.ABNF.OPCODE_TEXT, fin=0))
        sent = 0
        try:
            for _ in range(100):
                frame = websocket.ABNF.create_frame(b"x" * MIB, websocket.ABNF.OPCODE_CONT, fin=0)
                conn.ws.send_frame(frame)
                sent += 1
        except OSError:
            pass
        time.sleep(2)  # let the server read what the kernel still holds
        probe.cmd("exists", "frag")
        grown = (rss_bytes(server.pid) - before) / MIB
        print(f"fragments: {sent} of 100 MB sent before the close; RSS +{grown:.0f} MB")
        conn.ws.close()

        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        stream = b"".join(packer.compress(b" " * MIB) for _ in range(280)) + packer.flush()
        bomb = b"\x01" + (256 * MIB).to_bytes(4, "big") + stream
        offender = RawClient(server.url)
        idle = []
        for _ in range(10):
            started = time.monotonic()
            probe.cmd("set", "x", "1")
            idle.append(time.monotonic() - started)
        stop = threading.Event()
        refusals: list[float] = []

        def bomb_away() -> None:
            while not stop.is_set():
                started = time.monotonic()
                offender.call("compressed_message", {"event": "set", "data": bomb}, timeout=120)
                refusals.append(time.monotonic() - started)

        thread = threading.Thread(target=bomb_away, daemon=True)
        thread.start()
        while not refusals:
            time.sleep(0.05)
        busy = []
        for _ in range(12):
            started = time.monotonic()
            probe.cmd("set", "x", "1")
            busy.append(time.monotonic() - started)
            time.sleep(0.03)
        stop.set()
        thread.join(240)
        print(
            f"gzip bomb ({len(bomb)} bytes): refused in {statistics.median(refusals):.2f} s "
            f"(median); bystander set: median {1000 * statistics.median(idle):.1f} ms idle, "
            f"{1000 * statistics.median(busy):.1f} ms (max {1000 * max(busy):.1f} ms) "
            "during bombs"
        )
        offender.close()
        probe.close()


if __name__ == "__main__":
    os.nice(5)
    main()
