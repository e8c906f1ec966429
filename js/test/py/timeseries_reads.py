"""Time-window reads with the Python client (``gateway.TimeSeries``), printed as JSON.

Argument: JSON ``{"url", "key", "ops": [op, ...]}``; each op is an object with ``"op"``:

* ``{"op": "info"}``: ``{"count", "first", "last", "watermark"}``.
* ``{"op": "range", "start"?, "end"?}``: every record of ``[start, end)`` (paged by the
  proxy), ``{"count", "t", "v"}``.
* ``{"op": "downsample", "buckets", "start"?, "end"?, "align"?}``: ``{"count", "t", "n",
  "min", "max", "mean", "last"}`` (aligned: also ``"t_end"``, ``"t_first"``, ``"t_last"``).
* ``{"op": "latest", "n"}``: ``{"count", "t", "v"}``.
* ``{"op": "resume", "since"}``: ``{"watermark", "t", "v", "acq"}``.

Times in ops are ISO-8601 strings or TStorage ns; times printed are unix nanoseconds as
decimal strings (exact in JavaScript), values as JSON (NaN as ``null``).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

import znsocket
from gateway import TimeSeries


def _ns(t: npt.NDArray[Any]) -> list[str]:
    return [str(x) for x in t.astype("datetime64[ns]").astype(np.int64).tolist()]


def _json(v: npt.NDArray[Any]) -> list[Any]:
    return [None if isinstance(x, float) and math.isnan(x) else x for x in v.tolist()]


def run(ts: TimeSeries, op: dict[str, Any]) -> Any:
    kind = op["op"]
    if kind == "info":
        got = ts.info()
        return {
            "count": got["count"],
            "first": None if got["first"] is None else _ns(np.asarray([got["first"]]))[0],
            "last": None if got["last"] is None else _ns(np.asarray([got["last"]]))[0],
            "watermark": got["watermark"],
        }
    if kind == "range":
        w = ts.range(op.get("start"), op.get("end"))
        return {"count": w.count, "t": _ns(w.t), "v": _json(w.v)}
    if kind == "downsample":
        d = ts.range(op.get("start"), op.get("end"), buckets=op["buckets"], align=op.get("align"))
        stats = {k: _json(getattr(d, k)) for k in ("min", "max", "mean", "last")}
        edges = (
            {k: _ns(getattr(d, k)) for k in ("t_end", "t_first", "t_last")}
            if d.t_end is not None
            else {}
        )
        return {"count": d.count, "t": _ns(d.t), "n": d.n.tolist(), **stats, **edges}
    if kind == "latest":
        w = ts.latest(op["n"])
        return {"count": w.count, "t": _ns(w.t), "v": _json(w.v)}
    if kind == "resume":
        r = ts.resume(op["since"])
        acq = [str(a) for a in r.acq.tolist()]
        return {"watermark": r.watermark, "t": _ns(r.t), "v": _json(r.v), "acq": acq}
    raise SystemExit(f"unknown op {kind!r}")


def main() -> None:
    spec = json.loads(sys.argv[1])
    client = znsocket.Client.from_url(spec["url"].replace("http://", "znsocket://"))
    try:
        ts = TimeSeries(client, spec["key"])
        print(json.dumps([run(ts, op) for op in spec["ops"]]))
    finally:
        client.close()


if __name__ == "__main__":
    main()
