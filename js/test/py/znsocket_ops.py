"""Run operations with the Python client (``znsocket.Client``) and print their results as JSON.

Argument: JSON ``{"url", "ops": [op, ...]}``; each op is an object with ``"op"``:

* ``{"op": "cmd", "name", "args"}``: a raw command (``client.<name>(*args)``); sets are
  printed as sorted lists.
* ``{"op": "list", "key"}`` / ``{"op": "dict", "key"}``: the whole List / Dict as values.
* ``{"op": "append", "key", "values"}``: ``List.append`` each value (emits refreshes).
* ``{"op": "dict_set", "key", "field", "value"}``: ``Dict[field] = value``.
* ``{"op": "dumps", "value"}``: ``json.dumps(value)`` (how upstream stores values).
* ``{"op": "error", "name", "args"}``: the exception a raw command raises, as
  ``{"class", "msg"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import znsocket


def run(client: znsocket.Client, op: dict[str, Any]) -> Any:
    kind = op["op"]
    if kind == "cmd":
        out = getattr(client, op["name"])(*op.get("args", []))
        return sorted(out) if isinstance(out, set) else out
    if kind == "list":
        return list(znsocket.List(client, op["key"]))
    if kind == "dict":
        return dict(znsocket.Dict(client, op["key"]))
    if kind == "append":
        lst = znsocket.List(client, op["key"])
        for v in op["values"]:
            lst.append(v)
        return len(lst)
    if kind == "dict_set":
        znsocket.Dict(client, op["key"])[op["field"]] = op["value"]
        return None
    if kind == "dumps":
        return json.dumps(op["value"])
    if kind == "error":
        try:
            getattr(client, op["name"])(*op.get("args", []))
        except Exception as exc:  # the point is to report which
            return {"class": type(exc).__name__, "msg": str(exc)}
        return None
    raise SystemExit(f"unknown op {kind!r}")


def main() -> None:
    spec = json.loads(sys.argv[1])
    client = znsocket.Client.from_url(spec["url"].replace("http://", "znsocket://"))
    try:
        print(json.dumps([run(client, op) for op in spec["ops"]]))
    finally:
        client.close()


if __name__ == "__main__":
    main()
