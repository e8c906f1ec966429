"""TEMPORARY stand-in for the shared sans-IO protocol core of ``tstorage_client``.

The server must encode and decode wire bytes only through ``tstorage_client``'s protocol
core. Until that core is committed, this module provides the few names the server needs
(``KEY_DTYPE`` and ``RecordBlock``) with the shapes the core announced, so the store can be
built and tested. Delete it once ``tstorage_client.protocol`` provides them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEY_DTYPE = np.dtype(
    [("cid", "<i4"), ("mid", "<i8"), ("moid", "<i4"), ("cap", "<i8"), ("acq", "<i8")]
)


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """Records in columnar form: ``keys[i]`` owns ``payload[offsets[i]:offsets[i + 1]]``."""

    keys: np.ndarray
    offsets: np.ndarray
    payload: bytes | memoryview

    def __len__(self) -> int:
        return len(self.keys)
