"""Wire layout of the TStorage protocol: commands, structs, sizes and limits.

The byte layout itself is drawn in the package docstring (:mod:`tstorage_client.protocol`).
"""

from __future__ import annotations

import struct
from typing import Any

from ..errors import LocalProtocolError
from ..record import Key

CMD_GET = 1
CMD_PUT = 5
CMD_PUTA = 6
CMD_GET_ACQ = 7

HEADER = struct.Struct("<iQ")
INT32 = struct.Struct("<i")
INT64 = struct.Struct("<q")
ACQ_PAIR = struct.Struct("<qq")
BATCH_HEADER = struct.Struct("<ii")
BATCH_HEADER_AND_SIZE = struct.Struct("<iii")  # cid, batch_bytes, first record's n
KEY = struct.Struct("<iqiqq")
SIZE_AND_KEY = struct.Struct("<iiqiqq")
PUT_RECORD_HEAD = struct.Struct("<iqiq")  # n, mid, moid, cap
PUTA_RECORD_HEAD = struct.Struct("<iqiqq")  # n, mid, moid, cap, acq

HEADER_BYTES = HEADER.size  # 12
KEY_BYTES = KEY.size  # 32
KEY_RANGE_BYTES = 2 * KEY_BYTES  # 64
PUT_KEY_BYTES = 20
PUTA_KEY_BYTES = 28
#: Largest payload any TStorage accepts (32 MiB, inclusive).
MAX_PAYLOAD_BYTES = 32 * 2**20
#: Default receive-buffer limit: one maximal record plus slack.
DEFAULT_MAX_BUFFER_SIZE = MAX_PAYLOAD_BYTES + 2**20
PUT_END_GUARD = -1
#: Largest ``size`` a client accepts in a response header (real servers send 0, 8 or 16).
MAX_RESPONSE_HEADER_EXTRA = 2**20
#: Client receive sizes start here and double while the peer keeps filling them...
RECV_BYTES_MIN = 64 * 2**10
#: ...up to this size (also the largest region of GET records received in place).
RECV_BYTES_MAX = 4 * 2**20

_TERMINATOR = INT32.pack(0)
_GUARD = INT32.pack(PUT_END_GUARD)
_ZERO8 = bytes(8)


def key_range_bytes(cmd: int, key_min: Key, key_max: Key) -> bytes:
    """``(cmd, 64) + key_min + key_max`` (76 bytes).

    Raises:
        LocalProtocolError: A key component is outside its integer range.
    """
    try:
        return (
            HEADER.pack(cmd, KEY_RANGE_BYTES)
            + KEY.pack(key_min.cid, key_min.mid, key_min.moid, key_min.cap, key_min.acq)
            + KEY.pack(key_max.cid, key_max.mid, key_max.moid, key_max.cap, key_max.acq)
        )
    except struct.error as exc:
        raise LocalProtocolError(f"key out of range: {exc}") from exc


def _np() -> Any:
    # numpy is imported on first use: the object paths of the client never need it.
    import numpy

    return numpy
