"""Write records straight into TStorage with tstorage_client (as another program would).

Argument: JSON ``{"port", "cid", "mid", "moid", "points": [[unix_seconds, value], ...]}``
(values stored as ``struct:<d``; a value may be a string float() reads, such as
``"inf"`` or ``"nan"``) or, for a generated series, ``{"port", "cid", "mid",
"moid", "generate": {"count", "start", "step"}}`` (value i = sin(i / 1000) * 100 + i / count).
Prints ``{"written": n}``.
"""

from __future__ import annotations

import json
import math
import struct
import sys

from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record

EPOCH_NS = 978_307_200 * 10**9  # TStorage time 0 (2001-01-01) in unix ns


def main() -> None:
    spec = json.loads(sys.argv[1])
    cid, mid, moid = spec["cid"], spec["mid"], spec["moid"]
    if "generate" in spec:
        g = spec["generate"]
        n = g["count"]
        points = [(g["start"] + i * g["step"], math.sin(i / 1000) * 100 + i / n) for i in range(n)]
    else:
        points = [(t, v) for t, v in spec["points"]]
    with Channel("127.0.0.1", spec["port"], BytesPayloadType(), timeout=30) as ch:
        for lo in range(0, len(points), 100_000):
            batch = [
                Record(Key(cid, mid, moid, round(t * 1e9) - EPOCH_NS, 0), struct.pack("<d", float(v)))
                for t, v in points[lo : lo + 100_000]
            ]
            res = ch.put(batch)
            if not res.is_ok():
                raise SystemExit(f"PUT failed: {res}")
    print(json.dumps({"written": len(points)}))


if __name__ == "__main__":
    main()
