"""Bounded chunk reassembly: ordering, duplicates, limits, expiry, disconnects."""

from __future__ import annotations

from typing import Any

import pytest

from znsocket.exceptions import (
    ChunkDecodeError,
    ChunkError,
    ChunkIncompleteError,
    ChunkLimitError,
    ChunkNotFoundError,
    ChunkSizeError,
)
from znsocket.protocol import (
    AlreadyComplete,
    Assembled,
    Chunk,
    ChunkAssembler,
    ChunkLimits,
    Waiting,
    parse_chunk,
)


def raw(
    cid: str = "c1", index: int = 0, total: int = 2, data: Any = b"ab", **extra: Any
) -> dict[str, Any]:
    msg = {
        "chunk_id": cid,
        "chunk_index": index,
        "total_chunks": total,
        "event": "set",
        "data": data,
    }
    msg["size"] = len(data) if isinstance(data, bytes) else 0
    msg.update(extra)
    return msg


def test_parse_chunk_accepts_upstream_payload() -> None:
    chunk = parse_chunk(raw())
    assert chunk == Chunk("c1", 0, 2, "set", b"ab")
    assert parse_chunk(raw(size=0)).data == b"ab"  # size 0 means unchecked, as upstream


@pytest.mark.parametrize(
    ("payload", "error", "text"),
    [
        ("nope", ChunkDecodeError, "payload must be an object"),
        (raw(data="text"), ChunkDecodeError, "data must be binary"),
        (raw(size=5), ChunkSizeError, "Chunk 0 size mismatch"),
        (raw(cid=""), ChunkDecodeError, "chunk_id"),
        (raw(cid="x" * 500), ChunkDecodeError, "chunk_id"),
        (raw(index="0"), ChunkDecodeError, "integers"),  # type: ignore[arg-type]
        (raw(total=True), ChunkDecodeError, "integers"),
        (raw(event=None), ChunkDecodeError, "event"),
        (raw(size=-1), ChunkDecodeError, "size"),
    ],
)
def test_parse_chunk_rejects(payload: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        parse_chunk(payload)


def test_out_of_order_chunks_assemble_in_index_order() -> None:
    asm = ChunkAssembler()
    assert asm.receive("s", Chunk("c", 2, 3, "set", b"C"), 0) == Waiting(1, 3)
    assert asm.receive("s", Chunk("c", 0, 3, "set", b"A"), 0) == Waiting(2, 3)
    done = asm.receive("s", Chunk("c", 1, 3, "set", b"B"), 0)
    assert isinstance(done, Assembled)
    assert done.buffer == b"ABC"
    assert done.event == "set"
    assert asm.buffered_bytes == 0


def test_duplicate_chunk_does_not_count_twice() -> None:
    asm = ChunkAssembler()
    asm.receive("s", Chunk("c", 0, 2, "set", b"A"), 0)
    assert asm.receive("s", Chunk("c", 0, 2, "set", b"A"), 0) == Waiting(1, 2)
    assert asm.buffered_bytes == 1


def test_resent_final_chunk_is_not_executed_twice() -> None:
    asm = ChunkAssembler()
    asm.receive("s", Chunk("c", 0, 2, "set", b"A"), 0)
    assert isinstance(asm.receive("s", Chunk("c", 1, 2, "set", b"B"), 0), Assembled)
    asm.set_result("s", "c", {"data": True})
    assert isinstance(asm.receive("s", Chunk("c", 1, 2, "set", b"B"), 0), AlreadyComplete)
    assert asm.take_result("s", "c") == {"data": True}
    with pytest.raises(ChunkNotFoundError, match="Chunk ID c not found"):
        asm.take_result("s", "c")


def test_result_is_private_to_the_connection() -> None:
    asm = ChunkAssembler()
    asm.receive("s1", Chunk("c", 0, 1, "set", b"A"), 0)
    asm.set_result("s1", "c", {"data": 1})
    with pytest.raises(ChunkNotFoundError):
        asm.take_result("s2", "c")
    assert asm.take_result("s1", "c") == {"data": 1}


def test_incomplete_result() -> None:
    asm = ChunkAssembler()
    asm.receive("s", Chunk("c", 0, 2, "set", b"A"), 0)
    with pytest.raises(ChunkIncompleteError, match="Chunk ID c not complete"):
        asm.take_result("s", "c")
    with pytest.raises(ChunkNotFoundError):
        asm.take_result("s", 12)


def test_index_out_of_range_and_changed_metadata() -> None:
    asm = ChunkAssembler()
    asm.receive("s", Chunk("c", 0, 2, "set", b"A"), 0)
    with pytest.raises(ChunkError, match="out of range"):
        asm.receive("s", Chunk("c", 2, 2, "set", b"A"), 0)
    with pytest.raises(ChunkError, match="out of range"):
        asm.receive("s", Chunk("c", -1, 2, "set", b"A"), 0)
    with pytest.raises(ChunkError, match="differs"):
        asm.receive("s", Chunk("c", 1, 3, "set", b"A"), 0)
    with pytest.raises(ChunkError, match="differs"):
        asm.receive("s", Chunk("c", 1, 2, "hset", b"A"), 0)


def test_huge_total_chunks_refused() -> None:
    asm = ChunkAssembler(ChunkLimits(max_total_chunks=10))
    with pytest.raises(ChunkLimitError, match="total_chunks"):
        asm.receive("s", Chunk("c", 0, 11, "set", b"A"), 0)
    with pytest.raises(ChunkLimitError):
        asm.receive("s", Chunk("c", 0, 0, "set", b"A"), 0)
    assert asm.open_messages == 0


def test_open_message_limits_per_owner_and_total() -> None:
    asm = ChunkAssembler(ChunkLimits(max_open_per_owner=2, max_open_total=3))
    asm.receive("a", Chunk("1", 0, 2, "set", b"x"), 0)
    asm.receive("a", Chunk("2", 0, 2, "set", b"x"), 0)
    with pytest.raises(ChunkLimitError, match="this connection"):
        asm.receive("a", Chunk("3", 0, 2, "set", b"x"), 0)
    asm.receive("b", Chunk("1", 0, 2, "set", b"x"), 0)
    with pytest.raises(ChunkLimitError, match="on the server"):
        asm.receive("c", Chunk("1", 0, 2, "set", b"x"), 0)
    assert asm.discard_owner("a") == 2
    asm.receive("c", Chunk("1", 0, 2, "set", b"x"), 0)


def test_message_size_limit_drops_the_message() -> None:
    asm = ChunkAssembler(ChunkLimits(max_message_bytes=5))
    asm.receive("s", Chunk("c", 0, 3, "set", b"abc"), 0)
    with pytest.raises(ChunkLimitError, match="exceeds 5 bytes"):
        asm.receive("s", Chunk("c", 1, 3, "set", b"def"), 0)
    assert asm.open_messages == 0
    assert asm.buffered_bytes == 0


def test_global_buffer_limit() -> None:
    asm = ChunkAssembler(ChunkLimits(max_buffered_bytes=4))
    asm.receive("a", Chunk("c", 0, 2, "set", b"abc"), 0)
    with pytest.raises(ChunkLimitError, match="buffer is full"):
        asm.receive("b", Chunk("c", 0, 2, "set", b"de"), 0)
    assert asm.buffered_bytes == 3


def test_expiry_runs_when_new_messages_arrive() -> None:
    asm = ChunkAssembler(ChunkLimits(ttl_s=10, sweep_interval_s=1, max_open_per_owner=1))
    asm.receive("s", Chunk("old", 0, 2, "set", b"abc"), now=0)
    with pytest.raises(ChunkLimitError):
        asm.receive("s", Chunk("new", 0, 2, "set", b"x"), now=5)
    # the abandoned message expires; the connection may start a new one
    assert asm.receive("s", Chunk("new", 0, 2, "set", b"x"), now=11) == Waiting(1, 2)
    assert asm.open_messages == 1
    assert asm.buffered_bytes == 1


def test_unfetched_results_expire() -> None:
    asm = ChunkAssembler(ChunkLimits(ttl_s=10))
    asm.receive("s", Chunk("c", 0, 1, "set", b"x"), now=0)
    asm.set_result("s", "c", {"data": True})
    assert asm.expire(now=20) == 1
    with pytest.raises(ChunkNotFoundError):
        asm.take_result("s", "c")


def test_disconnect_frees_partial_messages() -> None:
    asm = ChunkAssembler()
    asm.receive("s", Chunk("c", 0, 3, "set", b"abc"), 0)
    asm.receive("t", Chunk("c", 0, 3, "set", b"abc"), 0)
    assert asm.discard_owner("s") == 1
    assert asm.buffered_bytes == 3
    assert asm.open_messages == 1


def test_per_connection_buffer_quota() -> None:
    asm = ChunkAssembler(ChunkLimits(max_buffered_bytes=10, max_buffered_bytes_per_owner=4))
    asm.receive("hog", Chunk("a", 0, 2, "set", b"abc"), 0)
    with pytest.raises(ChunkLimitError, match=r"this connection exceed 4 bytes.*b was dropped"):
        asm.receive("hog", Chunk("b", 0, 2, "set", b"de"), 0)
    # the others still have the rest of the server-wide buffer
    assert asm.receive("other", Chunk("c", 0, 2, "set", b"fghi"), 0) == Waiting(1, 2)
    assert asm.buffered_bytes == 7
    # completing a message returns its bytes to the connection's quota
    assert isinstance(asm.receive("hog", Chunk("a", 1, 2, "set", b"x"), 0), Assembled)
    assert asm.receive("hog", Chunk("d", 0, 2, "set", b"jkl"), 0) == Waiting(1, 2)


def test_incomplete_messages_time_out_from_their_first_chunk() -> None:
    asm = ChunkAssembler(ChunkLimits(assembly_timeout_s=10, ttl_s=100, sweep_interval_s=1000))
    asm.receive("s", Chunk("slow", 0, 3, "set", b"a"), now=0)
    asm.receive("s", Chunk("slow", 1, 3, "set", b"b"), now=9)  # activity does not extend it
    with pytest.raises(ChunkLimitError, match="slow was not complete within 10 s"):
        asm.receive("s", Chunk("slow", 2, 3, "set", b"c"), now=11)
    assert asm.open_messages == 0 and asm.buffered_bytes == 0
    with pytest.raises(ChunkLimitError, match="not complete within"):  # any late chunk
        asm.receive("s", Chunk("slow", 1, 3, "set", b"b"), now=12)
    # the sweep frees an abandoned message without waiting for another chunk
    asm.receive("s", Chunk("gone", 0, 2, "set", b"abc"), now=20)
    assert asm.expire(now=31) == 1
    assert asm.buffered_bytes == 0
