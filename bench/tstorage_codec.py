"""Micro-benchmark of the TStorage protocol core (no sockets): records per second.

    .venv/bin/python bench/tstorage_codec.py [--records N] [--e2e]

Server role: PUT stream -> RecordBlocks (fixed and variable payload sizes, and 100 000
one-record batches with a new cid each, as the C++, C and Java clients may send) and
RecordBlock -> GET response bytes, also for ~47 MB of mixed 1 KiB..1 MiB payloads (figures
there in MB/s of payload). Client role: Record objects -> PUT stream and GET
response -> Record objects / numpy arrays. Each figure is the best of three runs.

``--e2e`` also times the client's object and numpy paths against a ``tstorage-server``
process started on a temporary data directory (127.0.0.1, port picked by the OS), and a GET
of ~47 MB of mixed 1 KiB..1 MiB payloads through that server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests._servers

from tstorage_client import events as ev
from tstorage_client._gc_paused import GcPausedRecordDecoder
from tstorage_client.block import KEY_DTYPE, RecordBlock
from tstorage_client.payload_type import BytesPayloadType, NumpyPayloadType, StructPayloadType
from tstorage_client.protocol import (
    NEED_DATA,
    NumpyRecordDecoder,
    ServerConnection,
    encode_get_records,
    encode_put_batches,
    encode_put_block,
)
from tstorage_client.record import Key, Record


def best(fn: Callable[[], object], n: float) -> float:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / min(times)


def server_decode(wire: bytes, chunk: int = 1 << 18) -> int:
    conn = ServerConnection()
    count = 0
    for i in range(0, len(wire), chunk):
        conn.receive_data(wire[i : i + chunk])
        while (e := conn.next_event()) is not NEED_DATA:
            if isinstance(e, ev.PutBatch):
                count += len(e.block)
    return count


def one_record_batches(n: int) -> bytes:
    """PUTA stream of ``n`` batches of one record each (4-byte payload), the cid changing
    at every record (``i % 1000``), as the C++ client's ``test_channel_many_records`` sends."""
    rows = np.zeros(
        n,
        dtype=[
            ("cid", "<i4"),
            ("batch_bytes", "<i4"),
            ("n", "<i4"),
            ("mid", "<i8"),
            ("moid", "<i4"),
            ("cap", "<i8"),
            ("acq", "<i8"),
            ("p", "<i4"),
        ],
    )
    rows["cid"] = np.arange(n) % 1000
    rows["batch_bytes"] = 4 + 28 + 4
    rows["n"] = 28 + 4
    rows["mid"] = rows["cap"] = rows["acq"] = rows["p"] = np.arange(n)
    return b"\x06\x00\x00\x00" + bytes(8) + rows.tobytes() + b"\xff\xff\xff\xff"


