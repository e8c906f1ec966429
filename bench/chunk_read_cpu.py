"""Gateway CPU per cold chunk read: in one process, a ``GatewayStorage`` against a
``tstorage-server`` on a series loaded by ``bench/scale_bench.py --keep``, reads every other
chunk of the series (no two neighbours, so each is one narrow GET), and reports this
thread's CPU and the wall time per read, next to the CPU of the bare GETs of the same
boxes (records decoded into numpy columns and dropped).

    PYTHONPATH=$PWD .venv/bin/python bench/chunk_read_cpu.py --data /tmp/scale-10m

The series' summaries are built on the first run (under ``--index-cid``) and persisted, so
later runs start from them. Not a timed test: figures go in bench/scale.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale_bench import MID, MOID, config_text  # noqa: E402

from gateway.config import load_config  # noqa: E402
from gateway.keymap import SeriesKey  # noqa: E402
from gateway.storage import GatewayStorage  # noqa: E402
from gateway.storage.link import LinkSettings, TStorageLink  # noqa: E402
from gateway.timeseries.reads import TimeSeriesReads  # noqa: E402
from tests._servers import spawn  # noqa: E402


def per_read(reads: int, fn: Callable[[], None]) -> tuple[float, float]:
    """(CPU ms of this thread, wall ms) per read of ``fn`` doing ``reads`` reads."""
    c0, w0 = time.thread_time(), time.perf_counter()
    fn()
    return (
        (time.thread_time() - c0) / reads * 1e3,
        (time.perf_counter() - w0) / reads * 1e3,
    )


def one_round(cfg_path: Path, count: int) -> str:
    """A fresh gateway reading ``count`` cold chunks, then the same boxes by bare GETs."""
    cfg = load_config(cfg_path)
    t = cfg.tstorage
    assert t.host is not None and t.port is not None
    link = TStorageLink(LinkSettings.for_config(t, t.host, t.port))
    try:
        gw = GatewayStorage(link, cfg)
        gw.load()
        reads = TimeSeriesReads(gw)
        target = reads.target(f"meters/{MID}/{MOID}")
        reads.info(target)  # summaries: persisted, or built once
        box, _, idx = gw.series.series_index(target)
        ks = list(range(0, idx.chunks - 1, 2))[: count + 1]
        idx.chunk(ks.pop(0))  # the first read opens the pooled connection
        key = SeriesKey(box.lo[0], box.lo[1], MOID)
        boxes = [key.key_range(int(idx.lo[k]), int(idx.lo[k + 1]), acq_max=box.acq0) for k in ks]
        size = box.payload_size or 0

        def chunks() -> None:
            for k in ks:
                idx.chunk(k)

        def gets() -> None:
            for lo, hi in boxes:
                link.stream_columns(lo, hi, size, lambda arr: None)

        cpu, wall = per_read(len(ks), chunks)
        get_cpu, get_wall = per_read(len(boxes), gets)
        return (
            f"{len(ks)} chunk reads of {len(idx) // idx.chunks:,} records: {cpu:.3f} ms CPU, "
            f"{wall:.3f} ms wall each; the bare GETs: {get_cpu:.3f} ms CPU, "
            f"{get_wall:.3f} ms wall each"
        )
    finally:
        link.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a data directory of scale_bench --keep")
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="a fresh gateway each")
    parser.add_argument("--index-cid", type=int, default=1_900_000_000)
    args = parser.parse_args()
    ts = spawn(["tstorage-server", "--data-dir", args.data, "--port", "0"], timeout=600)
    try:
        with tempfile.TemporaryDirectory(prefix="chunk-read-cpu-") as tmp:
            cfg_path = Path(tmp) / "gateway.toml"
            extra = f"index_cid = {args.index_cid}"
            cfg_path.write_text(config_text(ts.port, args.index_cid - 1, extra))
            for r in range(args.rounds):
                print(f"round {r}: {one_round(cfg_path, args.reads)}", flush=True)
    finally:
        ts.stop()


if __name__ == "__main__":
    main()
