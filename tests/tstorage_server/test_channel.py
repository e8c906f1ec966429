"""Happy paths through this project's client (Channel, AsyncChannel) against a real server,
and concurrency: many clients at once, every record accounted for, the watermark honest."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests._servers import ServerProcess
from tstorage_client.channel import Channel
from tstorage_client.channel_async import AsyncChannel
from tstorage_client.payload_type import BytesPayloadType, NumpyPayloadType, StructPayloadType
from tstorage_client.record import Key, Record
from tstorage_client.response import ResponseAcq, ResponseStatus
from tstorage_client.timestamp import now_ns

pytestmark = pytest.mark.integration

I64_MAX = 2**63 - 1


def cid_range(cid: int, acq_max: int = I64_MAX) -> tuple[Key, Key]:
    return Key(cid, -(2**63), -(2**31), -(2**63), -(2**63)), Key(
        cid + 1, I64_MAX, 2**31 - 1, I64_MAX, acq_max
    )


def test_put_puta_get_stream_iter_with_channel(server: ServerProcess) -> None:
    with Channel("127.0.0.1", server.port, StructPayloadType[int]("<q"), timeout=30) as ch:
        before = now_ns()
        assert ch.put([Record(Key(5, i, 0, 100), i * 10) for i in range(100)]).is_ok()
        after = now_ns()
        assert ch.puta([Record(Key(5, i, 1, 100, 7), -i) for i in range(100)]).is_ok()
        resp = ch.get(*cid_range(5))
        assert resp.is_ok() and len(resp.data) == 200
        server_acq = [r.key.acq for r in resp.data if r.key.moid == 0]
        assert all(before <= a <= after for a in server_acq)  # acq comes from the wall clock
        assert [r.key for r in resp.data] == sorted(r.key for r in resp.data)
        assert resp.acq >= after
        batches: list[int] = []
        assert ch.get_stream(*cid_range(5), lambda rs: batches.append(len(rs))).is_ok()
        assert sum(batches) == 200
        items = list(ch.get_iter(*cid_range(5)))
        assert len(items) == 201 and isinstance(items[-1], ResponseAcq) and items[-1].is_ok()
        acq = ch.get_acq(*cid_range(5, acq_max=15))
        assert acq.is_ok() and acq.acq == 15


async def test_async_channel_round_trip(server: ServerProcess) -> None:
    async with AsyncChannel("127.0.0.1", server.port, BytesPayloadType()) as ch:
        payloads = [bytes([i]) * i for i in range(1, 60)]
        assert (
            await ch.puta([Record(Key(6, i, 0, 0, 1), p) for i, p in enumerate(payloads)])
        ).is_ok()
        resp = await ch.get(*cid_range(6))
        assert resp.is_ok() and [r.value for r in resp.data] == payloads
        bad = await ch.get(Key(6, 0, 0, 0, 0), Key(6, 1, 1, 1, 1))  # empty cid range
        assert bad.status != ResponseStatus.OK


def test_numpy_path(server: ServerProcess) -> None:
    n = 50_000
    with Channel("127.0.0.1", server.port, NumpyPayloadType(np.float64), timeout=30) as ch:
        data = {
            "cid": np.full(n, 7, dtype=np.int32),
            "mid": np.arange(n, dtype=np.int64)[::-1].copy(),
            "moid": np.zeros(n, dtype=np.int32),
            "cap": np.full(n, 3, dtype=np.int64),
            "acq": np.full(n, 4, dtype=np.int64),
            "v0": np.arange(n, dtype=np.float64)[::-1].copy(),
        }
        assert ch.puta(data).is_ok()  # type: ignore[arg-type]  # the numpy path takes a dict of columns
        resp = ch.get(*cid_range(7))
        assert resp.is_ok()
        got = np.concatenate(resp.data)  # type: ignore[call-overload]  # numpy path: a list of arrays
        assert (got["mid"] == np.arange(n)).all() and (got["v0"] == np.arange(n)).all()


def test_eight_clients_put_and_get_at_once(server: ServerProcess) -> None:
    rounds, per_round = 25, 200
    errors: list[BaseException] = []

    def client(cid: int) -> None:
        try:
            with Channel("127.0.0.1", server.port, StructPayloadType[int]("<i"), timeout=60) as ch:
                for r in range(rounds):
                    records = [
                        Record(Key(cid, r * per_round + i, 0, 0), i) for i in range(per_round)
                    ]
                    assert ch.put(records).is_ok()
                    resp = ch.get(*cid_range(cid))
                    assert resp.is_ok() and len(resp.data) == (r + 1) * per_round
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(100 + c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Channel("127.0.0.1", server.port, StructPayloadType[int]("<i"), timeout=60) as ch:
        resp = ch.get(
            Key(100, -(2**63), -(2**31), -(2**63), -(2**63)),
            Key(108, I64_MAX, 2**31 - 1, I64_MAX, I64_MAX),
        )
        assert resp.is_ok() and len(resp.data) == 8 * rounds * per_round
        acqs = [r.key.acq for r in resp.data]
        assert len(set(acqs)) == len(acqs)  # server-assigned acq is unique across clients
        for cid in range(100, 108):
            mids = sorted(r.key.mid for r in resp.data if r.key.cid == cid)
            assert mids == list(range(rounds * per_round))


def test_watermark_never_hides_records_that_arrive_later(server: ServerProcess) -> None:
    """Records with acq below a reported W are all visible when W is reported (§4.4)."""
    stop = threading.Event()

    def writer(cid: int) -> None:
        with Channel("127.0.0.1", server.port, StructPayloadType[int]("<i"), timeout=60) as ch:
            i = 0
            while not stop.is_set():
                assert ch.put([Record(Key(cid, i * 50 + j, 0, 0), j) for j in range(50)]).is_ok()
                i += 1

    writers = [threading.Thread(target=writer, args=(200 + c,)) for c in range(4)]
    for t in writers:
        t.start()
    kmin = Key(200, -(2**63), -(2**31), -(2**63), -(2**63))
    try:
        with Channel("127.0.0.1", server.port, StructPayloadType[int]("<i"), timeout=60) as ch:
            checks = []
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                first = ch.get(kmin, Key(204, I64_MAX, 2**31 - 1, I64_MAX, I64_MAX))
                assert first.is_ok()
                w = first.acq  # everything below w must already be in `first`
                below = sorted(r.key for r in first.data if r.key.acq < w)
                checks.append((w, below))
            time.sleep(0.2)
            for w, below in checks[::10]:
                again = ch.get(kmin, Key(204, I64_MAX, 2**31 - 1, I64_MAX, w))
                assert again.is_ok()
                assert sorted(r.key for r in again.data) == below
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert len(checks) > 5
