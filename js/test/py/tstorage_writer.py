"""A long-running writer into TStorage with tstorage_client (as another program would).

Argument: JSON ``{"port"}``. Reads one JSON object per line from stdin,
``{"cid", "mid", "moid", "points": [[unix_seconds, value], ...]}`` (values as ``struct:<d``),
PUTs the records on one connection and answers each line with ``{"ok": true}`` once TStorage
acknowledged, or ``{"ok": false, "error": "..."}`` (e.g. while TStorage is down). A failed
PUT is retried once on a fresh connection (the old one may have died with a restarted server).
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys

from tstorage_client.channel import Channel
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.record import Key, Record

EPOCH_NS = 978_307_200 * 10**9  # TStorage time 0 (2001-01-01) in unix ns


def main() -> None:
    port = json.loads(sys.argv[1])["port"]
    ch: Channel[bytes] | None = None
    for line in sys.stdin:
        spec = json.loads(line)
        records = [
            Record(
                Key(spec["cid"], spec["mid"], spec["moid"], round(t * 1e9) - EPOCH_NS, 0),
                struct.pack("<d", v),
            )
            for t, v in spec["points"]
        ]
        # A connection that died with a restarted TStorage fails once: retry on a fresh one.
        for _attempt in (1, 2):
            try:
                if ch is None:
                    ch = Channel("127.0.0.1", port, BytesPayloadType(), timeout=5)
                    if not ch.connect().is_ok():
                        raise OSError(f"cannot connect to TStorage at 127.0.0.1:{port}")
                res = ch.put(records)
                answer = {"ok": res.is_ok(), "error": None if res.is_ok() else str(res.status)}
            except Exception as exc:  # report; the next line reconnects
                answer = {"ok": False, "error": repr(exc)}
            if answer["ok"]:
                break
            if ch is not None:
                with contextlib.suppress(Exception):
                    ch.close()
                ch = None
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