def mixed_large_block(rng: np.random.Generator, total: int = 47_000_000) -> RecordBlock:
    """About ``total`` payload bytes in records of log-uniform lengths from 1 KiB to 1 MiB."""
    lengths = np.exp(rng.uniform(np.log(1024), np.log(2**20), 4096)).astype(np.int64)
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), total))]
    k = len(lengths)
    keys = np.zeros(k, dtype=KEY_DTYPE)
    keys["cid"] = 1
    keys["mid"] = np.arange(k)
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return RecordBlock(keys, offsets, rng.bytes(int(offsets[-1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument(
        "--e2e", action="store_true", help="also time Channel against tstorage-server"
    )
    args = parser.parse_args()
    n = args.records
    rng = np.random.default_rng(0)
    keys = np.zeros(n, dtype=KEY_DTYPE)
    keys["cid"] = rng.integers(0, 8, n)
    keys["mid"] = np.arange(n)
    keys["cap"] = np.arange(n)
    fixed = RecordBlock(keys, np.arange(n + 1, dtype=np.int64) * 8, rng.bytes(8 * n))
    lengths = rng.integers(0, 64, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    variable = RecordBlock(keys, offsets, rng.bytes(int(offsets[-1])))
    header = b"\x06\x00\x00\x00" + bytes(8)
    put_fixed = header + b"".join(encode_put_block(fixed, True)) + b"\xff\xff\xff\xff"
    put_var = header + b"".join(encode_put_block(variable, True)) + b"\xff\xff\xff\xff"
    assert server_decode(put_fixed) == n and server_decode(put_var) == n

    put_tiny = one_record_batches(100_000)
    nt = min(n, 100_000)
    tiny_keys = keys[:nt].copy()
    tiny_keys["cid"] = np.arange(nt)  # distinct cids: one batch per record
    tiny_var = RecordBlock(tiny_keys, offsets[: nt + 1], variable.payload[: int(offsets[nt])])
    put_tiny_var = header + b"".join(encode_put_block(tiny_var, True)) + b"\xff\xff\xff\xff"
    assert server_decode(put_tiny) == 100_000 and server_decode(put_tiny_var) == nt
    rows = [
        ("server: decode PUTA stream, 8-byte payloads", best(lambda: server_decode(put_fixed), n)),
        (
            "server: decode PUTA stream, 100 000 one-record batches",
            best(lambda: server_decode(put_tiny), 100_000),
        ),
        (
            "server: decode PUTA stream, "
            + f"{nt:,} one-record batches, 0..63 B".replace(",", " ", 1),
            best(lambda: server_decode(put_tiny_var), nt),
        ),
        (
            "server: decode PUTA stream, 0..63-byte payloads",
            best(lambda: server_decode(put_var), n),
        ),
        ("server: encode GET records, 8-byte payloads", best(lambda: encode_get_records(fixed), n)),
        (
            "server: encode GET records, 0..63-byte payloads",
            best(lambda: encode_get_records(variable), n),
        ),
    ]
    m = min(n, 200_000)
    pt = StructPayloadType[int]("<q")
    records = [Record(Key(1, i, 0, i, 0), i) for i in range(m)]
    rows.append(
        (
            "client: encode PUTA from Record objects",
            best(lambda: list(encode_put_batches(records, True, pt.to_bytes)), m),
        )
    )
    small = RecordBlock(
        keys[:m], np.arange(m + 1, dtype=np.int64) * 8, np.arange(m, dtype=np.int64).tobytes()
    )
    get_wire = encode_get_records(small) + b"\x00\x00\x00\x00"
    dec = GcPausedRecordDecoder(pt)  # as the channels decode
    rows.append(
        ("client: decode GET into Record objects", best(lambda: dec.decode(get_wire, None), m))
    )
    get_wire_n = encode_get_records(fixed) + b"\x00\x00\x00\x00"
    ndec = NumpyRecordDecoder(NumpyPayloadType(np.int64).parsing_dtype)
    rows.append(
        ("client: decode GET into numpy arrays", best(lambda: ndec.decode(get_wire_n, None), n))
    )
    large = mixed_large_block(rng)
    mb = int(large.offsets[-1]) / 1e6
    put_large = header + b"".join(encode_put_block(large, True)) + b"\xff\xff\xff\xff"
    assert server_decode(put_large) == len(large)
    large_rows = [
        (
            f"server: decode PUTA stream, {len(large)} mixed 1 KiB..1 MiB payloads",
            best(lambda: server_decode(put_large), mb),
        ),
        (
            f"server: encode GET records, {len(large)} mixed 1 KiB..1 MiB payloads",
            best(lambda: encode_get_records(large), mb),
        ),
    ]
    width = max(len(r[0]) for r in rows + large_rows)
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>14,.0f} records/s")
    for name, rate in large_rows:
        print(f"{name:<{width}}  {rate:>14,.0f} MB/s ({mb:.1f} MB)")
    if args.e2e:
        end_to_end(min(n, 200_000))


def end_to_end(n: int) -> None:
    """Object and numpy paths of ``Channel`` against a real server process."""
    from tests._servers import spawn
    from tstorage_client.channel import Channel

    with tempfile.TemporaryDirectory() as data_dir:
        server = spawn(["tstorage-server", "--data-dir", data_dir, "--port", "0"])
        try:
            port = server.port
            pt = StructPayloadType[int]("<q")
            rows = []
            with Channel("127.0.0.1", port, pt) as ch:
                for cid, name, put in ((1, "puta", ch.puta), (2, "put", ch.put)):
                    recs = [Record(Key(cid, i, 0, i, 0), i) for i in range(n)]
                    t = time.perf_counter()
                    assert put(recs).is_ok()
                    rows.append((f"e2e object {name}", n / (time.perf_counter() - t)))
                t = time.perf_counter()
                got = ch.get(Key(1, 0, 0, 0, 0), Key(3, n, 1, n, 2**63 - 1))
                assert got.is_ok() and len(got.data) == 2 * n
                rows.append(("e2e object get", 2 * n / (time.perf_counter() - t)))
            npt = NumpyPayloadType(np.int64)
            m = 5 * n
            arr = np.zeros(m, npt.parsing_dtype)
            arr["cid"] = 3
            arr["mid"] = np.arange(m)
            arr["v0"] = np.arange(m)
            with Channel("127.0.0.1", port, npt) as nch:
                t = time.perf_counter()
                assert nch.puta(cast(Any, arr)).is_ok()  # numpy arrays are record sets too
                rows.append(("e2e numpy puta", m / (time.perf_counter() - t)))
                t = time.perf_counter()
                res = nch.get(Key(3, 0, 0, 0, 0), Key(4, m, 1, 1, 1))
                assert res.is_ok() and sum(len(a) for a in cast(list[Any], res.data)) == m
                rows.append(("e2e numpy get", m / (time.perf_counter() - t)))
            large = mixed_large_block(np.random.default_rng(1))
            mb = int(large.offsets[-1]) / 1e6
            big = [Record(Key(5, k.mid, 0, 0, 0), p) for k, p in large.to_records()]
            with Channel("127.0.0.1", port, BytesPayloadType()) as bch:
                assert bch.puta(big).is_ok()
                t = time.perf_counter()
                got_large = bch.get(Key(5, 0, 0, 0, 0), Key(6, 2**40, 1, 1, 1))
                large_rate = mb / (time.perf_counter() - t)
                assert got_large.is_ok() and [r.value for r in got_large.data] == [
                    r.value for r in big
                ]
            for name, rate in rows:
                print(f"{name:<48}  {rate:>14,.0f} records/s")
            name = f"e2e object get, {len(big)} mixed 1 KiB..1 MiB payloads"
            print(f"{name:<48}  {large_rate:>14,.0f} MB/s ({mb:.1f} MB)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
