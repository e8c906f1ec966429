"""Cross-implementation driver, owner side: serves adapters and records refreshes.

``python adapter_owner.py znsocket://HOST:PORT`` registers a ListAdapter and a
DictAdapter, subscribes to refreshes of two keys, prints ``ready`` and serves until its
stdin closes; then it prints the refresh payloads it received as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import znsocket


def main() -> None:
    c = znsocket.Client.from_url(sys.argv[1])
    data = [1, 2.5, "three", {"four": [4]}, None]
    user = {"name": "John", "age": 30, "tags": ["a", "b"]}
    znsocket.ListAdapter(key="xdata", socket=c, object=data)
    znsocket.DictAdapter(key="xuser", socket=c, object=user)
    seen: list[Any] = []
    znsocket.List(c, "xwatched").on_refresh(lambda p: seen.append(["list", p]))
    znsocket.Dict(c, "xwatchedd").on_refresh(lambda p: seen.append(["dict", p]))
    print("ready", flush=True)
    sys.stdin.read()  # serve until the test closes our stdin
    time.sleep(0.3)
    c.sio.disconnect()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
