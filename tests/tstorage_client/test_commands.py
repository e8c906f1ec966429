"""The command flows over a scripted byte source (no sockets): statuses, limits, closing.

The flows must give the same outcome however the server's bytes are split."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from tstorage_client._commands import (
    ChannelCommands,
    GetMode,
    _Close,
    _Emit,
    _Recv,
    _RecvInto,
    _Send,
)
from tstorage_client.errors import ConnectionClosed
from tstorage_client.payload_type import StructPayloadType
from tstorage_client.record import Key, Record
from tstorage_client.response import Response, ResponseAcq, ResponseGet, ResponseStatus

INT = StructPayloadType[int]("<i")


def eight_records() -> bytes:
    out = struct.pack("<iQ", 0, 0)
    for i in range(8):
        out += struct.pack("<iiqiqqi", 36, 0, 12, i, 10, i, 314)
    return out + struct.pack("<i", 0) + struct.pack("<iQq", 0, 8, 77)


class Scripted(ChannelCommands[Any]):
    """Runs a flow against fixed response bytes delivered in ``piece``-byte reads."""

    def __init__(
        self,
        response: bytes,
        piece: int,
        memory_limit: int | None = None,
        fail_after: int | None = None,
    ) -> None:
        self._payload_type = INT
        self._memory_limit = memory_limit
        self.response = response
        self.piece = piece
        self.sent = b""
        self.closed = False
        self.emitted: list[Any] = []
        self.fail_after = fail_after

    def _is_connected(self) -> bool:
        return not self.closed

    def run(self, flow: Any) -> Any:
        try:
            op = next(flow)
            while True:
                if isinstance(op, _Send):
                    self.sent += bytes(op.data)
                    op = flow.send(None)
                elif isinstance(op, _Recv):
                    if self.fail_after is not None and self.fail_after <= 0:
                        op = flow.throw(ConnectionClosed("reset"))
                        continue
                    n = min(op.max_bytes, self.piece)
                    data, self.response = self.response[:n], self.response[n:]
                    if self.fail_after is not None:
                        self.fail_after -= len(data)
                    op = flow.send(data)
                elif isinstance(op, _RecvInto):
                    if self.fail_after is not None and self.fail_after <= 0:
                        op = flow.throw(ConnectionClosed("reset"))
                        continue
                    n = min(len(op.buffer), self.piece)
                    data, self.response = self.response[:n], self.response[n:]
                    op.buffer[: len(data)] = data
                    if self.fail_after is not None:
                        self.fail_after -= len(data)
                    op = flow.send(len(data))
                elif isinstance(op, _Emit):
                    self.emitted.extend(op.items)
                    op = flow.send(None)
                elif isinstance(op, _Close):
                    self.closed = True
                    op = flow.send(None)
        except StopIteration as stop:
            return stop.value


EIGHT = (Key(0, 0, 0, 0, 0), Key(2, 35, 4, 11, 2**63 - 1))
PIECES = [1, 7, 36, 100_000]


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize(
    ("limit", "sizes", "status"),
    [
        (None, [8], ResponseStatus.OK),
        (90, [1, 3, 2, 2], ResponseStatus.OK),
        (120, [2, 3, 3], ResponseStatus.OK),
        (76, [1, 2, 2, 2, 1], ResponseStatus.OK),
        (80, [1, 2, 2, 2, 1], ResponseStatus.OK),
        (51, [], ResponseStatus.NO_MEMORY),
        (4, [], ResponseStatus.NO_MEMORY),
    ],
)
def test_get_stream_callback_counts(
    piece: int, limit: int | None, sizes: list[int], status: ResponseStatus
) -> None:
    ch = Scripted(eight_records(), piece, limit)
    calls: list[int] = []
    result = ch.run(
        ch._get_flow(*EIGHT, 65536, GetMode.STREAM, lambda batch: calls.append(len(batch)))
    )
    assert calls == sizes
    assert result.status == status
    assert ch.closed == (status != ResponseStatus.OK)


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize(
    ("limit", "status", "count"),
    [
        (None, ResponseStatus.OK, 8),
        (356, ResponseStatus.OK, 8),
        (355, ResponseStatus.NO_MEMORY, 8),
        (80, ResponseStatus.NO_MEMORY, 1),
        (11, ResponseStatus.NO_MEMORY, 0),
    ],
)
def test_get_memory_limit(
    piece: int, limit: int | None, status: ResponseStatus, count: int
) -> None:
    ch = Scripted(eight_records(), piece, limit)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert (result.status, len(result.data)) == (status, count)
    if status == ResponseStatus.OK:
        assert result.acq == 77 and not ch.closed
        assert ch.sent[:12] == struct.pack("<iQ", 1, 64)


@pytest.mark.parametrize("piece", PIECES)
def test_get_iter_emits_records_then_status(piece: int) -> None:
    ch = Scripted(eight_records(), piece)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.ITER))
    assert [r.key.moid for r in ch.emitted] == list(range(8))
    assert result == ResponseAcq(ResponseStatus.OK, 77)


@pytest.mark.parametrize("cut", [0, 5, 12, 30, 52, 340, 355])
def test_truncated_get_is_disconnected_with_partial_data(cut: int) -> None:
    ch = Scripted(eight_records()[:cut], 7)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert result.status == ResponseStatus.DISCONNECTED and ch.closed
    assert len(result.data) == max(0, (cut - 12) // 40)
    got: list[int] = []
    ch = Scripted(eight_records()[:cut], 7)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.STREAM, lambda b: got.append(len(b))))
    assert result.status == ResponseStatus.DISCONNECTED
    assert got == ([max(0, (cut - 12) // 40)] if (cut - 12) // 40 > 0 else [])


def test_transport_error_mid_get() -> None:
    ch = Scripted(eight_records(), 7, fail_after=100)
    result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
    assert result.status == ResponseStatus.DISCONNECTED and ch.closed and len(result.data) == 2


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (b"", ResponseStatus.DISCONNECTED),
        (struct.pack("<iQ", -1, 0), ResponseStatus.BAD_REQUEST),
        (struct.pack("<iQi", 0, 0, 0) + struct.pack("<iQ", -1, 0) + bytes(8), ResponseStatus.ERROR),
        (struct.pack("<iQi", 0, 0, 0) + struct.pack("<iQ", -1, 0), ResponseStatus.ERROR),
        (
            struct.pack("<iQ", 0, 0) + struct.pack("<iiqiqq", 35, 0, 1, 1, 1, 1) + b"abc",
            ResponseStatus.UNPARSEABLE_ENTITY,
        ),
        (
            struct.pack("<iQ", 0, 0) + struct.pack("<iiqiqqi", 36, -5, 1, 1, 1, 1, 1),
            ResponseStatus.UNPARSEABLE_ENTITY,
        ),
    ],
)
def test_get_failures_close_the_channel(response: bytes, status: ResponseStatus) -> None:
    for piece in (1, 1000):
        ch = Scripted(response, piece)
        result = ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET))
        assert result.status == status and ch.closed


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (b"", ResponseAcq(ResponseStatus.DISCONNECTED)),
        (struct.pack("<iQq", 0, 8, 15), ResponseAcq(ResponseStatus.OK, 15)),
        (struct.pack("<iQ", -1, 0) + bytes(8), ResponseAcq(ResponseStatus.ERROR)),
    ],
)
def test_get_acq(response: bytes, expected: ResponseAcq) -> None:
    ch = Scripted(response, 1)
    assert ch.run(ch._get_acq_flow(Key.min(), Key.max())) == expected
    assert not ch.closed  # as the official client: get_acq errors leave the channel open


def test_put_sends_one_stream_and_reads_result() -> None:
    ch = Scripted(struct.pack("<iQqq", 0, 16, 1, 2), 3)
    result = ch.run(
        ch._put_flow(
            [Record(Key(0, 12, 0, 10), 314), Record(Key(1, 12, 1, 10), 314)],
            False,
            2**31 - 1,
            False,
        )
    )
    assert result == Response(ResponseStatus.OK)
    assert len(ch.sent) == 88 and ch.sent.endswith(b"\xff\xff\xff\xff")
    ch = Scripted(struct.pack("<iQ", -1, 0), 3)
    assert ch.run(ch._put_flow([], True, 10, False)) == Response(ResponseStatus.ERROR)


def test_disconnected_without_traffic() -> None:
    ch = Scripted(b"", 1)
    ch.closed = True
    assert ch.run(ch._get_flow(*EIGHT, 65536, GetMode.GET)) == ResponseGet(
        ResponseStatus.DISCONNECTED
    )
    assert ch.run(ch._put_flow([], False, 1, False)) == Response(ResponseStatus.DISCONNECTED)
    assert ch.sent == b""
