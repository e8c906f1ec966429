"""Upstream znsocket 0.3.0 (its own virtualenv) against a `gateway run` process."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from tests._servers import ServerProcess
from tests._upstream import run_upstream_json
from tests.gateway.conftest import meter_config
from tests.gateway.test_storage_series import put_direct, records_of

pytestmark = [pytest.mark.integration, pytest.mark.interop]

DRIVER = r"""
import json, sys, time
import znsocket

c = znsocket.Client.from_url(sys.argv[1])
out = {}
lst = znsocket.List(c, "meters/7/3")
lst.append(1.5)
lst.extend([2.5, 3.5])
out["len"] = len(lst)
out["last2"] = lst[-2:]
out["first"] = lst[0]
d = znsocket.Dict(c, "meters/7")
d["4"] = 8.0
out["dict"] = dict(d)
try:
    lst.append("not a number")
except Exception as exc:
    out["bad_append"] = [type(exc).__name__, str(exc)]
try:
    lst.insert(1, 9.0)
except Exception as exc:
    out["insert"] = [type(exc).__name__, str(exc)]
# records written by another program show up (after the change feed caught up)
seen = None
for _ in range(100):
    seen = znsocket.List(c, "meters/8/1")[:]
    if seen:
        break
    time.sleep(0.05)
out["direct"] = seen
generic = znsocket.Dict(c, "settings")
generic["theme"] = {"dark": True}
out["generic"] = generic["theme"]
print(json.dumps(out))
"""


def test_upstream_client_over_mapped_series(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    put_direct(tstorage, [((cid, 8, 1, 10), struct.pack("<d", 42.0))])
    out = run_upstream_json(DRIVER, f"znsocket://127.0.0.1:{gw.port}")
    assert out["len"] == 3
    assert out["last2"] == [2.5, 3.5] and out["first"] == 1.5
    assert out["dict"] == {"3": 3.5, "4": 8.0}
    assert out["bad_append"][0] == "DataError" and "needs a number" in out["bad_append"][1]
    assert out["insert"][0] == "ResponseError" and "middle" in out["insert"][1]
    assert out["direct"] == [42.0]
    assert out["generic"] == {"dark": True}
    recs = [(k[:3], struct.unpack("<d", v)[0]) for k, v in records_of(tstorage, cid)]
    assert recs == [
        ((cid, 7, 3), 1.5),
        ((cid, 7, 3), 2.5),
        ((cid, 7, 3), 3.5),
        ((cid, 7, 4), 8.0),
        ((cid, 8, 1), 42.0),
    ]


BULK_DRIVER = r"""
import json, sys
import numpy as np
import znsocket

# upstream's client is python-socketio's: bytes travel as binary attachments
c = znsocket.Client.from_url(sys.argv[1])
caps = 800_000_000 * 10**9 + np.arange(1000, dtype=np.int64)
ack = c.sio.call(
    "ts:extend",
    [["meters/7/3"], {"t": caps.tobytes(), "v": np.arange(1000.0).tobytes(), "dtype": "<f8"}],
    namespace="/znsocket",
)
got = c.sio.call(
    "ts:range", [["meters/7/3"], {"columns": True, "limit": 5}], namespace="/znsocket"
)["data"]
print(json.dumps({
    "extend": ack,
    "t": np.frombuffer(got["t"], "<i8").tolist(),
    "v": np.frombuffer(got["v"], got["dtype"]).tolist(),
    "len": len(znsocket.List(c, "meters/7/3")),
}))
"""


def test_upstream_client_sends_and_reads_binary_columns(
    start_gateway: Callable[[str], ServerProcess],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
) -> None:
    cid = fresh_cid()
    gw = start_gateway(meter_config(tstorage, cid, fresh_cid()))
    out = run_upstream_json(BULK_DRIVER, f"znsocket://127.0.0.1:{gw.port}")
    assert out["extend"]["data"] == {"key": "meters/7/3", "count": 1000, "start": 0, "length": 1000}
    assert out["t"] == [800_000_000 * 10**9 + i for i in range(5)]
    assert out["v"] == [0.0, 1.0, 2.0, 3.0, 4.0] and out["len"] == 1000
    assert len(records_of(tstorage, cid)) == 1000
