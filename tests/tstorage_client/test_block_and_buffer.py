"""The columnar block and the receive buffer of the core."""

from __future__ import annotations

import numpy as np
import pytest

from tstorage_client._buffer import ReceiveBuffer
from tstorage_client.block import RecordBlock, ranges_index
from tstorage_client.errors import RemoteProtocolError
from tstorage_client.record import Key


def test_block_take_concat_and_fixed_size() -> None:
    keys = [Key(1, i, 0, 0, 0) for i in range(5)]
    block = RecordBlock.from_records(keys, [bytes([i]) * i for i in range(5)])
    assert len(block) == 5 and block.fixed_payload_size() is None
    assert block.payload_of(3) == b"\x03\x03\x03" and block.key_of(2) == keys[2]
    picked = block.take(np.array([4, 0, 2]))
    assert picked.to_records() == [(keys[4], b"\x04" * 4), (keys[0], b""), (keys[2], b"\x02\x02")]
    masked = block.take(np.array([True, False, True, False, False]))
    assert [k.mid for k, _ in masked.to_records()] == [0, 2]
    both = RecordBlock.concat([picked, RecordBlock.empty(), masked])
    assert [k.mid for k, _ in both.to_records()] == [4, 0, 2, 0, 2]
    fixed = RecordBlock.from_records(keys, [b"ab"] * 5)
    assert fixed.fixed_payload_size() == 2
    assert fixed.take([1, 3]).to_records() == [(keys[1], b"ab"), (keys[3], b"ab")]
    assert fixed.nbytes == 5 * 32 + 10
    assert RecordBlock.empty().fixed_payload_size() == 0


def test_ranges_index() -> None:
    idx = ranges_index(np.array([10, 0, 5]), np.array([2, 0, 3]))
    assert idx.tolist() == [10, 11, 5, 6, 7]
    assert ranges_index(np.array([1]), np.array([0])).tolist() == []


def test_buffer_commit_and_rollback() -> None:
    buf = ReceiveBuffer()
    buf.feed(b"abcdef")
    assert buf.consume_exactly(2) == b"ab"
    assert buf.consume_exactly(10) is None
    buf.rollback()
    assert buf.consume_exactly(3) == b"abc"
    buf.commit()
    assert buf.consume_at_most(10) == b"def"
    buf.rollback()
    assert len(buf) == 3 and buf.peek(2) == b"de" and buf.peek_all() == b"def"
    assert buf.skip(5) == 3 and not buf


def test_buffer_limit_counts_only_unconsumed_bytes() -> None:
    buf = ReceiveBuffer(max_size=8)
    buf.feed(b"12345678")
    buf.skip(6)
    buf.commit()
    buf.feed(b"abcdef")  # 2 + 6 <= 8
    with pytest.raises(RemoteProtocolError):
        buf.feed(b"x")
