"""Raw-socket helpers for wire-level tests: exact bytes out, exact bytes in.

Requests are framed here by hand (with ``struct``) on purpose: tests must also send what a
correct client never would (bad sizes, unknown commands, truncated frames).
"""

from __future__ import annotations

import socket
import struct
import time

HEADER = struct.Struct("<iQ")
KEY = struct.Struct("<iqiqq")
I32 = struct.Struct("<i")
I64 = struct.Struct("<q")

GET, PUT, PUTA, GET_ACQ = 1, 5, 6, 7
I32_MAX, I64_MAX = 2**31 - 1, 2**63 - 1
I32_MIN, I64_MIN = -(2**31), -(2**63)
KEY_MIN = (0, I64_MIN, I32_MIN, I64_MIN, I64_MIN)
KEY_MAX = (I32_MAX, I64_MAX, I32_MAX, I64_MAX, I64_MAX)

ERROR_GET = bytes.fromhex(
    "00000000000000000000000000000000ffffffff00000000000000000000000000000000"
)
ERROR_GET_ACQ = bytes.fromhex("ffffffff00000000000000000000000000000000")
ERROR_PUT = bytes.fromhex("ffffffff0000000000000000")

Key = tuple[int, int, int, int, int]


def key_range(cmd: int, kmin: Key, kmax: Key, size: int = 64) -> bytes:
    return HEADER.pack(cmd, size) + KEY.pack(*kmin) + KEY.pack(*kmax)


def put_request(records: list[tuple[Key, bytes]], with_acq: bool) -> bytes:
    """A PUT/PUTA request as every client frames it: one batch per run of equal cids."""
    out = [HEADER.pack(PUTA if with_acq else PUT, 0)]
    i = 0
    while i < len(records):
        cid = records[i][0][0]
        body = []
        while i < len(records) and records[i][0][0] == cid:
            (_cid, mid, moid, cap, acq), payload = records[i]
            key = (
                struct.pack("<qiqq", mid, moid, cap, acq)
                if with_acq
                else struct.pack("<qiq", mid, moid, cap)
            )
            body.append(I32.pack(len(key) + len(payload)) + key + payload)
            i += 1
        raw = b"".join(body)
        out.append(struct.pack("<ii", cid, len(raw)) + raw)
    out.append(I32.pack(-1))
    return b"".join(out)


class Raw:
    """A blocking client socket with exact-length reads."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exactly(self, n: int) -> bytes:
        parts = []
        while n:
            chunk = self.sock.recv(min(n, 1 << 20))
            if not chunk:
                raise EOFError(f"connection closed with {n} bytes missing")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def recv_until_close(self, timeout: float = 10.0) -> bytes:
        """Everything the server sends until it closes the connection."""
        self.sock.settimeout(timeout)
        parts = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)

    def put(self, records: list[tuple[Key, bytes]], with_acq: bool = False) -> tuple[int, int, int]:
        """Returns (status, acq_min, acq_max)."""
        self.send(put_request(records, with_acq))
        status, size = HEADER.unpack(self.recv_exactly(12))
        body = self.recv_exactly(size)
        if status:
            return status, -1, -1
        a, b = struct.unpack_from("<qq", body)
        return status, a, b

    def get_acq(self, kmin: Key, kmax: Key) -> tuple[int, int]:
        self.send(key_range(GET_ACQ, kmin, kmax))
        status, size = HEADER.unpack(self.recv_exactly(12))
        body = self.recv_exactly(size)
        return status, (I64.unpack_from(body)[0] if status == 0 else -1)

    def get(
        self, kmin: Key = KEY_MIN, kmax: Key = KEY_MAX
    ) -> tuple[int, list[tuple[Key, bytes]], int]:
        """Returns (status, records, trailer acq); status is the first non-zero one seen."""
        self.send(key_range(GET, kmin, kmax))
        status, size = HEADER.unpack(self.recv_exactly(12))
        self.recv_exactly(size)
        records: list[tuple[Key, bytes]] = []
        if status:
            return status, records, -1
        while True:
            n = I32.unpack(self.recv_exactly(4))[0]
            if n == 0:
                break
            raw = self.recv_exactly(n)
            records.append((KEY.unpack_from(raw), raw[32:]))
        status, size = HEADER.unpack(self.recv_exactly(12))
        body = self.recv_exactly(8 if status else size)
        return status, records, (I64.unpack_from(body)[0] if status == 0 else -1)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
