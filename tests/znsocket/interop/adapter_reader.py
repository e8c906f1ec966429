"""Cross-implementation driver, reader side: reads another process's adapters and writes
objects that process watches. Prints one JSON line of observations."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import znsocket


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return {"raised": type(exc).__name__}


def main() -> None:
    c = znsocket.Client.from_url(sys.argv[1])
    lst = znsocket.List(c, "xdata")
    d = znsocket.Dict(c, "xuser")
    r: dict[str, Any] = {
        "list_len": len(lst),
        "list_items": [lst[i] for i in range(len(lst))],
        "list_slice": lst[1:4],
        "list_negative": lst[-1],
        "list_out_of_range": outcome(lambda: lst[10]),
        "list_frozen": outcome(lambda: lst.append(1)),
        "dict_len": len(d),
        "dict_keys": d.keys(),
        "dict_values": d.values(),
        "dict_items": [list(x) for x in d.items()],
        "dict_get": d["tags"],
        "dict_contains": ["age" in d, "zip" in d],
        "dict_missing": outcome(lambda: d["zip"]),
        "dict_frozen": outcome(lambda: d.__setitem__("x", 1)),
        "list_copy": lst.copy("xdata-copy")[:],
        "dict_copy": dict(d.copy("xuser-copy")),
    }
    watched = znsocket.List(c, "xwatched")
    watched.extend([1, 2])
    watched.append(3)
    watched[0] = 0
    del watched[1]
    wd = znsocket.Dict(c, "xwatchedd")
    wd["a"] = 1
    wd.update({"b": 2})
    # Refreshes are fire-and-forget; a client may queue them (python-socketio does), so
    # make one round trip and give the server time to relay before leaving.
    c.exists("xwatched")
    time.sleep(0.3)
    c.sio.disconnect()
    print(json.dumps(r))


if __name__ == "__main__":
    main()
