#!/usr/bin/env python3
"""Series discovery: the dashboard's listing from saved discovery markers against streaming.

Loads ``--series`` ``struct:<d`` series of ``--records`` records each with numpy PUTs into a
TStorage server process, then times the first ``dashboard:series`` of a fresh gateway
process (``limit = 1`` and ``limit = 100``, each a fresh gateway), three ways:

* ``streaming``: ``index_persist = false``, so discovery streams every rule box whole;
* ``first save``: persistence on, nothing saved yet: it streams and saves the markers;
* ``from markers``: persistence on, a new gateway after that: the markers, then the change
  feed since the saved watermark.

With ``--old-tree PATH`` each row is also timed with the gateway of another checkout (the
tree before series heads, for a side-by-side run), under its own ``index_cid``.

Usage::

    .venv/bin/python bench/discovery_bench.py --series 10000 --records 100
    .venv/bin/python bench/discovery_bench.py --series 10000 --old-tree /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import znsocket  # noqa: E402
from tests._config_text import meter_rules  # noqa: E402
from tests._servers import ServerProcess, spawn  # noqa: E402
from tstorage_client.channel import Channel  # noqa: E402
from tstorage_client.payload_type import NumpyPayloadType  # noqa: E402

CID, GENERIC_CID = 1, 2
T0 = 800_000_000 * 10**9
BATCH = 2_000_000
MOIDS = 100  # series i is meters/{i // 100 + 1}/{i % 100 + 1}


def load(port: int, series: int, records: int) -> float:
    t0 = time.perf_counter()
    n = series * records
    with Channel("127.0.0.1", port, NumpyPayloadType("<f8"), timeout=600) as ch:
        for a in range(0, n, BATCH):
            i = np.arange(a, min(a + BATCH, n), dtype=np.int64)
            s, r = i // records, i % records
            res = ch.put(
                {  # type: ignore[arg-type]  # numpy payload types take a dict of columns
                    "cid": np.full(len(i), CID, dtype=np.int32),
                    "mid": (s // MOIDS + 1).astype(np.int64),
                    "moid": (s % MOIDS + 1).astype(np.int32),
                    "cap": T0 + r * 10**9,
                    "v0": r.astype(np.float64),
                }
            )
            if not res.is_ok():
                raise RuntimeError(f"PUT failed: {res.status}")
    return time.perf_counter() - t0


def config(port: int, persist: bool, index_cid: int) -> str:
    return textwrap.dedent(
        f"""
        [tstorage]
        host = "127.0.0.1"
        port = {port}
        timeout = 600
        index_persist = {"true" if persist else "false"}
        index_cid = {index_cid}

        [generic]
        cid = {GENERIC_CID}

        """
    ) + meter_rules(CID, dicts=False)


def first_listing_ms(
    path: Path, text: str, limit: int, tree: Path | None = None
) -> tuple[float, Any]:
    path.write_text(text)
    argv = ["gateway", "run", "--config", str(path), "--port", "0", "--log-level", "WARNING"]
    env = {"PYTHONPATH": str(tree)} if tree is not None else None
    gw: ServerProcess = spawn(argv, timeout=120, env=env)
    try:
        c = znsocket.Client.from_url(f"znsocket://127.0.0.1:{gw.port}")
        try:
            t0 = time.perf_counter()
            answer = c.call("dashboard:series", limit=limit)
            ms = (time.perf_counter() - t0) * 1000
        finally:
            c.sio.disconnect()
    finally:
        gw.stop()
    if "data" not in answer:
        raise RuntimeError(f"dashboard:series failed: {answer}")
    return ms, answer["data"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--limits", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--old-tree", default="", help="checkout of the design to compare with")
    args = ap.parse_args()
    designs: list[tuple[str, Path | None]] = [("this tree", ROOT)]
    if args.old_tree:
        designs.append(("old tree", Path(args.old_tree)))
    with tempfile.TemporaryDirectory(prefix="discovery-bench-") as tmp:
        data = Path(tmp) / "tstorage"
        ts = spawn(["tstorage-server", "--data-dir", str(data), "--port", "0"], timeout=600)
        try:
            secs = load(ts.port, args.series, args.records)
            n = args.series * args.records
            print(f"loaded {args.series} series x {args.records} records in {secs:.1f} s")
            print(f"({n / secs / 1e6:.2f}M records/s)")
            for limit in args.limits:
                cfg = Path(tmp) / "gateway.toml"
                answers: list[Any] = []
                for d, (design, tree) in enumerate(designs):
                    index_cid = 1_000_000 + 10 * limit + d  # nothing saved yet under it
                    rows = [
                        ("streaming", config(ts.port, False, index_cid)),
                        ("first save", config(ts.port, True, index_cid)),
                        ("from markers", config(ts.port, True, index_cid)),
                    ]
                    for name, text in rows:
                        ms, got = first_listing_ms(cfg, text, limit, tree)
                        assert len(got["series"]) == limit and got["next"] is not None
                        answers.append(got["series"])
                        print(
                            f"{design:<9} limit={limit:<4} {name:<13} "
                            f"first dashboard:series {ms:9.1f} ms",
                            flush=True,
                        )
                assert all(a == answers[0] for a in answers), "the listings differ"
        finally:
            ts.stop()


if __name__ == "__main__":
    main()
