"""RFC 6455 payload masking (§5.3): XOR with a repeating 4-byte key.

One function for both sides: the client masks what it sends, the server unmasks what it
receives. Short payloads go through one Python integer; from 16 KiB on, numpy XORs 32-bit
words against the key, several times faster on large payloads (``bench/znsocket.md``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["xor_mask"]

_NUMPY_BYTES = 1 << 14


def xor_mask(data: bytes | bytearray | memoryview, mask: Any, offset: int = 0) -> bytes:
    """``data`` XOR the 4-byte ``mask``, whose byte ``offset % 4`` lines up with ``data[0]``.

    Args:
        data: The payload (or a piece of it).
        mask: The four key bytes (``bytes`` or a sequence of ints).
        offset: Position of ``data[0]`` within the frame payload.
    """
    size = len(data)
    if not size:
        return b""
    shift = offset % 4
    key = bytes(mask[(shift + i) % 4] for i in range(4))
    if size >= _NUMPY_BYTES:
        words = size // 4
        out = np.empty(size, dtype=np.uint8)
        np.bitwise_xor(
            np.frombuffer(data, dtype=np.uint32, count=words),
            np.frombuffer(key, dtype=np.uint32)[0],
            out=out[: words * 4].view(np.uint32),
        )
        for i in range(words * 4, size):
            out[i] = data[i] ^ key[i % 4]
        return out.tobytes()
    stream = key * (size // 4 + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(stream[:size], "little")
    return value.to_bytes(size, "little")
