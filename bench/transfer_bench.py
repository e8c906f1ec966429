"""Throughput of `gateway import` / `gateway export`, run as an operator runs them.

Starts a ``tstorage-server`` process on a scratch directory, writes a List CSV, a Dict CSV
(``field,t,v``) and a JSON Lines file of generic keys, and times each command end to end
(process start, config, TStorage round trips, file I/O). Usage::

    .venv/bin/python bench/transfer_bench.py [--rows 200000] [--fields 10] [--keys 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._servers import spawn

CONFIG = """
[tstorage]
host = "127.0.0.1"
port = {port}

[[map]]
pattern = "meters/{{mid:int}}/{{moid:int}}"
cid = 1
mid = "{{mid}}"
moid = "{{moid}}"
codec = "struct:<d"
time = "tstorage_ns"

[[map]]
kind = "dict"
pattern = "meters/{{mid:int}}"
cid = 1
mid = "{{mid}}"
codec = "struct:<d"
time = "tstorage_ns"
"""


def timed(*args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--quiet"], capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="records per CSV file")
    parser.add_argument("--fields", type=int, default=10, help="fields of the Dict")
    parser.add_argument("--keys", type=int, default=2_000, help="generic keys (hashes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lst, meter, keys = tmp / "list.csv", tmp / "meter.csv", tmp / "keys.jsonl"
        lst.write_text("t,v\n" + "".join(f"{1000 + i},{i}.5\n" for i in range(args.rows)))
        per = args.rows // args.fields
        meter.write_text(
            "field,t,v\n"
            + "".join(f"{m},{1000 + i},{i}.5\n" for m in range(args.fields) for i in range(per))
        )
        keys.write_text(
            "".join(
                json.dumps({"key": f"k:{i}", "type": "hash", "value": {"a": str(i), "b": "x" * 50}})
                + "\n"
                for i in range(args.keys)
            )
        )
        with spawn(["tstorage-server", "--data-dir", str(tmp / "data"), "--port", "0"]) as ts:
            cfg = tmp / "g.toml"
            cfg.write_text(CONFIG.format(port=ts.port))
            c = ("--config", str(cfg))
            rows = [
                ("import List CSV", args.rows, timed("import", str(lst), "--key", "meters/1/1", *c)),
                ("export List CSV", args.rows, timed("export", "--key", "meters/1/1", "-o", str(tmp / "l.csv"), *c)),
                ("import Dict CSV", per * args.fields, timed("import", str(meter), "--key", "meters/2", *c)),
                ("export Dict CSV", per * args.fields, timed("export", "--key", "meters/2", "-o", str(tmp / "m.csv"), *c)),
                ("import JSON Lines", args.keys, timed("import", str(keys), *c)),
                ("export JSON Lines", args.keys, timed("export", "-o", str(tmp / "k.jsonl"), *c)),
            ]  # fmt: skip
            assert (tmp / "m.csv").read_text() == meter.read_text()
    print("| command | items | seconds | items/s |")
    print("| --- | ---: | ---: | ---: |")
    for what, n, s in rows:
        print(f"| {what} | {n:,} | {s:.2f} | {n / s:,.0f} |")


if __name__ == "__main__":
    main()
