"""Record stores: the one ``Store`` interface and its implementations."""

from tstorage_server.store.base import PutResult, Snapshot, Store
from tstorage_server.store.lmdb import EXIT_DATA_DIR_IN_USE, DataDirInUse, LmdbStore
from tstorage_server.store.memory import MemoryStore

__all__ = [
    "EXIT_DATA_DIR_IN_USE",
    "DataDirInUse",
    "LmdbStore",
    "MemoryStore",
    "PutResult",
    "Snapshot",
    "Store",
]
