"""Server role: a PUT/PUTA of a handful of records takes the per-record decode path
(``FEW_RECORDS``); the blocks it yields must equal, column for column, those of the
vectorised path, whatever the batching and however the bytes arrive."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tstorage_client import block
from tstorage_client import events as ev
from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_client.errors import RemoteProtocolError
from tstorage_client.protocol import NEED_DATA, ServerConnection, walk_put_run
from tstorage_client.record import Key

from .test_protocol_small_batches import GUARD, batches_of, expected, feed, stream_header

Rec = tuple[Key, bytes]

keys_st = st.builds(
    Key,
    st.integers(0, 3),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**63), 2**63 - 1),
)
records_st = st.lists(
    st.tuples(keys_st, st.binary(max_size=40)), min_size=1, max_size=block.FEW_RECORDS + 4
)


def blocks_of(data: bytes, how: str) -> list[RecordBlock]:
    """The blocks of every PutBatch of one PUT/PUTA request fed in pieces ``how``."""
    conn = ServerConnection()
    _, events = feed(conn, data, how)
    blocks = [e.block for e in events if isinstance(e, ev.PutBatch)]
    assert isinstance(events[0], ev.PutRequest) and isinstance(events[-1], ev.PutEnd)
    assert conn.state == "idle" and conn.buffered == 0
    return blocks


def assert_same_block(a: RecordBlock, b: RecordBlock) -> None:
    assert a.keys.dtype == b.keys.dtype == KEY_DTYPE
    assert a.keys.tobytes() == b.keys.tobytes()
    assert a.offsets.dtype == b.offsets.dtype == np.int64
    assert a.offsets.tolist() == b.offsets.tolist()
    assert type(a.payload) is type(b.payload)
    assert bytes(a.payload) == bytes(b.payload)


def request(records: Sequence[Rec], with_acq: bool, per_batch: int) -> bytes:
    return stream_header(with_acq) + batches_of(records, with_acq, per_batch) + GUARD


@given(records=records_st, with_acq=st.booleans(), per_batch=st.sampled_from([1, 2, 5, 100]))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_few_records_decode_like_the_vectorised_path(
    records: list[Rec], with_acq: bool, per_batch: int
) -> None:
    data = request(records, with_acq, per_batch)
    for how in ("whole", "bytewise"):
        fast = blocks_of(data, how)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(block, "FEW_RECORDS", 0)
            general = blocks_of(data, how)
        assert len(fast) == len(general)
        for a, b in zip(fast, general, strict=True):
            assert_same_block(a, b)
        got = [rec for block in fast for rec in block.to_records()]
        assert got == expected(records, with_acq)


@pytest.mark.parametrize("with_acq", [False, True])
@pytest.mark.parametrize("count", [1, 2, block.FEW_RECORDS, block.FEW_RECORDS + 1])
def test_walk_over_few_records_gives_the_same_block(with_acq: bool, count: int) -> None:
    """Records of mixed payload sizes and several cids, through both gathers directly."""
    records = [
        (Key(i // 3, 10 * i, -i, 7 * i, 1000 + i), bytes([i]) * (i % 4)) for i in range(count)
    ]
    raw = batches_of(records, with_acq, per_batch=2) + GUARD
    fast = walk_put_run(raw, 0, with_acq, 0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(block, "FEW_RECORDS", 0)
        general = walk_put_run(raw, 0, with_acq, 0)
    assert fast.block is not None and general.block is not None
    assert_same_block(fast.block, general.block)
    assert (fast.consumed, fast.cid, fast.batch_left, fast.stop) == (
        general.consumed,
        general.cid,
        general.batch_left,
        general.stop,
    )
    assert fast.block.to_records() == expected(records, with_acq)


def test_small_puts_back_to_back_each_end_with_their_own_put_end() -> None:
    """Three one-record requests buffered at once: the end guard found by the walk that
    decoded a request's records ends exactly that request."""
    one = request([(Key(1, 2, 3, 4, 5), b"12345678")], False, 1)
    conn = ServerConnection()
    conn.receive_data(one * 3)
    names = []
    while (event := conn.next_event()) is not NEED_DATA:
        names.append(type(event).__name__)
    assert names == ["PutRequest", "PutBatch", "PutEnd"] * 3
    assert conn.buffered == 0


def test_error_after_few_records_comes_after_them() -> None:
    """A bad batch header right after a small batch: its records first, then the error."""
    good = batches_of([(Key(1, 2, 3, 4, 5), b"ok")], False)
    data = stream_header(False) + good + struct.pack("<ii", -7, 0)
    conn = ServerConnection()
    conn.receive_data(data)
    assert isinstance(conn.next_event(), ev.PutRequest)
    batch = conn.next_event()
    assert isinstance(batch, ev.PutBatch)
    assert batch.block.to_records() == [(Key(1, 2, 3, 4, -1), b"ok")]
    with pytest.raises(RemoteProtocolError, match="negative batch cid"):
        conn.next_event()
