"""Byte-exact wire vectors from the protocol specification (section 3), shared by the
encoder and decoder tests (h11 ``SIMPLE_CASES`` style)."""

from __future__ import annotations

import struct

from tstorage_client.record import Key


def h(text: str) -> bytes:
    """Hex with any whitespace and ``|`` separators."""
    return bytes.fromhex(text.replace("|", " "))


P314 = struct.pack("<i", 314)

KEY_MIN_HEX = "00000000 0000000000000080 00000080 0000000000000080 0000000000000080"
KEY_MAX_HEX = "ffffff7f ffffffffffffff7f ffffff7f ffffffffffffff7f ffffffffffffff7f"

GET_REQUEST = (
    Key(1, 2, 3, 4, 5),
    Key(10, 20, 30, 40, 50),
    h(
        "01000000 4000000000000000"
        "01000000 0200000000000000 03000000 0400000000000000 0500000000000000"
        "0a000000 1400000000000000 1e000000 2800000000000000 3200000000000000"
    ),
)

GET_ALL_REQUEST = (Key.min(), Key.max(), h("01000000 4000000000000000" + KEY_MIN_HEX + KEY_MAX_HEX))

GET_ACQ_REQUEST = (
    Key(0, 12, 2, 10, 10),
    Key(1, 13, 3, 11, 100),
    h(
        "07000000 4000000000000000"
        "00000000 0c00000000000000 02000000 0a00000000000000 0a00000000000000"
        "01000000 0d00000000000000 03000000 0b00000000000000 6400000000000000"
    ),
)
GET_ACQ_RESPONSE = (100, h("00000000 0800000000000000 6400000000000000"))

# GET response with one record key (1,2,3,4,5), payload int32 4, trailer acq 16.
GET_ONE_RECORD = (
    [(Key(1, 2, 3, 4, 5), struct.pack("<i", 4))],
    16,
    h(
        "00000000 000000000000 0000"
        "24000000"
        "01000000 0200000000000000 03000000 0400000000000000 0500000000000000"
        "04000000"
        "00000000"
        "00000000 0800000000000000 1000000000000000"
    ),
)
GET_EMPTY: tuple[list[tuple[Key, bytes]], int, bytes] = (
    [],
    7,
    h("00000000 0000000000000000 00000000 00000000 0800000000000000 0700000000000000"),
)

PUT_2_RECORDS = (
    [(Key(0, 12, 0, 10), P314), (Key(1, 12, 1, 10), P314)],
    False,
    h(
        "05000000 000000000000 0000"
        "00000000 1c000000"
        "18000000 0c00000000000000 00000000 0a00000000000000 3a010000"
        "01000000 1c000000"
        "18000000 0c00000000000000 01000000 0a00000000000000 3a010000"
        "ffffffff"
    ),
)
PUTA_2_RECORDS = (
    [(Key(0, 12, 2, 10, 10), P314), (Key(1, 12, 3, 10, 11), P314)],
    True,
    h(
        "06000000 000000000000 0000"
        "00000000 24000000"
        "20000000 0c00000000000000 02000000 0a00000000000000 0a00000000000000 3a010000"
        "01000000 24000000"
        "20000000 0c00000000000000 03000000 0a00000000000000 0b00000000000000 3a010000"
        "ffffffff"
    ),
)
PUT_EMPTY: tuple[list[tuple[Key, bytes]], bool, bytes] = (
    [],
    False,
    h("05000000 0000000000000000 ffffffff"),
)
PUTA_EMPTY: tuple[list[tuple[Key, bytes]], bool, bytes] = (
    [],
    True,
    h("06000000 0000000000000000 ffffffff"),
)

PUT_RESPONSE = (
    817000000000000000,
    817000000000000001,
    h("00000000 1000000000000000 00807edd2b91560b 01807edd2b91560b"),
)
PUTA_RESPONSE = (-1, -1, h("00000000 1000000000000000 ffffffffffffffff ffffffffffffffff"))

ERROR_GET = h("00000000 0000000000000000 00000000 ffffffff 0000000000000000 0000000000000000")
ERROR_GET_ACQ = h("ffffffff 0000000000000000 0000000000000000")
ERROR_PUT = h("ffffffff 0000000000000000")

assert len(PUT_2_RECORDS[2]) == 88
assert len(PUTA_2_RECORDS[2]) == 104
assert len(ERROR_GET) == 36
