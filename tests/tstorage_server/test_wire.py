"""Wire-level behaviour of a real tstorage-server process: exact bytes, bad input, errors.

Expected bytes come from the protocol specification (§3) where it gives them.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from tests._servers import ServerProcess
from tstorage_client.events import NEED_DATA, GetRequest, RecordsBatch
from tstorage_client.payload_type import BytesPayloadType
from tstorage_client.protocol import ClientConnection, ObjectRecordDecoder
from tstorage_client.record import Key

from .wire import (
    ERROR_GET,
    ERROR_GET_ACQ,
    ERROR_PUT,
    GET,
    GET_ACQ,
    HEADER,
    I32,
    I32_MAX,
    I64_MAX,
    KEY_MAX,
    KEY_MIN,
    PUT,
    PUTA,
    Raw,
    key_range,
    put_request,
)

pytestmark = pytest.mark.integration

H = bytes.fromhex
PAYLOAD_314 = struct.pack("<i", 314)

# §3.5: PUTA of Key(0,12,2,10,10) and Key(1,12,3,10,11), payload 314 (104 bytes).
PUTA_2_RECORDS = H(
    "06000000 000000000000000000000000 24000000"
    "20000000 0c00000000000000 02000000 0a00000000000000 0a00000000000000 3a010000"
    "01000000 24000000"
    "20000000 0c00000000000000 03000000 0a00000000000000 0b00000000000000 3a010000"
    "ffffffff".replace(" ", "")
)
# §3.4: PUT of Key(0,12,0,10) and Key(1,12,1,10), payload 314 (88 bytes).
PUT_2_RECORDS = H(
    "05000000 000000000000000000000000 1c000000"
    "18000000 0c00000000000000 00000000 0a00000000000000 3a010000"
    "01000000 1c000000"
    "18000000 0c00000000000000 01000000 0a00000000000000 3a010000"
    "ffffffff".replace(" ", "")
)
# §3.3: GET_ACQ (0,12,2,10,10)…(1,13,3,11,100) and its response.
GET_ACQ_VECTOR = H(
    "07000000 4000000000000000"
    "00000000 0c00000000000000 02000000 0a00000000000000 0a00000000000000"
    "01000000 0d00000000000000 03000000 0b00000000000000 6400000000000000".replace(" ", "")
)
ACQ_100 = H("00000000 0800000000000000 6400000000000000".replace(" ", ""))
EMPTY_PUT = H("05000000 0000000000000000 ffffffff".replace(" ", ""))
EMPTY_PUTA = H("06000000 0000000000000000 ffffffff".replace(" ", ""))


def assert_alive(server: ServerProcess) -> None:
    """The server still serves a new client."""
    assert server.alive()
    with Raw(server.port) as c:
        status, acq = c.get_acq(KEY_MIN, KEY_MAX)
        assert status == 0 and acq > 0


def test_spec_vectors_round_trip(server: ServerProcess) -> None:
    with Raw(server.port) as c:
        assert len(PUTA_2_RECORDS) == 104 and len(PUT_2_RECORDS) == 88
        c.send(PUTA_2_RECORDS)
        assert c.recv_exactly(28) == H("00000000 1000000000000000".replace(" ", "")) + b"\xff" * 16
        c.send(GET_ACQ_VECTOR)
        assert c.recv_exactly(20) == ACQ_100
        # GET (0,12,2,10,10)…(2,13,4,11,100): exactly the two PUTA records, then trailer acq 100.
        c.send(key_range(GET, (0, 12, 2, 10, 10), (2, 13, 4, 11, 100)))
        expected = (
            H("000000000000000000000000")
            + H(
                "24000000 00000000 0c00000000000000 02000000 0a00000000000000 0a00000000000000".replace(
                    " ", ""
                )
            )
            + PAYLOAD_314
            + H(
                "24000000 01000000 0c00000000000000 03000000 0a00000000000000 0b00000000000000".replace(
                    " ", ""
                )
            )
            + PAYLOAD_314
            + H("00000000")
            + ACQ_100
        )
        assert c.recv_exactly(len(expected)) == expected
        before = time.time_ns() - 978307200 * 10**9
        c.send(PUT_2_RECORDS)
        status, size = HEADER.unpack(c.recv_exactly(12))
        acq_min, acq_max = struct.unpack("<qq", c.recv_exactly(16))
        after = time.time_ns() - 978307200 * 10**9
        assert (status, size) == (0, 16)
        assert before <= acq_min < acq_max <= after + 10**6  # server-assigned from the wall clock
        status, records, trailer = c.get((0, 12, 0, 10, 0), (2, 13, 2, 11, I64_MAX))
        assert status == 0
        assert records == [
            ((0, 12, 0, 10, acq_min), PAYLOAD_314),
            ((1, 12, 1, 10, acq_max), PAYLOAD_314),
        ]
        assert trailer > acq_max


def test_empty_requests(server: ServerProcess) -> None:
    with Raw(server.port) as c:
        c.send(EMPTY_PUT)
        status, size = HEADER.unpack(c.recv_exactly(12))
        a, b = struct.unpack("<qq", c.recv_exactly(16))
        assert (status, size) == (0, 16) and a == b > 0
        c.send(EMPTY_PUTA)
        assert c.recv_exactly(28) == H("000000001000000000000000") + b"\xff" * 16
        # Empty result: header, terminator, trailer with acq = min(key_max.acq, W) = 7.
        c.send(key_range(GET, (0, 0, 0, 0, 0), (10, 10, 10, 10, 7)))
        assert c.recv_exactly(36) == H(
            "000000000000000000000000 00000000 000000000800000000000000".replace(" ", "")
        ) + struct.pack("<q", 7)
        # §8.1 get_empty: negative bounds are fine on an empty database.
        assert c.get((0, -10, -10, -10, -10), (10, 10, 10, 10, 10))[0] == 0


@pytest.mark.parametrize(
    ("kmin", "kmax"),
    [
        ((-1, -10, -10, -10, -10), (10, 10, 10, 10, 10)),  # negative cid
        ((0, 0, 0, 0, 0), (-1, 1, 1, 1, 1)),  # negative cid in key_max
        ((0, 0, 0, 0, 0), (0, I64_MAX, I32_MAX, I64_MAX, I64_MAX)),  # empty cid range
        ((0, 5, 0, 0, 0), (1, 5, 1, 1, 1)),  # empty mid range
        ((0, 0, 0, 9, 0), (1, 1, 1, 3, 1)),  # inverted cap range
        ((*KEY_MAX[:4], 0), KEY_MIN),  # inverted in four components
        ((0, 0, 0, 0, 2**62), KEY_MAX),  # key_min.acq in the future
    ],
)
def test_invalid_get_gets_the_error_shape_and_close(
    server: ServerProcess,
    kmin: tuple[int, int, int, int, int],
    kmax: tuple[int, int, int, int, int],
) -> None:
    with Raw(server.port) as c:
        c.send(key_range(GET, kmin, kmax))
        assert c.recv_until_close() == ERROR_GET
    assert_alive(server)


def test_get_acq_rules(server: ServerProcess) -> None:
    with Raw(server.port) as c:
        status, acq = c.get_acq(KEY_MIN, KEY_MAX)
        assert status == 0 and 0 < acq < I64_MAX
        # Empty box is fine for GET_ACQ (§4.5), result min(key_max.acq, W).
        assert c.get_acq((0, 0, 0, 0, 0), (0, I64_MAX, I32_MAX, I64_MAX, I64_MAX))[0] == 0
        assert c.get_acq((0, 0, 0, 0, 0), (2, 13, 4, 11, 15)) == (0, 15)
        later = c.get_acq(KEY_MIN, KEY_MAX)[1]
        assert later > acq  # W never goes back
    for bad in [((-1, 12, 2, 10, 10), (1, 13, 3, 11, 100)), ((0, 0, 0, 0, 2**62), KEY_MAX)]:
        with Raw(server.port) as c:
            c.send(key_range(GET_ACQ, *bad))
            assert c.recv_until_close() == ERROR_GET_ACQ
    assert_alive(server)


def test_header_size_above_64_skips_auxiliary_bytes(server: ServerProcess) -> None:
    with Raw(server.port) as c:
        c.send(HEADER.pack(GET_ACQ, 64 + 5) + b"\x01" * 5 + GET_ACQ_VECTOR[12:])
        assert c.recv_exactly(20) == ACQ_100
        c.send(HEADER.pack(PUT, 3) + b"abc" + I32.pack(-1))
        assert HEADER.unpack(c.recv_exactly(12)) == (0, 16)
        c.recv_exactly(16)


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (HEADER.pack(3, 0), ERROR_PUT),  # unknown command
        (HEADER.pack(0, 0), ERROR_PUT),  # code 0 is never sent
        (HEADER.pack(-7, 0), ERROR_PUT),
        (HEADER.pack(GET, 10) + bytes(10), ERROR_GET),  # size < 64
        (HEADER.pack(GET_ACQ, 0), ERROR_GET_ACQ),
    ],
)
def test_malformed_headers(server: ServerProcess, request_bytes: bytes, expected: bytes) -> None:
    with Raw(server.port) as c:
        c.send(request_bytes)
        assert c.recv_until_close() == expected
    assert_alive(server)


def _batch(cid: int, records: bytes, size: int | None = None) -> bytes:
    return struct.pack("<ii", cid, len(records) if size is None else size) + records


def _put_record(n: int, payload: bytes = b"") -> bytes:
    return I32.pack(n) + struct.pack("<qiq", 1, 2, 3) + payload


@pytest.mark.parametrize(
    "body",
    [
        _batch(0, _put_record(19)),  # record size below the PUT minimum
        _batch(0, _put_record(-5)),  # negative record size
        _batch(0, _put_record(20 + 2**25 + 1)),  # payload over 32 MiB
        _batch(0, _put_record(24, b"abcd"), size=-8),  # negative batch size
        _batch(0, _put_record(24, b"abcd"), size=20),  # record overruns its batch
        _batch(-2, b""),  # negative cid other than the -1 guard
    ],
)
def test_bad_put_frames_store_nothing(server: ServerProcess, body: bytes) -> None:
    good = _batch(5, _put_record(24, b"good"))
    with Raw(server.port) as c:
        c.send(HEADER.pack(PUT, 0) + good + body + b"\x00" * 64 + I32.pack(-1))
        assert c.recv_until_close() == ERROR_PUT
    assert_alive(server)
    with Raw(server.port) as c:
        assert c.get()[1] == []  # the valid batch before the bad one was not stored either


def test_puta_record_size_minimum_is_28(server: ServerProcess) -> None:
    with Raw(server.port) as c:
        c.send(HEADER.pack(PUTA, 0) + _batch(0, I32.pack(27) + bytes(27)) + I32.pack(-1))
        assert c.recv_until_close() == ERROR_PUT


def test_client_gone_mid_put_stores_nothing(server: ServerProcess) -> None:
    full = put_request([((1, i, 0, 0, 5), b"x" * 100) for i in range(1000)], with_acq=True)
    with Raw(server.port) as c:
        c.send(full[: len(full) // 2])
    with Raw(server.port) as c:
        c.send(full[:-4])  # everything but the end guard
        c.sock.shutdown(socket.SHUT_WR)
        assert c.recv_until_close() in (b"", ERROR_PUT)
    time.sleep(0.2)
    assert_alive(server)
    with Raw(server.port) as c:
        assert c.get()[1] == []
        assert c.put([((1, 0, 0, 0, 5), b"y")], with_acq=True)[0] == 0
        assert c.get()[1] == [((1, 0, 0, 0, 5), b"y")]


def test_client_gone_mid_get_leaves_server_and_data_intact(server: ServerProcess) -> None:
    records = [((2, i, 0, 0, 1), bytes([i % 251]) * 200) for i in range(50_000)]
    with Raw(server.port) as c:
        assert c.put(records, with_acq=True)[0] == 0
    for _ in range(3):
        with Raw(server.port) as c:
            c.send(key_range(GET, KEY_MIN, KEY_MAX))
            c.recv_exactly(1000)
    with Raw(server.port) as c:
        status, got, _ = c.get()
        assert status == 0 and got == records


def test_records_with_a_maximal_component_are_dropped_not_rejected(server: ServerProcess) -> None:
    with Raw(server.port) as c:
        assert c.put([(KEY_MIN, b"min")], with_acq=True)[0] == 0
        assert c.put([(KEY_MAX, b"max")], with_acq=True)[0] == 0
        assert c.put([((11, 11, 11, I64_MAX, 0), b"cap")], with_acq=True)[0] == 0
        assert (
            c.put([((11, 11, 11, 11, I64_MAX), b"acq")], with_acq=True)[0] == 0
        )  # PUTA: acq max too
        assert c.put([((11, 11, I32_MAX, 11, 0), b"moid")], with_acq=False)[0] == 0
        assert c.put([((11, 12, 11, 11, I64_MAX), b"put ignores acq")], with_acq=False)[0] == 0
        status, got, _ = c.get()
        assert status == 0
        assert [p for _, p in got] == [b"min", b"put ignores acq"]


def test_order_is_ascending_key_and_duplicates_are_kept_in_arrival_order(
    server: ServerProcess,
) -> None:
    with Raw(server.port) as c:
        c.put([((3, 1, 1, 1, 1), b"a1"), ((1, 9, 9, 9, 9), b"z")], with_acq=True)
        c.put([((3, 1, 1, 1, 1), b"a2"), ((2, 0, 0, 0, 0), b"m")], with_acq=True)
        c.put([((3, 1, 1, 1, 1), b"a3")], with_acq=True)
        _, got, _ = c.get()
        assert [p for _, p in got] == [b"z", b"m", b"a1", b"a2", b"a3"]


def test_32_mib_payload_is_accepted_and_returned(server: ServerProcess) -> None:
    payload = bytes(range(256)) * (2**25 // 256)
    with Raw(server.port) as c:
        assert c.put([((4, 0, 0, 0, 0), payload)], with_acq=True)[0] == 0
        status, got, _ = c.get()
        assert status == 0 and got == [((4, 0, 0, 0, 0), payload)]


def test_many_requests_on_one_connection_and_many_connections_at_once(
    server: ServerProcess,
) -> None:
    slow = Raw(server.port)  # a client that sends half a header and stalls
    slow.send(b"\x07\x00\x00")
    errors: list[BaseException] = []

    def client(cid: int) -> None:
        try:
            with Raw(server.port) as c:
                for i in range(20):
                    assert c.put([((cid, i, 0, 0, 0), b"v")], with_acq=True)[0] == 0
                    status, got, _ = c.get((cid, 0, 0, 0, 0), (cid + 1, 100, 1, 1, 1))
                    assert status == 0 and len(got) == i + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(cid,)) for cid in range(10, 18)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slow.close()
    assert errors == []


def test_mixed_payload_lengths_round_trip_exactly(server: ServerProcess) -> None:
    rng = random.Random(3)
    small = [((8, i, 0, 0, 1), rng.randbytes(rng.randrange(0, 300))) for i in range(300)]
    large = [
        ((9, i, 0, 0, 1), rng.randbytes(rng.choice([1, 5000, 70_000, 300_000]))) for i in range(60)
    ]
    with Raw(server.port) as c:
        assert c.put(small + large, with_acq=True)[0] == 0
        status, got, _ = c.get()
        assert status == 0 and got == small + large


@pytest.mark.parametrize("cut", [5, 12, 40, 75])
def test_truncated_get_request_then_close(server: ServerProcess, cut: int) -> None:
    with Raw(server.port) as c:
        c.send(key_range(GET, KEY_MIN, KEY_MAX)[:cut])
        c.sock.shutdown(socket.SHUT_WR)
        # Nothing, or the error for what the server knows of the request; never records.
        assert c.recv_until_close() in (b"", ERROR_GET, ERROR_PUT)
    assert_alive(server)


def test_a_client_that_stops_reading_is_dropped_and_others_go_on(data_dir: Path) -> None:
    from tests._servers import spawn

    from .conftest import server_argv

    with spawn([*server_argv(data_dir), "--write-stall-timeout", "1"]) as server:
        records = [((5, i, 0, 0, 1), b"r" * 500) for i in range(40_000)]  # ~20 MB response
        with Raw(server.port) as c:
            assert c.put(records, with_acq=True)[0] == 0
        stalled = Raw(server.port)
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.send(key_range(GET, KEY_MIN, KEY_MAX))
        with Raw(server.port) as c:  # served while the other GET is stuck
            assert c.get_acq(KEY_MIN, KEY_MAX)[0] == 0
        deadline = time.monotonic() + 15
        while "stopped reading" not in server.text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "stopped reading" in server.text()
        got = stalled.recv_until_close(timeout=20)
        assert 0 < len(got) < 36 + 40_000 * 536  # cut short, then closed
        stalled.close()
        with Raw(server.port) as c:
            assert len(c.get()[1]) == 40_000


def test_random_bytes_never_take_the_server_down_or_touch_stored_data(
    server: ServerProcess,
) -> None:
    rng = random.Random(11)
    with Raw(server.port) as c:
        assert c.put([((1, 1, 1, 1, 1), b"precious")], with_acq=True)[0] == 0
    for i in range(40):
        # Valid-looking headers with random bodies, and pure noise.
        head = HEADER.pack(
            rng.choice([GET, PUT, PUTA, GET_ACQ, 2, 99]), rng.choice([0, 64, 65, 10**9])
        )
        body = rng.randbytes(rng.randrange(0, 400))
        with Raw(server.port, timeout=10) as c:
            c.send((head if i % 2 else b"") + body)
            c.sock.shutdown(socket.SHUT_WR)
            c.recv_until_close()
    assert_alive(server)
    with Raw(server.port) as c:
        status, got, _ = c.get()
        # Random PUT bodies may happen to be valid requests; the old record must be intact.
        assert status == 0 and ((1, 1, 1, 1, 1), b"precious") in got


def test_a_request_over_the_size_limit_is_refused_whole(data_dir: Path) -> None:
    from tests._servers import spawn

    from .conftest import server_argv

    with spawn([*server_argv(data_dir), "--max-request-bytes", "100000"]) as server:
        with Raw(server.port) as c:
            ok = [((1, i, 0, 0, 0), b"s" * 100) for i in range(100)]  # ~13 kB of keys + payload
            assert c.put(ok, with_acq=True)[0] == 0
        with Raw(server.port) as c:
            big = [((2, i, 0, 0, 0), b"b" * 1000) for i in range(200)]  # ~206 kB
            c.send(put_request(big, with_acq=True))
            assert c.recv_until_close() == ERROR_PUT
        assert_alive(server)
        with Raw(server.port) as c:
            assert len(c.get()[1]) == 100


def test_get_of_mixed_large_payloads_returns_the_stored_bytes_exactly(
    server: ServerProcess,
) -> None:
    # About 24 MB of payloads from 1 KiB to 1 MiB with short ones between: the response
    # spans several store pieces and write rounds.
    rng = random.Random(11)
    records: list[tuple[tuple[int, int, int, int, int], bytes]] = []
    total = 0
    i = 0
    while total < 24 * 2**20:
        size = int(2 ** rng.uniform(10, 20)) if rng.random() < 0.6 else rng.randrange(0, 200)
        records.append(((21, i, 0, 0, 5), rng.randbytes(size)))
        total += size
        i += 1
    body = b"".join(I32.pack(32 + len(p)) + struct.pack("<iqiqq", *k) + p for k, p in records)
    kmin, kmax = (21, 0, 0, 0, 0), (22, 2**40, 1, 1, 6)
    with Raw(server.port) as c:
        assert c.put(records, with_acq=True)[0] == 0
        c.send(key_range(GET, kmin, kmax))
        response = c.recv_exactly(12 + len(body) + 4 + 20)
    assert response[:12] == HEADER.pack(0, 0)
    assert response[12 : 12 + len(body)] == body
    assert response[12 + len(body) :] == I32.pack(0) + HEADER.pack(0, 8) + struct.pack("<q", 6)
    # The client role reads the same records from the stream in any split.
    conn = ClientConnection(ObjectRecordDecoder(BytesPayloadType()))
    conn.send(GetRequest(Key(*kmin), Key(*kmax)))
    got: list[tuple[tuple[int, int, int, int, int], bytes]] = []
    pos = 0
    while pos < len(response):
        step = rng.choice([1, 13, 4096, 70_000, 1_500_000])
        conn.receive_data(response[pos : pos + step])
        pos += step
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, RecordsBatch):
                got.extend(
                    ((r.key.cid, r.key.mid, r.key.moid, r.key.cap, r.key.acq), r.value)
                    for r in event.records
                )
    assert got == records
