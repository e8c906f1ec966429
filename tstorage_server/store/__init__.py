"""Record stores: the one ``Store`` interface and its implementations."""

from tstorage_server.store.base import PutResult, Snapshot, Store
from tstorage_server.store.lmdb import (
    DEFAULT_SYNC_INTERVAL_S,
    EXIT_DATA_DIR_IN_USE,
    MAX_SYNC_INTERVAL_S,
    SYNC_MODES,
    DataDirInUse,
    LmdbStore,
    SyncMode,
)
from tstorage_server.store.memory import MemoryStore

__all__ = [
    "DEFAULT_SYNC_INTERVAL_S",
    "EXIT_DATA_DIR_IN_USE",
    "MAX_SYNC_INTERVAL_S",
    "SYNC_MODES",
    "DataDirInUse",
    "LmdbStore",
    "MemoryStore",
    "PutResult",
    "Snapshot",
    "Store",
    "SyncMode",
]
