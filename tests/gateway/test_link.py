"""The TStorage link: group commit of concurrent PUTs, errors for every caller, pooled
connections for reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from gateway.errors import TStorageUnavailable
from gateway.storage import GatewayStorage
from gateway.storage.link import LinkSettings, PutRecord, TStorageLink
from tests._servers import ServerProcess
from tests.gateway.test_index_build import put
from tests.gateway.test_storage_series import records_of
from tests.gateway.test_summaries import T0, tiny
from tstorage_client.channel import Channel


def test_concurrent_puts_share_one_commit(
    tstorage: ServerProcess, fresh_cid: Callable[[], int]
) -> None:
    cid = fresh_cid()
    link = TStorageLink(LinkSettings("127.0.0.1", tstorage.port))
    sent: list[int] = []
    first_started, release = threading.Event(), threading.Event()
    real = link._put_now

    def slow_first(records: Sequence[PutRecord], deadline: float) -> None:
        sent.append(len(records))
        if len(sent) == 1:  # hold the first PUT until the others queued behind it
            first_started.set()
            release.wait(10)
        real(records, deadline)

    link._put_now = slow_first  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def put(n: int) -> None:
        try:
            link.put([((cid, n, 0, 1), b"x"), ((cid, n, 1, 1), b"y")])
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=put, args=(0,))
    first.start()
    assert first_started.wait(10)
    others = [threading.Thread(target=put, args=(n,)) for n in range(1, 6)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 10
    while len(link._put_queue) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert errors == []
    assert sent == [2, 10]  # the five callers that waited went out in one PUT
    assert len(records_of(tstorage, cid)) == 12
    link.close()


def test_every_caller_of_a_failed_put_gets_the_error() -> None:
    link = TStorageLink(LinkSettings("127.0.0.1", 1, timeout=0.3, reconnect_max_delay=0.05))
    errors: list[BaseException] = []

    def put() -> None:
        try:
            link.put([((1, 1, 1, 1), b"x")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(errors) == 4 and all(isinstance(e, TStorageUnavailable) for e in errors)
    assert not link._put_leader and link._put_queue == []  # ready for the next caller
    with pytest.raises(TStorageUnavailable):
        link.put([((1, 1, 1, 1), b"x")])


def test_chunk_reads_reuse_their_connections(
    make_storage: Callable[[str], GatewayStorage],
    tstorage: ServerProcess,
    fresh_cid: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reads of chunks into numpy columns (one per cold ``lst[i]``, hundreds for a rollup's
    edges) go over pooled connections: not a connect and an accept each."""
    cid = fresh_cid()
    n = 20_000
    put(tstorage, cid, 4, 1, T0 + np.arange(n, dtype=np.int64) * 10, np.arange(n) * 0.5)
    gw = make_storage(tiny(tstorage, cid, fresh_cid(), chunk=512, budget=1000))
    full = "znsocket.List:meters/4/1"
    assert gw.llen(full) == n
    opened: list[int] = []
    real = Channel.open

    def counted(ch: Channel[Any]) -> None:
        opened.append(1)
        real(ch)

    monkeypatch.setattr(Channel, "open", counted)
    for i in np.random.default_rng(5).integers(0, n, 40).tolist():
        assert gw.lindex(full, i) == str(i * 0.5)  # a chunk read each (the budget holds one)
    assert len(opened) <= 2, f"{len(opened)} connections for 40 chunk reads"
