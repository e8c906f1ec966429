"""RecordBlock.take (the one record gather of clients and servers) and the offsets invariant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_client.protocol import encode_get_records
from tstorage_client.record import Key


def make_block(lengths: list[int], seed: int = 0) -> RecordBlock:
    rng = np.random.default_rng(seed)
    keys = [Key(1, i, i % 3, 10 * i, -1) for i in range(len(lengths))]
    payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    return RecordBlock.from_records(keys, payloads)


def expected_take(block: RecordBlock, idx: list[int]) -> list[tuple[Key, bytes]]:
    records = block.to_records()
    return [records[i] for i in idx]


def assert_well_formed(block: RecordBlock) -> None:
    assert int(block.offsets[0]) == 0
    assert len(block.offsets) == len(block) + 1
    assert len(block.payload) == int(block.offsets[-1])
    assert bool((np.diff(block.offsets) >= 0).all())


@pytest.mark.parametrize(
    ("lengths", "idx"),
    [
        ([8] * 50, [49, 0, 7, 7, 23]),  # equal lengths, repeats, any order
        ([3] * 9, [8, 1, 4]),  # equal lengths not a machine word
        ([1, 2, 3, 2, 2], [1, 3]),  # equal picked lengths in a mixed block whose total is 2 * 5
        ([1, 2, 3], [1, 1]),  # same: rows of 2 would start at 2, the record starts at 1
        ([0, 5, 0, 300, 17, 0, 1000], [6, 0, 3, 1, 5]),  # mixed short, long and empty
        ([0, 0, 0, 0], [3, 1]),  # nothing to copy
        ([4, 5, 6, 7], [-1, -4, 2]),  # negative positions count from the end
    ],
)
def test_take_returns_the_chosen_records_in_order(lengths: list[int], idx: list[int]) -> None:
    block = make_block(lengths)
    picked = block.take(np.array(idx))
    assert picked.to_records() == expected_take(block, [i % len(lengths) for i in idx])
    assert_well_formed(picked)
    assert picked.take([]).to_records() == []


def test_take_by_mask_and_by_list() -> None:
    block = make_block([2, 0, 9, 9, 1])
    mask = np.array([True, False, True, False, True])
    assert block.take(mask).to_records() == expected_take(block, [0, 2, 4])
    assert block.take([4, 2]).to_records() == expected_take(block, [4, 2])
    assert len(block.take(np.zeros(5, dtype=bool))) == 0


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (3, 17), (0, 30), (29, 30), (10, 11)])
def test_a_contiguous_run_is_a_view_of_the_block(start: int, stop: int) -> None:
    block = make_block([int(x) for x in np.random.default_rng(3).integers(0, 40, 30)])
    piece = block.take(np.arange(start, stop))
    assert piece.to_records() == expected_take(block, list(range(start, stop)))
    assert_well_formed(piece)
    assert np.shares_memory(piece.keys, block.keys)  # nothing copied
    if int(piece.offsets[-1]):
        assert np.shares_memory(
            np.frombuffer(piece.payload, np.uint8), np.frombuffer(block.payload, np.uint8)
        )
    # A run through a mask takes the same path.
    mask = np.zeros(30, dtype=bool)
    mask[start:stop] = True
    assert block.take(mask).to_records() == piece.to_records()


def test_a_gather_does_not_alias_the_block() -> None:
    block = make_block([8] * 10)
    picked = block.take([3, 1])
    assert not np.shares_memory(picked.keys, block.keys)
    picked.keys["acq"] = 99  # what the store does when it assigns acq
    assert (block.keys["acq"] == -1).all()


@pytest.mark.parametrize(
    ("index", "error"),
    [
        ([0, 5], "out of bounds"),
        ([-6], "out of bounds"),
        (np.array([True, False]), "mask of shape"),
        (np.array([0.0, 1.0]), "1-D integer"),
        (np.array([[0, 1]]), "1-D integer"),
        (np.int64(2), "1-D integer"),
    ],
)
def test_take_rejects_bad_positions(index: object, error: str) -> None:
    block = make_block([1, 2, 3, 4, 5])
    with pytest.raises(IndexError, match=error):
        block.take(index)  # type: ignore[arg-type]


def test_a_run_past_the_end_is_refused() -> None:
    block = make_block([1, 2, 3, 4, 5])
    with pytest.raises(IndexError):
        block.take(np.arange(4, 6))  # ascending and consecutive, but no view of anything


def test_taken_pieces_concatenate_and_encode_like_the_original() -> None:
    lengths = [int(x) for x in np.random.default_rng(5).integers(0, 70, 200)]
    block = make_block(lengths)
    pieces = [
        block.take(np.arange(0, 50)),
        block.take(np.arange(50, 120)),
        block.take(np.arange(120, 200)),
    ]
    joined = RecordBlock.concat(pieces)
    assert joined.to_records() == block.to_records()
    assert_well_formed(joined)
    assert encode_get_records(joined) == encode_get_records(block)
    assert encode_get_records(block.take(np.arange(199, -1, -1))) == b"".join(
        encode_get_records(block.take([i])) for i in range(199, -1, -1)
    )


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 300), min_size=1, max_size=60),
    picks=st.lists(st.integers(0, 10**6), max_size=80),
    equal=st.booleans(),
)
def test_take_matches_record_by_record_selection(
    lengths: list[int], picks: list[int], equal: bool
) -> None:
    if equal:
        lengths = [lengths[0]] * len(lengths)
    block = make_block(lengths, seed=len(picks))
    idx = [p % len(lengths) for p in picks]
    picked = block.take(np.array(idx, dtype=np.int64))
    assert picked.to_records() == expected_take(block, idx)
    assert_well_formed(picked)


# -- the offsets invariant: offsets start at 0 and end at len(payload) ---------------------


def test_a_block_with_a_nonzero_offsets_base_is_refused() -> None:
    # Three records that sit at bytes 10..19 of a larger buffer.
    buffer = bytes(range(40))
    keys = np.zeros(3, dtype=KEY_DTYPE)
    offsets = np.array([10, 12, 12, 19], dtype=np.int64)
    with pytest.raises(ValueError, match="offsets must start at 0, not 10"):
        RecordBlock(keys, offsets, buffer)
    with pytest.raises(ValueError, match="offsets must start at 0"):
        RecordBlock(keys, offsets, memoryview(buffer)[:19])
    # Rebased, the same records form a valid block and every reader sees the right bytes.
    block = RecordBlock(keys, offsets - offsets[0], memoryview(buffer)[10:19])
    assert [p for _, p in block.to_records()] == [bytes([10, 11]), b"", bytes(range(12, 19))]
    assert block.payload_of(2) == bytes(range(12, 19))
    assert block.fixed_payload_size() is None
    assert block.take([2, 0]).to_records() == [block.to_records()[2], block.to_records()[0]]
    assert encode_get_records(block) == encode_get_records(
        RecordBlock.from_records([Key(0, 0, 0, 0, 0)] * 3, [b"\n\x0b", b"", bytes(range(12, 19))])
    )


def test_equal_lengths_in_a_view_of_a_larger_buffer() -> None:
    # The case the old base handling existed for: rows of a fixed size cut out of a buffer.
    buffer = np.arange(64, dtype=np.uint8).tobytes()
    keys = np.zeros(4, dtype=KEY_DTYPE)
    keys["mid"] = np.arange(4)
    block = RecordBlock(keys, np.arange(5, dtype=np.int64) * 4, memoryview(buffer)[20:36])
    assert block.fixed_payload_size() == 4
    assert block.payload_of(0) == bytes([20, 21, 22, 23])
    assert bytes(block.take([3, 0]).payload) == bytes([32, 33, 34, 35, 20, 21, 22, 23])
    expected = b"".join(
        (36).to_bytes(4, "little") + keys[i : i + 1].tobytes() + buffer[20 + 4 * i : 24 + 4 * i]
        for i in range(4)
    )
    assert encode_get_records(block) == expected


@pytest.mark.parametrize(
    ("offsets", "payload", "error"),
    [
        ([0, 2, 5], b"12345", "len\\(keys\\) \\+ 1 = 4"),  # one offset short
        ([0, 2, 5, 9], b"12345678", "holds 8 bytes but offsets end at 9"),
        ([0, 2, 5, 9], b"1234567890", "holds 10 bytes but offsets end at 9"),
        ([-1, 2, 5, 9], b"1234567890", "start at 0, not -1"),
    ],
)
def test_columns_that_do_not_fit_together_are_refused(
    offsets: list[int], payload: bytes, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        RecordBlock(np.zeros(3, dtype=KEY_DTYPE), np.array(offsets, dtype=np.int64), payload)
    with pytest.raises(ValueError, match="entries"):
        RecordBlock(np.zeros(3, dtype=KEY_DTYPE), np.zeros((2, 2), dtype=np.int64), b"")
