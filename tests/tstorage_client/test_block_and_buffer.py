"""The columnar block and the receive buffer of the core."""

from __future__ import annotations

import numpy as np
import pytest

from tstorage_client._buffer import ReceiveBuffer
from tstorage_client.block import RecordBlock, copy_ranges
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


@pytest.mark.parametrize("top", [4, 64, 300, 5000])
def test_copy_ranges_matches_slice_copies(top: int) -> None:
    # Enough records to form groups of equal short lengths, plus long ones copied one by one.
    rng = np.random.default_rng(top)
    n = 3000
    lengths = rng.integers(0, top, n).astype(np.int64)
    lengths[::97] = rng.integers(256, 4096, len(lengths[::97]))
    src = rng.integers(0, 256, int(lengths.sum()) * 2 + 10, dtype=np.uint8)
    src_starts = rng.integers(0, len(src) - lengths)  # anywhere, overlapping reads allowed
    gaps = rng.integers(0, 5, n)
    dst_starts = np.zeros(n, dtype=np.int64)
    np.cumsum((lengths + gaps)[:-1], out=dst_starts[1:])
    dst = np.full(int(dst_starts[-1] + lengths[-1]) + 7, 0xEE, dtype=np.uint8)
    expected = dst.copy()
    for d, s, ln in zip(dst_starts, src_starts, lengths, strict=True):
        expected[d : d + ln] = src[s : s + ln]
    copy_ranges(dst, dst_starts, src, src_starts, lengths)
    assert dst.tobytes() == expected.tobytes()  # copied bytes and untouched gaps alike


def test_copy_ranges_with_nothing_to_copy() -> None:
    dst = np.zeros(4, dtype=np.uint8)
    src = np.arange(4, dtype=np.uint8)
    copy_ranges(dst, np.array([1]), src, np.array([0]), np.array([0]))
    copy_ranges(dst, np.array([], dtype=np.int64), src, np.array([]), np.array([]))
    assert dst.tolist() == [0, 0, 0, 0]


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
