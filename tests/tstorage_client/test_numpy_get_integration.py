"""Large numpy GETs from a real server, with both channels: the records received in place
are the records stored, in few arrays; a connection cut mid-stream keeps a prefix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tests._servers import ServerProcess
from tests.tstorage_client._proxy import relay
from tests.tstorage_client.conftest import collect
from tstorage_client.payload_type import NumpyPayloadType
from tstorage_client.record import Key
from tstorage_client.response import ResponseStatus

Make = Callable[..., Any]
N = 300_000
PT = NumpyPayloadType("<f8")


async def store(ch: Any, cid: int) -> tuple[Key, Key]:
    caps = np.arange(N, dtype=np.int64) * 7
    res = await ch.put(
        {
            "cid": np.full(N, cid, dtype=np.int32),
            "mid": np.full(N, 3, dtype=np.int64),
            "moid": np.full(N, 1, dtype=np.int32),
            "cap": caps,
            "v0": caps / 2,
        }
    )
    assert res.is_ok()
    return Key(cid, 3, 1, -(2**63), -(2**63)), Key(cid + 1, 4, 2, 2**63 - 1, 2**63 - 1)


def check(arrays: list[Any], n: int = N) -> None:
    got = np.concatenate(arrays) if arrays else np.empty(0, dtype=PT.parsing_dtype)
    assert len(got) == n
    assert (got["cap"] == np.arange(n) * 7).all() and (got["v0"] == got["cap"] / 2).all()
    assert (got["moid"] == 1).all() and (got["_size"] == PT.parsing_dtype.itemsize - 4).all()


async def test_large_gets_come_back_whole_in_few_arrays(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    ch = make_channel(shared_server.port, PT)
    async with ch:
        box = await store(ch, cid_block)
        res = await ch.get(*box)
        assert res.is_ok()
        check(res.data)
        assert len(res.data) < 20  # 12 MB in regions of up to 4 MiB, not 64 KiB reads
        batches: list[list[Any]] = []
        ch.memory_limit = 1 << 20
        assert (await ch.get_stream(*box, batches.append)).is_ok()
        check([a for b in batches for a in b])
        # a batch holds what its share of the limit completed: at most one record more
        # (begun in the batch before)
        most = (1 << 20) + PT.parsing_dtype.itemsize
        assert all(sum(a.nbytes for a in b) <= most for b in batches)
        assert len(batches) >= 12
        ch.memory_limit = None
        items = await collect(ch.get_iter(*box))
        assert items[-1].is_ok()
        check(items[:-1])


async def test_a_connection_cut_mid_stream_keeps_the_records_before_the_cut(
    shared_server: ServerProcess, make_channel: Make, cid_block: int
) -> None:
    ch = make_channel(shared_server.port, PT)
    async with ch:
        box = await store(ch, cid_block)
    record = PT.parsing_dtype.itemsize
    cut = 12 + record * 100_000 + record // 2
    with relay(shared_server.port, cut_after=cut) as r:
        ch = make_channel(r.port, PT)
        async with ch:
            res = await ch.get(*box)
        assert res.status == ResponseStatus.DISCONNECTED
        check(res.data, 100_000)
        ch = make_channel(r.port, PT, memory_limit=1 << 20)
        batches: list[list[Any]] = []
        async with ch:
            res = await ch.get_stream(*box, batches.append)
        assert res.status == ResponseStatus.DISCONNECTED
        check([a for b in batches for a in b], 100_000)
