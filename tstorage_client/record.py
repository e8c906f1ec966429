"""TStorage keys and records.

A :class:`Key` is the 5-dimensional address of a record: ``(cid, mid, moid, cap, acq)``.
On the wire it is packed little-endian as ``<iqiqq`` (32 bytes); PUT records omit cid
(it travels in the batch header) and acq, PUTA records omit cid only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

__all__ = ["Key", "Record"]

T = TypeVar("T")

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_FULL = struct.Struct("<iqiqq")
_NO_ACQ = struct.Struct("<iqiq")
_NO_CID = struct.Struct("<qiqq")
_NO_CID_NO_ACQ = struct.Struct("<qiq")


@dataclass(order=True, frozen=True, slots=True)
class Key:
    """TStorage Key.

    Keys order lexicographically on ``(cid, mid, moid, cap, acq)``. A GET selects the
    half-open box ``key_min.x <= x < key_max.x`` for every component separately.

    Attributes:
        cid: Integer in range 0 to 2^31 - 1 (negative means invalid).
        mid: Integer in range -2^63 to 2^63 - 1.
        moid: Integer in range -2^31 to 2^31 - 1.
        cap: Integer in range -2^63 to 2^63 - 1 (capture time, TStorage ns).
        acq: Integer in range -2^63 to 2^63 - 1 (acquisition time, TStorage ns).
    """

    cid: int = -1
    mid: int = -1
    moid: int = -1
    cap: int = -1
    acq: int = -1

    _from_bytes_format: ClassVar[struct.Struct] = _FULL

    @classmethod
    def min(cls) -> Key:
        """The smallest valid key: cid 0, every other component at its minimum."""
        return cls(0, INT64_MIN, INT32_MIN, INT64_MIN, INT64_MIN)

    @classmethod
    def max(cls) -> Key:
        """The largest key: every component at its maximum (never selectable by GET)."""
        return cls(INT32_MAX, INT64_MAX, INT32_MAX, INT64_MAX, INT64_MAX)

    def to_bytes(self, *, with_cid: bool = True, with_acq: bool = True) -> bytes:
        """Pack the key as on the wire.

        Args:
            with_cid: Include the leading int32 cid.
            with_acq: Include the trailing int64 acq.

        Returns:
            32, 24, 28 or 20 bytes.

        Raises:
            struct.error: A component is outside its integer range.
        """
        if with_cid:
            if with_acq:
                return _FULL.pack(self.cid, self.mid, self.moid, self.cap, self.acq)
            return _NO_ACQ.pack(self.cid, self.mid, self.moid, self.cap)
        if with_acq:
            return _NO_CID.pack(self.mid, self.moid, self.cap, self.acq)
        return _NO_CID_NO_ACQ.pack(self.mid, self.moid, self.cap)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> Key | None:
        """Unpack a full 32-byte key.

        Returns:
            The key, or None when the bytes are too short or the cid is negative.
        """
        try:
            fields = _FULL.unpack_from(data, offset)
        except struct.error:
            return None
        return cls(*fields) if fields[0] >= 0 else None

    def valid(self) -> bool:
        """True when the cid is not negative (the only rule the official client checks)."""
        return self.cid >= 0

    @classmethod
    def bytes_count(cls) -> int:
        """Size of a full key on the wire (32)."""
        return _FULL.size


@dataclass(order=True, frozen=True, slots=True)
class Record(Generic[T]):
    """Record as stored by TStorage with type generic value.

    Attributes:
        key: Key identifying this Record.
        value: Payload as stored by TStorage, decoded by the channel's payload type.
    """

    key: Key
    value: T


# Fast constructors for decoders: a frozen dataclass's generated ``__init__`` goes through
# ``object.__setattr__`` per field; setting the slots directly builds the same objects in
# about two thirds of the time, which matters when a GET yields millions of records.
_new = object.__new__
_set_cid: Any = vars(Key)["cid"].__set__
_set_mid: Any = vars(Key)["mid"].__set__
_set_moid: Any = vars(Key)["moid"].__set__
_set_cap: Any = vars(Key)["cap"].__set__
_set_acq: Any = vars(Key)["acq"].__set__
_set_key: Any = vars(Record)["key"].__set__
_set_value: Any = vars(Record)["value"].__set__


def make_record(cid: int, mid: int, moid: int, cap: int, acq: int, value: T) -> Record[T]:
    """``Record(Key(cid, mid, moid, cap, acq), value)``, built without the dataclass ``__init__``."""
    key = _new(Key)
    _set_cid(key, cid)
    _set_mid(key, mid)
    _set_moid(key, moid)
    _set_cap(key, cap)
    _set_acq(key, acq)
    record: Record[T] = _new(Record)
    _set_key(record, key)
    _set_value(record, value)
    return record
